"""Refusals every client can read: a request refused before its body is read is answered once
the body has been read and discarded (bounded), so that clients which send the whole body before
reading, Python's urllib among them, see the 4xx instead of a reset."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
import uuid

import httpx
import openai
import pytest
import requests

from asr_server.http.auth import hash_key
from asr_server.http.lingering import LingeringClose
from conftest import serving

KEY = "lingering-key-0123456789"
BODY_BYTES = 5_000_000


# -- the middleware, in process ------------------------------------------------------------------

def run_refusing_app(chunks: list[bytes], headers: list[tuple[bytes, bytes]], **limits) -> list[str]:
    """What happened, in order, when an app answers 401 without reading a body sent in chunks."""
    events: list[str] = []
    pending = list(chunks)

    async def receive():
        chunk = pending.pop(0)
        events.append(f"read {len(chunk)}")
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message):
        events.append(message["type"])

    async def refusing_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})

    scope = {"type": "http", "headers": headers}
    asyncio.run(LingeringClose(refusing_app, **limits)(scope, receive, send))
    return events


def test_a_refusal_waits_until_the_body_is_read():
    events = run_refusing_app([b"a" * 10, b"b" * 10, b"c" * 10], [(b"content-length", b"30")])
    assert events == ["read 10", "read 10", "read 10", "http.response.start", "http.response.body"]


def test_no_more_than_max_bytes_are_read_before_the_answer_goes_out():
    events = run_refusing_app([b"a" * 10] * 5, [(b"content-length", b"50")], max_bytes=15)
    assert events == ["read 10", "read 10", "http.response.start", "http.response.body"]


def test_a_client_that_stops_sending_is_answered_after_the_idle_bound():
    events: list[str] = []

    async def receive():
        if events:
            await asyncio.sleep(60)  # the client waits for the answer before it sends more
        events.append("read")
        return {"type": "http.request", "body": b"a", "more_body": True}

    async def send(message):
        events.append(message["type"])

    async def refusing_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})

    scope = {"type": "http", "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(LingeringClose(refusing_app, idle_seconds=0.05)(scope, receive, send))
    assert events == ["read", "http.response.start", "http.response.body"]


def test_a_client_that_expects_100_continue_is_answered_at_once():
    headers = [(b"content-length", b"30"), (b"expect", b"100-continue")]
    assert run_refusing_app([b"a" * 30], headers) == ["http.response.start", "http.response.body"]


# -- every client, against a real server ---------------------------------------------------------

@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A server that needs a key and takes uploads of at most 1 MB."""
    yield from serving(tmp_path_factory.mktemp("lingering") / "data", {
        "ASR_AUTH__API_KEY_HASHES": f'["{hash_key(KEY)}"]',
        "ASR_SERVER__MAX_UPLOAD_MB": "1",
    })


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("upload") / "big.flac"
    path.write_bytes(b"\0" * BODY_BYTES)
    return path


def urllib_post(url: str, path, headers: dict[str, str]) -> tuple[int, bytes]:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.flac"\r\n\r\n'.encode()
            + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode())
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **headers})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


@pytest.mark.parametrize("headers, status", [({}, 401), ({"Authorization": f"Bearer {KEY}"}, 413)])
def test_urllib_reads_a_refusal_of_a_5_mb_upload(strict, big_file, headers, status):
    code, body = urllib_post(strict.url + "/api/v1/asr/task", big_file, headers)
    assert code == status and b"error" in body


@pytest.mark.parametrize("headers, status", [({}, 401), ({"Authorization": f"Bearer {KEY}"}, 413)])
def test_requests_and_httpx_read_a_refusal_of_a_5_mb_upload(strict, big_file, headers, status):
    with big_file.open("rb") as handle:
        answer = requests.post(strict.url + "/api/v1/asr/task", files={"file": handle}, headers=headers, timeout=60)
    assert answer.status_code == status
    with big_file.open("rb") as handle:
        answer = httpx.post(strict.url + "/api/v1/asr/task", files={"file": handle}, headers=headers, timeout=60)
    assert answer.status_code == status


def test_the_openai_client_reads_a_refusal_of_a_5_mb_upload(strict, big_file):
    client = openai.OpenAI(base_url=strict.url + "/v1", api_key="not-the-key", max_retries=0, timeout=60)
    with big_file.open("rb") as handle, pytest.raises(openai.AuthenticationError) as refused:
        client.audio.transcriptions.create(model="whisper-1", file=handle)
    assert refused.value.code == "invalid_api_key"
