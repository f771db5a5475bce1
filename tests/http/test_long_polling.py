"""Long polling: GET /api/v1/asr/task/{id}?wait=S holds the request until the task ends."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from asr_server.service.waiters import TaskWaiters, wait_once
from conftest import AUDIO, EVAL, submit

LONG = EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac"


def get(server, task_id: str, **params) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1/asr/task/{task_id}", params=params, timeout=60)


def test_a_waiting_get_is_answered_with_the_result_when_the_task_ends(server):
    task_id = submit(server.url, AUDIO / "jfk.flac").json()["task_id"]
    response = get(server, task_id, wait=30)
    assert response.status_code == 200, response.text
    assert response.json() == get(server, task_id).json(), "the same body as a plain GET"
    assert "ask not what your country can do for you" in response.json()["result"]["text"].lower()


def test_a_wait_that_runs_out_answers_the_seed_202(server):
    task_id = submit(server.url, LONG).json()["task_id"]
    response = get(server, task_id, wait=0.5)
    assert response.status_code == 202
    assert response.json() == {"task_id": task_id, "status": "processing", "result": ""}
    assert httpx.delete(f"{server.url}/api/v1/asr/task/{task_id}").status_code == 200


def held_requests(server, count: int, timeout: float = 30) -> None:
    """Wait until the server holds ``count`` requests for their task's end (its metric says so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = httpx.get(server.url + "/metrics").text
        if f"asr_waiting_requests {float(count)}" in metrics:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the server never held {count} request(s)")


def test_a_waiting_get_for_a_task_deleted_meanwhile_gets_the_seed_404(server):
    task_id = submit(server.url, LONG).json()["task_id"]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(get, server, task_id, wait=30)
        held_requests(server, 1)  # the GET is held: a delete before it would also give 404
        assert httpx.delete(f"{server.url}/api/v1/asr/task/{task_id}").status_code == 200
        response = waiting.result(timeout=60)
    assert response.status_code == 404
    assert response.json() == {"task_id": task_id, "status": "Task not found", "result": ""}


def test_an_unknown_task_with_a_wait_gets_the_seed_404(server):
    response = get(server, "00000000000000000001", wait=30)
    assert response.status_code == 404 and response.json()["status"] == "Task not found"


@pytest.mark.parametrize("wait", ["-1", "31", "soon", "nan"])
def test_a_wait_that_is_not_0_to_30_seconds_gets_400(server, wait):
    task_id = submit(server.url, AUDIO / "jfk.flac").json()["task_id"]
    response = get(server, task_id, wait=wait)
    assert response.status_code == 400 and "'wait'" in response.json()["error"]


# -- the waiters on their own ------------------------------------------------------------------

def test_a_task_ending_on_another_thread_wakes_its_watchers_only():
    waiters = TaskWaiters()

    async def scenario() -> tuple[bool, bool]:
        with waiters.watching("a") as a, waiters.watching("b") as b:
            threading.Thread(target=waiters.ended, args=("a",)).start()
            await asyncio.wait_for(a.wait(), 5)
            await asyncio.sleep(0.05)
            return a.is_set(), b.is_set()

    assert asyncio.run(scenario()) == (True, False)
    assert waiters.count == 0, "a finished watch leaves nothing behind"


def test_closing_the_waiters_wakes_every_watch_and_every_later_one():
    waiters = TaskWaiters()

    async def scenario() -> bool:
        with waiters.watching("a") as a:
            waiters.close()
            await asyncio.wait_for(a.wait(), 5)
        with waiters.watching("b") as b:
            return b.is_set()

    assert asyncio.run(scenario())


def test_a_wait_that_runs_out_returns_with_the_event_clear():
    async def scenario() -> bool:
        event = asyncio.Event()
        await wait_once(event, 0.01)
        return event.is_set()

    assert asyncio.run(scenario()) is False
