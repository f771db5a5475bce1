"""No accepted task is lost: kill -9 and restart on the same data dir, every task ends done."""

from __future__ import annotations

import time

import httpx

from conftest import AUDIO, submit, wait_for_task


def test_tasks_survive_a_hard_kill_and_end_done_after_restart(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    first = server_factory(data_dir).start()
    clips = [AUDIO / "multilingual.mp3", AUDIO / "jfk.flac", AUDIO / "hotwords.mp3", AUDIO / "stereo_diarization.wav"]
    ids = [submit(first.url, clips[i % len(clips)]).json()["task_id"] for i in range(8)]
    # Let one finish, so that a finished result must survive too; kill while others run.
    done_before = wait_for_task(first.url, ids[1])
    assert done_before.status_code == 200
    statuses = [httpx.get(f"{first.url}/api/v1/asr/task/{i}").status_code for i in ids]
    assert 202 in statuses, "the kill should land while tasks are still processing"
    first.kill()

    second = server_factory(data_dir).start()
    assert httpx.get(f"{second.url}/api/v1/asr/task/{ids[1]}").json() == done_before.json()
    for task_id in ids:
        response = wait_for_task(second.url, task_id)
        assert response.status_code == 200, response.text
    # The store marks a task ended, then deletes its audio: allow that moment to pass.
    deadline = time.monotonic() + 5
    while list((data_dir / "uploads").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list((data_dir / "uploads").iterdir()) == [], "audio of ended tasks must be deleted"


def test_a_second_server_cannot_share_a_live_data_dir(server_factory, tmp_path):
    data_dir = tmp_path / "data"
    server_factory(data_dir).start()
    second = server_factory(data_dir)
    try:
        second.start(wait_ready=False)
    except RuntimeError as exc:
        assert "another asr-server process is using" in str(exc)
    else:
        raise AssertionError("a second server on the same data dir must refuse to start")


def test_uploads_are_accepted_and_kept_while_the_model_cannot_load(server_factory, tmp_path):
    server = server_factory(tmp_path / "data", extra_env={"ASR_MODEL__NAME": str(tmp_path / "no-such-model")})
    server.start(wait_ready=False)
    deadline = time.monotonic() + 30
    while (ready := httpx.get(f"{server.url}/readyz")).json()["status"] == "loading" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.status_code == 503 and ready.json()["status"] == "failed"
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    task_id = submit(server.url, AUDIO / "hotwords.mp3").json()["task_id"]
    assert httpx.get(f"{server.url}/api/v1/asr/task/{task_id}").status_code == 202
