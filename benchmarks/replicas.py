"""Replicas behind nginx, sharing a Redis store: throughput and Redis load by replica count.

    .venv/bin/python benchmarks/replicas.py --replicas 1,2 --audio-stores redis,s3

For each count N it starts N servers (``store.kind = "redis"``, a fresh key prefix, each with
cores/N CTranslate2 threads) behind nginx running ``configs/nginx.conf``, submits the short
English clips of the eval manifest all at once through nginx, polls them to completion, and
reports audio seconds per wall second, p50/p95 latency, WER, which replica ran how many tasks,
and the Redis load: commands and bytes per task, and commands per second while idle. The
single-machine default (SQLite, one server, no nginx) runs first as the reference. Each count
runs once per audio store of --audio-stores: 'redis' (audio beside the records) and 's3' (audio
in a SeaweedFS bucket this script starts on 127.0.0.1:8333, ``configs/cluster-s3.toml``'s
address). A JSON file goes to --out. Needs nginx and a Redis (--redis-url).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from object_store import CREDENTIALS, SeaweedS3
from throughput import DEFAULT_MANIFEST, HERE, REPO, Server, error_rate, load_workload, machine


def start_nginx(ports: list[int], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """configs/nginx.conf with its upstream list replaced by these ports."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    text = (REPO / "configs" / "nginx.conf").read_text().replace("/tmp/asr-nginx", str(workdir / "nginx"))
    text = text.replace("listen 127.0.0.1:8000;", f"listen 127.0.0.1:{port};")
    servers = "".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in ports)
    text = re.sub(r"(        server 127\.0\.0\.1:800\d [^\n]*\n)+", servers, text)
    conf = workdir / "nginx.conf"
    conf.write_text(text)
    proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-g", "daemon off;"])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/healthz", timeout=2)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("nginx did not start")


def redis_totals(client: redis.Redis) -> tuple[int, int]:
    stats = client.info("stats")
    traffic = int(stats["total_net_input_bytes"]) + int(stats["total_net_output_bytes"])
    return int(stats["total_commands_processed"]), traffic


def run(url: str, items: list[dict[str, Any]], poll_s: float) -> dict[str, Any]:
    texts: dict[str, str] = {}
    latencies: list[float] = []

    def one(item: dict[str, Any], client: httpx.Client) -> None:
        t0 = time.perf_counter()
        with open(item["path"], "rb") as handle:
            response = client.post(url + "/api/v1/asr/task", files={"file": (Path(item["path"]).name, handle)},
                                   data={"language": item["lang"]})
        response.raise_for_status()
        task_id = response.json()["task_id"]
        while (response := client.get(f"{url}/api/v1/asr/task/{task_id}")).status_code == 202:
            time.sleep(poll_s)
        if response.status_code != 200:
            raise RuntimeError(f"task {task_id}: {response.status_code} {response.text[-300:]}")
        texts[item["file"]] = response.json()["result"]["text"]
        latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    with httpx.Client(timeout=300, limits=httpx.Limits(max_connections=len(items) + 4)) as client:
        with ThreadPoolExecutor(len(items)) as pool:
            list(pool.map(lambda item: one(item, client), items))
    wall = time.perf_counter() - start
    audio = sum(i["duration_s"] for i in items)
    return {
        "wall_s": round(wall, 2),
        "audio_s_per_s": round(audio / wall, 3),
        "latency_p50_s": round(statistics.median(latencies), 2),
        "latency_p95_s": round(sorted(latencies)[max(0, int(round(0.95 * len(latencies))) - 1)], 2),
        "texts": texts,
    }


