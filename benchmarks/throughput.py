"""Throughput of asr-server against in-process faster-whisper baselines, in one run.

    .venv/bin/python benchmarks/throughput.py --workload short --language known
    .venv/bin/python benchmarks/throughput.py --workload long --language detect --concurrency all

For the chosen files (from a manifest of JSON lines {"file", "lang", "ref", "duration_s"}) it
measures, on the same model, compute type, threads and decoding options:
  (a) sequential ``WhisperModel.transcribe``, one file after another, model loaded once;
  (b) ``BatchedInferencePipeline`` one file after another, at each batch size given (best kept);
  (c) the server (started here, fresh data dir) through the seed API at each concurrency, once
      with clients that poll every --poll seconds and once with long-polling clients
      (``?wait=30``), and a lone file on the idle server against (a)'s time for it: upload to
      done, for a long-polling client (the quoted figure: it learns of the end at once and sends
      nothing meanwhile) and for one polling every 10 ms (whose requests share the engine's cores).
The baselines' model is created on a thread that then ends, as ``WhisperEngine`` creates the
server's: created on a thread that lives on (the main one), it would transcribe markedly slower,
because libgomp then manages more threads than there are CPUs and stops spinning
(docs/decisions.md).
With --repeats N the server sweep runs N times on the same server, and a summary gives each
setting's median ratio and every run's: a burst of short clips varies by seconds with which
clips end up batched together, so one run is a sample, not the figure.
With --baseline-threads (default 1), (a), (b) and the lone file are measured again with the
model on that many CPU threads (``cpu_threads``), and each server run is also compared with the
fastest baseline of each kind, so that no ratio rests on a handicapped baseline.
It reports audio seconds per wall second, p50/p95 task latency, the engine's batch-size
histogram, the server's peak RSS, and WER/CER against the references; writes a JSON file and a
PNG plot to --out, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_MANIFEST = REPO.parent / "shared" / "eval" / "manifest.jsonl"
CHAR_LANGS = {"zh", "ja", "ko"}


# -- workloads and scoring ----------------------------------------------------------------------

def load_workload(manifest: Path, workload: str, languages: set[str] | None, limit: int | None) -> list[dict[str, Any]]:
    items = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for item in items:
        item["path"] = str(manifest.parent / item["file"])
    if workload == "short":
        items = [i for i in items if i["duration_s"] <= 30]
    elif workload == "long":
        items = [i for i in items if i["duration_s"] >= 60]
    if languages:
        items = [i for i in items if i["lang"] in languages]
    return items[:limit] if limit else items


def normalise(text: str, lang: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"<[^>]*>|\[[^\]]*\]", " ", text)
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    if lang in CHAR_LANGS:
        return "".join(text.split())
    return " ".join(text.split())


def error_rate(items: list[dict[str, Any]], hypotheses: dict[str, str]) -> dict[str, float]:
    """WER (words) for spaced languages and CER (characters) for zh/ja/ko, pooled per kind."""
    import jiwer

    words_ref, words_hyp, chars_ref, chars_hyp = [], [], [], []
    for item in items:
        ref = normalise(item["ref"], item["lang"])
        hyp = normalise(hypotheses.get(item["file"], ""), item["lang"])
        if item["lang"] in CHAR_LANGS:
            chars_ref.append(" ".join(ref) or "-")
            chars_hyp.append(" ".join(hyp))
        else:
            words_ref.append(ref or "-")
            words_hyp.append(hyp)
    out = {}
    if words_ref:
        out["wer"] = round(100 * jiwer.wer(words_ref, words_hyp), 2)
    if chars_ref:
        out["cer"] = round(100 * jiwer.wer(chars_ref, chars_hyp), 2)
    return out


def per_language(items: list[dict[str, Any]], hypotheses: dict[str, str]) -> dict[str, float]:
    """Each language's error rate (WER, or CER for zh/ja/ko). Chinese is scored in Simplified
    script on both sides: the model picks a script by a near-tie, which says nothing of what it
    heard, and Simplified is what the server returns by default (``output.zh_script``)."""
    from asr_server.text.zh_script import convert_text

    texts = {f: convert_text(t, "simplified") for f, t in hypotheses.items()}
    return {lang: next(iter(error_rate([i for i in items if i["lang"] == lang], texts).values()))
            for lang in sorted({i["lang"] for i in items})}


# -- baselines ----------------------------------------------------------------------------------

def model_dir(config: Any) -> str:
    sys.path.insert(0, str(REPO / "src"))
    from asr_server.engine.models import resolve_model

    return str(resolve_model(config.model.name, config.model.resolved_cache_dir()))


def baseline_model(settings: Any, threads: int) -> Any:
    """faster-whisper's ``WhisperModel`` on the config's model, created as WhisperEngine creates
    the server's: loaded on the main thread, the OpenMP team the load leaves behind would slow
    every decode (benchmarks/model_thread.py)."""
    from faster_whisper import WhisperModel

    from asr_server.engine.whisper_engine import on_a_passing_thread

    return on_a_passing_thread(lambda: WhisperModel(model_dir(settings), device=settings.model.device,
                                                    compute_type=settings.model.compute_type,
                                                    cpu_threads=threads))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_sequential(model: Any, items: list[dict[str, Any]], language: str | None) -> dict[str, Any]:
    texts, times = {}, {}
    start = time.perf_counter()
    for item in items:
        t0 = time.perf_counter()
        segments, _ = model.transcribe(item["path"], language=item["lang"] if language == "known" else None)
        texts[item["file"]] = "".join(s.text for s in segments)
        times[item["file"]] = time.perf_counter() - t0
    return {"wall_s": time.perf_counter() - start, "texts": texts, "file_s": times}


def run_batched_pipeline(model: Any, items: list[dict[str, Any]], language: str | None,
                         batch_size: int) -> dict[str, Any]:
    from faster_whisper import BatchedInferencePipeline

    pipeline = BatchedInferencePipeline(model)
    texts = {}
    start = time.perf_counter()
    for item in items:
        segments, _ = pipeline.transcribe(item["path"], batch_size=batch_size,
                                          language=item["lang"] if language == "known" else None)
        texts[item["file"]] = "".join(s.text for s in segments)
    return {"wall_s": time.perf_counter() - start, "texts": texts}


def run_baselines(settings: Any, threads: int, items: list[dict[str, Any]], lone: dict[str, Any],
                  sizes: list[int], language: str) -> dict[str, Any]:
    """(a), (b) and the lone file's in-process time, with the model on ``threads`` CPU threads."""
    audio_s = sum(i["duration_s"] for i in items)
    model = baseline_model(settings, threads)
    label = f"cpu_threads={threads}"
    run_sequential(model, items[:1], language)  # warm-up, untimed
    sequential = run_sequential(model, items, language)
    print(f"sequential WhisperModel.transcribe, {label}: {sequential['wall_s']:.1f} s", flush=True)
    batched = []
    for size in sizes:
        run = run_batched_pipeline(model, items, language, size)
        batched.append({"batch_size": size, "wall_s": run["wall_s"], "throughput": audio_s / run["wall_s"],
                        **error_rate(items, run["texts"]), "texts": run["texts"]})
        print(f"BatchedInferencePipeline(batch_size={size}), {label}: {run['wall_s']:.1f} s", flush=True)
    return {
        "cpu_threads": threads,
        "sequential": {"wall_s": sequential["wall_s"], "throughput": audio_s / sequential["wall_s"],
                       **error_rate(items, sequential["texts"]), "texts": sequential["texts"]},
        "batched_pipeline": batched,
        "lone_in_process_s": min(run_sequential(model, [lone], language)["wall_s"] for _ in range(3)),
    }


