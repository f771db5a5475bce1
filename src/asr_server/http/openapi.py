"""The API's OpenAPI 3.1 description (``GET /openapi.json``) and its docs page (``GET /docs``).

The description is written out here, so that it says exactly what the routes answer, bodies
included (the seed's bodies are a contract); the task options' schemas come from the pydantic
models that validate them (``task_options.form_schema``), so they cannot drift apart. The docs page is Swagger UI,
served from the ``swagger-ui-bundle`` package's own files: nothing is fetched from a CDN.
"""

from __future__ import annotations

from typing import Any

from asr_server import __version__
from asr_server.service.task_options import form_schema
from asr_server.service.waiters import MAX_WAIT_S
from asr_server.text.formats import FORMATS

TASK_ID = {"type": "string", "pattern": "^[0-9]{20}$", "example": "20251124101501123456"}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
SEGMENT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "seek": {"type": "integer"}, "start": {"type": "number"},
        "end": {"type": "number"}, "text": {"type": "string"},
        "tokens": {"type": "array", "items": {"type": "integer"}}, "temperature": {"type": "number"},
        "avg_logprob": {"type": "number"}, "compression_ratio": {"type": "number"},
        "no_speech_prob": {"type": "number"},
    },
}
RESULT = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "segments": {"type": "array", "items": SEGMENT},
                   "language": {"type": ["string", "null"]}},
}


def _seed(status: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["task_id", "status", "result"],
            "properties": {"task_id": TASK_ID, "status": {"const": status}, "result": result}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


TASK_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "Audio or video; anything FFmpeg decodes."},
        **form_schema(),
    },
}
OPENAI_FORM = {
    "type": "object",
    "required": ["file", "model"],
    "properties": {
        "file": {"type": "string", "format": "binary"}, "model": {"type": "string"},
        "language": {"type": "string"}, "prompt": {"type": "string"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "response_format": {"type": "string", "enum": ["json", "text", "srt", "verbose_json", "vtt",
                                                                 "diarized_json"]},
        "timestamp_granularities[]": {"type": "array", "items": {"type": "string", "enum": ["segment", "word"]}},
    },
}
OPENAI_ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": ["string", "null"]},
    "code": {"type": ["string", "null"]}}}}}


def _openai_operation(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": OPENAI_FORM}}},
        "responses": {
            "200": {"description": "The transcript in the asked format.", "content": {
                "application/json": {"schema": {"type": "object"}}, "text/plain": {"schema": {"type": "string"}}}},
            "400": _json(OPENAI_ERROR, "A bad field, named in `param`; a file that is not audio."),
            "404": _json(OPENAI_ERROR, "An unknown `model` (code `model_not_found`)."),
            "429": _json(OPENAI_ERROR, "A key over its limits (code `rate_limit_exceeded`)."),
            "500": _json(OPENAI_ERROR, "The task failed; the server's log has why."),
            "503": _json(OPENAI_ERROR, "The queue is full or the server is draining; retry."),
            "504": _json(OPENAI_ERROR, "Still processing after the wait limit."),
        },
    }


