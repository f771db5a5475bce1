"""The seed's task bodies, built in one place: GET answers them, webhooks deliver them."""

from __future__ import annotations

from typing import Any

from .store import DONE, ERROR, TaskRecord


def task_body(task_id: str, record: TaskRecord | None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) exactly as ../shared/SEED_API.md gives them."""
    if record is None:
        return 404, {"task_id": task_id, "status": "Task not found", "result": ""}
    if record.status == DONE:
        return 200, {"task_id": task_id, "status": "done", "result": record.result}
    if record.status == ERROR:
        return 500, {"task_id": task_id, "status": "error", "result": record.error or ""}
    return 202, {"task_id": task_id, "status": "processing", "result": ""}
