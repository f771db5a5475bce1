"""A burst of uploads: every short English clip at once (or from N clients), one server setting against another.

    .venv/bin/python benchmarks/burst.py --rounds 3 \
        --setting ASR_SCHEDULER__MAX_WAIT_MS=30 --setting ASR_SCHEDULER__MAX_WAIT_MS=1000

Single runs of a burst differ by seconds (which clips end up side by side depends on timing), so
the settings are run in turn, ``--rounds`` times each, each on a fresh server
(configs/cpu-int8.toml, language given) with long-polling clients. A setting is a
space-separated list of ENV=VALUE for the server ('' = the defaults). Per run it prints the wall
time, windows decoded and trimmed, the engine's batch sizes, and how long the engine was busy
(in its steps) and idle (the rest of the wall time: waiting for uploads and their preparation,
and for the clients to learn of the last result); then the means per setting. Idle time shows
a scheduling change apart from the luck of which clips were batched together, which moves the
wall time by seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from throughput import DEFAULT_MANIFEST, REPO, Server, error_rate, load_workload, machine, run_server_sweep


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", action="append", default=[], help="ENV=VALUE ... for the server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=0,
                        help="clients, each sending its next clip when the last is done (0: all at once)")
    args = parser.parse_args()
    settings = args.setting or [""]
    items = load_workload(DEFAULT_MANIFEST, "short", {"en"}, None)
    clients = args.concurrency or len(items)
    print(f"{machine()}; {len(items)} clips, {clients} long-polling clients, {args.rounds} rounds")
    print("| setting | wall s | engine busy s | engine idle s | windows | trimmed | batch sizes | WER |")
    print("|-|-|-|-|-|-|-|-|")
    walls: dict[str, list[float]] = {setting: [] for setting in settings}
    idles: dict[str, list[float]] = {setting: [] for setting in settings}
    for _ in range(args.rounds):
        for setting in settings:
            env = dict(pair.split("=", 1) for pair in setting.split())
            env = {"ASR_DECODING__LANGUAGE": json.dumps("en"), **env}
            server = Server(str(REPO / "configs" / "cpu-int8.toml"), env)
            try:
                before = server.stats()
                start = time.perf_counter()
                run, = run_server_sweep(server, items, [clients], None)
                wall = time.perf_counter() - start
                stats = server.stats()
            finally:
                server.stop()
            busy = stats["engine_seconds"] - before["engine_seconds"]
            walls[setting].append(wall)
            idles[setting].append(wall - busy)
            print(f"| {setting or 'defaults'} | {wall:.1f} | {busy:.1f} | {wall - busy:.1f} | "
                  f"{stats['windows_decoded'] - before['windows_decoded']} | "
                  f"{run['trimmed']} | {run['batch_sizes']} | "
                  f"{error_rate(items, run['texts'])['wer']:.2f}% |", flush=True)
    print()
    for setting, values in walls.items():
        print(f"{setting or 'defaults'}: mean {statistics.mean(values):.1f} s over {len(values)} runs "
              f"({', '.join(f'{v:.1f}' for v in values)}); engine idle {statistics.mean(idles[setting]):.1f} s "
              f"on average ({', '.join(f'{v:.1f}' for v in idles[setting])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
