"""The seed's task bodies, built in one place: GET answers them, webhooks deliver them."""

from __future__ import annotations

from typing import Any

from asr_server.store.records import TaskRecord, TaskStatus


def not_found(task_id: str) -> dict[str, Any]:
    """The seed's 404 body: for an unknown id, another key's task, or a deleted one."""
    return {"task_id": task_id, "status": "Task not found", "result": ""}


def task_body(task_id: str, record: TaskRecord | None, expose_tracebacks: bool = True) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) exactly as the seed contract (docs/api.md) gives them; without
    ``expose_tracebacks`` a failed task's body holds a short error instead of the traceback."""
    if record is None:
        return 404, not_found(task_id)
    if record.status == TaskStatus.DONE:
        return 200, {"task_id": task_id, "status": "done", "result": record.result}
    if (failure := record.failure) is not None:
        text = failure.text if expose_tracebacks else failure.summary
        return 500, {"task_id": task_id, "status": "error", "result": text}
    return 202, {"task_id": task_id, "status": "processing", "result": ""}
