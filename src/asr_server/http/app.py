"""HTTP routes: the seed task API and the health probes.

The routes know requests, responses and the seed's exact bodies (see ``../shared/SEED_API.md``),
and talk to the service only through its store and a wake-up call; nothing here knows
CTranslate2. Store calls are short but blocking, so they run in the thread pool.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from asr_server.http import openai_routes, openapi
from asr_server.http.auth import ApiKeyAuth, load_digests, request_owner
from asr_server.logs import RequestId
from asr_server.service.metrics import CONTENT_TYPE_LATEST, RequestTimer
from asr_server.config import Settings
from asr_server.text.formats import FORMATS, MEDIA_TYPES, render
from asr_server.service.runtime import Service
from asr_server.store.records import DONE, ERROR, QUEUED, RUNNING, QueueFull, TaskRecord
from asr_server.service.bodies import task_body
from asr_server.service.task_options import OptionError, parse_task_options
from asr_server.http.uploads import UploadError, receive_upload
from asr_server.service.waiters import MAX_WAIT_S, RECHECK_S, wait_once


log = logging.getLogger("asr_server.http.app")
WEB_DIR = Path(__file__).resolve().parent / "web"


def _service(request: Request) -> Service:
    return request.app.state.service


RETRY_AFTER_S = 10


def queue_full(limit: int) -> JSONResponse:
    return JSONResponse({"error": str(QueueFull(limit))}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def draining_response() -> JSONResponse:
    return JSONResponse({"error": "The server is shutting down; retry (another replica will take it)"},
                        status_code=503, headers={"Retry-After": "5"})


def _visible(record: TaskRecord | None, owner: str | None) -> TaskRecord | None:
    """With keys on, another key's task is answered as if it did not exist: the seed's 404."""
    if record is None or owner is None or record.options.get("owner") == owner:
        return record
    return None


async def create_task(request: Request) -> JSONResponse:
    service = _service(request)
    assert service.store is not None
    if service.draining:
        return draining_response()
    limit = service.settings.server.max_queued_tasks
    if await run_in_threadpool(service.store.queued) >= limit:
        return queue_full(limit)  # before the body is read, so a flood costs the server little
    try:
        upload = await receive_upload(request, service.uploads_dir, service.max_upload_bytes,
                                      service.settings.server.upload_idle_timeout_s)
    except UploadError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    if upload.size == 0:
        upload.path.unlink(missing_ok=True)
        return JSONResponse({"error": "Empty 'file': the upload has no bytes"}, status_code=400)
    try:
        options = parse_task_options(upload.fields)
    except OptionError as exc:
        upload.path.unlink(missing_ok=True)
        return JSONResponse({"error": str(exc)}, status_code=400)
    if owner := request_owner(request.scope):
        options["owner"] = owner
    try:
        task_id = await run_in_threadpool(service.store.create, str(upload.path), options, limit)
    except QueueFull:  # others filled the queue while this body arrived
        upload.path.unlink(missing_ok=True)
        return queue_full(limit)
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise
    service.task_created()
    log.info("task created (%s, %d bytes)", upload.filename[:100], upload.size, extra={"task_id": task_id})
    return JSONResponse({"task_id": task_id}, status_code=201)


async def get_task(request: Request) -> Response:
    """The seed's answers; with ``?format=txt|srt|vtt|tsv`` a finished task's transcript as a
    download instead of the 200 body (every other answer stays the seed's JSON); with
    ``?progress=true`` a 202 also holds ``progress`` (0..1) and ``queue_position``; with
    ``?wait=S`` a task still processing is answered when it ends, or after S seconds."""
    service = _service(request)
    task_id = request.path_params["task_id"]
    fmt = request.query_params.get("format", "json")
    if fmt not in FORMATS:
        return JSONResponse({"error": f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}"},
                            status_code=400)
    wait = _wait_seconds(request.query_params.get("wait"))
    if wait is None:
        return JSONResponse({"error": f"Invalid 'wait': expected a number of seconds from 0 to {MAX_WAIT_S:g}"},
                            status_code=400)
    assert service.store is not None
    record = await _read_task(service, task_id, request_owner(request.scope), wait)
    if record is not None and record.status == DONE and fmt != "json":
        return Response(render(record.result, fmt), media_type=MEDIA_TYPES[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{task_id}.{fmt}"'})
    status, body = task_body(task_id, record, service.settings.server.expose_tracebacks)
    if status == 202 and request.query_params.get("progress") in ("1", "true"):
        # Opt-in, so that the seed's 202 body stays byte for byte what clients know.
        assert record is not None
        position = await run_in_threadpool(service.store.queue_position, task_id) if record.status == QUEUED else 0
        body = {**body, "progress": round(record.progress or 0.0, 3), "queue_position": position}
    return JSONResponse(body, status_code=status)


def _wait_seconds(value: str | None) -> float | None:
    """``?wait=``: seconds from 0 to MAX_WAIT_S (absent: 0); None when it is not that."""
    if value is None:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= MAX_WAIT_S else None


async def _read_task(service: Service, task_id: str, owner: str | None, wait: float) -> TaskRecord | None:
    """The task as the store has it; with a wait, read again when it ends (or every RECHECK_S,
    for a task another replica runs) until it is no longer processing or the wait is over."""
    assert service.store is not None
    deadline = time.monotonic() + wait
    # Only a waiting request is registered: a plain GET, the common case, reads once.
    with service.waiters.watching(task_id) if wait else contextlib.nullcontext() as ended:
        while True:
            record = _visible(await run_in_threadpool(service.store.get, task_id), owner)
            left = deadline - time.monotonic()
            if record is None or record.status not in (QUEUED, RUNNING) or left <= 0 or service.waiters.closed:
                return record
            await wait_once(ended, min(left, RECHECK_S))


STATUSES = {"queued": QUEUED, "running": RUNNING, "processing": None, "done": DONE, "error": ERROR}
MAX_PAGE = 1000


async def list_tasks(request: Request) -> JSONResponse:
    """``GET /api/v1/asr/tasks?status=&limit=&after=``: tasks oldest first, a page at a time.
    ``next`` is the ``after`` of the next page (null on the last)."""
    service = _service(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        return JSONResponse({"error": f"Unknown status {status!r}; expected one of {', '.join(STATUSES)}"},
                            status_code=400)
    try:
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= MAX_PAGE:
        return JSONResponse({"error": f"Invalid 'limit': expected an integer from 1 to {MAX_PAGE}"}, status_code=400)
    after = request.query_params.get("after") or None
    assert service.store is not None
    statuses = [QUEUED, RUNNING] if status == "processing" else [STATUSES[status]] if status else [None]
    rows = []
    for one in statuses:
        rows += await run_in_threadpool(service.store.list, one, after, limit + 1, request_owner(request.scope))
    rows = sorted(rows, key=lambda row: row.task_id)[: limit + 1]
    page, more = rows[:limit], len(rows) > limit
    return JSONResponse({
        "tasks": [{"task_id": row.task_id, "status": _public_status(row.status)} for row in page],
        "next": page[-1].task_id if more else None,
    })


def _public_status(status: str) -> str:
    """The seed's words: queued and running tasks are both 'processing'."""
    return "processing" if status in (QUEUED, RUNNING) else status


async def delete_task(request: Request) -> JSONResponse:
    """Remove a task with its audio and result; later GETs answer the seed's 404."""
    service = _service(request)
    task_id = request.path_params["task_id"]
    assert service.store is not None
    record = _visible(await run_in_threadpool(service.store.get, task_id), request_owner(request.scope))
    if record is None or not await run_in_threadpool(service.store.delete, task_id):
        return JSONResponse({"task_id": task_id, "status": "Task not found", "result": ""}, status_code=404)
    service.waiters.ended(task_id)
    return JSONResponse({"task_id": task_id, "status": "deleted"})


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(openapi.spec())


async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(openapi.DOCS_PAGE)


async def docs_init(request: Request) -> Response:
    return Response(openapi.DOCS_INIT, media_type="text/javascript")


async def index(request: Request) -> FileResponse:
    """The web page for people (``web/``): upload, watch, read, download; only the public API."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


async def metrics(request: Request) -> Response:
    """Prometheus exposition: see metrics.py for what is measured."""
    service = _service(request)
    counts = await run_in_threadpool(service.store.counts) if service.store is not None else {}
    return Response(service.metrics.render(counts), media_type=CONTENT_TYPE_LATEST)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    service = _service(request)
    if service.ready:
        assert service.scheduler is not None
        return JSONResponse({"status": "ready", "scheduler": service.scheduler.stats()})
    if service.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    body = {"status": "loading" if service.load_error is None else "failed"}
    if service.load_error:
        body["error"] = service.load_error
    return JSONResponse(body, status_code=503)


class ReplicaHeader:
    """Adds ``X-ASR-Replica: <name>`` to every answer, so that behind a load balancer a client
    or an operator can tell which replica answered."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("X-ASR-Replica", self.name)
            await send(message)

        await self.app(scope, receive, send_named)


def create_app(settings: Settings) -> Starlette:
    """The application; raises ValueError for an unreadable or invalid API keys file."""
    service = Service(settings)
    digests = load_digests(settings.auth.api_key_hashes, settings.auth.api_keys_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.open()
        service.start_engine()
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = Starlette(
        routes=[
            Route("/api/v1/asr/task", create_task, methods=["POST"]),
            # ``path``: an id with an encoded slash still reaches the handler and its seed 404.
            Route("/api/v1/asr/task/{task_id:path}", get_task, methods=["GET"]),
            Route("/api/v1/asr/task/{task_id:path}", delete_task, methods=["DELETE"]),
            Route("/api/v1/asr/tasks", list_tasks, methods=["GET"]),
            *openai_routes.ROUTES,
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
            Route("/docs/init.js", docs_init, methods=["GET"]),
            Mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets"),
            Route("/", index, methods=["GET"]),
            Mount("/static", StaticFiles(directory=WEB_DIR), name="static"),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        middleware=[
            Middleware(RequestId),
            Middleware(RequestTimer, metrics=service.metrics),
            Middleware(ReplicaHeader, name=service.replica),
            *([Middleware(ApiKeyAuth, digests=digests)] if digests else []),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app
