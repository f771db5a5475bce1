"""The application: the seed task API, the health probes, and the app factory with its lifespan.

The routes know requests, responses and the seed's exact bodies (docs/api.md), and reach tasks
only through the service's one task path (``service.tasks``); nothing here knows CTranslate2
or a store. Its calls are short but blocking, so they run in the thread pool.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from asr_server.config import Settings
from asr_server.http import openai_routes, openapi
from asr_server.http.auth import ApiKeyAuth, load_digests, request_owner
from asr_server.http.lingering import LingeringClose
from asr_server.http.long_polling import read_task
from asr_server.http.uploads import UploadError, client_address, receive_task_upload
from asr_server.logs import RequestId
from asr_server.service.bodies import not_found, task_body
from asr_server.service.metrics import CONTENT_TYPE_LATEST, RequestTimer
from asr_server.service.runtime import Service
from asr_server.service.task_options import OptionError, parse_task_options
from asr_server.service.tasks import Refusal
from asr_server.service.waiters import MAX_WAIT_S
from asr_server.store.records import TaskStatus
from asr_server.text.formats import FORMATS, MEDIA_TYPES, render

log = logging.getLogger("asr_server.http.app")
WEB_DIR = Path(__file__).resolve().parent / "web"


def _service(request: Request) -> Service:
    return request.app.state.service


def refused(refusal: Refusal) -> JSONResponse:
    return JSONResponse({"error": refusal.message}, status_code=refusal.status, headers=refusal.headers)


async def create_task(request: Request) -> JSONResponse:
    service = _service(request)
    try:
        upload = await receive_task_upload(request, service)
    except Refusal as refusal:
        return refused(refusal)
    except UploadError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    if upload.size == 0:
        upload.path.unlink(missing_ok=True)
        return JSONResponse({"error": "Empty 'file': the upload has no bytes"}, status_code=400)
    try:
        options = parse_task_options(upload.fields, service.settings.webhooks.allowed_networks,
                                     service.settings.all_models)
    except OptionError as exc:
        upload.path.unlink(missing_ok=True)
        return JSONResponse({"error": str(exc)}, status_code=400)
    try:
        task_id = await run_in_threadpool(service.tasks.create, upload.path, options,
                                           request_owner(request.scope), client_address(request))
    except Refusal as refusal:
        return refused(refusal)
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
    record = await read_task(service, task_id, request_owner(request.scope), wait)
    if record is not None and record.status == TaskStatus.DONE and fmt != "json":
        assert record.result is not None  # a task done has its result
        return Response(render(record.result, fmt), media_type=MEDIA_TYPES[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{task_id}.{fmt}"'})
    status, body = task_body(task_id, record, service.settings.server.expose_tracebacks)
    if status == 202 and request.query_params.get("progress") in ("1", "true"):
        # Opt-in, so that the seed's 202 body stays byte for byte what clients know.
        assert record is not None
        queued = record.status == TaskStatus.QUEUED
        position = await run_in_threadpool(service.tasks.queue_position, task_id) if queued else 0
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


# The list's status filter: the store's statuses, and the seed's word for queued or running.
STATUSES: dict[str, list[TaskStatus | None]] = {
    **{status.value: [status] for status in TaskStatus},
    "processing": [TaskStatus.QUEUED, TaskStatus.RUNNING],
}
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
    statuses: list[TaskStatus | None] = STATUSES[status] if status else [None]
    page, following = await run_in_threadpool(service.tasks.list, statuses, after, limit, request_owner(request.scope))
    return JSONResponse({
        "tasks": [{"task_id": row.task_id, "status": _public_status(row.status)} for row in page],
        "next": following,
    })


def _public_status(status: TaskStatus) -> str:
    """The seed's words: queued and running tasks are both 'processing'."""
    return "processing" if not status.ended else status.value


async def delete_task(request: Request) -> JSONResponse:
    """Remove a task with its audio and result; later GETs answer the seed's 404."""
    service = _service(request)
    task_id = request.path_params["task_id"]
    if not await run_in_threadpool(service.tasks.delete, task_id, request_owner(request.scope)):
        return JSONResponse(not_found(task_id), status_code=404)
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
    """Prometheus exposition: see service/metrics.py for what is measured."""
    service = _service(request)
    counts = await run_in_threadpool(service.tasks.counts)
    return Response(service.metrics.render(counts), media_type=CONTENT_TYPE_LATEST)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    service = _service(request)
    if service.ready:
        assert service.scheduler is not None
        return JSONResponse({"status": "ready", "scheduler": service.scheduler.stats(),
                             "models": service.models_status()})
    if service.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if (problem := service.audio_problem) is not None:
        return JSONResponse({"status": "unavailable", "error": f"audio store: {problem}"}, status_code=503)
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
    """The application; raises KeysFileError for an unreadable or invalid API keys file."""
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
            Middleware(LingeringClose),
            Middleware(RequestId),
            Middleware(RequestTimer, metrics=service.metrics),
            Middleware(ReplicaHeader, name=service.replica),
            *([Middleware(ApiKeyAuth, digests=digests)] if digests else []),
        ],
        exception_handlers={HTTPException: openai_routes.http_error},
        lifespan=lifespan,
    )
    app.state.service = service
    return app