def spec() -> dict[str, Any]:
    task_id_param = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "asr-server", "version": __version__,
                 "description": "Whisper speech-to-text with cross-request batching. The seed task API "
                                "(/api/v1/asr/task) is a fixed contract; the rest are additions."},
        "paths": {
            "/api/v1/asr/task": {"post": {
                "summary": "Create a task from an upload (answers at once).",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": TASK_FORM}}},
                "responses": {
                    "201": _json({"type": "object", "required": ["task_id"], "properties": {"task_id": TASK_ID}},
                                 "Accepted and stored."),
                    "400": _json(ERROR, "No or empty `file`, a malformed body, or a bad option (named)."),
                    "401": _json(ERROR, "API keys are on and the request has no valid key."),
                    "408": _json(ERROR, "The upload sent nothing for server.upload_idle_timeout_s."),
                    "413": _json(ERROR, "The body is larger than server.max_upload_mb (or store.max_audio_mb)."),
                    "503": _json(ERROR, "More than server.max_queued_tasks tasks wait, or the server is "
                                        "shutting down; see Retry-After."),
                },
            }},
            "/api/v1/asr/task/{task_id}": {
                "get": {
                    "summary": "A task's state and result; `format` downloads a finished transcript.",
                    "parameters": [task_id_param, {"name": "format", "in": "query", "required": False,
                                                   "schema": {"type": "string", "enum": list(FORMATS)}},
                                   {"name": "progress", "in": "query", "required": False,
                                    "description": "true: a 202 also holds progress and queue_position",
                                    "schema": {"type": "boolean"}},
                                   {"name": "wait", "in": "query", "required": False,
                                    "description": "Long polling: hold the request until the task ends or "
                                                   "this many seconds pass, then answer as usual (202 if "
                                                   "still processing)",
                                    "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S}}],
                    "responses": {
                        "200": {"description": "Done: the seed body, or the transcript file with `format`.",
                                "content": {"application/json": {"schema": _seed("done", RESULT)},
                                            "text/plain": {"schema": {"type": "string"}}}},
                        "202": _json(_seed("processing", {"const": ""}), "Queued or being transcribed."),
                        "400": _json(ERROR, "Unknown format, or a wait out of range."),
                        "404": _json(_seed("Task not found", {"const": ""}), "No such task."),
                        "500": _json(_seed("error", {"type": "string"}), "Failed; `result` holds the traceback."),
                    },
                },
                "delete": {
                    "summary": "Remove a task, its audio and its result.",
                    "parameters": [task_id_param],
                    "responses": {
                        "200": _json({"type": "object",
                                      "properties": {"task_id": TASK_ID, "status": {"const": "deleted"}}},
                                     "Deleted."),
                        "404": _json(_seed("Task not found", {"const": ""}), "No such task."),
                    },
                },
            },
            "/api/v1/asr/tasks": {"get": {
                "summary": "Tasks, oldest first, a page at a time.",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": [
                        "processing", "queued", "running", "done", "error"]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json({"type": "object", "properties": {
                        "tasks": {"type": "array", "items": {"type": "object", "properties": {
                            "task_id": TASK_ID, "status": {"type": "string"}}}},
                        "next": {"type": ["string", "null"]}}}, "A page."),
                    "400": _json(ERROR, "Unknown status or a limit out of range."),
                },
            }},
            "/v1/audio/transcriptions": {"post": _openai_operation("OpenAI-compatible transcription (synchronous).")},
            "/v1/audio/translations": {"post": _openai_operation("OpenAI-compatible translation to English.")},
            "/v1/models": {"get": {"summary": "The model names accepted.", "responses": {
                "200": _json({"type": "object"}, "OpenAI's model list shape.")}}},
            "/v1/models/{model}": {"get": {
                "summary": "One model, as OpenAI describes it.",
                "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json({"type": "object"}, "OpenAI's model object."),
                              "404": _json(OPENAI_ERROR, "No such model (code `model_not_found`).")}}},
            "/healthz": {"get": {"summary": "The process is up.",
                                 "responses": {"200": _json({"type": "object"}, "Up.")}}},
            "/readyz": {"get": {"summary": "The model is loaded and the scheduler runs.", "responses": {
                "200": _json({"type": "object"}, "Ready, with scheduler counters."),
                "503": _json({"type": "object"}, "Loading, failed, or draining before a shutdown.")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (text exposition format).", "responses": {
                "200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/": {"get": {"summary": "The web page: upload, watch, read and download transcripts.", "responses": {
                "200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        },
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "Only when the server lists API keys (auth.*): /api/ and /v1/ need one; "
                                      "without a valid key they answer 401 with a JSON error."},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }},
        "security": [{}, {"bearer": []}, {"apiKey": []}],
    }


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>asr-server API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});\n"""
