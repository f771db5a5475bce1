"""The embedded task store: durable task records and the queue of pending work.

``SqliteTaskStore`` is the embedded default, one SQLite file in WAL mode in the data directory.
A task is committed before its id is returned, so an accepted task survives ``kill -9``; tasks
left ``running`` by a dead process are queued again when the store is opened.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from asr_server.errors import ErrorKind, Failure
from asr_server.store.records import (
    PendingDelivery,
    QueueFull,
    StorageFull,
    TaskRecord,
    TaskStatus,
    TaskSummary,
    task_ids_from,
)

QUEUED, RUNNING, DONE, ERROR = TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.DONE, TaskStatus.ERROR

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id    TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    audio_path TEXT,
    options    TEXT NOT NULL,
    result     TEXT,
    error      TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, task_id);
CREATE TABLE IF NOT EXISTS deliveries (
    task_id TEXT PRIMARY KEY,
    url     TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    due     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_due ON deliveries (due);
"""

# Columns added since the first schema: a store opened on an older file gains them, and the
# owner, which older versions kept inside the options, is copied out once.
_ADDED = {"owner": "TEXT", "error_kind": "TEXT", "error_message": "TEXT"}
_COLUMNS = "task_id, status, audio_path, options, result, error, attempts, owner, error_kind, error_message"


