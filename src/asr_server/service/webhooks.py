"""Webhooks: when a task with a ``callback_url`` ends, POST it the body a GET would return.

Each delivery is signed: ``X-ASR-Signature: sha256=<hex HMAC-SHA256 of the body>`` with the
configured secret, so a receiver can check the sender and that the body is intact. A delivery
that fails (connection error, timeout, any non-2xx answer) is tried again after 1, 2, 4, ...
times ``backoff_s``, up to ``max_attempts`` in all. Deliveries run on their own thread, so a
slow receiver never holds up the engine. Pending deliveries live in memory: a restart loses
the ones not yet made (the task itself and its result are kept).

Each attempt resolves the URL's host, refuses it unless every address is allowed
(``webhook_targets``), and connects to the address it checked. Redirects are never followed: a
3xx answer is a failed attempt, so a receiver cannot bounce the server into another network.
"""

from __future__ import annotations

import hashlib
import hmac
import heapq
import json
import logging
import threading
import http.client
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from asr_server.config import WebhookConfig
from asr_server.service.webhook_targets import TargetRefused, resolve_allowed

log = logging.getLogger("asr_server.service.webhooks")
SIGNATURE_HEADER = "X-ASR-Signature"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(backoff_s: float, attempt: int) -> float:
    """How long after failed attempt ``attempt`` (1, 2, ...) the next one is made: doubling."""
    return backoff_s * 2 ** (attempt - 1)


@dataclass(order=True)
class _Delivery:
    due: float
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    task_id: str = field(compare=False)
    attempt: int = field(default=1, compare=False)


class Notifier:
    def __init__(self, config: WebhookConfig) -> None:
        self._config = config
        self._queue: list[_Delivery] = []
        self._cv = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="asr-webhooks", daemon=True)
        self._thread.start()
        self.delivered = 0
        self.failed = 0

    def send(self, url: str, task_id: str, body: dict[str, Any]) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        with self._cv:
            heapq.heappush(self._queue, _Delivery(time.monotonic(), url, payload, task_id))
            self._cv.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and (not self._queue or self._queue[0].due > time.monotonic()):
                    self._cv.wait(None if not self._queue else self._queue[0].due - time.monotonic())
                if self._stopping:
                    return
                delivery = heapq.heappop(self._queue)
            if self._post(delivery):
                self.delivered += 1
                continue
            if delivery.attempt >= self._config.max_attempts:
                self.failed += 1
                log.warning("webhook for task %s to %s failed %d times; giving up",
                            delivery.task_id, delivery.url, delivery.attempt)
                continue
            delay = retry_delay(self._config.backoff_s, delivery.attempt)
            with self._cv:
                heapq.heappush(self._queue, _Delivery(time.monotonic() + delay, delivery.url, delivery.body,
                                                      delivery.task_id, delivery.attempt + 1))

    def _post(self, delivery: _Delivery) -> bool:
        headers = {"Content-Type": "application/json", "User-Agent": "asr-server"}
        if self._config.secret:
            headers[SIGNATURE_HEADER] = sign(delivery.body, self._config.secret)
        try:
            status = post(delivery.url, delivery.body, headers, self._config.timeout_s, self._config.allowed_networks)
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
    port = parts.port or (443 if https else 80)
    address = str(resolve_allowed(parts.hostname or "", port, allowed_networks))
    connection = (_PinnedHTTPS if https else _PinnedHTTP)(parts.hostname, port, address, timeout_s)
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
