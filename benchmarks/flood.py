"""A flood of concurrent uploads: does the server keep answering GETs fast, and finish every task?

    .venv/bin/python benchmarks/flood.py --uploads 500
    .venv/bin/python benchmarks/flood.py --uploads 500 --set ASR_SERVER__MAX_QUEUED_TASKS=100

It starts a server (fresh data dir), measures GET latency on the idle server (the baseline),
then sends --uploads uploads at once (short English clips of the eval set, cycled, language
given) while a prober, in a process of its own, GETs a finished task and /healthz every 20 ms. It reports the uploads
accepted (201) and refused (503 with Retry-After), GET latency p50/p99/max during the upload
burst and during the processing that follows, against the idle baseline, and whether every
accepted task ended done. A JSON file goes to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import queue
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import DEFAULT_MANIFEST, HERE, Server, load_workload, machine


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(latencies: list[float]) -> dict[str, float]:
    ms = [1000 * v for v in latencies]
    return {"count": len(ms), "p50_ms": round(statistics.median(ms), 1), "p99_ms": round(percentile(ms, 0.99), 1),
            "max_ms": round(max(ms), 1)}


def probe(url: str, task_id: str, stop: Any, samples: Any) -> None:
    """In a process of its own, so that the uploading client's busy event loop cannot delay it:
    GET a finished task and /healthz every 20 ms; put (wall time, latency) pairs on ``samples``."""
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            for path in (f"/api/v1/asr/task/{task_id}", "/healthz"):
                t0 = time.perf_counter()
                response = client.get(url + path)
                if response.status_code not in (200, 202):
                    raise RuntimeError(f"GET {path}: {response.status_code}")
                samples.put((time.time(), time.perf_counter() - t0))
            time.sleep(0.02)


async def flood(server: Server, items: list[dict[str, Any]], uploads: int) -> dict[str, Any]:
    url = server.url
    limits = httpx.Limits(max_connections=uploads + 10, max_keepalive_connections=uploads + 10)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        first = items[0]
        with open(first["path"], "rb") as handle:
            seed = (await client.post(url + "/api/v1/asr/task", files={"file": (first["file"], handle.read())},
                                      data={"language": "en"})).json()["task_id"]
        while (await client.get(f"{url}/api/v1/asr/task/{seed}")).status_code == 202:
            await asyncio.sleep(0.1)

        stop, samples = multiprocessing.Event(), multiprocessing.Queue()
        prober_process = multiprocessing.Process(target=probe, args=(url, seed, stop, samples), daemon=True)
        prober_process.start()
        marks = {"idle": time.time()}
        await asyncio.sleep(3)

        payloads = [(items[i % len(items)]["file"], Path(items[i % len(items)]["path"]).read_bytes())
                    for i in range(uploads)]
        marks["uploading"] = time.time()
        t0 = time.perf_counter()

        async def upload(name: str, data: bytes) -> httpx.Response:
            return await client.post(url + "/api/v1/asr/task", files={"file": (name, data)}, data={"language": "en"})

        responses = await asyncio.gather(*(upload(name, data) for name, data in payloads))
        upload_s = time.perf_counter() - t0
        marks["processing"] = time.time()
        accepted = [r.json()["task_id"] for r in responses if r.status_code == 201]
        refused = [r for r in responses if r.status_code == 503]
        other = [r.status_code for r in responses if r.status_code not in (201, 503)]

        pending = set(accepted)
        ended: dict[str, int] = {}
        while pending:
            for task_id in list(pending)[:50]:
                response = await client.get(f"{url}/api/v1/asr/task/{task_id}")
                if response.status_code != 202:
                    ended[task_id] = response.status_code
                    pending.discard(task_id)
            await asyncio.sleep(0.5)
        total_s = time.perf_counter() - t0
        marks["end"] = time.time()
        stop.set()
        collected = []
        while prober_process.is_alive() or not samples.empty():
            try:
                collected.append(samples.get(timeout=0.5))
            except queue.Empty:
                pass
        prober_process.join()
        if prober_process.exitcode != 0:
            raise RuntimeError("the prober failed: a GET did not answer 200 or 202")
        latencies = {phase: [lat for when, lat in collected if marks[phase] <= when < marks[following]]
                     for phase, following in (("idle", "uploading"), ("uploading", "processing"),
                                              ("processing", "end"))}

    return {
        "uploads": uploads,
        "accepted": len(accepted),
        "refused_503": len(refused),
        "retry_after": sorted({r.headers.get("retry-after") for r in refused}),
        "other_statuses": other,
        "upload_burst_s": round(upload_s, 2),
        "all_done_s": round(total_s, 2),
        "ended_done": sum(1 for s in ended.values() if s == 200),
        "ended_other": sorted(s for s in ended.values() if s != 200),
        "get_latency": {name: summary(values) for name, values in latencies.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--uploads", type=int, default=500)
    parser.add_argument("--set", action="append", default=[], metavar="ENV=VALUE", help="server environment")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)

    items = load_workload(args.manifest, "short", {"en"}, None)
    env = dict(item.split("=", 1) for item in args.set)
    server = Server(None, env)
    try:
        result = asyncio.run(flood(server, items, args.uploads))
        result["server_peak_rss_mb"] = round(server.peak_rss_mb(), 1)
    finally:
        server.stop()
    result.update(date=datetime.now(UTC).isoformat(timespec="seconds"), machine=machine(), env=env)

    print(f"uploads {result['uploads']}: accepted {result['accepted']}, refused 503 {result['refused_503']} "
          f"(Retry-After {result['retry_after']}), other {result['other_statuses']}")
    print(f"burst {result['upload_burst_s']} s; all accepted tasks ended after {result['all_done_s']} s: "
          f"{result['ended_done']} done, others {result['ended_other']}")
    print("\n| phase | GETs | p50 | p99 | max |\n|-|-|-|-|-|")
    for name, s in result["get_latency"].items():
        print(f"| {name} | {s['count']} | {s['p50_ms']} ms | {s['p99_ms']} ms | {s['max_ms']} ms |")
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-".join(f"{k.split('__')[-1].lower()}{v}" for k, v in env.items())
    path = args.out / f"flood{'-' + suffix if suffix else ''}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
