"""Foreign words in transcripts of clips decoded in one burst: words a clip's result holds that
only other clips said.

    .venv/bin/python benchmarks/foreign_words.py --orders 10
    .venv/bin/python benchmarks/foreign_words.py --orders 3 --tenants 1,4,16

Starts one server as configured by default (configs/cpu-int8.toml, language en: short clips
trimmed), transcribes every short English clip of ../shared/eval once with ``pack=false``
(each clip's whole-window transcript, faster-whisper's exact computation), then submits all of
them at once in ``--orders`` shuffled orders. A word of a result is foreign when it is in
another clip's reference or whole-window transcript and in neither of this clip's own, and is
not within edit distance 2 of one of this clip's own words (a misreading such as "clubs" for
"cloves"). Prints each foreign word with its clip, and per order the wall time, the windows
decoded and trimmed, and the WER; then the total. With ``--tenants``, the server has that many
API keys and each burst is dealt over the first N of them in turn, once per N.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from asr_server.http.auth import hash_key
from throughput import DEFAULT_MANIFEST, REPO, Server, error_rate, load_workload, machine
from word_attribution import foreign_words


def transcribe_all(server: Server, items: Iterable[dict[str, Any]], keys: list[str],
                   **fields: str) -> dict[str, str]:
    """Every clip uploaded at once, each by its own long-polling client, the n-th with the
    n-th key in turn; texts by file name."""
    items = list(items)
    owners = {item["file"]: {"Authorization": f"Bearer {keys[n % len(keys)]}"} for n, item in enumerate(items)}

    def one(item: dict[str, Any], client: httpx.Client) -> tuple[str, str]:
        headers = owners[item["file"]]
        with open(item["path"], "rb") as handle:
            response = client.post(server.url + "/api/v1/asr/task", data=fields, headers=headers,
                                   files={"file": (Path(item["path"]).name, handle)})
        response.raise_for_status()
        task_id = response.json()["task_id"]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                response = client.get(f"{server.url}/api/v1/asr/task/{task_id}", params={"wait": 30},
                                      headers=headers)
            except httpx.RemoteProtocolError:
                continue  # a pooled connection the server had closed while idle: poll again
            if response.status_code == 200:
                return item["file"], response.json()["result"]["text"]
            if response.status_code != 202:
                raise RuntimeError(f"{item['file']}: {response.status_code} {response.text[-300:]}")
        raise TimeoutError(item["file"])

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=len(items) + 4)) as client:
        with ThreadPoolExecutor(len(items)) as pool:
            return dict(pool.map(lambda item: one(item, client), items))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=10, help="shuffled orders to submit the clips in")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first order; the others follow it")
    parser.add_argument("--setting", default="", help="space-separated ENV=VALUE for the server")
    parser.add_argument("--tenants", default="1", help="comma-separated numbers of API keys to deal each burst over")
    args = parser.parse_args(argv)
    tenant_counts = [int(n) for n in args.tenants.split(",")]
    keys = [f"bench-tenant-key-{n:02d}" for n in range(max(tenant_counts))]
    items = load_workload(DEFAULT_MANIFEST, "short", {"en"}, None)
    references = {item["file"]: item["ref"] for item in items}
    env = {"ASR_DECODING__LANGUAGE": json.dumps("en"),
           "ASR_AUTH__API_KEY_HASHES": json.dumps([hash_key(key) for key in keys]),
           **dict(pair.split("=", 1) for pair in args.setting.split())}
    print(f"{machine()}; {len(items)} clips, {args.orders} orders, setting {args.setting or 'defaults'}")
    server = Server(str(REPO / "configs" / "cpu-int8.toml"), env)
    total = 0
    try:
        start = time.perf_counter()
        alone = transcribe_all(server, items, keys, pack="false")
        print(f"alone: {time.perf_counter() - start:.1f} s, WER {error_rate(items, alone)['wer']:.2f}%")
        print("| tenants | order (seed) | wall s | windows | trimmed | foreign words | WER |")
        print("|-|-|-|-|-|-|-|")
        for tenants, seed in ((n, seed) for n in tenant_counts for seed in range(args.seed, args.seed + args.orders)):
            order = list(items)
            random.Random(seed).shuffle(order)
            before = server.stats()
            start = time.perf_counter()
            burst = transcribe_all(server, order, keys[:tenants])
            wall = time.perf_counter() - start
            after = server.stats()
            found = foreign_words(burst, references, alone)
            total += sum(len(found_words) for found_words in found.values())
            windows = after["windows_decoded"] - before["windows_decoded"]
            trimmed = after["windows_trimmed"] - before["windows_trimmed"]
            print(f"| {tenants} | {seed} | {wall:.1f} | {windows} | {trimmed} | "
                  f"{sum(len(w) for w in found.values())} | {error_rate(items, burst)['wer']:.2f}% |",
                  flush=True)
            for name, found_words in found.items():
                print(f"    {name}: {' '.join(found_words)!r} in {burst[name]!r}", flush=True)
    finally:
        server.stop()
    print(f"foreign words in all orders: {total}")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
