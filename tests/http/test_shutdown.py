"""SIGTERM: new uploads get 503 while running work finishes; exit within the bound; nothing lost."""

from __future__ import annotations

import signal
import sqlite3
import time

import httpx

from conftest import AUDIO, EVAL, submit, wait_for_task

LONG = EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac"  # minutes of speech: still running when signalled
TWO_WINDOWS = EVAL / "en_librivox_sonnet_p001.mp3"  # 53 s: two windows, one engine step each


def stored_status(server, task_id: str) -> str:
    with sqlite3.connect(server.data_dir / "tasks.sqlite3") as db:
        return db.execute("SELECT status FROM tasks WHERE task_id = ?", (task_id,)).fetchone()[0]


def wait_until_claimed(server, task_id: str) -> None:
    deadline = time.monotonic() + 60
    while stored_status(server, task_id) == "queued":
        assert time.monotonic() < deadline, "the task was never claimed"
        time.sleep(0.05)


def wait_until_draining(server) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/readyz", timeout=10).json().get("status") != "draining":
        assert time.monotonic() < deadline, "the server never began to drain"
        time.sleep(0.05)


def test_while_draining_uploads_get_503_and_gets_are_still_answered(server_factory):
    server = server_factory(extra_env={"ASR_SERVER__SHUTDOWN_TIMEOUT_S": "60"}).start()
    task_id = submit(server.url, LONG, language="en").json()["task_id"]
    wait_until_claimed(server, task_id)
    server.proc.send_signal(signal.SIGTERM)
    wait_until_draining(server)
    refused = submit(server.url, AUDIO / "jfk.flac")
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert "shutting down" in refused.json()["error"]
    assert httpx.get(f"{server.url}/readyz", timeout=10).json() == {"status": "draining"}
    assert httpx.get(f"{server.url}/api/v1/asr/task/{task_id}", timeout=10).status_code in (200, 202)
    server.proc.kill()  # the drain itself is the next test's


def test_running_work_finishes_before_the_exit_when_it_fits_the_bound(server_factory):
    server = server_factory(extra_env={"ASR_SERVER__SHUTDOWN_TIMEOUT_S": "120"}).start()
    task_id = submit(server.url, AUDIO / "jfk.flac", language="en").json()["task_id"]
    wait_until_claimed(server, task_id)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(130) == 0
    assert stored_status(server, task_id) == "done"


def test_work_unfinished_at_the_bound_is_handed_back_and_done_after_a_restart(server_factory):
    server = server_factory(extra_env={"ASR_SERVER__SHUTDOWN_TIMEOUT_S": "0"}).start()
    task_id = submit(server.url, TWO_WINDOWS, language="en").json()["task_id"]
    wait_until_claimed(server, task_id)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0
    assert stored_status(server, task_id) == "queued"  # not drained to the end: handed back, not left running
    server.start()
    response = wait_for_task(server.url, task_id, timeout=300)
    assert response.status_code == 200 and response.json()["result"]["text"].strip()