def engine_seconds(servers: list[Server]) -> list[float]:
    return [s.stats()["engine_seconds"] for s in servers]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--limit", type=int, default=48, help="clips (short English ones, in manifest order)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--config", default=str(REPO / "configs" / "cluster-redis.toml"))
    parser.add_argument("--audio-stores", default="redis", help="comma-separated: redis, s3")
    parser.add_argument("--poll", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)

    items = load_workload(args.manifest, "short", {"en"}, args.limit)
    audio = sum(i["duration_s"] for i in items)
    cores = os.cpu_count() or 1
    client = redis.Redis.from_url(args.redis_url)
    print(f"{len(items)} clips, {audio:.1f} s of audio; {cores} cores", flush=True)
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": machine(), "clips": len(items), "audio_s": audio, "runs": []}

    reference = Server(None, {"ASR_SCHEDULER__MAX_ACTIVE_TASKS": "16"})
    try:
        outcome = run(reference.url, items, args.poll)
    finally:
        reference.stop()
    outcome.update(setup="sqlite, 1 server, no nginx", replicas=1, **error_rate(items, outcome["texts"]))
    results["runs"].append(outcome)
    print(f"{outcome['setup']:<32} {outcome['audio_s_per_s']:6.2f} audio s/s  wall {outcome['wall_s']:6.1f} s",
          flush=True)

    kinds = args.audio_stores.split(",")
    s3 = SeaweedS3(Path(tempfile.mkdtemp(prefix="asr-bench-s3-"))).start() if "s3" in kinds else None
    for count, kind in [(int(n), kind) for n in args.replicas.split(",") for kind in kinds]:
        prefix = f"asr-bench-{uuid.uuid4().hex[:8]}:"
        env = {"ASR_STORE__REDIS_URL": args.redis_url, "ASR_STORE__KEY_PREFIX": prefix,
               "ASR_MODEL__CPU_THREADS": str(max(1, cores // count))}
        if kind == "s3":
            assert s3 is not None
            env.update(CREDENTIALS, ASR_AUDIO_STORE__KIND="s3", ASR_AUDIO_STORE__S3_ENDPOINT_URL=s3.url)
        servers = [Server(args.config, {**env, "ASR_SERVER__REPLICA_NAME": f"r{i}"}) for i in range(count)]
        workdir = Path(tempfile.mkdtemp(prefix="asr-bench-nginx-"))
        nginx, url = start_nginx([s.port for s in servers], workdir)
        try:
            commands0, bytes0 = redis_totals(client)
            time.sleep(5)
            commands1, bytes1 = redis_totals(client)
            idle_per_s = (commands1 - commands0) / 5
            seconds_before = engine_seconds(servers)
            outcome = run(url, items, args.poll)
            commands2, bytes2 = redis_totals(client)
            busy = [round(a - b, 1) for a, b in zip(engine_seconds(servers), seconds_before, strict=True)]
        finally:
            nginx.terminate()
            for server in servers:
                server.stop()
            keys = list(client.scan_iter(f"{prefix}*"))
            if keys:
                client.delete(*keys)
        outcome.update(
            setup=f"redis, {kind} audio, {count} replica(s), nginx", replicas=count,
            engine_seconds_by_replica=busy,
            redis_commands_per_task=round((commands2 - commands1) / len(items), 1),
            redis_kb_per_task=round((bytes2 - bytes1) / len(items) / 1024, 1),
            redis_idle_commands_per_s=round(idle_per_s, 1),
            **error_rate(items, outcome["texts"]),
        )
        results["runs"].append(outcome)
        print(f"{outcome['setup']:<32} {outcome['audio_s_per_s']:6.2f} audio s/s  wall {outcome['wall_s']:6.1f} s"
              f"  engine s by replica {busy}  redis {outcome['redis_commands_per_task']} cmds"
              f" / {outcome['redis_kb_per_task']} KB per task, {idle_per_s:.1f} cmds/s idle", flush=True)

    if s3 is not None:
        s3.stop()
    base = results["runs"][0]["audio_s_per_s"]
    print("\n| setup | audio s / wall s | vs sqlite | wall | p50 / p95 latency | WER | Redis per task |")
    print("|-|-|-|-|-|-|-|")
    for r in results["runs"]:
        per_task = (f"{r['redis_commands_per_task']} cmds, {r['redis_kb_per_task']} KB"
                    if "redis_commands_per_task" in r else "-")
        print(f"| {r['setup']} | {r['audio_s_per_s']:.2f} | {r['audio_s_per_s'] / base:.2f}x | {r['wall_s']:.1f} s"
              f" | {r['latency_p50_s']:.1f} / {r['latency_p95_s']:.1f} s"
              f" | {r.get('wer', float('nan')):.2f}% | {per_task} |")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "replicas.json"
    for r in results["runs"]:
        r.pop("texts", None)
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
