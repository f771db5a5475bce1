"""The OpenAI-compatible endpoints, driven by the official `openai` package, unchanged."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from conftest import AUDIO, EVAL, PROMPT, PROMPT_CLIP


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="not-checked", max_retries=0, timeout=300)


def test_a_transcription_comes_back_as_json_text_with_its_usage(client):
    with (AUDIO / "jfk.flac").open("rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert "ask not what your country can do for you" in result.text.lower()
    assert result.usage.type == "duration" and result.usage.seconds == 11  # 11.0 s


@pytest.mark.parametrize("task", ["transcribe", "translate"])
def test_a_prompt_without_a_language_reads_as_faster_whisper_reads_it(client, prompted_reference, task):
    create = client.audio.transcriptions.create if task == "transcribe" else client.audio.translations.create
    with PROMPT_CLIP.open("rb") as audio:
        result = create(model="whisper-1", file=audio, prompt=PROMPT, extra_body={"pack": "false"})
    assert result.text == prompted_reference[task]


def test_verbose_json_has_whisper_segments_and_the_language(client):
    with (AUDIO / "jfk.flac").open("rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json",
                                                    timestamp_granularities=["segment"], language="en")
    assert result.language == "en" and result.duration == pytest.approx(11.0, abs=0.05)  # the file's length
    assert result.segments[0].start == 0.0 and result.segments[-1].end <= result.duration
    assert result.usage.seconds == 11
    assert "".join(s.text for s in result.segments) == result.text


@pytest.mark.parametrize("fmt, marker", [("srt", "00:00:00,000 --> "), ("vtt", "WEBVTT\n\n00:00:00.000 --> "),
                                         ("text", "ask not")])
def test_plain_formats_come_back_as_strings(client, fmt, marker):
    with (AUDIO / "jfk.flac").open("rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format=fmt)
    assert isinstance(result, str) and marker in result


def test_a_translation_is_english(client):
    with (EVAL / "es_librivox_capitan_veneno.mp3").open("rb") as audio:
        result = client.audio.translations.create(model="whisper-1", file=audio)
    english = {"the", "and", "of"}
    assert english & set(result.text.lower().split()), result.text


def test_the_models_list_names_whisper_1(client):
    assert "whisper-1" in [model.id for model in client.models.list()]


def test_word_granularity_gives_words(client):
    with (AUDIO / "jfk.flac").open("rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json",
                                                    timestamp_granularities=["word", "segment"])
    assert [w.word for w in result.words][:3] == ["And", "so", "my"]
    assert all(w.start <= w.end for w in result.words)


def test_bad_requests_get_openai_shaped_400s(client):
    with (AUDIO / "jfk.flac").open("rb") as audio, pytest.raises(openai.BadRequestError) as bad_language:
        client.audio.transcriptions.create(model="whisper-1", file=audio, language="xx")
    assert "language" in bad_language.value.body["message"]


def test_the_task_stays_on_the_task_api(server):
    with (AUDIO / "jfk.flac").open("rb") as audio:
        response = httpx.post(server.url + "/v1/audio/transcriptions", files={"file": ("jfk.flac", audio)},
                              data={"model": "whisper-1"}, timeout=300)
    task = httpx.get(f"{server.url}/api/v1/asr/task/{response.headers['x-asr-task-id']}")
    assert task.status_code == 200 and task.json()["result"]["text"] == response.json()["text"]


def test_a_file_that_is_not_audio_gets_an_openai_shaped_400(client, tmp_path):
    image = tmp_path / "picture.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    with image.open("rb") as handle, pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="whisper-1", file=handle)
    assert refused.value.body["message"].startswith("Invalid file format")
    assert refused.value.body["param"] == "file"


def test_a_client_that_goes_away_cancels_its_task(server):
    # The long file takes the engine minutes; the client gives up after a few seconds.
    long = EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac"
    with open(long, "rb") as handle, pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/audio/transcriptions", files={"file": (long.name, handle)},
                   data={"model": "whisper-1"}, timeout=httpx.Timeout(60, read=3))
    deadline = time.monotonic() + 300  # catches a hang; a window's step takes far less, even on a loaded VM
    while True:  # the server noticed: the task is gone and the engine let it go
        tasks = httpx.get(server.url + "/api/v1/asr/tasks", params={"status": "processing"}).json()["tasks"]
        active = httpx.get(server.url + "/readyz").json()["scheduler"]["active_tasks"]
        if not tasks and not active:
            break
        assert time.monotonic() < deadline, f"still processing: {tasks}, {active} active"
        time.sleep(0.2)
