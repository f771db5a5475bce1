"""The seed's task bodies, built in one place: GET answers them, webhooks deliver them."""

from __future__ import annotations

from typing import Any

from asr_server.store.records import DONE, ERROR, TaskRecord


def task_body(task_id: str, record: TaskRecord | None, expose_tracebacks: bool = True) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) exactly as ../shared/SEED_API.md gives them; without
    ``expose_tracebacks`` a failed task's body holds a short error instead of the traceback."""
    if record is None:
        return 404, {"task_id": task_id, "status": "Task not found", "result": ""}
    if record.status == DONE:
        return 200, {"task_id": task_id, "status": "done", "result": record.result}
    if record.status == ERROR:
        error = record.error or ""
        return 500, {"task_id": task_id, "status": "error", "result": error if expose_tracebacks else short_error(error)}
    return 202, {"task_id": task_id, "status": "processing", "result": ""}


def short_error(error: str) -> str:
    """A traceback reduced to the exception's class; the server's own messages stay whole."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return "Transcription failed"
    if not lines[0].startswith("Traceback"):
        return lines[0]
    name = lines[-1].split(":", 1)[0].strip()
    return f"Transcription failed ({name.rsplit('.', 1)[-1]}); the server's log has the details"
