"""Open-loop load against asr-server and the real peers: the load each sustains, and its latency.

    .venv/bin/python benchmarks/serve.py --loads 1,2,4,8,16,24 --step-s 60
    .venv/bin/python benchmarks/serve.py --systems asr-server --loads 2 --step-s 20   # a smoke run

vLLM's ``bench serve`` is the model. Requests arrive as a Poisson process at an offered load
given in audio seconds per second, for ``--step-s`` seconds per load step; each arrival gets its
own client thread, which uploads its file and waits for the transcript, whatever the others are
doing (open loop: a slow server does not slow the arrivals, it grows its queue).

**The mix.** Files come from the eval corpus (``../shared/eval``): short clips (its 94 files of
at most 30 s, every language in the corpus's own proportions: 64 English, 17 Mandarin, 13 of
nine other languages) and long files (its 8 files over 30 s, 52 s to 171 s, English, German,
Spanish, Mandarin). Long files are ``--long-share`` of each step's offered audio (a third by
default), the file uniform within its kind; a step at a load too low to hold a whole long file in
``--step-s`` lasts as long as it takes. Arrival times are a Poisson process conditioned on its
count (independent uniform times), drawn from a seeded generator per load step, so every system
gets the same requests at the same times.

**Each system through its own API**, language detected, default options:

- asr-server: the seed API, ``POST /api/v1/asr/task`` then ``GET /api/v1/asr/task/{id}?wait=30``
  until it ends (long polling: the client learns of the end at once). Started here as
  ``configs/cpu-int8.toml`` ships, on a fresh data dir, logging JSON at info.
- whisper-asr-webservice: ``POST /asr?output=json`` (synchronous: the answer is the transcript).
- speaches: ``POST /v1/audio/transcriptions`` with ``model=Systran/faster-whisper-base``
  (OpenAI's API, synchronous).

The peers are built and started by ``build_peers.py`` from ``--peers-cache``. All systems are
up at once, each after a warm-up request, and take turns: each load step runs on one system
after another while the others sit idle, so that a drift of the machine's speed hits all alike.

**Per step**: offered and completed audio seconds per second (completed: the audio of the step's
requests answered by the end of the step plus ``--grace-s``, over the step's length), p50, p95
and p99 time from upload start to transcript for short clips and for long files apart, errors
and 429s, and the word error rate of what came back. A step is *sustained* when completed is at
least 95% of offered, every request of the step was answered within the grace, and short clips'
p95 is at most 10 s; a system's sweep stops at its first step not sustained (past that its queue
only grows, and the next step would inherit it). Before the sweep, a lone short clip on the idle
system, ``--lone-repeats`` times: its median time to transcript.

**Where asr-server's time goes.** Its info log has each task's ``task created``, ``task
claimed`` and ``task ended`` lines with millisecond times; with the client's own times (same
clock) each request splits into upload (upload start to created), queueing (created to claimed),
processing (claimed to ended: preparation, waiting between engine steps, and the engine's own
steps, which the server does not tell apart per task) and delivery (ended to the client having
the transcript). ``/readyz`` gives the engine's busy seconds and windows per step over the step.

Writes ``--out/serve.json`` (every request's record too) and prints a table of every step, a
summary of each system, and asr-server's breakdown per step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from build_peers import PEERS, SPEACHES_MODEL_ID, Peer  # noqa: E402
from throughput import DEFAULT_MANIFEST, REPO, Server, error_rate, free_port, machine  # noqa: E402

SYSTEMS = ("asr-server", *PEERS)
SHORT_MAX_S = 30
LONG_POLL_S = 30
CLIENT_TIMEOUT_S = 900


# -- the mix and the arrivals ---------------------------------------------------------------------

def load_mix(manifest: Path) -> dict[str, list[dict[str, Any]]]:
    items = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for item in items:
        item["path"] = str(manifest.parent / item["file"])
    return {"short": [i for i in items if i["duration_s"] <= SHORT_MAX_S],
            "long": [i for i in items if i["duration_s"] > SHORT_MAX_S]}


def step_length(mix: dict[str, list[dict[str, Any]]], load: float, step_s: float, long_share: float) -> float:
    """A step's length: ``step_s``, or longer where a load is so low that ``step_s`` would hold no
    whole long file at its share of the audio (at a third, below about 1.5 audio-s/s for 60 s)."""
    long_mean = statistics.mean(i["duration_s"] for i in mix["long"])
    return max(step_s, long_mean / (long_share * load)) if long_share > 0 else step_s


def arrivals(mix: dict[str, list[dict[str, Any]]], load: float, duration_s: float, long_share: float,
             seed: int) -> list[tuple[float, dict[str, Any]]]:
    """(offset in seconds, file) of a step offering ``load`` audio seconds per second.

    A Poisson process conditioned on its count: the step's long files (as many as make
    ``long_share`` of ``load * duration_s``, rounded, at least one; of 20 random draws of them,
    the one whose audio is nearest that share) and then short clips (as many as fill the rest of
    the audio) arrive at independent uniform times. Fixing the counts keeps a
    step's long-file share and offered load near the nominal ones, which a free Poisson count,
    at a few long files a step, would not."""
    rng = random.Random(f"{seed}:{load}")
    long_mean = statistics.mean(i["duration_s"] for i in mix["long"])
    short_mean = statistics.mean(i["duration_s"] for i in mix["short"])
    total = load * duration_s
    n_long = max(1, round(long_share * total / long_mean)) if long_share > 0 else 0
    # Of a few random draws of the long files, the one nearest their share of the audio.
    draws = [[rng.choice(mix["long"]) for _ in range(n_long)] for _ in range(20)]
    chosen = min(draws, key=lambda d: abs(sum(i["duration_s"] for i in d) - long_share * total))
    rest = total - sum(i["duration_s"] for i in chosen)
    chosen += [rng.choice(mix["short"]) for _ in range(max(0, round(rest / short_mean)))]
    return sorted(((rng.uniform(0, duration_s), item) for item in chosen), key=lambda pair: pair[0])


# -- the systems ----------------------------------------------------------------------------------

class Target:
    """One running system and how a client gets a transcript from it."""

    def __init__(self, name: str, config: str, peers_cache: Path, log_dir: Path,
                 server_env: dict[str, str] | None = None) -> None:
        self.name = name
        self.server: Server | None = None
        self.peer: Peer | None = None
        if name.startswith("asr-server"):
            os.environ["BENCH_SERVER_LOG_LEVEL"] = "info"
            self.server = Server(config, {"ASR_SERVER__LOG_FORMAT": '"json"', **(server_env or {})})
            self.url = self.server.url
        else:
            self.peer = Peer(name, peers_cache.resolve(), free_port(), log_dir / f"{name}.log")
            self.url = self.peer.url

    def transcribe(self, client: httpx.Client, path: str, record: dict[str, Any]) -> str:
        """Upload ``path`` and wait for its transcript; fills ``record`` with what happened."""
        name = Path(path).name
        with open(path, "rb") as handle:
            if self.name == "whisper-asr-webservice":
                response = client.post(self.url + "/asr", params={"output": "json", "task": "transcribe"},
                                       files={"audio_file": (name, handle)})
            elif self.name == "speaches":
                response = client.post(self.url + "/v1/audio/transcriptions", data={"model": SPEACHES_MODEL_ID},
                                       files={"file": (name, handle)})
            else:
                response = client.post(self.url + "/api/v1/asr/task", files={"file": (name, handle)})
        record["status_code"] = response.status_code
        if self.server is None:
            response.raise_for_status()
            return response.json()["text"]
        response.raise_for_status()
        task_id = record["task_id"] = response.json()["task_id"]
        record["posted"] = time.time()
        while True:
            try:
                response = client.get(f"{self.url}/api/v1/asr/task/{task_id}", params={"wait": LONG_POLL_S})
            except httpx.TransportError:
                # A poll is idempotent: a client asks again when the connection drops, and the
                # step counts how often that happened.
                record["poll_retries"] = record.get("poll_retries", 0) + 1
                if record["poll_retries"] > 3:
                    raise
                continue
            record["status_code"] = response.status_code
            if response.status_code == 200:
                return response.json()["result"]["text"]
            if response.status_code != 202:
                raise RuntimeError(f"task {task_id} ended {response.status_code}: {response.text[-300:]}")

    def engine_stats(self) -> dict[str, Any] | None:
        if self.server is None:
            return None
        return self.server.stats()

    def task_events(self) -> dict[str, dict[str, float]]:
        """task id -> {'created', 'claimed', 'ended'}: epoch seconds, from asr-server's JSON log."""
        if self.server is None:
            return {}
        events: dict[str, dict[str, float]] = {}
        for line in (Path(self.server.data_dir) / "server.log").read_text(errors="replace").splitlines():
            if not line.startswith("{") or '"task_id"' not in line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            message, task_id = entry.get("message", ""), entry.get("task_id")
            kind = next((k for k in ("created", "claimed", "ended") if message.startswith(f"task {k}")), None)
            if kind and task_id:
                when = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                events.setdefault(task_id, {}).setdefault(kind, when.timestamp())
        return events

    def stop(self) -> None:
        (self.server or self.peer).stop()  # type: ignore[union-attr]


