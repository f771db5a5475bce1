"""Limits: an upload over max_upload_mb gets 413, a POST beyond max_queued_tasks 503; serving goes on."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from conftest import AUDIO, EVAL, ServerProcess, submit, wait_for_task


@pytest.fixture(scope="module")
def small_limit(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("limits") / "data",
                            extra_env={"ASR_SERVER__MAX_UPLOAD_MB": "2"}).start()
    yield process
    process.stop()


def test_a_body_declared_too_large_gets_413_before_it_is_read(small_limit, tmp_path):
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * 3_000_000)
    response = submit(small_limit.url, big)
    assert response.status_code == 413
    assert response.json() == {"error": "Upload too large: the limit is 2 MB"}
    assert list((small_limit.data_dir / "uploads").iterdir()) == []


def test_a_chunked_body_that_grows_too_large_is_cut_off_with_413(small_limit):
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", small_limit.port)) as sock:
        sock.sendall((f"POST /api/v1/asr/task HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode())
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        chunk = b"\0" * 65536
        try:
            for _ in range(48):  # 3 MB, past the 2 MB limit
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what we want
        sock.settimeout(10)
        answer = ""
        while '"}' not in answer:  # headers, then the JSON body
            data = sock.recv(65536)
            if not data:
                break
            answer += data.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert answer.endswith('{"error":"Upload too large: the limit is 2 MB"}'), answer
    assert list((small_limit.data_dir / "uploads").iterdir()) == []


def test_an_upload_under_the_limit_still_works(small_limit):
    response = submit(small_limit.url, AUDIO / "jfk.flac")  # 1.15 MB
    assert response.status_code == 201
    assert wait_for_task(small_limit.url, response.json()["task_id"]).status_code == 200
    assert httpx.get(small_limit.url + "/healthz").status_code == 200


def test_beyond_max_queued_tasks_a_post_gets_503_with_retry_after(server_factory):
    busy = server_factory(extra_env={"ASR_SCHEDULER__MAX_ACTIVE_TASKS": "1",
                                     "ASR_SERVER__MAX_QUEUED_TASKS": "1"}).start()
    running = submit(busy.url, EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac")
    assert running.status_code == 201
    time.sleep(1.0)  # the scheduler claims it: running, no longer queued
    assert submit(busy.url, AUDIO / "jfk.flac").status_code == 201  # the one queued slot
    refused = submit(busy.url, AUDIO / "jfk.flac")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "10"
    assert "queued" in refused.json()["error"]
    assert httpx.get(f"{busy.url}/api/v1/asr/task/{running.json()['task_id']}").status_code == 202