# -- the server ---------------------------------------------------------------------------------

class Server:
    def __init__(self, config_path: str | None, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = tempfile.mkdtemp(prefix="asr-bench-")
        args = [sys.executable, "-m", "asr_server", "serve", "--port", str(self.port), "--data-dir", self.data_dir,
                "--log-level", os.environ.get("BENCH_SERVER_LOG_LEVEL", "warning")]
        if config_path:
            args += ["--config", config_path]
        self.log = open(Path(self.data_dir) / "server.log", "wb")
        self.proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + (Path(self.data_dir) / "server.log").read_text())
            time.sleep(0.2)
        raise TimeoutError("server not ready")

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/readyz", timeout=10).json()["scheduler"]

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def transcribe(self, client: httpx.Client, path: str, poll_s: float | None) -> tuple[str, float]:
        """Upload, then poll every ``poll_s`` seconds; ``None``: long polling (``?wait=30``)."""
        t0 = time.perf_counter()
        with open(path, "rb") as handle:
            response = client.post(self.url + "/api/v1/asr/task", files={"file": (Path(path).name, handle)})
        response.raise_for_status()
        task_id = response.json()["task_id"]
        while True:
            params = {"wait": 30} if poll_s is None else {}
            response = client.get(f"{self.url}/api/v1/asr/task/{task_id}", params=params)
            if response.status_code == 200:
                return response.json()["result"]["text"], time.perf_counter() - t0
            if response.status_code != 202:
                raise RuntimeError(f"task {task_id} ended {response.status_code}: {response.text[-500:]}")
            if poll_s is not None:
                time.sleep(poll_s)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def histogram_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def run_server_sweep(server: Server, items: list[dict[str, Any]], concurrencies: list[int],
                     poll_s: float | None) -> list[dict[str, Any]]:
    """One run per concurrency; clients poll every ``poll_s`` seconds, or long-poll (``None``)."""
    runs = []
    for concurrency in concurrencies:
        stats_before = server.stats()
        before = stats_before["batch_sizes"]
        texts: dict[str, str] = {}
        latencies: list[float] = []
        lock = threading.Lock()

        def one(item: dict[str, Any], client: httpx.Client) -> None:
            text, latency = server.transcribe(client, item["path"], poll_s=poll_s)
            with lock:  # noqa: B023  (`one` runs within this iteration only)
                texts[item["file"]] = text  # noqa: B023
                latencies.append(latency)  # noqa: B023

        start = time.perf_counter()
        with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=concurrency + 4)) as client:
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(lambda item: one(item, client), items))
        wall = time.perf_counter() - start
        runs.append({
            "concurrency": concurrency,
            "client": "long-poll" if poll_s is None else f"poll {poll_s:g} s",
            "wall_s": wall,
            "latency_p50_s": statistics.median(latencies),
            "latency_p95_s": sorted(latencies)[max(0, int(round(0.95 * len(latencies))) - 1)],
            "batch_sizes": histogram_delta(before, (stats_after := server.stats())["batch_sizes"]),
            "windows": stats_after.get("windows_decoded", 0) - stats_before.get("windows_decoded", 0),
            "trimmed": stats_after.get("windows_trimmed", 0) - stats_before.get("windows_trimmed", 0),
            "retried": stats_after.get("windows_retried_whole", 0) - stats_before.get("windows_retried_whole", 0),
            # Seconds the engine spent in its steps: well below wall_s means the engine sat idle.
            "engine_s": stats_after.get("engine_seconds", 0) - stats_before.get("engine_seconds", 0),
            "texts": texts,
        })
    return runs


