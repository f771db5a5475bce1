"""Webhooks: when a task with a ``callback_url`` ends, POST it the body a GET would return.

The store records the delivery in the same write that ends the task, so a webhook is never lost,
not even across ``kill -9``: ``Notifier`` makes the deliveries the store holds, on its own thread
(a slow receiver never holds up the engine), and with the Redis store any replica may make any.
Delivery is at least once. Every attempt carries the same ``X-ASR-Delivery`` id (the task id),
so that a receiver can drop duplicates, and is signed with a timestamp, as Stripe signs its
webhooks: ``X-ASR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, so that a
receiver can also refuse a replay (docs/api.md shows the check). A delivery that fails
(connection error, timeout, any non-2xx answer) is tried again after 1, 2, 4, ... times
``backoff_s``, up to ``max_attempts`` in all.

Each attempt resolves the URL's host, refuses it unless every address is allowed
(``webhook_targets``), and connects to the address it checked. Redirects are never followed: a
3xx answer is a failed attempt, so a receiver cannot bounce the server into another network.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from asr_server.config import WebhookConfig
from asr_server.service.webhook_targets import TargetRefused, resolve_allowed
from asr_server.store.records import PendingDelivery, TaskStore

log = logging.getLogger("asr_server.service.webhooks")
SIGNATURE_HEADER = "X-ASR-Signature"
DELIVERY_HEADER = "X-ASR-Delivery"


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The signature header's value: ``t=<timestamp>,v1=<HMAC-SHA256 of "<timestamp>.<body>">``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def retry_delay(backoff_s: float, attempt: int) -> float:
    """How long after failed attempt ``attempt`` (1, 2, ...) the next one is made: doubling."""
    return backoff_s * 2 ** (attempt - 1)


class Notifier:
    """Makes the deliveries ``store`` holds; ``body_of`` gives a task's GET body (None: gone)."""

    POLL_S = 0.5  # how often the store is looked at for deliveries that others (or retries) made due
    BATCH = 16

    def __init__(self, config: WebhookConfig, store: TaskStore,
                 body_of: Callable[[str], dict[str, Any] | None]) -> None:
        self._config = config
        self._store = store
        self._body_of = body_of
        self._lease_s = 2 * config.timeout_s + 5  # a delivery under way is not taken again meanwhile
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="asr-webhooks", daemon=True)
        self._thread.start()
        self.delivered = 0
        self.failed = 0

    def kick(self) -> None:
        """A task ended here: look for its delivery now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                due = self._store.take_deliveries(self.BATCH, self._lease_s)
            except Exception:
                log.exception("could not read the pending webhooks; retrying")
                due = []
            for delivery in due:
                if self._stopping.is_set():
                    return  # the rest stay in the store, due again after their lease
                self._deliver(delivery)
            if len(due) < self.BATCH:
                self._wake.wait(self.POLL_S)
                self._wake.clear()

    def _deliver(self, delivery: PendingDelivery) -> None:
        body = self._body_of(delivery.task_id)
        if body is None:  # deleted or expired since it ended: nothing left to tell
            self._store.delivery_done(delivery.task_id)
            return
        if self._post(delivery, json.dumps(body, ensure_ascii=False).encode("utf-8")):
            self.delivered += 1
            self._store.delivery_done(delivery.task_id)
        elif delivery.attempt >= self._config.max_attempts:
            self.failed += 1
            log.warning("webhook for task %s to %s failed %d times; giving up",
                        delivery.task_id, delivery.url, delivery.attempt)
            self._store.delivery_done(delivery.task_id)
        else:
            self._store.delivery_retry(delivery.task_id, delivery.attempt + 1,
                                       retry_delay(self._config.backoff_s, delivery.attempt))

    def _post(self, delivery: PendingDelivery, body: bytes) -> bool:
        headers = {"Content-Type": "application/json", "User-Agent": "asr-server", DELIVERY_HEADER: delivery.task_id}
        if self._config.secret:
            headers[SIGNATURE_HEADER] = sign(body, self._config.secret, int(time.time()))
        try:
            status = post(delivery.url, body, headers, self._config.timeout_s, self._config.allowed_networks)
        except TargetRefused as exc:
            log.warning("webhook for task %s refused: %s", delivery.task_id, exc)
            return False
        except (OSError, http.client.HTTPException, ValueError) as exc:
            log.info("webhook for task %s to %s, attempt %d: %s", delivery.task_id, delivery.url, delivery.attempt, exc)
            return False
        if not 200 <= status < 300:
            log.info("webhook for task %s to %s, attempt %d: HTTP %d%s", delivery.task_id, delivery.url,
                     delivery.attempt, status, " (redirects are not followed)" if 300 <= status < 400 else "")
        return 200 <= status < 300


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float, allowed_networks: Any = ()) -> int:
    """POST ``body`` to ``url`` and return the status, connecting only to an allowed address
    of its host (the one checked), following no redirect."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if https else 80)
    address = str(resolve_allowed(host, port, allowed_networks))
    connection = (_PinnedHTTPS if https else _PinnedHTTP)(host, port, address, timeout_s)
    try:
        connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body, headers)
        return connection.getresponse().status
    finally:
        connection.close()


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to a host name that connects to one given address of it."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(_PinnedHTTP):
    """The same over TLS, the certificate checked against the host name."""

    default_port = 443

    def connect(self) -> None:
        super().connect()
        self.sock = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self.host)
