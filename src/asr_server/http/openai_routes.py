"""OpenAI-compatible endpoints: /v1/audio/transcriptions, /v1/audio/translations, /v1/models.

They answer synchronously, the way OpenAI's do, but run through the same store and scheduler
as every other task, so their audio is batched with everything else. The task stays visible on
the task API under its id (the ``x-asr-task-id`` header) afterwards.

Errors have OpenAI's shape and its split: ``invalid_request_error`` with the ``param`` at fault
and a 4xx status for a client's mistake, ``server_error`` and a 5xx for the server's own
failures, whose message holds no exception text. docs/api.md lists where the answers differ
from OpenAI's service, and why. The request waits on the server's own task-end notification,
as long polling does (``long_polling.read_task``), and a client that goes away cancels its task.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asr_server.config import Settings
from asr_server.errors import ErrorKind, Failure
from asr_server.http.auth import request_owner
from asr_server.http.long_polling import read_task
from asr_server.http.uploads import UploadError, client_address, receive_task_upload
from asr_server.service.task_options import OptionError, parse_task_options
from asr_server.service.tasks import Refusal
from asr_server.text.formats import render

log = logging.getLogger("asr_server.http.openai_routes")
PREFIX = "/v1/"
RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
# This server's own fields, beside OpenAI's (docs/api.md)
EXTRA_FIELDS = ("pack", "speech_guard", "priority", "deadline_s",
                "diarize", "num_speakers", "min_speakers", "max_speakers")
DEFAULT_MODEL = "whisper-1"  # OpenAI's name for its Whisper model: here, the configured model
WAIT_LIMIT_S = 3600.0


def openai_error(message: str, status: int, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status)


def model_ids(settings: Settings) -> list[str]:
    """The names ``model`` may take: OpenAI's ``whisper-1`` (the default model) and each
    configured model's id."""
    return [DEFAULT_MODEL, *settings.all_models]


def model_not_found(model: str, settings: Settings) -> JSONResponse:
    return openai_error(f"The model '{model}' does not exist; this server has: {', '.join(model_ids(settings))}",
                        404, "model", code="model_not_found")


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (an unknown path, a method not allowed) in OpenAI's shape under
    ``/v1/``, and as Starlette gives them elsewhere."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(PREFIX):
        response: Response = openai_error(
            f"Unrecognized request: {request.method} {request.url.path}" if exc.status_code in (404, 405)
            else exc.detail, exc.status_code)
        response.headers.update(exc.headers or {})
        return response
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def transcriptions(request: Request) -> Response:
    return await _transcribe(request, "transcribe")


async def translations(request: Request) -> Response:
    return await _transcribe(request, "translate")


def _refused(refusal: Refusal) -> JSONResponse:
    """A task the server cannot take now: a key over its limit (429, as OpenAI's rate limits
    answer) or the server itself (503)."""
    if refusal.status == 429:
        response = openai_error(refusal.message, 429, kind="requests", code="rate_limit_exceeded")
    else:
        response = openai_error(refusal.message, refusal.status, kind="server_error")
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
    if (refused := _model_refused(fields, service.settings)) is not None:
        upload.path.unlink(missing_ok=True)
        return refused
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
        for extra in EXTRA_FIELDS:
            if extra in fields:
                form[extra] = fields[extra]
        if response_format == "diarized_json":
            form["diarize"] = "true"  # the format is the request for speaker labels, as at OpenAI
        if fields.get("model", "").strip() in model_ids(service.settings):  # else lenient: the default
            form["model"] = fields["model"].strip()
        try:
            options = parse_task_options(form, models=service.settings.all_models)
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
                            kind="server_error")
    if (failure := record.failure) is not None:
        response = _failed(failure)
        response.headers.update(headers)
        return response
    assert record.result is not None  # done, not failed: the task has its result
    return _answer(record.result, response_format, task, headers, duration)


def _model_refused(fields: dict[str, str], settings: Settings) -> JSONResponse | None:
    """OpenAI's answer to a missing or unknown ``model``; None where it names one of this
    server's models, or where the server takes any (``openai.lenient_model``)."""
    if settings.openai.lenient_model:
        return None
    model = fields.get("model", "").strip()
    if not model:
        return openai_error("You must provide a model parameter", 400, "model")
    if model not in model_ids(settings):
        return model_not_found(model, settings)
    return None


def _failed(failure: Failure) -> JSONResponse:
    """A failed task's answer: 400 where the client's file is at fault, 500 otherwise."""
    if failure.kind == ErrorKind.UNDECODABLE_AUDIO:
        return openai_error("Invalid file format: the file could not be decoded as audio", 400, "file")
    if failure.kind == ErrorKind.AUDIO_TOO_LONG:
        return openai_error(failure.message.partition(": ")[2] or failure.message, 400, "file")
    return openai_error(failure.summary, 500, kind="server_error")


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
    ends when the container states none). json and verbose_json carry ``usage`` as OpenAI
    bills whisper-1: the duration in whole seconds, rounded up."""
    if response_format == "text":
        return PlainTextResponse(result["text"], headers=headers)
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(render(result, response_format), headers=headers)
    segments = result["segments"]
    if duration is None:
        duration = segments[-1]["end"] if segments else 0.0
    usage = {"type": "duration", "seconds": math.ceil(duration)}
    if response_format == "json":
        return JSONResponse({"text": result["text"], "usage": usage}, headers=headers)
    if response_format == "diarized_json":
        return JSONResponse(diarized_json(result, task, duration, usage), headers=headers)
    body: dict[str, Any] = {
        "task": task,
        "language": result["language"],
        "duration": duration,
        "text": result["text"],
        "segments": segments,
    }
    if any("words" in segment for segment in segments):
        body["words"] = [{"word": w["word"].strip(), "start": w["start"], "end": w["end"]}
                         for segment in segments for w in segment.get("words", [])]
    body["usage"] = usage
    return JSONResponse(body, headers=headers)


def diarized_json(result: dict[str, Any], task: str, duration: float, usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's diarized_json: the text, and segments of one speaker each (``A``, ``B``, ...)."""
    segments = [{"type": "transcript.text.segment", "id": f"seg_{n}", "start": s["start"], "end": s["end"],
                 "text": s["text"].strip(), "speaker": s.get("speaker") or ""}
                for n, s in enumerate(result["segments"])]
    return {"task": task, "duration": duration, "text": result["text"], "segments": segments, "usage": usage}


def _model_objects(request: Request) -> dict[str, dict[str, Any]]:
    """OpenAI's model objects by id, with whether each is loaded now (``whisper-1`` stands for
    the default model)."""
    service = request.app.state.service
    status = service.models_status()
    default = next(iter(status))
    return {model_id: {"id": model_id, "object": "model", "created": 0, "owned_by": "asr-server",
                       "loaded": status[default if model_id == DEFAULT_MODEL else model_id]["loaded"]}
            for model_id in model_ids(service.settings)}


async def models(request: Request) -> JSONResponse:
    return JSONResponse({"object": "list", "data": list(_model_objects(request).values())})


async def model(request: Request) -> JSONResponse:
    """``GET /v1/models/{model}``: one model, or OpenAI's 404 ``model_not_found``."""
    objects = _model_objects(request)
    model_id = request.path_params["model"]
    if model_id not in objects:
        return model_not_found(model_id, request.app.state.service.settings)
    return JSONResponse(objects[model_id])


ROUTES = [
    Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
    Route("/v1/audio/translations", translations, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
    # ``path``: a model name may hold a slash (a hub name such as ``Systran/faster-whisper-base``).
    Route("/v1/models/{model:path}", model, methods=["GET"]),
]
