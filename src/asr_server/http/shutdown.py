"""Graceful shutdown: the first SIGTERM (or Ctrl-C) drains, a second one stops at once.

Draining means: new uploads get 503 with Retry-After and ``/readyz`` answers 503, so a load
balancer sends work elsewhere; GETs are still answered; the scheduler claims nothing more and
runs the tasks it holds to their end. When they are done, or ``server.shutdown_timeout_s`` has
passed, uvicorn stops; the engine ends the step under way (one batch: seconds), and the service
hands every task still running back to the queue (the store's ``requeue_running``), so nothing
accepted is lost and another replica, or this one restarted, takes it at once.
"""

from __future__ import annotations

import logging
import threading
import time
from types import FrameType

import uvicorn

from asr_server.service.runtime import Service

log = logging.getLogger("asr_server.http.shutdown")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service, timeout_s: float) -> None:
        super().__init__(config)
        self.service = service
        self.timeout_s = timeout_s
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining:  # a second signal: stop now (uvicorn's own handling)
            super().handle_exit(sig, frame)
            return
        self._draining = True
        log.info("draining: no new tasks; finishing running work for at most %.0f s", self.timeout_s)
        self.service.begin_drain()
        threading.Thread(target=self._exit_when_drained, name="asr-drain", daemon=True).start()

    def _exit_when_drained(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline and not self.service.drained():
            time.sleep(0.1)
        if not self.service.drained():
            log.warning("drain time is up; unfinished tasks go back to the queue")
        self.service.waiters.close()  # requests held by ?wait= are answered now, not at their timeout
        self.should_exit = True
