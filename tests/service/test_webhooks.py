"""Webhooks: a task with callback_url POSTs its GET body when it ends, signed, with retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest

from asr_server.service.webhooks import sign
from conftest import AUDIO, serving, submit, wait_for_task
from webhook_receiver import Receiver

SECRET = "s3cret"


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver(fail_first=1)
    yield receiver
    receiver.close()


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
    ids = [{k.lower(): v for k, v in post[1].items()}["x-asr-delivery"] for post in (first, second)]
    assert ids == [task_id, task_id], "every attempt carries the one delivery id, for receivers to drop duplicates"


def verify(headers: dict[str, str], body: bytes, secret: str, tolerance_s: float = 300) -> bool:
    """A receiver's check, as docs/api.md gives it: the HMAC of "<t>.<body>", and a recent t."""
    fields = dict(part.split("=", 1) for part in headers["x-asr-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) <= tolerance_s


def test_each_delivery_is_signed_with_a_timestamp(hooked_server, receiver):
    task_id = submit(hooked_server.url, AUDIO / "jfk.flac", callback_url=receiver.url + "/signed").json()["task_id"]
    _, delivered = receiver.wait_for("/signed", 2)
    headers = {k.lower(): v for k, v in delivered[1].items()}
    assert verify(headers, delivered[2], SECRET)
    assert not verify(headers, delivered[2] + b" ", SECRET), "a changed body fails the check"
    assert json.loads(delivered[2])["task_id"] == task_id


def test_the_signature_covers_the_timestamp():
    assert sign(b"{}", SECRET, 1700000000) != sign(b"{}", SECRET, 1700000001)
    assert sign(b"{}", SECRET, 1700000000).startswith("t=1700000000,v1=")


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


def ended_with_callback(tmp_path, url: str):
    """A store holding one task that ended with a callback_url (its delivery pending)."""
    from asr_server.store.sqlite_store import SqliteTaskStore

    store = SqliteTaskStore(tmp_path / "t.db")
    task_id = store.create("/x", {"callback_url": url})
    store.claim(1)
    store.finish(task_id, {"text": " hi", "segments": [], "language": "en"})
    return store, task_id


def test_deliveries_stop_after_max_attempts(tmp_path):
    from asr_server.config import WebhookConfig
    from asr_server.service.webhooks import Notifier

    always_failing = Receiver(fail_first=100)
    store, task_id = ended_with_callback(tmp_path, always_failing.url + "/never")
    notifier = Notifier(WebhookConfig(max_attempts=3, backoff_s=0.05, allowed_networks=["127.0.0.0/8"]),
                        store, lambda task: {"task_id": task})
    try:
        always_failing.wait_for("/never", 3)
        deadline = time.monotonic() + 10
        while notifier.failed == 0:  # given up after the third
            assert time.monotonic() < deadline, "the delivery was never given up"
            time.sleep(0.05)
        notifier.stop()  # its thread has ended: no attempt can follow
        assert len([p for p in always_failing.posts if p[0] == "/never"]) == 3
        assert notifier.failed == 1 and notifier.delivered == 0
        assert store.take_deliveries(10, 0) == [], "a given-up delivery leaves the store"
    finally:
        notifier.stop()
        always_failing.close()


def test_an_ended_tasks_delivery_is_in_the_store_in_the_same_write(tmp_path):
    store, task_id = ended_with_callback(tmp_path, "http://127.0.0.1:9/hook")
    [pending] = store.take_deliveries(10, 60)
    assert (pending.task_id, pending.url, pending.attempt) == (task_id, "http://127.0.0.1:9/hook", 1)
    assert store.take_deliveries(10, 60) == [], "taken: not taken again while it is being made"
    store.delivery_retry(task_id, 2, 0)
    assert [d.attempt for d in store.take_deliveries(10, 60)] == [2]


def test_the_retry_delay_doubles_from_backoff_s():
    from asr_server.service.webhooks import retry_delay

    assert [retry_delay(0.05, attempt) for attempt in (1, 2, 3)] == [0.05, 0.1, 0.2]


def test_a_promised_webhook_survives_kill_9_and_is_made_after_the_restart(server_factory, receiver):
    env = {"ASR_WEBHOOKS__BACKOFF_S": "2", "ASR_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]'}
    server = server_factory(extra_env=env).start()
    task_id = submit(server.url, AUDIO / "jfk.flac", callback_url=receiver.url + "/survives").json()["task_id"]
    receiver.wait_for("/survives", 1)  # the first attempt failed; the retry is due in 2 s
    server.kill()
    assert len([p for p in receiver.posts if p[0] == "/survives"]) == 1
    server.start()  # the same data dir: the pending delivery is in its store
    _, retried = receiver.wait_for("/survives", 2)
    assert json.loads(retried[2])["task_id"] == task_id and json.loads(retried[2])["status"] == "done"
