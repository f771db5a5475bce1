"""GET /metrics: Prometheus text with tasks, queue, batches, engine time, audio seconds and latency."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import AUDIO, submit, wait_for_task


@pytest.fixture(scope="module")
def samples(server):
    """The metrics after one 11 s task (jfk) ended done, one interactive task too, and one
    broken upload ended as error."""
    done = submit(server.url, AUDIO / "jfk.flac", language="en").json()["task_id"]
    assert wait_for_task(server.url, done).status_code == 200
    live = submit(server.url, AUDIO / "jfk.flac", language="en", priority="interactive").json()["task_id"]
    assert wait_for_task(server.url, live).status_code == 200
    response = httpx.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def value(samples, name: str, **labels: str) -> float:
    return sum(s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items()))


def test_finished_tasks_are_counted_by_status(samples):
    assert value(samples, "asr_tasks_ended_total", status="done") >= 1
    assert value(samples, "asr_tasks", status="done") >= 1


def test_the_queue_depth_is_exposed(samples):
    assert value(samples, "asr_queue_depth") == 0


def test_engine_batches_and_their_time_are_histograms(samples):
    assert value(samples, "asr_engine_batch_size_count") >= 1
    assert value(samples, "asr_engine_step_seconds_sum") > 0


def test_engine_time_is_counted_by_priority(samples):
    assert value(samples, "asr_engine_seconds_total", priority="batch") > 0
    assert value(samples, "asr_engine_seconds_total", priority="interactive") > 0


def test_transcribed_audio_seconds_are_counted(samples):
    assert value(samples, "asr_audio_seconds_total") >= 11.0


def test_request_latency_is_labelled_by_route_template_not_by_task_id(samples):
    routes = {s.labels["route"] for s in samples["asr_http_request_duration_seconds_count"]}
    assert "/api/v1/asr/task" in routes and "/api/v1/asr/task/{task_id:path}" in routes
    assert not any(route[-20:].isdigit() for route in routes)