class SqliteTaskStore:
    """Embedded store: one SQLite file, one connection guarded by a lock.

    Every call is short (an indexed read or write), so callers on the event loop run it in a
    worker thread and the lock costs little. Reads go through a connection of their own per
    thread: in WAL mode they never wait for a write, so GETs stay fast under a flood of uploads.
    ``synchronous=FULL`` makes every commit durable across power loss too, not only across a
    crash of the process.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._migrate()
        self._lock = threading.Lock()
        self._path = path
        self._local = threading.local()  # each thread's read connection
        self._readers: list[sqlite3.Connection] = []
        self._progress: dict[str, float] = {}  # running task id -> share done; in memory, as it need not survive
        self._progress_lock = threading.Lock()  # the engine thread writes it, request threads read it
        self._last_id = ""

    def _migrate(self) -> None:
        present = {row[1] for row in self._conn.execute("PRAGMA table_info(tasks)")}
        for column, kind in _ADDED.items():
            if column not in present:
                self._conn.execute(f"ALTER TABLE tasks ADD COLUMN {column} {kind}")
        if "owner" not in present:
            self._conn.execute("UPDATE tasks SET owner = json_extract(options, '$.owner')")
        self._conn.execute("CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, task_id)")

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self._path), check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def create(self, audio_path: str, options: dict[str, Any], max_queued: int | None = None,
               owner: str | None = None) -> str:
        """Insert a queued task under the next free id (an id is never reused). With
        ``max_queued``, raise QueueFull instead when that many tasks already wait: checked
        under the write lock, so concurrent uploads cannot overshoot it."""
        now = time.time()
        with self._lock:
            if max_queued is not None:
                waiting = self._conn.execute("SELECT COUNT(*) FROM tasks WHERE status = ?", (QUEUED,)).fetchone()[0]
                if waiting >= max_queued:
                    raise QueueFull(max_queued)
            for candidate in task_ids_from(self._last_id):
                try:
                    self._conn.execute(
                        "INSERT INTO tasks (task_id, status, audio_path, options, owner, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (candidate, QUEUED, audio_path, json.dumps(options), owner, now, now),
                    )
                    break
                except sqlite3.IntegrityError:  # taken (clock stepped back, or a restart)
                    continue
                except sqlite3.OperationalError as exc:
                    if "full" in str(exc):  # SQLITE_FULL: "database or disk is full"
                        raise StorageFull(str(exc)) from None
                    raise
            self._last_id = candidate
            return candidate

    def get(self, task_id: str) -> TaskRecord | None:
        row = self._reader().execute(
            f"SELECT {_COLUMNS} FROM tasks WHERE task_id = ?",
            (task_id,),
        ).fetchone()
        if row is None:
            return None
        with self._progress_lock:
            progress = self._progress.get(task_id)
        return replace(_record(row), progress=progress)

    def set_progress(self, task_id: str, fraction: float) -> None:
        with self._progress_lock:
            self._progress[task_id] = fraction

    def _forget_progress(self, task_id: str) -> None:
        with self._progress_lock:
            self._progress.pop(task_id, None)

    def claim(self, limit: int) -> list[TaskRecord]:
        """Mark up to ``limit`` queued tasks running, oldest first, and return them; each claim
        counts an attempt (the service gives up on a task claimed too often)."""
        if limit <= 0:
            return []
        now = time.time()
        with self._lock:
            rows = self._conn.execute(
                "UPDATE tasks SET status = ?, attempts = attempts + 1, updated_at = ?"
                " WHERE task_id IN (SELECT task_id FROM tasks WHERE status = ? ORDER BY task_id LIMIT ?)"
                f" RETURNING {_COLUMNS}",
                (RUNNING, now, QUEUED, limit),
            ).fetchall()
        return sorted((_record(row) for row in rows), key=lambda r: r.task_id)

    def finish(self, task_id: str, result: dict[str, Any]) -> bool:
        """Store the result of a task still queued or running; False if it had ended or gone."""
        return self._end(task_id, DONE, json.dumps(result, ensure_ascii=False), None)

    def fail(self, task_id: str, failure: Failure) -> bool:
        """Store the failure of a task still queued or running; False if it had ended or gone."""
        return self._end(task_id, ERROR, None, failure)

    def _end(self, task_id: str, status: TaskStatus, result: str | None, failure: Failure | None) -> bool:
        with self._lock:
            # RETURNING would give the new (NULL) path: read the old one in the same transaction.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(
                    "SELECT audio_path FROM tasks WHERE task_id = ? AND status IN (?, ?)", (task_id, QUEUED, RUNNING)
                ).fetchone()
                self._conn.execute(
                    "UPDATE tasks SET status = ?, result = ?, error = ?, error_kind = ?, error_message = ?,"
                    " audio_path = NULL, updated_at = ? WHERE task_id = ? AND status IN (?, ?)",
                    (status, result, failure and failure.text, failure and failure.kind,
                     failure and failure.message, time.time(), task_id, QUEUED, RUNNING),
                )
                if row is not None:  # the write that ended it: its webhook, in the same transaction
                    self._conn.execute(
                        "INSERT OR REPLACE INTO deliveries (task_id, url, attempt, due)"
                        " SELECT task_id, json_extract(options, '$.callback_url'), 1, ? FROM tasks"
                        " WHERE task_id = ? AND json_extract(options, '$.callback_url') IS NOT NULL",
                        (time.time(), task_id),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        self._forget_progress(task_id)
        if row and row[0]:
            Path(row[0]).unlink(missing_ok=True)
        return row is not None

    def expire(self, ended_before: float) -> int:
        """Remove finished tasks that ended before this Unix time; return how many."""
        with self._lock:
            cursor = self._conn.execute(
                "DELETE FROM tasks WHERE status IN (?, ?) AND updated_at < ?", (DONE, ERROR, ended_before)
            )
            return cursor.rowcount

    def requeue_running(self) -> int:
        """Queue again the tasks a dead process left running; return how many."""
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE tasks SET status = ?, updated_at = ? WHERE status = ?", (QUEUED, time.time(), RUNNING)
            )
            return cursor.rowcount

    def live_audio_paths(self) -> set[str]:
        """Audio files still needed by queued or running tasks."""
        rows = self._reader().execute(
            "SELECT audio_path FROM tasks WHERE status IN (?, ?) AND audio_path IS NOT NULL", (QUEUED, RUNNING)
        ).fetchall()
        return {row[0] for row in rows}

    def list(self, status: TaskStatus | None, after: str | None, limit: int,
             owner: str | None = None) -> list[TaskSummary]:
        """Tasks in id (creation) order after ``after``, optionally of one status and one owner."""
        query = "SELECT task_id, status FROM tasks WHERE task_id > ?"
        params: list[Any] = [after or ""]
        if status is not None:
            query += " AND status = ?"
            params.append(status)
        if owner is not None:
            query += " AND owner = ?"
            params.append(owner)
        query += " ORDER BY task_id LIMIT ?"
        params.append(limit)
        rows = self._reader().execute(query, params).fetchall()
        return [TaskSummary(task_id, TaskStatus(task_status)) for task_id, task_status in rows]

    def delete(self, task_id: str) -> bool:
        """Remove a task, its audio and its result; False if there was none. A running task's
        scheduler finds nothing to update when it ends (finish and fail touch no row)."""
        with self._lock:
            row = self._conn.execute("DELETE FROM tasks WHERE task_id = ? RETURNING audio_path", (task_id,)).fetchone()
        self._forget_progress(task_id)
        if row is None:
            return False
        if row[0]:
            Path(row[0]).unlink(missing_ok=True)
        return True

    def queued(self) -> int:
        """How many tasks wait for the engine."""
        return int(self._reader().execute("SELECT COUNT(*) FROM tasks WHERE status = ?", (QUEUED,)).fetchone()[0])

    def unfinished(self, owner: str) -> int:
        """How many of an owner's tasks are queued or running."""
        row = self._reader().execute(
            "SELECT COUNT(*) FROM tasks WHERE owner = ? AND status IN (?, ?)", (owner, QUEUED, RUNNING)
        ).fetchone()
        return int(row[0])

    def queue_position(self, task_id: str) -> int:
        """How many queued tasks are ahead of this one (0 when it is next, or running)."""
        row = self._reader().execute(
            "SELECT COUNT(*) FROM tasks WHERE status = ? AND task_id < ?", (QUEUED, task_id)
        ).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        rows = self._reader().execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall()
        return {TaskStatus(status): count for status, count in rows}

    # -- webhook deliveries -------------------------------------------------------------------

    def take_deliveries(self, limit: int, lease_s: float) -> builtins.list[PendingDelivery]:
        """Up to ``limit`` deliveries that are due, each put off by ``lease_s`` while it is made
        (a process that dies meanwhile leaves it due again after that)."""
        now = time.time()
        with self._lock:
            rows = self._conn.execute(
                "UPDATE deliveries SET due = ? WHERE task_id IN"
                " (SELECT task_id FROM deliveries WHERE due <= ? ORDER BY due LIMIT ?)"
                " RETURNING task_id, url, attempt",
                (now + lease_s, now, limit),
            ).fetchall()
        return [PendingDelivery(task_id, url, attempt) for task_id, url, attempt in rows]

    def delivery_done(self, task_id: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM deliveries WHERE task_id = ?", (task_id,))

    def delivery_retry(self, task_id: str, attempt: int, delay_s: float) -> None:
        with self._lock:
            self._conn.execute("UPDATE deliveries SET attempt = ?, due = ? WHERE task_id = ?",
                               (attempt, time.time() + delay_s, task_id))

    def close(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._conn.close()


def _record(row: tuple[Any, ...]) -> TaskRecord:
    task_id, status, audio_path, options, result, error, attempts, owner, error_kind, error_message = row
    return TaskRecord(
        task_id=task_id,
        status=TaskStatus(status),
        audio_path=audio_path,
        options=json.loads(options),
        result=json.loads(result) if result else None,
        error=error,
        attempts=attempts,
        owner=owner,
        error_kind=ErrorKind(error_kind) if error_kind else None,
        error_message=error_message,
    )
