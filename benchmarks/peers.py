"""asr-server against the real peers, whisper-asr-webservice and speaches, driven alike, in one run.

    .venv/bin/python benchmarks/peers.py --clients 16 --repeats 2

The peers are built from their own source checkouts and lock files by ``build_peers.py`` into
``--peers-cache`` and started by it on loopback with the same model (multilingual base), int8 on
the CPU and CTranslate2's default threads. Each is driven through its own API (``serve.py``'s
``Target``): whisper-asr-webservice's synchronous ``POST /asr``, speaches' OpenAI
``POST /v1/audio/transcriptions``, asr-server's seed API with long-polling clients. asr-server runs
as configured, with ``output.zh_script = "as-is"`` so that its Mandarin is scored as the peers'
raw model output is. Every system gets the same files from the same number of concurrent
clients, after a one-file warm-up; with --repeats the systems run in turn again, so that a drift
of the machine's speed hits all alike. Sequential in-process ``WhisperModel.transcribe`` is
measured too, the ratio that throughput.py tracks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from build_peers import PEERS  # noqa: E402
from serve import Target  # noqa: E402
from throughput import DEFAULT_MANIFEST, REPO, baseline_model, error_rate, load_workload, machine, run_sequential  # noqa: E402

# -- the run --------------------------------------------------------------------------------------

def burst(system: Target, items: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    def one(item: dict[str, Any], client: httpx.Client) -> tuple[str, str]:
        return item["file"], system.transcribe(client, item["path"], {})

    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=clients + 4)) as client:
        one(items[0], client)  # warm-up, untimed
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            texts = dict(pool.map(lambda item: one(item, client), items))
    return {"wall_s": time.perf_counter() - start, "texts": texts}


def start(name: str, args: argparse.Namespace) -> Target:
    return Target(name, args.config, args.peers_cache, args.out, {"ASR_OUTPUT__ZH_SCRIPT": '"as-is"'})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--languages", default="en", help="comma-separated language filter ('' for all)")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--clients", type=int, default=16, help="concurrent requests")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-sequential", action="store_true", help="skip in-process sequential faster-whisper")
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-int8.toml"))
    parser.add_argument("--peers-cache", type=Path, default=REPO.parent / "peers-cache",
                        help="build_peers.py's cache (venvs and models of the peers)")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from asr_server.config_loading import load_settings

    languages = {lang for lang in args.languages.split(",") if lang} or None
    items = load_workload(args.manifest, "short", languages, args.limit)
    audio_s = sum(i["duration_s"] for i in items)
    print(f"{len(items)} files, {audio_s:.0f} s of audio, {args.clients} clients, language detected", flush=True)
    results: dict[str, Any] = {"files": len(items), "audio_s": audio_s, "clients": args.clients,
                               "machine": machine(), "runs": [],
                               "date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])}
    if not args.no_sequential:
        settings = load_settings(args.config, environ={})
        model = baseline_model(settings, settings.model.cpu_threads)
        run_sequential(model, items[:1], "detect")  # warm-up, untimed
        sequential = run_sequential(model, items, "detect")
        del model
        results["sequential"] = {"wall_s": sequential["wall_s"], **error_rate(items, sequential["texts"])}
        print(f"sequential WhisperModel.transcribe: {sequential['wall_s']:.1f} s", flush=True)

    for repeat in range(args.repeats):
        for name in ("asr-server", *PEERS):
            system = start(name, args)
            try:
                run = burst(system, items, args.clients)
            finally:
                system.stop()
            accuracy = error_rate(items, run["texts"])
            results["runs"].append({"system": name, "repeat": repeat + 1, "wall_s": run["wall_s"], **accuracy})
            print(f"{name}, repeat {repeat + 1}: {run['wall_s']:.1f} s, {accuracy}", flush=True)

    walls = {name: statistics.median(r["wall_s"] for r in results["runs"] if r["system"] == name)
             for name in ("asr-server", *PEERS)}
    results["median_wall_s"] = walls
    print("\n| system | median wall s | x real time | asr-server is |")
    print("|-|-|-|-|")
    for name, wall in walls.items():
        print(f"| {name} | {wall:.1f} | {audio_s / wall:.2f}x | {wall / walls['asr-server']:.2f}x it |")
    if "sequential" in results:
        seq = results["sequential"]["wall_s"]
        print(f"| sequential in-process | {seq:.1f} | {audio_s / seq:.2f}x | {seq / walls['asr-server']:.2f}x it |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peers.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out / 'peers.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
