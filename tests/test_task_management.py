"""Listing tasks (GET /api/v1/asr/tasks) and deleting them (DELETE /api/v1/asr/task/{id})."""

from __future__ import annotations

import httpx
import pytest

from conftest import AUDIO, EVAL, submit, wait_for_task


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
