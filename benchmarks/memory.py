"""Server memory over many short tasks: is RSS flat after the first hundred?

    .venv/bin/python benchmarks/memory.py --tasks 1000 --clients 16

Starts a server (fresh data dir, the given config), submits the short clips of the manifest
over and over through the seed API, and samples the server's RSS (from /proc) after every
``--every`` tasks. It reports RSS after the warm-up (the first ``--warmup`` tasks) and at the
end; the target is growth under 50 MB. Writes a JSON file with every sample.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

from throughput import DEFAULT_MANIFEST, HERE, REPO, Server, load_workload, machine


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--language", default="en", help="the clips' language, given to the server ('' detects)")
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-int8.toml"))
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)

    items = load_workload(args.manifest, "short", {args.language} if args.language else None, None)
    env = {"ASR_DECODING__LANGUAGE": json.dumps(args.language)} if args.language else {}
    server = Server(args.config, env)
    samples: list[tuple[int, float]] = [(0, rss_mb(server.proc.pid))]
    done = 0
    lock = threading.Lock()
    clips = itertools.cycle(items)
    try:
        def one(path: str, client: httpx.Client) -> None:
            nonlocal done
            server.transcribe(client, path, poll_s=0.5)
            with lock:
                done += 1
                if done % args.every == 0:
                    samples.append((done, rss_mb(server.proc.pid)))
                    print(f"{done} tasks: RSS {samples[-1][1]:.0f} MB", flush=True)

        paths = [next(clips)["path"] for _ in range(args.tasks)]
        with httpx.Client(timeout=300) as client, ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(lambda path: one(path, client), paths))
        peak = server.peak_rss_mb()
    finally:
        server.stop()

    after_warmup = min((s for s in samples if s[0] >= args.warmup), key=lambda s: s[0])
    final = samples[-1]
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "tasks": args.tasks, "clients": args.clients, "distinct_clips": len(items),
        "rss_after_warmup_mb": after_warmup[1], "warmup_tasks": after_warmup[0],
        "rss_final_mb": final[1], "growth_mb": final[1] - after_warmup[1], "peak_rss_mb": peak,
        "samples": samples,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(result, indent=2))
    print(f"RSS after {after_warmup[0]} tasks: {after_warmup[1]:.0f} MB; after {final[0]}: {final[1]:.0f} MB "
          f"(growth {result['growth_mb']:+.0f} MB; target < 50 MB); peak {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
