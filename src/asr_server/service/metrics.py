"""Prometheus metrics (``GET /metrics``), with ``prometheus_client``.

Each service has its own registry, so tests can run several apps in one process. Counters and
histograms are fed as things happen (requests by the middleware, batches by the scheduler's
hook, finished tasks by the service); task counts by status and the queue depth are read from
the store when Prometheus scrapes.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "RequestTimer"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "asr_http_request_duration_seconds", "HTTP request latency by route (the route's path template).",
            ["method", "route", "status"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.batch_size = Histogram(
            "asr_engine_batch_size", "Windows per engine step (one encode + generate).",
            registry=self.registry, buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256),
        )
        self.engine_seconds = Histogram(
            "asr_engine_step_seconds", "Time of one engine step.", registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
        )
        self.engine_seconds_by_priority = Counter(
            "asr_engine_seconds", "Engine time by the priority of the work it served (a step's time "
            "shared by its windows).", ["priority"], registry=self.registry,
        )
        self.audio_seconds = Counter(
            "asr_audio_seconds", "Seconds of audio transcribed (by tasks that ended done).", registry=self.registry,
        )
        self.tasks_ended = Counter(
            "asr_tasks_ended", "Tasks this replica ended, by outcome.", ["status"], registry=self.registry,
        )
        self.tasks = Gauge("asr_tasks", "Tasks in the store by status.", ["status"], registry=self.registry)
        self.queue_depth = Gauge("asr_queue_depth", "Tasks waiting for an engine.", registry=self.registry)
        self.waiting_requests = Gauge(
            "asr_waiting_requests", "Requests held until their task ends (long polls, OpenAI calls).",
            registry=self.registry,
        )

    def observe_batch(self, size: int, seconds: float, by_priority: dict[str, float]) -> None:
        """One engine step: its windows, its time, and that time shared by priority."""
        self.batch_size.observe(size)
        self.engine_seconds.observe(seconds)
        for priority, share in by_priority.items():
            self.engine_seconds_by_priority.labels(priority).inc(share)

    def render(self, counts: dict[str, int]) -> bytes:
        """The exposition text, with the store's counts (read by the caller) as gauges."""
        for status in ("queued", "running", "done", "error"):
            if status in counts:
                self.tasks.labels(status).set(counts[status])
        self.queue_depth.set(counts.get("queued", 0))
        return generate_latest(self.registry)


class RequestTimer:
    """Times every HTTP request into ``Metrics.requests``, labelled by route template, so that
    task ids do not become label values (unmatched paths share the label 'unmatched')."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            route = scope.get("route")
            template = route.path if isinstance(route, Route) else getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status[0])).observe(
                time.perf_counter() - started)


