"""pack=false keeps a task out of packs, through the seed API, the OpenAI endpoint and the CLI,
on a server that packs short clips."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import AUDIO, serving, submit, wait_for_task

CLIPS = [AUDIO / "jfk.flac", AUDIO / "hotwords.mp3"]


@pytest.fixture(scope="module")
def packing_server(tmp_path_factory):
    env = {"ASR_SCHEDULER__PACK_CLIPS": "true", "ASR_DECODING__LANGUAGE": '"en"'}
    yield from serving(tmp_path_factory.mktemp("packing") / "data", env)


def engine_stats(server) -> dict:
    return httpx.get(server.url + "/readyz", timeout=10).json()["scheduler"]


def test_pack_false_through_the_seed_api_decodes_each_task_alone(packing_server):
    before = engine_stats(packing_server)
    with ThreadPoolExecutor(len(CLIPS)) as pool:
        ids = list(pool.map(lambda path: submit(packing_server.url, path, pack="false").json()["task_id"], CLIPS))
    assert all(wait_for_task(packing_server.url, task_id).status_code == 200 for task_id in ids)
    after = engine_stats(packing_server)
    assert after["clips_packed"] == before["clips_packed"]


def test_pack_is_an_extra_field_of_the_openai_endpoint(packing_server):
    before = engine_stats(packing_server)["clips_packed"]
    with open(CLIPS[0], "rb") as handle:
        response = httpx.post(packing_server.url + "/v1/audio/transcriptions", timeout=120,
                              files={"file": (CLIPS[0].name, handle)}, data={"model": "whisper-1", "pack": "false"})
    assert response.status_code == 200 and "ask not what your country" in response.json()["text"]
    assert engine_stats(packing_server)["clips_packed"] == before


def test_a_pack_value_that_is_not_a_boolean_gets_400_naming_it(packing_server):
    response = submit(packing_server.url, CLIPS[0], pack="maybe")
    assert response.status_code == 400 and "'pack'" in response.json()["error"]


def test_the_cli_sends_pack_false(packing_server):
    before = engine_stats(packing_server)["clips_packed"]
    proc = subprocess.run([sys.executable, "-m", "asr_server", "submit", str(CLIPS[0]), "--server", packing_server.url,
                           "--pack", "false", "--wait", "--format", "txt"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ask not what your country" in proc.stdout
    assert engine_stats(packing_server)["clips_packed"] == before
