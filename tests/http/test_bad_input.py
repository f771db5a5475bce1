"""Bad input: each gets a clear answer and the server keeps serving (docs/operations.md, bad input)."""

from __future__ import annotations

import av
import httpx
import numpy as np
import pytest

from conftest import AUDIO, wait_for_task


def post(server, name: str, content: bytes, **data: str) -> httpx.Response:
    return httpx.post(server.url + "/api/v1/asr/task", files={"file": (name, content)}, data=data, timeout=60)


@pytest.mark.parametrize("task_id", ["..%2F..%2Fetc%2Fpasswd", "9" * 10_000, "%00", "abc"])
def test_task_ids_of_odd_form_get_the_seed_404(server, task_id):
    response = httpx.get(f"{server.url}/api/v1/asr/task/{task_id}")
    assert response.status_code == 404
    assert response.json()["status"] == "Task not found" and response.json()["result"] == ""


@pytest.mark.parametrize("name", ["../../escape.flac", "a\0b.flac", ""])
def test_hostile_file_names_are_never_used_on_disk(server, name):
    response = post(server, name, (AUDIO / "jfk.flac").read_bytes())
    assert response.status_code == 201, response.text
    done = wait_for_task(server.url, response.json()["task_id"])
    assert done.status_code == 200
    assert not (server.data_dir.parent / "escape.flac").exists()
    assert not any(server.data_dir.parent.parent.glob("escape.flac"))


def test_a_file_name_too_long_for_a_part_header_gets_400_and_nothing_is_kept(server):
    response = post(server, "x" * 5000 + ".flac", (AUDIO / "jfk.flac").read_bytes())
    assert response.status_code == 400
    assert response.json() == {"error": "Malformed multipart body: Maximum header size exceeded"}
    assert list((server.data_dir / "uploads").iterdir()) == []


@pytest.mark.parametrize("name, content", [
    ("notes.mp3", b"These are my notes, not audio.\n" * 40),
    ("random.mp3", np.random.default_rng(0).bytes(20_000)),
])
def test_files_that_are_not_audio_end_as_error_with_the_reason(server, name, content):
    response = post(server, name, content)
    assert response.status_code == 201
    done = wait_for_task(server.url, response.json()["task_id"])
    assert done.status_code == 500
    assert done.json()["status"] == "error" and "Traceback" in done.json()["result"]
    last_line = done.json()["result"].strip().splitlines()[-1]
    assert "UndecodableAudio: The file could not be decoded as audio" in last_line
    assert str(server.data_dir) not in last_line  # no server paths in the reason
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_truncated_mp3_is_transcribed_as_far_as_it_goes_or_ends_as_error(server):
    response = post(server, "truncated.mp3", (AUDIO / "hotwords.mp3").read_bytes()[:600])
    done = wait_for_task(server.url, response.json()["task_id"])
    assert done.status_code in (200, 500), "a clear end either way, never a hang or a crash"
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_video_without_an_audio_track_ends_as_error(server, tmp_path):
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    response = post(server, "silent.mp4", path.read_bytes())
    done = wait_for_task(server.url, response.json()["task_id"])
    assert done.status_code in (200, 500)
    if done.status_code == 200:
        assert done.json()["result"]["segments"] == []


def test_unknown_form_fields_are_ignored(server):
    response = post(server, "jfk.flac", (AUDIO / "jfk.flac").read_bytes(), colour="blue", model="whisper-1")
    assert response.status_code == 201
    assert wait_for_task(server.url, response.json()["task_id"]).status_code == 200


def silence_flac(seconds: int) -> bytes:
    """``seconds`` of digital silence, 16 kHz mono FLAC (a few KB per hour)."""
    import io

    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=16000, layout="mono")
        block = np.zeros((1, 16000 * 60), dtype=np.int16)
        for _ in range(seconds // 60):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def test_hours_of_silence_past_max_audio_seconds_end_as_error_before_decoding(server_factory):
    limited = server_factory(extra_env={"ASR_SERVER__MAX_AUDIO_SECONDS": "3600"}).start()
    response = post(limited, "silence.flac", silence_flac(3 * 3600))
    assert response.status_code == 201
    done = wait_for_task(limited.url, response.json()["task_id"], timeout=60)
    assert done.status_code == 500
    assert "AudioTooLong: The audio is 10800.0 s long" in done.json()["result"]


def test_long_silence_in_vad_mode_ends_done_with_no_text(server):
    response = post(server, "silence.flac", silence_flac(20 * 60), vad_filter="true")
    done = wait_for_task(server.url, response.json()["task_id"], timeout=120)
    assert done.status_code == 200
    assert done.json()["result"]["segments"] == [] and done.json()["result"]["text"] == ""
