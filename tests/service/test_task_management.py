"""Listing tasks (GET /api/v1/asr/tasks) and deleting them (DELETE /api/v1/asr/task/{id})."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import AUDIO, EVAL, submit, wait_for_task, wait_until_running


@pytest.fixture(scope="module")
def finished(server) -> list[str]:
    ids = [submit(server.url, AUDIO / "jfk.flac").json()["task_id"] for _ in range(3)]
    for task_id in ids:
        assert wait_for_task(server.url, task_id).status_code == 200
    return ids


def tasks(server, **params) -> httpx.Response:
    return httpx.get(server.url + "/api/v1/asr/tasks", params=params, timeout=30)


def test_tasks_are_listed_oldest_first_with_their_status(server, finished):
    listed = tasks(server, status="done").json()["tasks"]
    assert [t["task_id"] for t in listed if t["task_id"] in finished] == finished
    assert all(t["status"] == "done" for t in listed)


def test_the_list_pages_with_next(server, finished):
    first = tasks(server, limit=2).json()
    assert len(first["tasks"]) == 2 and first["next"] == first["tasks"][-1]["task_id"]
    second = tasks(server, limit=2, after=first["next"]).json()
    assert second["tasks"] and second["tasks"][0]["task_id"] > first["next"]


@pytest.mark.parametrize("params, field", [({"status": "lost"}, "status"), ({"limit": "0"}, "limit"),
                                           ({"limit": "lots"}, "limit")])
def test_bad_list_parameters_get_400(server, params, field):
    response = tasks(server, **params)
    assert response.status_code == 400 and field in response.json()["error"]


def test_a_deleted_task_answers_the_seed_404(server, finished):
    task_id = finished[0]
    response = httpx.delete(f"{server.url}/api/v1/asr/task/{task_id}")
    assert response.json() == {"task_id": task_id, "status": "deleted"}
    gone = httpx.get(f"{server.url}/api/v1/asr/task/{task_id}")
    assert gone.status_code == 404
    assert gone.json() == {"task_id": task_id, "status": "Task not found", "result": ""}
    assert task_id not in [t["task_id"] for t in tasks(server).json()["tasks"]]


def test_deleting_an_unknown_task_gets_the_seed_404(server):
    response = httpx.delete(f"{server.url}/api/v1/asr/task/00000000000000000001")
    assert response.status_code == 404
    assert response.json()["status"] == "Task not found"


def test_deleting_a_task_in_flight_removes_its_audio_and_the_server_keeps_serving(server):
    task_id = submit(server.url, EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac").json()["task_id"]
    assert httpx.delete(f"{server.url}/api/v1/asr/task/{task_id}").status_code == 200
    assert httpx.get(f"{server.url}/api/v1/asr/task/{task_id}").status_code == 404
    uploads = list((server.data_dir / "uploads").iterdir())
    assert uploads == [], uploads
    after = submit(server.url, AUDIO / "jfk.flac").json()["task_id"]
    assert wait_for_task(server.url, after, timeout=300).status_code == 200
    assert httpx.get(f"{server.url}/api/v1/asr/task/{task_id}").status_code == 404, "the late result is not stored"


def test_deleting_a_running_task_stops_its_work(server):
    # The long file takes the engine minutes; once deleted, the scheduler lets it go at once.
    task_id = submit(server.url, EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac").json()["task_id"]
    wait_until_running(server.url, task_id)
    assert httpx.delete(f"{server.url}/api/v1/asr/task/{task_id}").status_code == 200
    deadline = time.monotonic() + 20
    while httpx.get(f"{server.url}/readyz", timeout=10).json()["scheduler"]["active_tasks"]:
        assert time.monotonic() < deadline, "the engine went on with the deleted task"
        time.sleep(0.1)


def test_progress_and_queue_position_are_added_to_a_202_only_on_request(server):
    long = EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac"
    first = submit(server.url, long).json()["task_id"]
    second = submit(server.url, long).json()["task_id"]
    third = submit(server.url, AUDIO / "jfk.flac").json()["task_id"]
    plain = httpx.get(f"{server.url}/api/v1/asr/task/{third}")
    if plain.status_code == 202:
        assert plain.json() == {"task_id": third, "status": "processing", "result": ""}
    seen = []
    for _ in range(600):  # until the progress has grown twice past 0, or the task ends
        body = httpx.get(f"{server.url}/api/v1/asr/task/{first}", params={"progress": "true"}).json()
        if body["status"] != "processing":
            break
        assert set(body) == {"task_id", "status", "result", "progress", "queue_position"}
        assert 0 <= body["progress"] <= 1
        seen.append(body["progress"])
        if len({p for p in seen if p > 0}) >= 2:
            break
        time.sleep(0.2)
    assert seen == sorted(seen) and seen[-1] > 0, "progress grows while the task runs"
    for task_id in (first, second, third):
        httpx.delete(f"{server.url}/api/v1/asr/task/{task_id}")


def test_queue_position_counts_the_queued_tasks_ahead(server_factory):
    busy = server_factory(extra_env={"ASR_SCHEDULER__MAX_ACTIVE_TASKS": "1"}).start()
    running = submit(busy.url, EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac").json()["task_id"]
    wait_until_running(busy.url, running)  # claimed by the scheduler: running, not queued
    ahead = submit(busy.url, AUDIO / "jfk.flac").json()["task_id"]
    behind = submit(busy.url, AUDIO / "jfk.flac").json()["task_id"]
    position = lambda task_id: httpx.get(f"{busy.url}/api/v1/asr/task/{task_id}",  # noqa: E731
                                         params={"progress": "1"}).json()["queue_position"]
    assert (position(running), position(ahead), position(behind)) == (0, 0, 1)
