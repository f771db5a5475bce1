"""GET /api/v1/asr/task/{id}?format=...: a finished transcript as a download; seed bodies otherwise."""

from __future__ import annotations

import httpx
import pytest

from conftest import AUDIO, EVAL, submit, wait_for_task


@pytest.fixture(scope="module")
def jfk_task(server) -> str:
    task_id = submit(server.url, AUDIO / "jfk.flac").json()["task_id"]
    assert wait_for_task(server.url, task_id).status_code == 200
    return task_id


def download(server, task_id: str, fmt: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1/asr/task/{task_id}", params={"format": fmt}, timeout=30)


@pytest.mark.parametrize("fmt, media_type, marker", [
    ("txt", "text/plain", "ask not what your country can do for you"),
    ("srt", "application/x-subrip", "00:00:00,000 --> "),
    ("vtt", "text/vtt", "WEBVTT"),
    ("tsv", "text/tab-separated-values", "start\tend\ttext\n0\t"),
])
def test_a_finished_task_downloads_in_each_format(server, jfk_task, fmt, media_type, marker):
    response = download(server, jfk_task, fmt)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert f'filename="{jfk_task}.{fmt}"' in response.headers["content-disposition"]
    assert marker in response.text


def test_format_json_is_the_seed_body(server, jfk_task):
    plain = httpx.get(f"{server.url}/api/v1/asr/task/{jfk_task}")
    assert download(server, jfk_task, "json").content == plain.content


def test_an_unknown_format_gets_400_listing_the_formats(server, jfk_task):
    response = download(server, jfk_task, "docx")
    assert response.status_code == 400
    assert "srt" in response.json()["error"]


def test_an_unknown_task_with_a_format_gets_the_seed_404(server):
    response = download(server, "00000000000000000000", "srt")
    assert response.status_code == 404
    assert response.json() == {"task_id": "00000000000000000000", "status": "Task not found", "result": ""}


def test_a_task_still_processing_answers_the_seed_202_whatever_the_format(server):
    task_id = submit(server.url, EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac").json()["task_id"]
    response = download(server, task_id, "srt")
    assert response.status_code == 202
    assert response.json() == {"task_id": task_id, "status": "processing", "result": ""}
