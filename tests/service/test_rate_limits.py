"""Requests per minute per key, on the limiter alone (memory storage)."""

from __future__ import annotations

from asr_server.service.rate_limits import RequestLimiter, retry_after_s


def test_a_key_gets_its_requests_per_minute_and_then_a_wait():
    limiter = RequestLimiter(2)
    assert [limiter.hit("key:a"), limiter.hit("key:a")] == [None, None]
    wait = limiter.hit("key:a")
    assert wait is not None and 0 < retry_after_s(wait) <= 60


def test_keys_are_counted_apart():
    limiter = RequestLimiter(1)
    assert limiter.hit("key:a") is None
    assert limiter.hit("key:b") is None and limiter.hit("key:a") is not None
