"""The Redis task store: one shared queue and task table for many replicas.

Every state change is one Lua script, so it is atomic on the Redis server and needs no lock
between replicas. Keys (under ``key_prefix``):

- ``task:{id}``   hash: status, options, owner, result, error, error_kind, error_message, attempts,
  progress, lease, created
- ``audio:{id}``  the uploaded bytes, removed when the task ends
- ``ids``         sorted set of every task id (score 0, so ordered by id: creation order)
- ``queued``      sorted set of queued ids, oldest first
- ``running``     sorted set of running ids, scored by the lease's deadline (Redis server time, ms)
- ``owned:{owner}`` sorted set of an API key owner's unfinished ids (for ``limits.queued_tasks``)
- ``deliveries``  sorted set of the ids of ended tasks whose webhook is still to be made, by due time (ms)

A replica that claims a task takes a lease on it: a token ``{replica}/{id}/{attempt}`` stored
in the task (new at every claim) and a deadline in ``running``. A heartbeat thread extends the leases of the tasks it holds.
When a replica dies its leases run out after ``visibility_timeout_s`` and the next ``claim`` by
any replica takes those tasks again. A result is written only under the lease that is current,
so a task ends once, even if a replica that was presumed dead wakes up and finishes it late.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from asr_server.errors import ErrorKind, Failure
from asr_server.store.records import PendingDelivery, QueueFull, TaskRecord, TaskStatus, TaskSummary, task_ids_from

QUEUED, RUNNING, DONE, ERROR = TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.DONE, TaskStatus.ERROR

log = logging.getLogger("asr_server.store.redis_store")

_FIELDS = ("status", "options", "result", "error", "attempts", "progress", "owner", "error_kind", "error_message")

# KEYS: queued, running, prefix | ARGV: limit, lease prefix, lease ms
# Takes expired leases first (their tasks are the oldest), then queued tasks in id order; each
# claim counts an attempt. Returns a flat list: id, options, attempts, owner.
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[3])
local out = {}
local taken = 0
local function take(id)
  local key = KEYS[3] .. 'task:' .. id
  if redis.call('HEXISTS', key, 'status') == 0 then
    redis.call('ZREM', KEYS[2], id)
    return
  end
  local attempts = redis.call('HINCRBY', key, 'attempts', 1)
  local lease = ARGV[2] .. '/' .. id .. '/' .. attempts
  redis.call('HSET', key, 'status', 'running', 'lease', lease)
  redis.call('ZADD', KEYS[2], deadline, id)
  table.insert(out, id); table.insert(out, redis.call('HGET', key, 'options'))
  table.insert(out, attempts); table.insert(out, redis.call('HGET', key, 'owner') or '')
  taken = taken + 1
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)) do
  take(id)
end
if taken < limit then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, limit - taken - 1)) do
    redis.call('ZREM', KEYS[1], id)
    take(id)
  end
end
return out
"""

# KEYS: task, audio, running | ARGV: lease, status, result, error, ttl seconds (0 = keep), id,
# error kind, error message, key prefix. Ends a task only under the current lease, takes it out
# of its owner's unfinished set and, with a callback_url, adds its delivery; returns 1 if it did.
_END = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'result', ARGV[3], 'error', ARGV[4],
           'error_kind', ARGV[7], 'error_message', ARGV[8])
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then redis.call('ZREM', ARGV[9] .. 'owned:' .. owner, ARGV[6]) end
local options = cjson.decode(redis.call('HGET', KEYS[1], 'options') or '{}')
if type(options['callback_url']) == 'string' then  -- its webhook, in the same script
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'delivery_attempt', 1)
  redis.call('ZADD', ARGV[9] .. 'deliveries', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[6])
end
redis.call('HDEL', KEYS[1], 'lease')
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[6])
if tonumber(ARGV[5]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
return 1
"""

# KEYS: deliveries, prefix | ARGV: limit, lease ms. Due deliveries, each put off by the lease
# while it is made; returns id, url, attempt triples (a delivery whose task is gone is dropped).
_TAKE_DELIVERIES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))) do
  local key = KEYS[2] .. 'task:' .. id
  local options = redis.call('HGET', key, 'options')
  if options then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    table.insert(out, id); table.insert(out, cjson.decode(options)['callback_url'])
    table.insert(out, redis.call('HGET', key, 'delivery_attempt') or '1')
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: deliveries, task | ARGV: id, attempt, delay ms. The next attempt, on the server's clock.
_RETRY_DELIVERY = """
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], 'delivery_attempt', ARGV[2])
redis.call('ZADD', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3]), ARGV[1])
"""

# KEYS: running, prefix | ARGV: lease ms, then id, lease pairs. Returns the ids whose lease is lost.
_RENEW = """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2] .. 'task:' .. id, 'lease') == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
  else
    table.insert(lost, id)
  end