# -- one request, one step ------------------------------------------------------------------------

def one_request(target: Target, client: httpx.Client, item: dict[str, Any], kind: str) -> dict[str, Any]:
    record: dict[str, Any] = {"file": item["file"], "lang": item["lang"], "kind": kind,
                              "audio_s": item["duration_s"], "start": time.time()}
    t0 = time.perf_counter()
    try:
        record["text"] = target.transcribe(client, item["path"], record)
        record["outcome"] = "ok"
    except httpx.HTTPStatusError as exc:
        record["outcome"] = "429" if exc.response.status_code == 429 else "error"
        record["error"] = f"HTTP {exc.response.status_code}: {exc.response.text[-200:]}"
    except Exception as exc:
        record["outcome"] = "error"
        record["error"] = f"{type(exc).__name__}: {exc}"[:300]
    record["latency_s"] = time.perf_counter() - t0
    record["end"] = time.time()
    return record


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; ``inf`` values stand for requests never answered."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run_step(target: Target, mix: dict[str, list[dict[str, Any]]], load: float, args: argparse.Namespace,
             ) -> dict[str, Any]:
    step_s = step_length(mix, load, args.step_s, args.long_share)
    schedule = arrivals(mix, load, step_s, args.long_share, args.seed)
    kinds = {id(i): kind for kind, items in mix.items() for i in items}
    stats_before = target.engine_stats()
    records: list[dict[str, Any]] = []
    lock = threading.Lock()
    late: list[float] = []

    def fire(item: dict[str, Any]) -> None:
        record = one_request(target, client, item, kinds[id(item)])
        with lock:
            records.append(record)

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    client = httpx.Client(timeout=CLIENT_TIMEOUT_S, limits=limits)
    pool = ThreadPoolExecutor(max_workers=max(64, 4 * len(schedule)), thread_name_prefix="client")
    start = time.perf_counter()
    for offset, item in schedule:
        delay = start + offset - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            late.append(-delay)
        pool.submit(fire, item)
    deadline = start + step_s + args.grace_s
    while time.perf_counter() < deadline:
        with lock:
            if len(records) == len(schedule):
                break
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    with lock:
        done = list(records)
    unanswered = len(schedule) - len(done)
    pool.shutdown(wait=False, cancel_futures=True)
    step = summarise_step(load, step_s, schedule, kinds, done, unanswered)
    step["step_s"] = round(step_s, 1)
    step["wall_s"] = round(elapsed, 1)
    step["load_average_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine shows here
    step["arrival_lag_max_s"] = round(max(late, default=0.0), 3)
    stats_after = target.engine_stats()
    if stats_before is not None and stats_after is not None:
        steps_before = sum(stats_before["batch_sizes"].values())
        steps_after = sum(stats_after["batch_sizes"].values())
        windows = stats_after["windows_decoded"] - stats_before["windows_decoded"]
        engine_s = stats_after["engine_seconds"] - stats_before["engine_seconds"]
        step["engine"] = {"busy_s": round(engine_s, 1), "busy_share": round(engine_s / elapsed, 3),
                          "steps": steps_after - steps_before, "windows": windows,
                          "windows_per_step": round(windows / max(1, steps_after - steps_before), 2)}
        step["breakdown"] = breakdown(done, target.task_events())
    client.close()  # requests still open end with their server, which a step not sustained stops
    step["records"] = done
    return step


def summarise_step(load: float, step_s: float, schedule: list[tuple[float, dict[str, Any]]],
                   kinds: dict[int, str], done: list[dict[str, Any]], unanswered: int) -> dict[str, Any]:
    offered_audio = sum(item["duration_s"] for _, item in schedule)
    ok = [r for r in done if r["outcome"] == "ok"]
    out: dict[str, Any] = {
        "load": load, "requests": len(schedule),
        "long_requests": sum(1 for _, i in schedule if kinds[id(i)] == "long"),
        "offered_audio_s_per_s": round(offered_audio / step_s, 2),
        "long_audio_share": round(sum(i["duration_s"] for _, i in schedule if kinds[id(i)] == "long")
                                  / max(offered_audio, 1e-9), 3),
        "completed_audio_s_per_s": round(sum(r["audio_s"] for r in ok) / step_s, 2),
        "errors": sum(1 for r in done if r["outcome"] == "error"),
        "rejected_429": sum(1 for r in done if r["outcome"] == "429"),
        "unanswered": unanswered,
        "poll_retries": sum(r.get("poll_retries", 0) for r in done),
    }
    unanswered_by_kind = {"short": 0, "long": 0}
    for kind in ("short", "long"):
        total = sum(1 for _, i in schedule if kinds[id(i)] == kind)
        got = sum(1 for r in done if r["kind"] == kind)
        unanswered_by_kind[kind] = total - got
        latencies = [r["latency_s"] for r in ok if r["kind"] == kind] + [math.inf] * unanswered_by_kind[kind]
        latencies += [math.inf] * sum(1 for r in done if r["kind"] == kind and r["outcome"] != "ok")
        out[kind] = {"n": total, **{f"p{q}_s": round(percentile(latencies, q), 2) if latencies else None
                                    for q in (50, 95, 99)}}
    texts = {r["file"]: r["text"] for r in ok}
    items = [i for i in {i["file"]: i for _, i in schedule}.values() if i["file"] in texts]
    out["accuracy"] = error_rate(items, texts) if items else {}
    ratio = out["completed_audio_s_per_s"] / max(out["offered_audio_s_per_s"], 1e-9)
    short_p95 = out["short"]["p95_s"]
    out["completed_share"] = round(ratio, 3)
    out["sustained"] = bool(ratio >= 0.95 and not unanswered and short_p95 is not None and short_p95 <= 10)
    return out


def breakdown(records: list[dict[str, Any]], events: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Median and p95 of upload, queueing, processing and delivery, per kind (see the docstring)."""
    parts: dict[str, dict[str, list[float]]] = {"short": {}, "long": {}}
    for r in records:
        e = events.get(r.get("task_id", ""), {})
        if r["outcome"] != "ok" or not {"created", "claimed", "ended"} <= e.keys():
            continue
        for part, value in (("upload", e["created"] - r["start"]), ("queueing", e["claimed"] - e["created"]),
                            ("processing", e["ended"] - e["claimed"]), ("delivery", r["end"] - e["ended"])):
            parts[r["kind"]].setdefault(part, []).append(max(0.0, value))
    return {kind: {part: {"p50_s": round(statistics.median(v), 3), "p95_s": round(percentile(v, 95), 3)}
                   for part, v in kind_parts.items()} for kind, kind_parts in parts.items() if kind_parts}


# -- a system's sweep -----------------------------------------------------------------------------

def lone(target: Target, item: dict[str, Any], repeats: int) -> dict[str, Any]:
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
        times = []
        for _ in range(repeats):
            record = one_request(target, client, item, "short")
            if record["outcome"] != "ok":
                raise RuntimeError(f"{target.name}: the lone request failed: {record.get('error')}")
            times.append(record["latency_s"])
    return {"file": item["file"], "audio_s": item["duration_s"], "times_s": [round(t, 3) for t in times],
            "median_s": round(statistics.median(times), 3)}


def sweep(systems: list[str], mix: dict[str, list[dict[str, Any]]], args: argparse.Namespace,
          results: dict[str, Any]) -> None:
    """Every system up at once, idle but for its turn: the lone requests in turn, then each load
    step on each system in turn, so that a drift of the machine's speed (it may be shared) hits all
    alike. A system leaves at its first step not sustained, and its server is stopped."""
    lone_item = next(i for items in mix.values() for i in items if i["file"] == args.lone_file)
    targets: dict[str, Target] = {}
    try:
        for name in systems:
            env = {**args.server_env, **args.variants.get(name, {})}
            targets[name] = Target(name, args.config, args.peers_cache, args.out, env)
            with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:  # warm-up, untimed
                one_request(targets[name], client, lone_item, "short")
        for name in systems:
            result = {"system": name, "steps": [], "lone": lone(targets[name], lone_item, args.lone_repeats)}
            results["systems"].append(result)
            print(f"{name}: lone {lone_item['file']} ({lone_item['duration_s']:.1f} s): "
                  f"{result['lone']['median_s']:.2f} s (median of {args.lone_repeats})", flush=True)
        by_name = {r["system"]: r for r in results["systems"]}
        for load in args.loads:
            for name in [n for n in systems if n in targets]:
                step = run_step(targets[name], mix, load, args)
                by_name[name]["steps"].append(step)
                print(step_line(name, step), flush=True)
                (args.out / "serve.json").write_text(json.dumps(results, indent=1, default=str))
                if not step["sustained"]:
                    targets.pop(name).stop()
                time.sleep(args.pause_s)
            if not targets:
                break
    finally:
        for target in targets.values():
            target.stop()
    for result in results["systems"]:
        sustained = [s["offered_audio_s_per_s"] for s in result["steps"] if s["sustained"]]
        result["sustained_load"] = max(sustained, default=0.0)


def step_line(name: str, s: dict[str, Any]) -> str:
    line = (f"{name} @ {s['load']:g}: offered {s['offered_audio_s_per_s']:.2f}, completed "
            f"{s['completed_audio_s_per_s']:.2f} audio-s/s ({s['requests']} requests, {s['long_requests']} long); "
            f"short p50/p95/p99 {s['short']['p50_s']}/{s['short']['p95_s']}/{s['short']['p99_s']} s, "
            f"long {s['long']['p50_s']}/{s['long']['p95_s']}/{s['long']['p99_s']} s; errors {s['errors']}, "
            f"429 {s['rejected_429']}, unanswered {s['unanswered']}, poll retries {s['poll_retries']}; "
            f"{s['accuracy']}; "
            f"{'sustained' if s['sustained'] else 'NOT sustained'}; load average {s['load_average_1m']}")
    if "engine" in s:
        line += f"; engine busy {s['engine']['busy_share']:.0%}, {s['engine']['windows_per_step']} windows/step"
    return line


def print_tables(results: dict[str, Any]) -> None:
    print("\n| system | offered audio-s/s | completed | short p50 / p95 / p99 s | long p50 / p95 / p99 s "
          "| errors / 429 / unanswered | sustained |")
    print("|-|-|-|-|-|-|-|")
    fmt = lambda v: "∞" if v is not None and math.isinf(v) else f"{v}"  # noqa: E731
    for system in results["systems"]:
        for s in system["steps"]:
            sh, lo = s["short"], s["long"]
            print(f"| {system['system']} | {s['offered_audio_s_per_s']:.2f} | {s['completed_audio_s_per_s']:.2f} "
                  f"| {fmt(sh['p50_s'])} / {fmt(sh['p95_s'])} / {fmt(sh['p99_s'])} "
                  f"| {fmt(lo['p50_s'])} / {fmt(lo['p95_s'])} / {fmt(lo['p99_s'])} "
                  f"| {s['errors']} / {s['rejected_429']} / {s['unanswered']} | {'yes' if s['sustained'] else 'no'} |")
    print("\n| system | lone clip s | highest sustained load, audio-s/s |")
    print("|-|-|-|")
    for system in results["systems"]:
        print(f"| {system['system']} | {system['lone']['median_s']:.2f} | {system['sustained_load']:.2f} |")
    for ours in (s for s in results["systems"] if s["system"].startswith("asr-server")):
        print(f"\n{ours['system']} per request, short clips p50 (p95) s: upload, queueing, processing, "
              "delivery; engine")
        for s in ours["steps"]:
            b = s.get("breakdown", {}).get("short", {})
            parts = ", ".join(f"{part} {v['p50_s']:.2f} ({v['p95_s']:.2f})" for part, v in b.items())
            print(f"  @ {s['load']:g}: {parts}; engine busy {s['engine']['busy_share']:.0%}, "
                  f"{s['engine']['windows_per_step']} windows/step")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--loads", default="1,2,4,8,16,24", help="offered audio seconds per second, one step each")
    parser.add_argument("--step-s", type=float, default=60, help="seconds of arrivals per load step")
    parser.add_argument("--grace-s", type=float, default=60,
                        help="how long after a step's arrivals its answers may come")
    parser.add_argument("--pause-s", type=float, default=2, help="idle time between steps")
    parser.add_argument("--long-share", type=float, default=1 / 3, help="long files' share of the offered audio")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lone-file", default="en_jfk_inaugural.flac", help="the eval file timed alone")
    parser.add_argument("--lone-repeats", type=int, default=3)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-int8.toml"), help="asr-server's config")
    parser.add_argument("--set", action="append", default=[], metavar="ENV=VALUE",
                        help="an asr-server setting, e.g. ASR_SCHEDULER__MAX_STEP_S=0 (repeatable)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:ENV=VALUE",
                        help="a system asr-server-NAME: asr-server with that setting, to name in --systems")
    parser.add_argument("--peers-cache", type=Path, default=REPO.parent / "peers-cache",
                        help="build_peers.py's cache (venvs and models of the peers)")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)
    args.server_env = dict(item.split("=", 1) for item in args.set)
    args.variants = {}
    for variant in args.variant:
        name, _, setting = variant.partition(":")
        args.variants.setdefault("asr-server-" + name, {}).update([setting.split("=", 1)])
    args.loads = [float(x) for x in args.loads.split(",") if x]
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS) - set(args.variants)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)

    mix = load_mix(args.manifest)
    print(f"mix: {len(mix['short'])} short clips, {len(mix['long'])} long files, long files "
          f"{args.long_share:.0%} of the offered audio; loads {args.loads}, {args.step_s:g} s a step "
          f"(longer where a step would hold no long file)", flush=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(), "load_average_start": os.getloadavg(),
        "mix": {"short": len(mix["short"]), "long": len(mix["long"]), "long_share": args.long_share},
        "loads": args.loads, "step_s": args.step_s, "grace_s": args.grace_s, "systems": [],
    }
    sweep(systems, mix, args, results)
    results["load_average_end"] = os.getloadavg()
    (args.out / "serve.json").write_text(json.dumps(results, indent=1, default=str))
    print_tables(results)
    print(f"wrote {args.out / 'serve.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
