"""Limits: an upload over max_upload_mb gets 413, a POST beyond max_queued_tasks 503; serving goes on."""

from __future__ import annotations

import json
import os
import socket
import time

import httpx
import pytest

from conftest import AUDIO, EVAL, serving, submit, wait_for_task, wait_until_running


@pytest.fixture(scope="module")
def small_limit(tmp_path_factory):
    yield from serving(tmp_path_factory.mktemp("limits") / "data", {"ASR_SERVER__MAX_UPLOAD_MB": "2"})


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
    wait_until_running(busy.url, running.json()["task_id"])  # no longer queued
    assert submit(busy.url, AUDIO / "jfk.flac").status_code == 201  # the one queued slot
    refused = submit(busy.url, AUDIO / "jfk.flac")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "10"
    assert "queued" in refused.json()["error"]
    assert httpx.get(f"{busy.url}/api/v1/asr/task/{running.json()['task_id']}").status_code == 202


def test_finished_tasks_are_removed_after_the_retention_time(server_factory):
    server = server_factory(extra_env={"ASR_STORE__RESULT_TTL_HOURS": "0.0003"}).start()  # about 1 s
    task_id = submit(server.url, AUDIO / "jfk.flac", language="en").json()["task_id"]
    assert wait_for_task(server.url, task_id).status_code == 200
    deadline = time.monotonic() + 15
    while (response := httpx.get(f"{server.url}/api/v1/asr/task/{task_id}", timeout=10)).status_code == 200:
        assert time.monotonic() < deadline, "the finished task was never removed"
        time.sleep(0.2)
    assert response.status_code == 404


