"""The Redis task store: one shared queue and task table for many replicas.

Every state change is one Lua script, so it is atomic on the Redis server and needs no lock
between replicas. Keys (under ``key_prefix``):

- ``task:{id}``   hash: status, options, owner, result, error, error_kind, error_message, attempts,
  progress, lease, created
- ``audio:{id}``  the uploaded bytes, removed when the task ends, with the default audio store
  (``audio_store.py``; with the others the audio is elsewhere and Redis holds records only)
- ``ids``         sorted set of every task id (score 0, so ordered by id: creation order)
- ``queued``      sorted set of queued ids, oldest first
- ``running``     sorted set of running ids, scored by the lease's deadline (Redis server time, ms)
- ``owned:{owner}`` sorted set of an API key owner's unfinished ids (for ``limits.queued_tasks``)
- ``deliveries``  sorted set of the ids of ended tasks whose webhook is still to be made, by due time (ms)

A replica that claims a task takes a lease on it: a token ``{replica}/{id}/{attempt}`` stored
in the task (new at every claim) and a deadline in ``running``. A heartbeat thread extends the
leases of the tasks it holds. When a replica dies its leases run out after
``visibility_timeout_s`` and the next ``claim`` by any replica takes those tasks again. A result
is written only under the lease that is current, so a task ends once, even if a replica that was
presumed dead wakes up and finishes it late.
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import redis
from redis.typing import EncodableT, FieldT

from asr_server.errors import ErrorKind, Failure
from asr_server.store import redis_scripts as scripts
from asr_server.store.audio_store import AudioStore, RedisAudioStore, redis_audio_key
from asr_server.store.records import PendingDelivery, QueueFull, TaskRecord, TaskStatus, TaskSummary, task_ids_from

QUEUED, RUNNING, DONE, ERROR = TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.DONE, TaskStatus.ERROR

log = logging.getLogger("asr_server.store.redis_store")

_FIELDS = ("status", "options", "result", "error", "attempts", "progress", "owner", "error_kind", "error_message")

class RedisTaskStore:
    """Task records and the pending queue, shared by every replica, and the uploaded audio in
    ``audio`` (Redis itself by default).

    ``replica`` names this process among the replicas (it prefixes its leases; a restarted
    replica with the same name takes its old tasks back at once). ``spool_dir`` is local: a
    claimed task's audio is written there for the decoder and removed when the task ends.
    """

    def __init__(
        self,
        url: str,
        replica: str,
        spool_dir: Path,
        *,
        key_prefix: str = "asr:",
        max_attempts: int = 3,  # a claim past this many attempts is not spooled: the service fails it
        visibility_timeout_s: float = 30.0,
        result_ttl_s: float = 0,
        audio: Callable[[redis.Redis], AudioStore] | None = None,
    ) -> None:
        self._redis = redis.Redis.from_url(url, health_check_interval=30)
        self._redis.ping()  # fail at start-up, naming the URL, rather than on the first upload
        self._p = key_prefix
        self.audio: AudioStore = audio(self._redis) if audio else RedisAudioStore(self._redis, key_prefix)
        self._replica = replica
        self._spool = spool_dir
        self._spool.mkdir(parents=True, exist_ok=True)
        self.max_attempts = max_attempts
        self._lease_ms = int(visibility_timeout_s * 1000)
        self._ttl = int(result_ttl_s)
        self._claim = self._redis.register_script(scripts.CLAIM)
        self._end = self._redis.register_script(scripts.END)
        self._renew = self._redis.register_script(scripts.RENEW)
        self._release_mine = self._redis.register_script(scripts.RELEASE_MINE)
        self._delete = self._redis.register_script(scripts.DELETE)
        self._progress = self._redis.register_script(scripts.PROGRESS)
        self._take_deliveries = self._redis.register_script(scripts.TAKE_DELIVERIES)
        self._retry_delivery = self._redis.register_script(scripts.RETRY_DELIVERY)
        self._leases: dict[str, str] = {}  # task id -> lease token, for the tasks this replica holds
        self.on_lease_lost: Callable[[str], None] | None = None  # told of a task taken or deleted elsewhere
        self._lock = threading.Lock()
        self._last_id = ""
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._renew_leases, name="asr-leases", daemon=True)
        self._heartbeat.start()

    # -- keys ------------------------------------------------------------------------------

    def _task(self, task_id: str) -> str:
        return f"{self._p}task:{task_id}"

    def _audio(self, task_id: str) -> str:
        return redis_audio_key(self._p, task_id)  # the scripts remove RedisAudioStore's audio with the record

    # -- the routes' side --------------------------------------------------------------------

    def create(self, audio_path: str, options: dict[str, Any], max_queued: int | None = None,
               owner: str | None = None) -> str:
        """Move the uploaded file into the audio store, then write its task under a new id that
        no replica has used. The ``max_queued`` check is not atomic with the write: replicas
        creating at the same moment can overshoot it by the number of uploads in flight. Audio
        stored for a task whose record was never written (the process died between) is removed
        by ``remove_orphan_audio``."""
        if max_queued is not None and self.queued() >= max_queued:
            raise QueueFull(max_queued)
        task_id = self._reserve_id()
        self.audio.put(task_id, Path(audio_path))
        fields: dict[FieldT, EncodableT] = {"status": QUEUED, "options": json.dumps(options), "attempts": 0,
                                              "created": str(time.time())}
        if owner is not None:
            fields["owner"] = owner
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._task(task_id), mapping=fields)
        pipe.persist(self._task(task_id))
        pipe.zadd(f"{self._p}ids", {task_id: 0})
        pipe.zadd(f"{self._p}queued", {task_id: 0})
        if owner is not None:
            pipe.zadd(f"{self._p}owned:{owner}", {task_id: 0})  # its unfinished tasks, for limits.queued_tasks
        try:
            pipe.execute()
        except BaseException:
            self._remove_audio(task_id)
            raise
        return task_id

    def _reserve_id(self) -> str:
        """The seed's 20-digit id from this replica's clock, made unique across replicas by
        HSETNX; the reservation expires if this process dies before the task is written."""
        with self._lock:
            for candidate in task_ids_from(self._last_id):
                key = self._task(candidate)
                if self._redis.hsetnx(key, "reserved", self._replica):
                    self._redis.expire(key, 3600)
                    self._last_id = candidate
                    return candidate
        raise AssertionError("unreachable: task_ids_from never ends")

    def get(self, task_id: str) -> TaskRecord | None:
        # Without decode_responses, redis-py answers bytes (its types say bytes or str).
        values = cast(list[bytes | None], self._redis.hmget(self._task(task_id), _FIELDS))
        return _record(task_id, values)

    def list(self, status: TaskStatus | None, after: str | None, limit: int,
             owner: str | None = None) -> list[TaskSummary]:
        """Tasks in id order after ``after``; ids whose record expired are dropped on the way."""
        out: list[TaskSummary] = []
        start = f"({after}" if after else "-"
        while len(out) < limit:
            found = cast(list[bytes], self._redis.zrangebylex(f"{self._p}ids", start, "+", 0, 500))
            ids = [i.decode() for i in found]
            if not ids:
                break
            pipe = self._redis.pipeline(transaction=False)
            for task_id in ids:
                pipe.hmget(self._task(task_id), ["status", "owner"])
            gone = []
            for task_id, (raw, task_owner) in zip(ids, pipe.execute(), strict=True):
                if raw is None:
                    gone.append(task_id)
                elif (status is None or raw.decode() == status) and (
                        owner is None or (task_owner or b"").decode() == owner):
                    out.append(TaskSummary(task_id, TaskStatus(raw.decode())))
            if gone:
                self._redis.zrem(f"{self._p}ids", *gone)
            start = f"({ids[-1]}"
        return out[:limit]

    def delete(self, task_id: str) -> bool:
        keys = [self._task(task_id), self._audio(task_id), f"{self._p}ids", f"{self._p}queued", f"{self._p}running"]
        deleted = bool(self._delete(keys=keys, args=[task_id, self._p]))
        if deleted and not self.audio.removed_with_record:
            self._remove_audio(task_id)
        return deleted

    def queued(self) -> int:
        return int(self._redis.zcard(f"{self._p}queued"))

    def unfinished(self, owner: str) -> int:
        """How many of an owner's tasks are queued or running (shared by every replica)."""
        return int(self._redis.zcard(f"{self._p}owned:{owner}"))

    def queue_position(self, task_id: str) -> int:
        return int(self._redis.zlexcount(f"{self._p}queued", "-", f"({task_id}"))

    def counts(self) -> dict[str, int]:
        return {QUEUED: self.queued(), RUNNING: int(self._redis.zcard(f"{self._p}running"))}

    def live_audio_paths(self) -> set[str]:
        return set()  # audio lives in Redis; every local file at start-up is an orphan

    # -- the scheduler's side ------------------------------------------------------------------

    def claim(self, limit: int) -> builtins.list[TaskRecord]:
        """Lease up to ``limit`` tasks (expired leases first) and spool their audio locally."""
        if limit <= 0 or self.audio.problem() is not None:  # claim nothing whose audio cannot be read
            return []
        flat = self._claim(
            keys=[f"{self._p}queued", f"{self._p}running", self._p],
            args=[limit, self._replica, self._lease_ms],
        )
        records = []
        for i in range(0, len(flat), 4):
            task_id, options, attempts = flat[i].decode(), json.loads(flat[i + 1] or b"{}"), int(flat[i + 2])
            owner = flat[i + 3].decode() or None
            lease = f"{self._replica}/{task_id}/{attempts}"
            with self._lock:
                self._leases[task_id] = lease
            path: str | None = None
            if attempts <= self.max_attempts:  # past it the service gives the task up unread
                spooled = self._spool / task_id
                try:
                    found = self.audio.fetch(task_id, spooled)
                except Exception:  # the audio store is down: the lease runs out and the task is taken again
                    log.warning("task %s: its audio could not be fetched; left to be claimed again", task_id,
                                exc_info=True)
                    with self._lock:
                        self._leases.pop(task_id, None)
                    continue
                if not found:  # deleted between the claim and now
                    gone = Failure.told(ErrorKind.AUDIO_GONE, "the task's audio is gone (the task was deleted)")
                    self.fail(task_id, gone)
                    continue
                path = str(spooled)
            records.append(TaskRecord(task_id, RUNNING, path, options, None, None, attempts, owner=owner))
        return records

    def finish(self, task_id: str, result: dict[str, Any]) -> bool:
        return self._finish(task_id, DONE, json.dumps(result, ensure_ascii=False), None)

    def fail(self, task_id: str, failure: Failure) -> bool:
        return self._finish(task_id, ERROR, None, failure)

    def _finish(self, task_id: str, status: TaskStatus, result: str | None, failure: Failure | None) -> bool:
        with self._lock:
            lease = self._leases.pop(task_id, None)
        (self._spool / task_id).unlink(missing_ok=True)
        if lease is None:
            return False
        written = bool(self._end(
            keys=[self._task(task_id), self._audio(task_id), f"{self._p}running"],
            args=[lease, status, result or "", failure.text if failure else "", self._ttl, task_id,
                  failure.kind if failure else "", failure.message if failure else "", self._p],
        ))
        if not written:
            log.warning("task %s: result discarded, the lease was lost (another replica took the task)", task_id)
        elif not self.audio.removed_with_record:
            self._remove_audio(task_id)
        return written

    def _remove_audio(self, task_id: str) -> None:
        try:
            self.audio.remove(task_id)
        except Exception:  # left for remove_orphan_audio
            log.warning("task %s: its audio could not be removed; the sweep will", task_id, exc_info=True)

    def remove_orphan_audio(self, older_than_s: float) -> int:
        """Remove stored audio, at least ``older_than_s`` old, that no queued or running task
        needs: its task ended or is gone, and no upload still holds its id reserved. Return how many."""
        removed = 0
        for task_id in self.audio.stored(older_than_s):
            status, reserved = self._redis.hmget(self._task(task_id), ["status", "reserved"])
            if status in (QUEUED.encode(), RUNNING.encode()) or (status is None and reserved is not None):
                continue
            self.audio.remove(task_id)
            removed += 1
        return removed

    def set_progress(self, task_id: str, fraction: float) -> None:
        """Kept in the task, so that every replica's ``?progress=true`` sees it."""
        self._progress(keys=[self._task(task_id)], args=[round(fraction, 3)])

    def requeue_running(self) -> int:
        """Hand back the tasks an earlier process of this replica held."""
        return int(self._release_mine(
            keys=[f"{self._p}queued", f"{self._p}running", self._p], args=[f"{self._replica}/"]))

    def _renew_leases(self) -> None:
        while not self._stop.wait(self._lease_ms / 3000):
            with self._lock:
                held = dict(self._leases)
            if not held:
                continue
            args: list[Any] = [self._lease_ms]
            for pair in held.items():
                args.extend(pair)
            try:
                lost = self._renew(keys=[f"{self._p}running", self._p], args=args)
            except redis.RedisError:
                log.warning("could not renew leases; retrying", exc_info=True)
                continue
            for raw in lost:
                task_id = raw.decode()
                log.warning("task %s: lease lost (taken by another replica, or deleted)", task_id)
                with self._lock:
                    self._leases.pop(task_id, None)
                if self.on_lease_lost is not None:
                    self.on_lease_lost(task_id)  # its work here is wasted: stop it

    # -- webhook deliveries (shared: any replica may make any) ------------------------------------

    def take_deliveries(self, limit: int, lease_s: float) -> builtins.list[PendingDelivery]:
        flat = self._take_deliveries(keys=[f"{self._p}deliveries", self._p], args=[limit, int(lease_s * 1000)])
        return [PendingDelivery(flat[i].decode(), flat[i + 1].decode(), int(flat[i + 2]))
                for i in range(0, len(flat), 3)]

    def delivery_done(self, task_id: str) -> None:
        self._redis.zrem(f"{self._p}deliveries", task_id)

    def delivery_retry(self, task_id: str, attempt: int, delay_s: float) -> None:
        self._retry_delivery(keys=[f"{self._p}deliveries", self._task(task_id)],
                             args=[task_id, attempt, int(delay_s * 1000)])

    def close(self) -> None:
        self._stop.set()
        self._heartbeat.join(timeout=5)
        self.audio.close()
        self._redis.close()


def _record(task_id: str, values: list[bytes | None]) -> TaskRecord | None:
    status, options, result, error, attempts, progress, owner, kind, message = (
        v.decode() if v is not None else None for v in values)
    if status is None:  # absent, or an id reserved whose task was never written
        return None
    return TaskRecord(
        task_id=task_id,
        status=TaskStatus(status),
        audio_path=None,
        options=json.loads(options or "{}"),
        result=json.loads(result) if result else None,
        error=error or None,
        attempts=int(attempts or 0),
        progress=float(progress) if progress else None,
        owner=owner or None,
        error_kind=ErrorKind(kind) if kind else None,
        error_message=message or None,
    )
