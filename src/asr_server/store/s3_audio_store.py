"""Uploaded audio in an S3-compatible bucket: AWS S3, MinIO, Cloudflare R2, SeaweedFS, Ceph.

boto3 does the work: its managed transfers stream a file to and from the bucket in parts
(multipart uploads above ``multipart_threshold_mb``, several parts at once), so no whole file
is held in memory, and it finds credentials the standard way (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, a profile, an instance role): they are never
part of the configuration file.

At start-up the bucket is created when it is missing and given a lifecycle rule that expires
this store's objects after ``expire_days``: the backstop behind removal at a task's end and the
task store's sweep. A store that cannot do either says so in ``problem()`` (and so in
``/readyz``) rather than failing the process; it keeps trying.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from asr_server.store.audio_store import AudioStoreUnavailable

log = logging.getLogger("asr_server.store.s3_audio_store")

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_RULE_ID = "asr-server-audio-retention"
CHECK_INTERVAL_S = 5.0  # how stale problem() may be


class S3AudioStore:
    """One object per task, ``{prefix}{task_id}``, in ``bucket``."""

    removed_with_record = False

    def __init__(self, bucket: str, *, endpoint_url: str = "", region: str = "", prefix: str = "audio/",
                 multipart_threshold_mb: float = 8, expire_days: int = 0, timeout_s: float = 10) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._where = f"s3 bucket {bucket!r} at {endpoint_url or 'AWS'}"
        self._expire_days = expire_days
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            config=Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                          retries={"max_attempts": 3, "mode": "standard"},
                          s3={"addressing_style": "path"} if endpoint_url else None),
        )
        part = int(multipart_threshold_mb * 1024 * 1024)
        self._transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=4)
        self._ready = False  # the bucket is known to exist with its rule
        self._problem = self._check()
        if self._problem:
            log.error("audio store unavailable: %s; not ready until it answers", self._problem)
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="asr-s3-health", daemon=True)
        self._watcher.start()

    def _key(self, task_id: str) -> str:
        return f"{self.prefix}{task_id}"

    # -- health -------------------------------------------------------------------------------

    def problem(self) -> str | None:
        """Why the bucket cannot be used, from the last check (a few seconds old at most)."""
        return self._problem

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_INTERVAL_S):
            problem = self._check()
            if problem != self._problem:
                if problem:
                    log.error("audio store unavailable: %s", problem)
                else:
                    log.info("audio store %s answers again", self._where)
            self._problem = problem

    def _check(self) -> str | None:
        """None when the bucket answers. The first check that reaches it creates the bucket
        when missing and sets the lifecycle rule."""
        try:
            if self._ready:
                self._client.head_bucket(Bucket=self.bucket)
            else:
                self._prepare_bucket()
                self._ready = True
        except (BotoCoreError, ClientError) as exc:
            return f"{self._where}: {exc}"
        return None

    def close(self) -> None:
        self._stop.set()

    def _prepare_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise
            self._client.create_bucket(Bucket=self.bucket)
            log.info("created %s", self._where)
        if self._expire_days:
            self._set_lifecycle_rule()

    def _set_lifecycle_rule(self) -> None:
        """Expire this store's objects after ``expire_days``; other rules of the bucket are kept."""
        try:
            rules = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
        except ClientError as exc:
            if _code(exc) not in {"NoSuchLifecycleConfiguration", "404"}:
                raise
            rules = []
        rule = {"ID": _RULE_ID, "Status": "Enabled", "Filter": {"Prefix": self.prefix},
                "Expiration": {"Days": self._expire_days}}
        others = [r for r in rules if r.get("ID") != _RULE_ID]
        if rule in rules:
            return
        try:
            self._client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [*others, rule]})
        except ClientError as exc:  # not every S3-compatible store has lifecycle rules
            log.warning("%s: no lifecycle rule (%s); the sweep alone removes leftover audio", self._where, exc)

    # -- the task store's side ----------------------------------------------------------------

    def put(self, task_id: str, path: Path) -> None:
        try:
            self._client.upload_file(str(path), self.bucket, self._key(task_id), Config=self._transfer)
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise AudioStoreUnavailable(f"{self._where}: {exc}") from exc
        path.unlink(missing_ok=True)

    def fetch(self, task_id: str, dest: Path) -> bool:
        try:
            self._client.download_file(self.bucket, self._key(task_id), str(dest), Config=self._transfer)
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and _code(exc) in _MISSING:
                dest.unlink(missing_ok=True)
                return False
            raise AudioStoreUnavailable(f"{self._where}: {exc}") from exc
        return True

    def remove(self, task_id: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._key(task_id))

    def stored(self, older_than_s: float) -> Iterator[str]:
        cutoff = datetime.now(UTC).timestamp() - older_than_s
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                if item["LastModified"].timestamp() <= cutoff:
                    yield item["Key"][len(self.prefix):]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
