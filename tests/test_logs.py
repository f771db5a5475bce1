"""Structured logs: with log_format = json every line is JSON, and lines about a request or a
task carry its request_id or task_id."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import AUDIO, serving, wait_for_task


@pytest.fixture(scope="module")
def json_server(tmp_path_factory):
    yield from serving(tmp_path_factory.mktemp("logs") / "data", {"ASR_SERVER__LOG_FORMAT": "json"})


@pytest.fixture(scope="module")
def traced(json_server):
    """One upload sent with X-Request-ID; returns (response, the task's final answer, log lines)."""
    with open(AUDIO / "jfk.flac", "rb") as handle:
        response = httpx.post(f"{json_server.url}/api/v1/asr/task", files={"file": ("jfk.flac", handle)},
                              headers={"X-Request-ID": "req-abc-123"}, timeout=60)
    done = wait_for_task(json_server.url, response.json()["task_id"])
    lines = json_server.log_path.read_text().splitlines()
    return response, done, lines


def test_every_log_line_is_a_json_object(traced):
    _, _, lines = traced
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)


def test_the_request_id_is_echoed_and_logged_with_the_task_it_created(traced):
    response, _, lines = traced
    assert response.headers["x-request-id"] == "req-abc-123"
    task_id = response.json()["task_id"]
    created = [json.loads(line) for line in lines if '"task created' in line]
    assert any(e.get("request_id") == "req-abc-123" and e.get("task_id") == task_id for e in created)
    access = [json.loads(line) for line in lines if "POST /api/v1/asr/task" in line]
    assert access and access[0]["request_id"] == "req-abc-123"


def test_the_tasks_own_lines_carry_its_id(traced):
    response, done, lines = traced
    assert done.status_code == 200
    task_id = response.json()["task_id"]
    messages = [json.loads(line)["message"] for line in lines if f'"task_id": "{task_id}"' in line]
    assert any(m.startswith("task claimed") for m in messages)
    assert "task ended: done" in messages


def test_a_request_without_an_id_gets_a_new_one(json_server):
    response = httpx.get(json_server.url + "/healthz", timeout=10)
    assert len(response.headers["x-request-id"]) == 32
