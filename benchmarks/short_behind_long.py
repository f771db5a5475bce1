"""How long a short clip waits behind long files: the head-of-line measurement.

    .venv/bin/python benchmarks/short_behind_long.py
    .venv/bin/python benchmarks/short_behind_long.py --src /tmp/before   # another checkout's server

On a fresh server it first times each short clip alone (upload to done, long polling). Then it
submits thirteen recordings of 45 s to 3 min at once (the eight long files of the eval corpus,
two of them again, and three made here without speech: noise, chords, chirps), and
``--delay`` seconds later a 4 s clip with no options and a 7.9 s clip with
``priority=interactive``. It reports each clip's time against its time alone and the targets
(max(10 s, 4x) and max(5 s, 2x)), when the last long file ended, and the engine's windows per
step over the run. ``--src`` serves another checkout's ``src/`` (a before), with the same
interpreter and packages; a server that does not know ``priority`` ignores it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from throughput import DEFAULT_MANIFEST, Server, histogram_delta, machine

EVAL = DEFAULT_MANIFEST.parent
SHORT = "en_cmuarctic_a0024.wav"  # 3.96 s
INTERACTIVE = "en_libritts_84_121550_000074_000000.wav"  # 7.93 s
AGAIN = ["en_librivox_sonnet_p001.mp3", "es_librivox_capitan_veneno.mp3"]


def write_wav(path: Path, samples: np.ndarray) -> str:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(samples, -1, 1) * 32767 * 0.5).astype(np.int16).tobytes())
    return str(path)


def long_files(directory: Path) -> list[str]:
    """The thirteen long recordings: eval's long files, two again, three without speech."""
    items = [json.loads(line) for line in DEFAULT_MANIFEST.read_text().splitlines()]
    paths = [str(EVAL / item["file"]) for item in items if item["duration_s"] > 30]
    for name in AGAIN:
        copy = directory / f"again_{name}"
        shutil.copy(EVAL / name, copy)
        paths.append(str(copy))
    rng = np.random.default_rng(7)
    t = np.arange(16000 * 90) / 16000
    paths.append(write_wav(directory / "noise.wav", rng.normal(0, 0.3, 16000 * 60)))
    chords = sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) / 3 * (0.5 + 0.5 * np.sin(2 * np.pi * t / 2))
    paths.append(write_wav(directory / "chords.wav", chords))
    t = np.arange(16000 * 45) / 16000
    chirps = np.sin(2 * np.pi * (300 + 400 * np.abs(np.sin(np.pi * t / 3))) * t)
    paths.append(write_wav(directory / "chirps.wav", chirps))
    return paths


def submit(client: httpx.Client, server: Server, path: str, **fields: str) -> str:
    with open(path, "rb") as handle:
        response = client.post(server.url + "/api/v1/asr/task", files={"file": (Path(path).name, handle)}, data=fields)
    response.raise_for_status()
    return response.json()["task_id"]


def wait_done(client: httpx.Client, server: Server, task_id: str) -> None:
    while True:
        response = client.get(f"{server.url}/api/v1/asr/task/{task_id}", params={"wait": 30})
        if response.status_code == 200:
            return
        if response.status_code != 202:
            raise RuntimeError(f"task {task_id}: {response.status_code} {response.text[-300:]}")


def timed(server: Server, path: str, **fields: str) -> float:
    """Upload to done, for a long-polling client."""
    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        wait_done(client, server, submit(client, server, path, **fields))
        return time.perf_counter() - started


def run(server: Server, longs: list[str], delay: float) -> dict[str, Any]:
    alone = {SHORT: timed(server, str(EVAL / SHORT)), INTERACTIVE: timed(server, str(EVAL / INTERACTIVE))}
    before = server.stats()
    started = time.perf_counter()
    ended: dict[str, float] = {}

    def one(key: str, path: str, **fields: str) -> None:
        with httpx.Client(timeout=120) as client:
            wait_done(client, server, submit(client, server, path, **fields))
        ended[key] = time.perf_counter() - started

    threads = [threading.Thread(target=one, args=(f"long{i}", path)) for i, path in enumerate(longs)]
    for thread in threads:
        thread.start()
    time.sleep(delay)
    clips = [threading.Thread(target=one, args=("short", str(EVAL / SHORT))),
             threading.Thread(target=one, args=("interactive", str(EVAL / INTERACTIVE)),
                              kwargs={"priority": "interactive"})]
    for thread in clips:
        thread.start()
    for thread in threads + clips:
        thread.join()
    after = server.stats()
    sizes = histogram_delta(before["batch_sizes"], after["batch_sizes"])
    steps = sum(sizes.values())
    windows = sum(int(size) * count for size, count in sizes.items())
    short, interactive = ended["short"] - delay, ended["interactive"] - delay
    return {
        "alone_s": {"short": round(alone[SHORT], 2), "interactive": round(alone[INTERACTIVE], 2)},
        "behind_long_s": {"short": round(short, 2), "interactive": round(interactive, 2)},
        "target_s": {"short": round(max(10.0, 4 * alone[SHORT]), 2),
                     "interactive": round(max(5.0, 2 * alone[INTERACTIVE]), 2)},
        "last_long_file_s": round(max(v for k, v in ended.items() if k.startswith("long")), 2),
        "engine_steps": steps,
        "mean_windows_per_step": round(windows / max(1, steps), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, help="serve this checkout's src/ instead of the installed one")
    parser.add_argument("--delay", type=float, default=8.0, help="seconds between the long files and the clips")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--config", default=None)
    args = parser.parse_args()
    env = {"PYTHONPATH": str(args.src.resolve() / "src")} if args.src else {}
    with tempfile.TemporaryDirectory(prefix="asr-hol-") as directory:
        longs = long_files(Path(directory))
        server = Server(args.config, env)
        try:
            runs = [run(server, longs, args.delay) for _ in range(args.repeats)]
        finally:
            server.stop()
    print(json.dumps({"machine": machine(), "src": str(args.src or "installed"), "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("BENCH_SERVER_LOG_LEVEL", "warning")
    raise SystemExit(main())
