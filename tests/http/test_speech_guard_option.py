"""The speech guard through the server: a minute of digital silence gives no text by default,
and speech_guard=false gives Whisper's own (invented) text, through both APIs and the CLI."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import httpx
import pytest

from conftest import submit, wait_for_task


@pytest.fixture(scope="module")
def silence(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("silence") / "silence.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * 16000 * 60)
    return path


def seed_result(server, path: Path, **fields: str) -> dict:
    response = wait_for_task(server.url, submit(server.url, path, **fields).json()["task_id"])
    assert response.status_code == 200
    return response.json()["result"]


def test_silence_gives_no_text_and_no_segments_through_the_seed_api(server, silence):
    result = seed_result(server, silence)
    assert (result["text"], result["segments"]) == ("", [])


def test_speech_guard_false_gives_whispers_raw_text_through_the_seed_api(server, silence):
    assert seed_result(server, silence, speech_guard="false")["text"].strip()


def test_speech_guard_is_an_extra_field_of_the_openai_endpoint(server, silence):
    def text(**extra: str) -> str:
        with open(silence, "rb") as handle:
            response = httpx.post(server.url + "/v1/audio/transcriptions", timeout=120,
                                  files={"file": (silence.name, handle)}, data={"model": "whisper-1", **extra})
        assert response.status_code == 200
        return response.json()["text"]

    assert text() == ""
    assert text(speech_guard="false").strip()


def test_the_cli_sends_speech_guard_false(server, silence):
    proc = subprocess.run([sys.executable, "-m", "asr_server", "submit", str(silence), "--server", server.url,
                           "--speech-guard", "false", "--wait", "--format", "txt"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