def test_a_stalled_upload_gets_408_and_its_partial_file_is_removed(server_factory):
    server = server_factory(extra_env={"ASR_SERVER__UPLOAD_IDLE_TIMEOUT_S": "1"}).start()
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + b"\0" * 10_000
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall((f"POST /api/v1/asr/task HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode() + head)
        sock.settimeout(15)  # then send nothing more
        answer = b""
        while b'"}' not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert answer.endswith(b'{"error":"Upload stalled: no data received for 1 s"}')
    assert [p for p in (server.data_dir / "uploads").rglob("*") if p.is_file()] == []
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200


def test_audio_longer_than_max_audio_seconds_ends_as_error_with_the_reason(server_factory):
    server = server_factory(extra_env={"ASR_SERVER__MAX_AUDIO_SECONDS": "5"}).start()
    task_id = submit(server.url, AUDIO / "jfk.flac").json()["task_id"]
    done = wait_for_task(server.url, task_id)
    assert done.status_code == 500
    last_line = done.json()["result"].strip().splitlines()[-1]
    assert "AudioTooLong: The audio is 11.0 s long; this server transcribes at most 5 s" in last_line


def test_the_sweep_removes_orphan_uploads_but_not_fresh_ones(server_factory):
    server = server_factory(extra_env={"ASR_SERVER__SWEEP_INTERVAL_S": "0.5"}).start()
    uploads = server.data_dir / "uploads"
    stale, fresh = uploads / "stale-orphan", uploads / "arriving-now"
    stale.write_bytes(b"left by an upload that died")
    fresh.write_bytes(b"still arriving")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    deadline = time.monotonic() + 15
    while stale.exists():
        assert time.monotonic() < deadline, "the orphan was never swept"
        time.sleep(0.2)
    assert fresh.exists()


def test_a_key_past_its_queued_tasks_limit_gets_429_and_other_keys_are_served(server_factory):
    from asr_server.http.auth import hash_key

    alice, bob = "alice-key-0123456789", "bob-key-9876543210"
    busy = server_factory(extra_env={
        "ASR_AUTH__API_KEY_HASHES": json.dumps([hash_key(alice), hash_key(bob)]),
        "ASR_LIMITS__QUEUED_TASKS": "1", "ASR_SCHEDULER__MAX_ACTIVE_TASKS": "1"}).start()

    def post(key: str, path) -> httpx.Response:
        with open(path, "rb") as handle:
            return httpx.post(f"{busy.url}/api/v1/asr/task", files={"file": (path.name, handle)},
                              headers={"Authorization": f"Bearer {key}"}, timeout=60)

    assert post(alice, EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac").status_code == 201  # minutes of work
    refused = post(alice, AUDIO / "jfk.flac")
    assert refused.status_code == 429
    assert "limit 1" in refused.json()["error"] and refused.headers["retry-after"]
    assert refused.headers["ratelimit-policy"] == '"queued";q=1'
    assert refused.headers["ratelimit"].startswith('"queued";r=0')
    assert post(bob, AUDIO / "jfk.flac").status_code == 201, "another key is not starved"


def test_a_key_past_its_requests_per_minute_gets_429_and_other_keys_are_served(server_factory):
    from asr_server.http.auth import hash_key

    alice, bob = "alice-key-0123456789", "bob-key-9876543210"
    limited = server_factory(extra_env={"ASR_AUTH__API_KEY_HASHES": json.dumps([hash_key(alice), hash_key(bob)]),
                                        "ASR_LIMITS__REQUESTS_PER_MINUTE": "2"}).start()

    def post(key: str) -> httpx.Response:
        with open(AUDIO / "jfk.flac", "rb") as handle:
            return httpx.post(f"{limited.url}/api/v1/asr/task", files={"file": ("jfk.flac", handle)},
                              headers={"Authorization": f"Bearer {key}"}, timeout=60)

    assert [post(alice).status_code, post(alice).status_code] == [201, 201]
    refused = post(alice)
    assert refused.status_code == 429 and "limit 2 a minute" in refused.json()["error"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60 and refused.headers["ratelimit-policy"] == '"minute";q=2;w=60'
    assert post(bob).status_code == 201, "another key is not starved"
    task_id = post(bob).json()["task_id"]
    assert httpx.get(f"{limited.url}/api/v1/asr/task/{task_id}", headers={"Authorization": f"Bearer {bob}"}
                     ).status_code in (200, 202), "reads do not count"


def test_with_auth_off_requests_per_minute_apply_per_client_address(server_factory):
    limited = server_factory(extra_env={"ASR_LIMITS__REQUESTS_PER_MINUTE": "1"}).start()
    assert submit(limited.url, AUDIO / "jfk.flac").status_code == 201
    assert submit(limited.url, AUDIO / "jfk.flac").status_code == 429


def post_from(url: str, path, address: str = "127.0.0.1", key: str | None = None) -> httpx.Response:
    """A seed POST from a given loopback address, with an API key or none."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60) as client, \
            open(path, "rb") as handle:
        return client.post(f"{url}/api/v1/asr/task", files={"file": (path.name, handle)}, headers=headers)


def test_with_auth_off_queued_tasks_apply_per_client_address(server_factory):
    busy = server_factory(extra_env={"ASR_LIMITS__QUEUED_TASKS": "1", "ASR_SCHEDULER__MAX_ACTIVE_TASKS": "1"}).start()
    first = post_from(busy.url, EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac")  # minutes of work
    assert first.status_code == 201
    refused = post_from(busy.url, AUDIO / "jfk.flac")
    assert refused.status_code == 429 and refused.headers["ratelimit-policy"] == '"queued";q=1'
    assert post_from(busy.url, AUDIO / "jfk.flac", address="127.0.0.2").status_code == 201, "another address is served"
    other = post_from(busy.url, AUDIO / "jfk.flac", address="127.0.0.3").json()["task_id"]
    assert httpx.get(f"{busy.url}/api/v1/asr/task/{other}", timeout=10).status_code == 202, \
        "with auth off every task stays visible to every client"


def test_a_keys_file_limit_overrides_the_limits_section_for_that_key(server_factory, tmp_path):
    from asr_server.http.auth import hash_key

    alice, bob = "alice-key-0123456789", "bob-key-9876543210"
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"{hash_key(alice)} alice queued_tasks=1\n{hash_key(bob)} bob  # no limits of its own\n")
    busy = server_factory(extra_env={"ASR_AUTH__API_KEYS_FILE": str(keys_file),
                                     "ASR_SCHEDULER__MAX_ACTIVE_TASKS": "1"}).start()
    long_file = EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac"
    assert post_from(busy.url, long_file, key=alice).status_code == 201
    refused = post_from(busy.url, AUDIO / "jfk.flac", key=alice)
    assert refused.status_code == 429 and "limit 1" in refused.json()["error"]
    assert [post_from(busy.url, path, key=bob).status_code for path in (long_file, AUDIO / "jfk.flac")] == [201, 201]
