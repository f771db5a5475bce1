"""Where an uploaded file waits for its task: the audio store behind the Redis task store.

A task's record (status, options, result) is small and lives in Redis; its audio can be large
and lives in one of these, chosen by ``audio_store.kind``:

- ``LocalAudioStore``: files in a directory every replica mounts (NFS, EFS and the like);
- ``RedisAudioStore``: one Redis string per task, beside the record (the default);
- ``S3AudioStore`` (``s3_audio_store``): objects in an S3-compatible bucket.

The task store calls ``put`` once the upload has arrived, ``fetch`` when a replica claims the
task, and ``remove`` when the task ends or is deleted. Anything ``remove`` missed (a replica
killed between the two writes) is found by ``stored`` and removed by the task store's sweep.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, cast

import redis


def redis_audio_key(key_prefix: str, task_id: str) -> str:
    """Where ``RedisAudioStore`` keeps a task's audio; the task store's scripts delete it there."""
    return f"{key_prefix}audio:{task_id}"


class AudioStoreUnavailable(Exception):
    """The audio store cannot be reached; the message names it and says why."""


class AudioStore(Protocol):
    #: The task store's end and delete scripts remove this audio in the same step (Redis).
    removed_with_record: bool

    def put(self, task_id: str, path: Path) -> None:
        """Take an uploaded file for a task; the file is gone from ``path`` afterwards."""

    def fetch(self, task_id: str, dest: Path) -> bool:
        """Write a task's audio to the local file ``dest``; False if there is none."""

    def remove(self, task_id: str) -> None:
        """Remove a task's audio; nothing if there is none."""

    def stored(self, older_than_s: float) -> Iterator[str]:
        """Ids of the tasks whose audio was stored at least ``older_than_s`` ago."""

    def problem(self) -> str | None:
        """Why the store cannot be used now, or None when it can; cheap (no request made)."""

    def close(self) -> None:
        """Stop whatever the store runs in the background."""


class LocalAudioStore:
    """One file per task, named by its id, in a directory every replica shares."""

    removed_with_record = False

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)

    def put(self, task_id: str, path: Path) -> None:
        target = self._dir / task_id
        try:
            path.rename(target)  # same file system: no copy
        except OSError:
            partial = self._dir / f".{task_id}.partial"  # never seen by fetch or the sweep half-written
            shutil.copyfile(path, partial)
            partial.rename(target)
            path.unlink(missing_ok=True)

    def fetch(self, task_id: str, dest: Path) -> bool:
        try:
            shutil.copyfile(self._dir / task_id, dest)
        except FileNotFoundError:
            return False
        return True

    def remove(self, task_id: str) -> None:
        (self._dir / task_id).unlink(missing_ok=True)

    def stored(self, older_than_s: float) -> Iterator[str]:
        cutoff = time.time() - older_than_s
        for entry in os.scandir(self._dir):
            if entry.is_file() and not entry.name.startswith(".") and entry.stat().st_mtime <= cutoff:
                yield entry.name

    def problem(self) -> str | None:
        return None if os.access(self._dir, os.W_OK) else f"audio directory {self._dir} is not writable"

    def close(self) -> None:
        pass


class RedisAudioStore:
    """One Redis string per task, ``{prefix}audio:{id}``, removed by the task store's own scripts
    when the task ends. The whole file passes through memory once on its way in and out, which
    ``store.max_audio_mb`` bounds."""

    removed_with_record = True

    def __init__(self, client: redis.Redis, key_prefix: str) -> None:
        self._redis = client
        self._p = key_prefix

    def key(self, task_id: str) -> str:
        return redis_audio_key(self._p, task_id)

    def put(self, task_id: str, path: Path) -> None:
        self._redis.set(self.key(task_id), path.read_bytes())
        path.unlink(missing_ok=True)

    def fetch(self, task_id: str, dest: Path) -> bool:
        audio = cast(bytes | None, self._redis.get(self.key(task_id)))  # bytes: no decode_responses
        if audio is None:
            return False
        dest.write_bytes(audio)
        return True

    def remove(self, task_id: str) -> None:
        self._redis.delete(self.key(task_id))

    def stored(self, older_than_s: float) -> Iterator[str]:
        """Every stored id, whatever its age (a Redis string has none): the sweep keeps the audio
        of an id still reserved by an upload that is writing its record."""
        start = len(self.key(""))
        for raw in self._redis.scan_iter(match=self.key("*"), count=500):
            yield raw.decode()[start:]

    def problem(self) -> str | None:
        return None  # the same Redis as the records: the task store fails first

    def close(self) -> None:
        pass
