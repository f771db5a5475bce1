"""The seed API (../shared/SEED_API.md), response for response, against a real server."""

from __future__ import annotations

import re
import threading

import httpx

from conftest import AUDIO, JFK_TEXT, PROMPT, PROMPT_CLIP, submit, wait_for_task

TASK_ID = re.compile(r"^\d{20}$")


def test_create_answers_201_with_a_twenty_digit_task_id_only(server):
    response = submit(server.url, AUDIO / "hotwords.mp3")
    assert response.status_code == 201
    body = response.json()
    assert list(body) == ["task_id"]
    assert TASK_ID.match(body["task_id"])


def test_missing_file_field_answers_400_with_the_seed_body(server):
    response = httpx.post(f"{server.url}/api/v1/asr/task", data={"language": "en"})
    assert response.status_code == 400
    assert response.json() == {"error": "Missing 'file'"}


def test_upload_under_another_field_name_is_a_missing_file(server):
    response = submit(server.url, AUDIO / "jfk.flac", field="audio")
    assert response.status_code == 400
    assert response.json() == {"error": "Missing 'file'"}


def test_body_that_is_not_multipart_is_a_missing_file(server):
    response = httpx.post(f"{server.url}/api/v1/asr/task", content=b"RIFF....", headers={"content-type": "audio/wav"})
    assert response.status_code == 400
    assert response.json() == {"error": "Missing 'file'"}


def test_unknown_task_answers_404_with_the_seed_body(server):
    response = httpx.get(f"{server.url}/api/v1/asr/task/20250331222354939437")
    assert response.status_code == 404
    assert response.json() == {"task_id": "20250331222354939437", "status": "Task not found", "result": ""}


def test_task_in_progress_answers_202_with_the_seed_body(server):
    task_id = submit(server.url, AUDIO / "multilingual.mp3").json()["task_id"]
    response = httpx.get(f"{server.url}/api/v1/asr/task/{task_id}")
    assert response.status_code == 202
    assert response.json() == {"task_id": task_id, "status": "processing", "result": ""}
    assert wait_for_task(server.url, task_id).status_code == 200


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_flac_upload_ends_done_with_whispers_result(server):
    task_id = submit(server.url, AUDIO / "jfk.flac").json()["task_id"]
    response = wait_for_task(server.url, task_id)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["task_id", "status", "result"]
    assert body["task_id"] == task_id and body["status"] == "done"
    result = body["result"]
    assert result["language"] == "en"
    assert words(result["text"]) == words(JFK_TEXT)  # a comma may differ with the CPU, as faster-whisper's does
    assert result["text"] == "".join(segment["text"] for segment in result["segments"])
    fields = ["id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
              "compression_ratio", "no_speech_prob"]
    for index, segment in enumerate(result["segments"]):
        assert list(segment) == fields
        assert segment["id"] == index
        assert all(isinstance(token, int) for token in segment["tokens"])
        assert 0 <= segment["start"] < segment["end"] <= 11.01


def test_mp3_upload_is_transcribed(server):
    response = wait_for_task(server.url, submit(server.url, AUDIO / "hotwords.mp3").json()["task_id"])
    assert response.status_code == 200
    assert "folder" in response.json()["result"]["text"]


def test_stereo_wav_upload_is_mixed_to_mono_and_transcribed(server):
    response = wait_for_task(server.url, submit(server.url, AUDIO / "stereo_diarization.wav").json()["task_id"])
    assert response.status_code == 200
    text = response.json()["result"]["text"].lower()
    assert "wizard" in text and "curtain" in text


def test_undecodable_upload_ends_as_error_with_a_traceback(server, tmp_path):
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"this is not audio at all\n" * 100)
    task_id = submit(server.url, broken).json()["task_id"]
    response = wait_for_task(server.url, task_id)
    assert response.status_code == 500
    body = response.json()
    assert body["task_id"] == task_id and body["status"] == "error"
    assert body["result"].startswith("Traceback (most recent call last):")
    # ... and the server keeps serving.
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert wait_for_task(server.url, submit(server.url, AUDIO / "hotwords.mp3").json()["task_id"]).status_code == 200


def test_empty_upload_answers_400(server, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    response = submit(server.url, empty)
    assert response.status_code == 400
    assert "Empty 'file'" in response.json()["error"]


def test_twenty_concurrent_uploads_get_distinct_ids_and_all_end_done(server):
    clips = [AUDIO / name for name in ("jfk.flac", "hotwords.mp3", "stereo_diarization.wav")]
    ids: list[str] = []
    lock = threading.Lock()

    def upload(i: int) -> None:
        response = submit(server.url, clips[i % len(clips)])
        assert response.status_code == 201
        with lock:
            ids.append(response.json()["task_id"])

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 20 and len(set(ids)) == 20
    for task_id in ids:
        response = wait_for_task(server.url, task_id)
        assert response.status_code == 200, response.text
        assert response.json()["result"]["text"].strip()


def test_health_and_readiness_answer_200_once_the_model_is_loaded(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_an_initial_prompt_without_a_language_reads_as_faster_whisper_reads_it(server, prompted_reference):
    task_id = submit(server.url, PROMPT_CLIP, initial_prompt=PROMPT, pack="false").json()["task_id"]
    done = wait_for_task(server.url, task_id)
    assert done.status_code == 200, done.text
    assert done.json()["result"]["text"] == prompted_reference["transcribe"]
