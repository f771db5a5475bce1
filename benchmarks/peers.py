"""asr-server against stand-ins of two peer servers, driven alike, in one run.

    .venv/bin/python benchmarks/peers.py --clients 16 --repeats 2

The peers the throughput targets name, whisper-asr-webservice and speaches, cannot be installed
where no package index but PyPI's is reachable. What decides their throughput is their request
path, which their source states plainly, so this script serves each path as a stand-in:

- ``lock``: whisper-asr-webservice with its ``faster_whisper`` engine. One ``WhisperModel``; each
  request decodes its audio, then, holding one process-wide lock, calls
  ``model.transcribe(audio, beam_size=5, task="transcribe")`` and reads every segment.
- ``pipeline``: speaches. One ``WhisperModel`` shared without a lock; each request runs a new
  ``BatchedInferencePipeline(model).transcribe(audio, task="transcribe")`` over its VAD's
  speech (speaches runs Silero itself and passes the clip timestamps; here the pipeline's own
  Silero VAD does the same).

Both stand-ins are Starlette apps under uvicorn in their own process, with the model, compute
type and CPU threads of asr-server's config, created on a thread that then ends (their best case:
docs/decisions.md). asr-server runs as configured, with long-polling clients. Every system gets
the same files from the same number of concurrent clients, after a one-file warm-up; with
--repeats the systems run in turn again, so that a drift of the machine's speed hits all alike.
They are stand-ins, not the peers: what they leave out (the peers' own HTTP layers, file
conversion by ffmpeg, response formatting) costs the peers time, so the ratios against them
flatter the peers, if anything. Sequential in-process ``WhisperModel.transcribe`` is measured too,
the ratio that throughput.py tracks.
"""

from __future__ import annotations

import argparse
import io
import json
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

from throughput import (  # noqa: E402
    DEFAULT_MANIFEST,
    REPO,
    Server,
    baseline_model,
    error_rate,
    free_port,
    load_workload,
    machine,
    run_sequential,
)

DESIGNS = ("lock", "pipeline")


# -- the stand-ins, each in its own process --------------------------------------------------------

def stand_in_app(design: str, model: Any) -> Any:
    """The Starlette app of one peer's request path: POST /transcribe, multipart ``file``."""
    from faster_whisper import BatchedInferencePipeline, decode_audio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    lock = threading.Lock()

    def transcribe(data: bytes) -> str:
        audio = decode_audio(io.BytesIO(data))
        if design == "lock":
            with lock:
                segments, _ = model.transcribe(audio, beam_size=5, task="transcribe")
                return "".join(segment.text for segment in segments)
        segments, _ = BatchedInferencePipeline(model=model).transcribe(audio, task="transcribe")
        return "".join(segment.text for segment in segments)

    async def endpoint(request: Request) -> JSONResponse:
        from starlette.concurrency import run_in_threadpool

        form = await request.form()
        data = await form["file"].read()
        return JSONResponse({"text": await run_in_threadpool(transcribe, data)})

    return Starlette(routes=[Route("/transcribe", endpoint, methods=["POST"])])


def serve(design: str, port: int, config: str) -> None:
    import uvicorn

    from asr_server.config_loading import load_settings

    settings = load_settings(config, environ={})
    model = baseline_model(settings, settings.model.cpu_threads)
    uvicorn.run(stand_in_app(design, model), host="127.0.0.1", port=port, log_level="warning")


class StandIn:
    def __init__(self, design: str, config: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, __file__, "serve", "--design", design,
                                      "--port", str(self.port), "--config", config])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/", timeout=2)
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the {design} stand-in exited") from None
                time.sleep(0.2)
        raise TimeoutError(f"the {design} stand-in is not ready")

    def transcribe(self, client: httpx.Client, path: str) -> str:
        with open(path, "rb") as handle:
            response = client.post(self.url + "/transcribe", files={"file": (Path(path).name, handle)})
        response.raise_for_status()
        return response.json()["text"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


# -- the run --------------------------------------------------------------------------------------

def burst(system: Any, items: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    def one(item: dict[str, Any], client: httpx.Client) -> tuple[str, str]:
        if isinstance(system, Server):
            return item["file"], system.transcribe(client, item["path"], poll_s=None)[0]
        return item["file"], system.transcribe(client, item["path"])

    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=clients + 4)) as client:
        one(items[0], client)  # warm-up, untimed
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            texts = dict(pool.map(lambda item: one(item, client), items))
    return {"wall_s": time.perf_counter() - start, "texts": texts}


def start(name: str, config: str) -> Any:
    if name == "asr-server":
        return Server(config, {"ASR_OUTPUT__ZH_SCRIPT": '"as-is"'})
    return StandIn(name, config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve", help="(internal) serve one stand-in")
    serve_parser.add_argument("--design", choices=DESIGNS, required=True)
    serve_parser.add_argument("--port", type=int, required=True)
    serve_parser.add_argument("--config", required=True)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--languages", default="en", help="comma-separated language filter ('' for all)")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--clients", type=int, default=16, help="concurrent requests")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-sequential", action="store_true", help="skip in-process sequential faster-whisper")
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-int8.toml"))
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.design, args.port, args.config)
        return 0

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
        for name in ("asr-server", *DESIGNS):
            system = start(name, args.config)
            try:
                run = burst(system, items, args.clients)
            finally:
                system.stop()
            accuracy = error_rate(items, run["texts"])
            results["runs"].append({"system": name, "repeat": repeat + 1, "wall_s": run["wall_s"], **accuracy})
            print(f"{name}, repeat {repeat + 1}: {run['wall_s']:.1f} s, {accuracy}", flush=True)

    walls = {name: statistics.median(r["wall_s"] for r in results["runs"] if r["system"] == name)
             for name in ("asr-server", *DESIGNS)}
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
