"""Requests per minute, per API key (or per client address with auth off), with the ``limits``
package: a moving window kept in memory for one server, or in Redis for a cluster, so that every
replica counts the same requests. Only requests that create a task count: polls and long polls
never lock a client out of its own results."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute, storage, strategies


class RequestLimiter:
    def __init__(self, storage_uri: str = "memory://", namespace: str = "asr") -> None:
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))
        self._namespace = namespace

    def hit(self, key: str, per_minute: int) -> float | None:
        """Count one request of ``key`` against ``per_minute``; None when it is within the
        limit, else how many seconds until the window lets the next one in (the request is
        then not counted)."""
        item = RateLimitItemPerMinute(per_minute)
        if self._limiter.hit(item, self._namespace, key):
            return None
        reset = self._limiter.get_window_stats(item, self._namespace, key).reset_time
        return max(0.0, reset - time.time())


def retry_after_s(seconds: float) -> int:
    return max(1, math.ceil(seconds))
