"""What the benchmark's own polling costs: one server, the short clips all at once, per poll interval.

    .venv/bin/python benchmarks/poll_cost.py --polls 0.25,2,wait

The clients run in this process, on the same cores as the server (as in throughput.py). For
each poll interval, and for long polling, it starts a fresh server (configs/cpu-int8.toml,
language given), submits every short English clip at once, and reports the wall time, the server's CPU seconds, the
engine's busy seconds, windows decoded and trimmed, and this process's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from throughput import DEFAULT_MANIFEST, REPO, Server, load_workload, machine, run_server_sweep


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polls", default="0.25,2,wait",
                        help="client poll intervals, seconds; wait = long polling (?wait=30)")
    args = parser.parse_args()
    items = load_workload(DEFAULT_MANIFEST, "short", {"en"}, None)
    print(f"{machine()}; {len(items)} clips at once")
    print("| poll s | wall s | server CPU s | engine busy s | windows | trimmed | client CPU s |")
    print("|-|-|-|-|-|-|-|")
    for poll in [None if p == "wait" else float(p) for p in args.polls.split(",")]:
        server = Server(str(REPO / "configs" / "cpu-int8.toml"), {"ASR_DECODING__LANGUAGE": json.dumps("en")})
        try:
            server_before, stats_before, client_before = cpu_seconds(server.proc.pid), server.stats(), own_cpu_seconds()
            start = time.perf_counter()
            run, = run_server_sweep(server, items, [len(items)], poll)
            wall = time.perf_counter() - start
            stats = server.stats()
            print(f"| {'long-poll' if poll is None else f'{poll:g}'} | {wall:.1f} | "
                  f"{cpu_seconds(server.proc.pid) - server_before:.1f} | "
                  f"{stats['engine_seconds'] - stats_before['engine_seconds']:.1f} | "
                  f"{stats['windows_decoded'] - stats_before['windows_decoded']} | {run['trimmed']} | "
                  f"{own_cpu_seconds() - client_before:.1f} |", flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
