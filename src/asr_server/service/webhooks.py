"""Webhooks: when a task with a ``callback_url`` ends, POST it the body a GET would return.

Each delivery is signed: ``X-ASR-Signature: sha256=<hex HMAC-SHA256 of the body>`` with the
configured secret, so a receiver can check the sender and that the body is intact. A delivery
that fails (connection error, timeout, any non-2xx answer) is tried again after 1, 2, 4, ...
times ``backoff_s``, up to ``max_attempts`` in all. Deliveries run on their own thread, so a
slow receiver never holds up the engine. Pending deliveries live in memory: a restart loses
the ones not yet made (the task itself and its result are kept).
"""

from __future__ import annotations

import hashlib
import hmac
import heapq
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from asr_server.config import WebhookConfig

log = logging.getLogger("asr_server.service.webhooks")
SIGNATURE_HEADER = "X-ASR-Signature"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
            delay = self._config.backoff_s * 2 ** (delivery.attempt - 1)
            with self._cv:
                heapq.heappush(self._queue, _Delivery(time.monotonic() + delay, delivery.url, delivery.body,
                                                      delivery.task_id, delivery.attempt + 1))

    def _post(self, delivery: _Delivery) -> bool:
        headers = {"Content-Type": "application/json", "User-Agent": "asr-server"}
        if self._config.secret:
            headers[SIGNATURE_HEADER] = sign(delivery.body, self._config.secret)
        request = urllib.request.Request(delivery.url, data=delivery.body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._config.timeout_s) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.info("webhook for task %s to %s, attempt %d: %s", delivery.task_id, delivery.url, delivery.attempt, exc)
            return False
