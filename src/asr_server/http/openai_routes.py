"""OpenAI-compatible endpoints: /v1/audio/transcriptions, /v1/audio/translations, /v1/models.

They answer synchronously, the way OpenAI's do, but run through the same store and scheduler
as every other task, so their audio is batched with everything else. The task stays visible on
the task API under its id (the ``x-asr-task-id`` header) afterwards.

Differences from OpenAI's service, on purpose: ``model`` may be any name (one model is loaded);
``language`` in verbose_json is the ISO code Whisper uses (``en``, not ``english``). The
request waits on the server's own task-end notification, as long polling does
(``long_polling.read_task``), and a client that goes away cancels its task.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asr_server.http.auth import request_owner
from asr_server.errors import ErrorKind
from asr_server.text.formats import render
from asr_server.service.task_options import OptionError, parse_task_options
from asr_server.service.tasks import Refusal
from asr_server.http.long_polling import read_task
from asr_server.http.uploads import UploadError, client_address, receive_task_upload

log = logging.getLogger("asr_server.http.openai_routes")
RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
WAIT_LIMIT_S = 3600.0


def openai_error(message: str, status: int, param: str | None = None, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status_code=status)


async def transcriptions(request: Request) -> Response:
    return await _transcribe(request, "transcribe")


async def translations(request: Request) -> Response:
    return await _transcribe(request, "translate")


def _refused(refusal: Refusal) -> JSONResponse:
    kind = "rate_limit_exceeded" if refusal.status == 429 else "server_error"
    response = openai_error(refusal.message, refusal.status, kind=kind)
    response.headers.update(refusal.headers)
    return response


async def _transcribe(request: Request, task: str) -> Response:
    service = request.app.state.service
    try:
        upload = await receive_task_upload(request, service)
    except Refusal as refusal:
        return _refused(refusal)
    except UploadError as exc:
        return openai_error(exc.message, exc.status, "file")
    fields = upload.fields
    response_format = fields.get("response_format", "json") or "json"
    problem = _check(fields, response_format)
    if problem is None and upload.size == 0:
        problem = ("Empty 'file': the upload has no bytes", "file")
    options: dict[str, Any] = {}
    if problem is None:
        form = {"task": task, "language": fields.get("language", ""), "initial_prompt": fields.get("prompt", "")}
        temperature = fields.get("temperature", "").strip()
        if temperature and float(temperature) > 0:
            form["temperature"] = temperature  # 0 or absent: Whisper's fallback ladder, as OpenAI does
        if "word" in _granularities(fields):
            form["word_timestamps"] = "true"
        for extra in ("pack", "speech_guard"):  # this server's own extra fields (docs/api.md)
            if extra in fields:
                form[extra] = fields[extra]
        try:
            options = parse_task_options(form)
        except OptionError as exc:
            problem = (str(exc), "prompt" if exc.field == "initial_prompt" else exc.field)
    if problem is not None:
        upload.path.unlink(missing_ok=True)
        return openai_error(problem[0], 400, problem[1])
    owner = request_owner(request.scope)
    duration = await run_in_threadpool(service.tasks.audio_duration, upload.path)  # before the store takes the file
    try:
        task_id = await run_in_threadpool(service.tasks.create, upload.path, options, owner,
                                           client_address(request))
    except Refusal as refusal:
        return _refused(refusal)
    record = await read_task(service, task_id, owner, WAIT_LIMIT_S, gone=request.is_disconnected)
    if await request.is_disconnected():
        # Nobody will read the answer: the task is cancelled, its work stopped.
        await run_in_threadpool(service.tasks.delete, task_id, owner)
        log.info("client went away; task cancelled", extra={"task_id": task_id})
        return Response(status_code=499)
    headers = {"x-asr-task-id": task_id}
    if record is None or not record.status.ended:
        return openai_error(f"Still processing after {WAIT_LIMIT_S:.0f} s; poll /api/v1/asr/task/{task_id}", 504,
                            kind="timeout")
    if (failure := record.failure) is not None:
        if failure.kind == ErrorKind.UNDECODABLE_AUDIO:
            response = openai_error("Invalid file format: the file could not be decoded as audio", 400, "file")
        else:
            expose = service.settings.server.expose_tracebacks
            response = openai_error(failure.message if expose else failure.summary, 500, kind="server_error")
        response.headers.update(headers)
        return response
    return _answer(record.result, response_format, task, headers, duration)


def _check(fields: dict[str, str], response_format: str) -> tuple[str, str] | None:
    if response_format not in RESPONSE_FORMATS:
        return f"Invalid 'response_format': expected one of {', '.join(RESPONSE_FORMATS)}", "response_format"
    granularities = _granularities(fields)
    if granularities - {"segment", "word"}:
        return "Invalid 'timestamp_granularities[]': expected 'segment' and/or 'word'", "timestamp_granularities[]"
    temperature = fields.get("temperature", "").strip()
    if temperature:
        try:
            if not 0 <= float(temperature) <= 1:
                raise ValueError
        except ValueError:
            return "Invalid 'temperature': expected a number from 0 to 1", "temperature"
    return None


def _granularities(fields: dict[str, str]) -> set[str]:
    raw = fields.get("timestamp_granularities[]", "") + "," + fields.get("timestamp_granularities", "")
    return {value.strip() for value in raw.split(",") if value.strip()}


def _answer(result: dict[str, Any], response_format: str, task: str, headers: dict[str, str],
            duration: float | None = None) -> Response:
    """The answer in OpenAI's shape; ``duration``: the audio's length (where the last segment
    ends when the container states none)."""
    if response_format == "json":
        return JSONResponse({"text": result["text"]}, headers=headers)
    if response_format == "text":
        return PlainTextResponse(result["text"], headers=headers)
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(render(result, response_format), headers=headers)
    segments = result["segments"]
    body: dict[str, Any] = {
        "task": task,
        "language": result["language"],
        "duration": duration if duration is not None else (segments[-1]["end"] if segments else 0.0),
        "text": result["text"],
        "segments": segments,
    }
    if any("words" in segment for segment in segments):
        body["words"] = [{"word": w["word"].strip(), "start": w["start"], "end": w["end"]}
                         for segment in segments for w in segment.get("words", [])]
    return JSONResponse(body, headers=headers)


async def models(request: Request) -> JSONResponse:
    name = request.app.state.service.settings.model.name
    ids = ["whisper-1"] + ([name] if name != "whisper-1" else [])
    return JSONResponse({"object": "list",
                         "data": [{"id": i, "object": "model", "created": 0, "owned_by": "asr-server"} for i in ids]})


ROUTES = [
    Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
    Route("/v1/audio/translations", translations, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
]
