"""The cluster's audio path, by audio store: how fast uploads go in and come back out, and what
each task costs Redis.

    .venv/bin/python benchmarks/upload_path.py --tasks 40 --mb 1,20

For each audio store (Redis beside the records; S3 on a SeaweedFS server this script starts on
127.0.0.1:8333) and each file size, it runs the store's own path for --tasks tasks, one after
another: ``create`` (the upload handed to the store), ``claim`` (the audio spooled for the
decoder) and ``finish`` (the audio removed). It reports MB/s in and out, and Redis commands and
bytes per task (INFO stats, so run it against a Redis nothing else uses). No model is loaded:
this is the store's path alone, what a replica spends around each task.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from asr_server.store.redis_store import RedisTaskStore
from asr_server.store.s3_audio_store import S3AudioStore
from object_store import CREDENTIALS, SeaweedS3
from replicas import redis_totals
from throughput import HERE, machine


def measure(store: RedisTaskStore, client: redis.Redis, source: Path, tasks: int, workdir: Path) -> dict[str, Any]:
    commands0, bytes0 = redis_totals(client)
    put_s = get_s = 0.0
    for i in range(tasks):
        upload = workdir / f"upload-{i}"
        os.link(source, upload)  # the spooled upload, as the HTTP layer leaves it
        t0 = time.perf_counter()
        task_id = store.create(str(upload), {})
        t1 = time.perf_counter()
        (record,) = store.claim(1)
        t2 = time.perf_counter()
        store.finish(task_id, {"text": ""})
        put_s, get_s = put_s + t1 - t0, get_s + t2 - t1
    commands1, bytes1 = redis_totals(client)
    mb = source.stat().st_size / 1e6 * tasks
    return {"in_mb_per_s": round(mb / put_s, 1), "out_mb_per_s": round(mb / get_s, 1),
            "redis_commands_per_task": round((commands1 - commands0) / tasks, 1),
            "redis_kb_per_task": round((bytes1 - bytes0) / tasks / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--mb", default="1,20", help="file sizes, MB")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)
    os.environ.update(CREDENTIALS)
    workdir = Path(tempfile.mkdtemp(prefix="asr-bench-upload-"))
    s3 = SeaweedS3(workdir / "s3").start()
    client = redis.Redis.from_url(args.redis_url)
    rows = []
    try:
        for mb in [float(m) for m in args.mb.split(",")]:
            source = workdir / f"audio-{mb}"
            source.write_bytes(os.urandom(int(mb * 1e6)))
            for kind in ("redis", "s3"):
                prefix = f"asr-bench-{uuid.uuid4().hex[:8]}:"
                audio = None if kind == "redis" else (lambda _: S3AudioStore("asr-bench", endpoint_url=s3.url))
                store = RedisTaskStore(args.redis_url, "bench", workdir / "spool", key_prefix=prefix, audio=audio)
                try:
                    row = {"audio_store": kind, "file_mb": mb, **measure(store, client, source, args.tasks, workdir)}
                finally:
                    store.close()
                    keys = list(client.scan_iter(f"{prefix}*"))
                    if keys:
                        client.delete(*keys)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        s3.stop()
    print("\n| audio store | file | in (create) | out (claim) | Redis per task |")
    print("|-|-|-|-|-|")
    for r in rows:
        print(f"| {r['audio_store']} | {r['file_mb']:g} MB | {r['in_mb_per_s']} MB/s | {r['out_mb_per_s']} MB/s"
              f" | {r['redis_commands_per_task']} cmds, {r['redis_kb_per_task']} KB |")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "upload_path.json"
    path.write_text(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                                "machine": machine(), "tasks": args.tasks, "rows": rows}, indent=2))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