end
return lost
"""

# KEYS: queued, running, prefix | ARGV: lease prefix ('{replica}/'). A restarted replica holds
# nothing: its old leases are handed back at once instead of waiting for them to run out.
_RELEASE_MINE = """
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local key = KEYS[3] .. 'task:' .. id
  local lease = redis.call('HGET', key, 'lease')
  if lease and string.sub(lease, 1, #ARGV[1]) == ARGV[1] then
    redis.call('HSET', key, 'status', 'queued')
    redis.call('HDEL', key, 'lease')
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZADD', KEYS[1], 0, id)
    n = n + 1
  end
end
return n
"""

# KEYS: task | ARGV: fraction. Only on a task that still exists (HSET would create a deleted one).
_PROGRESS = """
if redis.call('HGET', KEYS[1], 'status') == 'running' then redis.call('HSET', KEYS[1], 'progress', ARGV[1]) end
"""

# KEYS: task, audio, ids, queued, running | ARGV: id, key prefix
_DELETE = """
local existed = redis.call('HEXISTS', KEYS[1], 'status')
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then redis.call('ZREM', ARGV[2] .. 'owned:' .. owner, ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1]); redis.call('ZREM', KEYS[4], ARGV[1]); redis.call('ZREM', KEYS[5], ARGV[1])
return existed
"""


class RedisTaskStore:
    """Task records, the pending queue and the uploaded audio, shared by every replica.

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
    ) -> None:
        self._redis = redis.Redis.from_url(url, health_check_interval=30)
        self._redis.ping()  # fail at start-up, naming the URL, rather than on the first upload
        self._p = key_prefix
        self._replica = replica
        self._spool = spool_dir
        self._spool.mkdir(parents=True, exist_ok=True)
        self.max_attempts = max_attempts
        self._lease_ms = int(visibility_timeout_s * 1000)
        self._ttl = int(result_ttl_s)
        self._claim = self._redis.register_script(_CLAIM)
        self._end = self._redis.register_script(_END)
        self._renew = self._redis.register_script(_RENEW)
        self._release_mine = self._redis.register_script(_RELEASE_MINE)
        self._delete = self._redis.register_script(_DELETE)
        self._progress = self._redis.register_script(_PROGRESS)
        self._take_deliveries = self._redis.register_script(_TAKE_DELIVERIES)
        self._retry_delivery = self._redis.register_script(_RETRY_DELIVERY)
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
        return f"{self._p}audio:{task_id}"

    # -- the routes' side --------------------------------------------------------------------

    def create(self, audio_path: str, options: dict[str, Any], max_queued: int | None = None,
               owner: str | None = None) -> str:
        """Move the uploaded file into Redis under a new id that no replica has used. The
        ``max_queued`` check is not atomic with the write: replicas creating at the same moment
        can overshoot it by the number of uploads in flight."""
        if max_queued is not None and self.queued() >= max_queued:
            raise QueueFull(max_queued)
        data = Path(audio_path).read_bytes()
        task_id = self._reserve_id()
        fields: dict[str, Any] = {"status": QUEUED, "options": json.dumps(options), "attempts": 0,
                                  "created": str(time.time())}
        if owner is not None:
            fields["owner"] = owner
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._audio(task_id), data)
        pipe.hset(self._task(task_id), mapping=fields)
        pipe.persist(self._task(task_id))
        pipe.zadd(f"{self._p}ids", {task_id: 0})
        pipe.zadd(f"{self._p}queued", {task_id: 0})
        if owner is not None:
            pipe.zadd(f"{self._p}owned:{owner}", {task_id: 0})  # its unfinished tasks, for limits.queued_tasks
        pipe.execute()
        Path(audio_path).unlink(missing_ok=True)
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
        values = self._redis.hmget(self._task(task_id), _FIELDS)
        return _record(task_id, values)

    def list(self, status: TaskStatus | None, after: str | None, limit: int,
             owner: str | None = None) -> list[TaskSummary]:
        """Tasks in id order after ``after``; ids whose record expired are dropped on the way."""
        out: list[TaskSummary] = []
        start = f"({after}" if after else "-"
        while len(out) < limit:
            ids = [i.decode() for i in self._redis.zrangebylex(f"{self._p}ids", start, "+", 0, 500)]
            if not ids:
                break
            pipe = self._redis.pipeline(transaction=False)
            for task_id in ids:
                pipe.hmget(self._task(task_id), ["status", "owner"])
            gone = []
            for task_id, (raw, task_owner) in zip(ids, pipe.execute()):
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
        return bool(self._delete(keys=keys, args=[task_id, self._p]))

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

    def claim(self, limit: int) -> list[TaskRecord]:
        """Lease up to ``limit`` tasks (expired leases first) and spool their audio locally."""
        if limit <= 0:
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
                audio = self._redis.get(self._audio(task_id))
                if audio is None:  # deleted between the claim and now
                    self.fail(task_id, Failure.told(ErrorKind.AUDIO_GONE, "the task's audio is gone (the task was deleted)"))
                    continue
                spooled = self._spool / task_id
                spooled.write_bytes(audio)
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
        return written

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

    def take_deliveries(self, limit: int, lease_s: float) -> list[PendingDelivery]:
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