# -- main -----------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "gpu": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--workload", choices=["short", "long", "mixed"], default="short")
    parser.add_argument("--languages", default="", help="comma-separated language filter, e.g. en")
    parser.add_argument("--language", choices=["known", "detect"], default="known",
                        help="known: every file's language is given (to the server through config, "
                             "so the workload must then hold one language); detect: detected")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--concurrency", default="1,4,16,all")
    parser.add_argument("--batched-sizes", default="8", help="BatchedInferencePipeline batch sizes ('' skips)")
    parser.add_argument("--baseline-threads", default="1",
                        help="cpu_threads values for a second set of baselines, besides the config's "
                             "('' skips); server runs are also compared with the fastest")
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-int8.toml"))
    parser.add_argument("--set", action="append", default=[], metavar="ENV=VALUE",
                        help="extra environment for the server, e.g. ASR_SCHEDULER__MAX_BATCH_SIZE=16")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--tag", default="")
    parser.add_argument("--clients", default="poll,wait", choices=["poll", "wait", "poll,wait", "wait,poll"],
                        help="the sweep's clients: poll (a GET every --poll seconds), wait (long polling, "
                             "?wait=30), or both, one sweep each")
    parser.add_argument("--poll", type=float, default=0.25,
                        help="seconds between a client's polls in the sweep (the client shares the CPU)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the server sweep this many times on the same server; the summary gives "
                             "each setting's median ratio and range (a burst of short clips varies by "
                             "which clips are batched together)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from asr_server.config_loading import load_settings

    languages = {code for code in args.languages.split(",") if code} or None
    if args.language == "known" and languages is None:
        languages = {"en"}
    items = load_workload(args.manifest, args.workload, languages, args.limit)
    if not items:
        parser.error("no files match the workload")
    if args.language == "known" and len({i["lang"] for i in items}) > 1:
        parser.error("--language known needs a one-language workload (the server gets it through config)")
    audio_s = sum(i["duration_s"] for i in items)
    # The baselines write Chinese as the model does; so does the server here unless --set says
    # otherwise (zh_script is scored on its own by benchmarks/zh_script.py).
    server_env = {"ASR_OUTPUT__ZH_SCRIPT": '"as-is"', **dict(kv.split("=", 1) for kv in args.set)}
    if args.language == "known":
        server_env["ASR_DECODING__LANGUAGE"] = json.dumps(items[0]["lang"])
    settings = load_settings(args.config, environ=server_env)
    print(f"{len(items)} files, {audio_s:.0f} s of audio; model {settings.model.name} "
          f"{settings.model.compute_type} on {settings.model.device}; language {args.language}", flush=True)

    results: dict[str, Any] = {"workload": args.workload, "language": args.language, "files": len(items),
                               "audio_s": audio_s, "machine": machine(), "server_env": server_env,
                               "date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])}
    lone = min(items, key=lambda i: abs(i["duration_s"] - 11))
    sizes = [int(s) for s in args.batched_sizes.split(",") if s]
    threads = [settings.model.cpu_threads, *(int(t) for t in args.baseline_threads.split(",") if t)]
    baselines = [run_baselines(settings, t, items, lone, sizes, args.language) for t in dict.fromkeys(threads)]
    # The config's threads: "sequential", "batched_pipeline" and "lone_in_process_s" at the top.
    results.update(baselines[0])
    results["baselines"] = baselines

    server = Server(args.config, server_env)
    try:
        with httpx.Client(timeout=120) as client:
            server.transcribe(client, lone["path"], poll_s=None)  # warm-up
            latencies: dict[float | None, list[float]] = {None: [], 0.01: []}
            for _ in range(3):  # alternating, so that a drift of the machine's speed hits both alike
                for poll_s, runs in latencies.items():
                    runs.append(server.transcribe(client, lone["path"], poll_s=poll_s)[1])
        lone_latency, lone_latency_poll = min(latencies[None]), min(latencies[0.01])
        fastest_lone = min(b["lone_in_process_s"] for b in baselines)
        results["lone"] = {"file": lone["file"], "server_latency_s": lone_latency,
                           "server_latency_poll_s": lone_latency_poll,
                           "in_process_s": results["lone_in_process_s"],
                           "ratio": lone_latency / results["lone_in_process_s"],
                           "ratio_poll": lone_latency_poll / results["lone_in_process_s"],
                           "fastest_in_process_s": fastest_lone, "ratio_vs_fastest": lone_latency / fastest_lone}
        concurrencies = [len(items) if c == "all" else int(c) for c in args.concurrency.split(",")]
        sweep = []
        for repeat in range(args.repeats):
            for kind in args.clients.split(","):
                for run in run_server_sweep(server, items, concurrencies, None if kind == "wait" else args.poll):
                    sweep.append({**run, "repeat": repeat + 1})
        results["sequential"]["per_language"] = per_language(items, results["sequential"]["texts"])
        for run in sweep:
            run.update(throughput=audio_s / run["wall_s"], **error_rate(items, run["texts"]))
            run["per_language"] = per_language(items, run["texts"])
            run["speedup_vs_sequential"] = run["throughput"] / results["sequential"]["throughput"]
            fastest_sequential = max(b["sequential"]["throughput"] for b in baselines)
            run["speedup_vs_fastest_sequential"] = run["throughput"] / fastest_sequential
            pipelines = [p["throughput"] for b in baselines for p in b["batched_pipeline"]]
            if pipelines:
                own_pipeline = max(p["throughput"] for p in results["batched_pipeline"])
                run["speedup_vs_batched_pipeline"] = run["throughput"] / own_pipeline
                run["speedup_vs_fastest_batched_pipeline"] = run["throughput"] / max(pipelines)
        results["server"] = sweep
        results["server_summary"] = summarise(sweep)
        results["server_peak_rss_mb"] = server.peak_rss_mb()
    finally:
        server.stop()

    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"throughput-{args.workload}-{args.language}{'-' + args.tag if args.tag else ''}"
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / f"{stem}.png")
    print(f"wrote {args.out / (stem + '.json')} and .png")
    return 0


def summarise(sweep: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per concurrency and client: the runs' ratios against sequential, median and range."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for run in sweep:
        groups.setdefault((run["concurrency"], run["client"]), []).append(run)
    return [{"concurrency": concurrency, "client": client, "runs": len(runs),
             "speedups_vs_sequential": [r["speedup_vs_sequential"] for r in runs],
             "median_speedup_vs_sequential": statistics.median(r["speedup_vs_sequential"] for r in runs),
             "median_wall_s": statistics.median(r["wall_s"] for r in runs)}
            for (concurrency, client), runs in groups.items()]


def print_table(results: dict[str, Any]) -> None:
    def score(r: dict[str, Any]) -> str:
        return " ".join(f"{k.upper()} {r[k]:.2f}%" for k in ("wer", "cer") if k in r)

    print()
    print("| run | wall s | engine busy s | audio s / s | vs sequential | p50 s | p95 s | accuracy | batch sizes | "
          "windows / trimmed / retried whole |")
    print("|-|-|-|-|-|-|-|-|-|-|")
    seq = results["sequential"]
    for baseline in results["baselines"]:
        label = f"cpu_threads={baseline['cpu_threads']}"
        b_seq = baseline["sequential"]
        print(f"| sequential WhisperModel.transcribe, {label} | {b_seq['wall_s']:.1f} | | {b_seq['throughput']:.2f} | "
              f"{b_seq['throughput'] / seq['throughput']:.2f}x | | | {score(b_seq)} | |")
        for b in baseline["batched_pipeline"]:
            print(f"| BatchedInferencePipeline bs={b['batch_size']}, {label} | {b['wall_s']:.1f} | "
                  f"| {b['throughput']:.2f} | "
                  f"{b['throughput'] / seq['throughput']:.2f}x | | | {score(b)} | |")
    for r in results.get("server", []):
        again = f", run {r['repeat']}" if r.get("repeat", 1) > 1 else ""
        print(f"| asr-server, concurrency {r['concurrency']}, {r['client']} client{again} | {r['wall_s']:.1f} | "
              f"{r.get('engine_s', float('nan')):.1f} | {r['throughput']:.2f} | "
              f"{r['speedup_vs_sequential']:.2f}x ({r['speedup_vs_fastest_sequential']:.2f}x "
              f"the fastest) | {r['latency_p50_s']:.2f} | {r['latency_p95_s']:.2f} | "
              f"{score(r)} | {r['batch_sizes']} | {r['windows']} / {r['trimmed']} / {r['retried']} |")
    summary = [g for g in results.get("server_summary", []) if g["runs"] > 1]
    if summary:
        print("\n| server runs | runs | median wall s | median vs sequential | each run |")
        print("|-|-|-|-|-|")
        for g in summary:
            print(f"| concurrency {g['concurrency']}, {g['client']} client | {g['runs']} | {g['median_wall_s']:.1f} | "
                  f"{g['median_speedup_vs_sequential']:.2f}x | "
                  f"{', '.join(f'{x:.2f}x' for x in g['speedups_vs_sequential'])} |")
    sequential_rates = seq.get("per_language", {})
    if len(sequential_rates) > 1:
        print("\nper language (WER, CER for zh/ja/ko; zh scored in Simplified), sequential and each server run:")
        for lang, rate in sequential_rates.items():
            runs = ", ".join(f"{r['per_language'][lang]:.2f} ({r['per_language'][lang] - rate:+.2f})"
                             for r in results.get("server", []))
            print(f"  {lang}: {rate:.2f} | {runs}")
    lone = results.get("lone")
    if lone:
        print(f"\nlone {lone['file']}: server {lone['server_latency_s']:.2f} s upload-to-done (long-poll) vs "
              f"in-process {lone['in_process_s']:.2f} s ({lone['ratio']:.2f}x; {lone['ratio_vs_fastest']:.2f}x "
              f"the fastest in-process); polling every 10 ms: {lone['server_latency_poll_s']:.2f} s "
              f"({lone['ratio_poll']:.2f}x)")
    print(f"server peak RSS: {results.get('server_peak_rss_mb', float('nan')):.0f} MB")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    runs = results.get("server", [])
    for client in dict.fromkeys(r["client"] for r in runs):
        mine = [r for r in runs if r["client"] == client]
        levels = sorted({r["concurrency"] for r in mine})
        medians = [statistics.median(r["throughput"] for r in mine if r["concurrency"] == c) for c in levels]
        line, = ax.plot(levels, medians, "o-", label=f"asr-server, {client} client (median)")
        if len(mine) > len(levels):  # repeats: each run as a dot
            ax.plot([r["concurrency"] for r in mine], [r["throughput"] for r in mine], ".",
                    color=line.get_color(), alpha=0.5)
    for n, baseline in enumerate(results["baselines"]):
        label = f"cpu_threads={baseline['cpu_threads']}"
        style = "--" if n == 0 else "-."
        ax.axhline(baseline["sequential"]["throughput"], color="gray", linestyle=style,
                   label=f"sequential transcribe, {label}")
        for b in baseline["batched_pipeline"]:
            ax.axhline(b["throughput"], color="tab:orange", linestyle=style,
                       label=f"BatchedInferencePipeline bs={b['batch_size']}, {label}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("audio seconds per wall second")
    ax.set_title(f"{results['workload']} workload, language {results['language']}, {results['files']} files")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
