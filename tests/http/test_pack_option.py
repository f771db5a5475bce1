"""pack=false gives a task faster-whisper's exact computation (its short recording encoded as a
whole 30 s window, not trimmed), through the seed API, the OpenAI endpoint and the CLI."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from conftest import AUDIO, serving, submit, wait_for_task

CLIP = AUDIO / "jfk.flac"  # 11 s: trimmed by default once its language is known


@pytest.fixture(scope="module")
def english_server(tmp_path_factory):
    yield from serving(tmp_path_factory.mktemp("trimming") / "data", {"ASR_DECODING__LANGUAGE": '"en"'})


def engine_stats(server) -> dict:
    return httpx.get(server.url + "/readyz", timeout=10).json()["scheduler"]


def windows_since(server, before: dict) -> tuple[int, int]:
    """Windows decoded, and of those trimmed, since ``before``."""
    after = engine_stats(server)
    return (after["windows_decoded"] - before["windows_decoded"],
            after["windows_trimmed"] - before["windows_trimmed"])


def test_a_short_recording_of_known_language_is_trimmed_by_default(english_server):
    before = engine_stats(english_server)
    task_id = submit(english_server.url, CLIP).json()["task_id"]
    assert wait_for_task(english_server.url, task_id).status_code == 200
    assert windows_since(english_server, before) == (1, 1)


def test_pack_false_through_the_seed_api_encodes_the_window_whole(english_server):
    before = engine_stats(english_server)
    task_id = submit(english_server.url, CLIP, pack="false").json()["task_id"]
    assert wait_for_task(english_server.url, task_id).status_code == 200
    assert windows_since(english_server, before) == (1, 0)


def test_pack_is_an_extra_field_of_the_openai_endpoint(english_server):
    before = engine_stats(english_server)
    with open(CLIP, "rb") as handle:
        response = httpx.post(english_server.url + "/v1/audio/transcriptions", timeout=120,
                              files={"file": (CLIP.name, handle)}, data={"model": "whisper-1", "pack": "false"})
    assert response.status_code == 200, response.text
    assert windows_since(english_server, before) == (1, 0)


def test_a_pack_value_that_is_not_a_boolean_gets_400_naming_it(english_server):
    response = submit(english_server.url, CLIP, pack="maybe")
    assert response.status_code == 400 and "'pack'" in response.json()["error"]


def test_the_cli_sends_pack_false(english_server):
    before = engine_stats(english_server)
    proc = subprocess.run([sys.executable, "-m", "asr_server", "submit", str(CLIP), "--server", english_server.url,
                           "--pack", "false", "--wait", "--format", "txt"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ask not what your country" in proc.stdout.lower()
    assert windows_since(english_server, before) == (1, 0)
