"""Webhooks: a task with callback_url POSTs its GET body when it ends, signed, with retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from asr_server.service.webhooks import sign
from conftest import AUDIO, serving, submit, wait_for_task

SECRET = "s3cret"


class Receiver:
    """A local webhook receiver: records every POST; answers 500 to the first ``fail_first``."""

    def __init__(self, fail_first: int) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes, float]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.path, dict(self.headers), body, time.monotonic()))
                failing = len([p for p in receiver.posts if p[0] == self.path]) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def wait_for(self, path: str, count: int, timeout: float = 60) -> list[tuple[str, dict[str, str], bytes, float]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [p for p in self.posts if p[0] == path]
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise TimeoutError(f"{count} posts to {path} not received: {self.posts}")


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver(fail_first=1)
    yield receiver
    receiver.http.shutdown()


@pytest.fixture(scope="module")
def hooked_server(tmp_path_factory):
    env = {"ASR_WEBHOOKS__SECRET": json.dumps(SECRET), "ASR_WEBHOOKS__BACKOFF_S": "0.3",
           "ASR_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]'}  # the receiver runs on this machine
    yield from serving(tmp_path_factory.mktemp("hooks") / "data", env)


def test_a_finished_task_is_posted_its_get_body_after_a_failed_attempt(hooked_server, receiver):
    task_id = submit(hooked_server.url, AUDIO / "jfk.flac", callback_url=receiver.url + "/done").json()["task_id"]
    first, second = receiver.wait_for("/done", 2)
    got = wait_for_task(hooked_server.url, task_id)
    assert json.loads(second[2]) == got.json()
    assert second[2] == first[2], "a retry sends the same body"
    assert second[3] - first[3] >= 0.25, "the retry waits its backoff"


def test_each_delivery_carries_an_hmac_of_its_body(hooked_server, receiver):
    task_id = submit(hooked_server.url, AUDIO / "jfk.flac", callback_url=receiver.url + "/signed").json()["task_id"]
    _, delivered = receiver.wait_for("/signed", 2)
    headers = {k.lower(): v for k, v in delivered[1].items()}
    expected = "sha256=" + hmac.new(SECRET.encode(), delivered[2], hashlib.sha256).hexdigest()
    assert headers["x-asr-signature"] == expected == sign(delivered[2], SECRET)
    assert json.loads(delivered[2])["task_id"] == task_id


def test_a_failed_task_is_posted_its_500_body(hooked_server, receiver, tmp_path):
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(b"\x00not audio" * 100)
    task_id = submit(hooked_server.url, bad, callback_url=receiver.url + "/failed").json()["task_id"]
    _, delivered = receiver.wait_for("/failed", 2)
    body = json.loads(delivered[2])
    assert body["task_id"] == task_id and body["status"] == "error"
    assert body["result"].startswith("Traceback")


def test_a_task_without_callback_url_posts_nothing(hooked_server, receiver):
    silent = submit(hooked_server.url, AUDIO / "jfk.flac").json()["task_id"]
    assert wait_for_task(hooked_server.url, silent).status_code == 200
    # Deliveries go out in the order tasks end: once a later task's webhook has arrived, any
    # for the first would have arrived before it.
    marker = submit(hooked_server.url, AUDIO / "jfk.flac", callback_url=receiver.url + "/marker").json()["task_id"]
    receiver.wait_for("/marker", 2)  # the receiver fails each path's first attempt
    delivered = {json.loads(body)["task_id"] for _, _, body, _ in receiver.posts}
    assert marker in delivered and silent not in delivered


@pytest.mark.parametrize("url", ["ftp://example.org/x", "not a url", "http://", "http://169.254.169.254/x",
                                 "http://10.0.0.1/hook", "http://[::1]:8080/hook"])
def test_an_invalid_callback_url_gets_400(hooked_server, url):
    response = submit(hooked_server.url, AUDIO / "jfk.flac", callback_url=url)
    assert response.status_code == 400
    assert "callback_url" in response.json()["error"]
    assert httpx.get(hooked_server.url + "/healthz").status_code == 200


def test_deliveries_stop_after_max_attempts():
    from asr_server.config import WebhookConfig
    from asr_server.service.webhooks import Notifier

    always_failing = Receiver(fail_first=100)
    notifier = Notifier(WebhookConfig(max_attempts=3, backoff_s=0.05, allowed_networks=["127.0.0.0/8"]))
    try:
        notifier.send(always_failing.url + "/never", "1", {"task_id": "1"})
        always_failing.wait_for("/never", 3)
        deadline = time.monotonic() + 10
        while notifier.failed == 0:  # given up after the third
            assert time.monotonic() < deadline, "the delivery was never given up"
            time.sleep(0.05)
        notifier.stop()  # its thread has ended: no attempt can follow
        assert len([p for p in always_failing.posts if p[0] == "/never"]) == 3
        assert notifier.failed == 1 and notifier.delivered == 0
    finally:
        notifier.stop()
        always_failing.http.shutdown()


def test_the_retry_delay_doubles_from_backoff_s():
    from asr_server.service.webhooks import retry_delay

    assert [retry_delay(0.05, attempt) for attempt in (1, 2, 3)] == [0.05, 0.1, 0.2]
