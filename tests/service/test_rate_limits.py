"""Requests per minute per key, on the limiter alone (memory storage)."""

from __future__ import annotations

from asr_server.service.rate_limits import RequestLimiter, retry_after_s


def test_a_key_gets_its_requests_per_minute_and_then_a_wait():
    limiter = RequestLimiter()
    assert [limiter.hit("a", 2), limiter.hit("a", 2)] == [None, None]
    wait = limiter.hit("a", 2)
    assert wait is not None and 0 < retry_after_s(wait) <= 60


def test_keys_are_counted_apart():
    limiter = RequestLimiter()
    assert limiter.hit("a", 1) is None
    assert limiter.hit("b", 1) is None and limiter.hit("a", 1) is not None


def test_each_key_is_held_to_the_limit_it_is_given():
    limiter = RequestLimiter()
    assert limiter.hit("a", 1) is None and limiter.hit("a", 1) is not None
    assert [limiter.hit("b", 3) for _ in range(3)] == [None, None, None]
    assert limiter.hit("b", 3) is not None
