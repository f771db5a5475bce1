"""Server memory with many long uploads at once: does RSS grow with the files' length?

    .venv/bin/python benchmarks/long_uploads.py --uploads 4
    .venv/bin/python benchmarks/long_uploads.py --uploads 32 --hold-s 300

Builds a one-hour recording of real speech (the eval clips, cycled, as a 16 kHz mono MP3 in
``--out``), starts a server (fresh data dir, the given config), uploads it ``--uploads`` times
at once through the seed API, and samples the server's RSS every half second while the tasks
are prepared and decoded. It stops once every task has been prepared (its audio decoded and
its features computed) and the engine has decoded another full batch since, or after
``--hold-s`` seconds, and reports the peak (the kernel's high-water mark, VmHWM) and the RSS
then. The tasks are deleted at the end, which also shows that their memory is given back.
``PYTHONPATH=<another checkout>/src`` measures another version of the server the same way.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import av
import httpx
import numpy as np

from memory import rss_mb
from throughput import DEFAULT_MANIFEST, HERE, REPO, Server, machine

RATE = 16000


def one_hour_of_speech(manifest: Path, out: Path, seconds: float) -> Path:
    """The eval corpus's clips one after another, cycled to ``seconds``; built once."""
    path = out / f"speech_{int(seconds)}s.mp3"
    if path.exists():
        return path
    from asr_server.engine.audio import decode

    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    clips = [decode(str(manifest.parent / row["file"]), RATE) for row in rows]
    out.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mp3", rate=RATE, layout="mono")
        stream.bit_rate = 32000
        written, i = 0, 0
        while written < seconds * RATE:
            clip = clips[i % len(clips)][: int(seconds * RATE) - written]
            samples = (np.clip(clip, -1, 1 - 1 / 32768) * 32768).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.rate = RATE
            for packet in stream.encode(frame):
                container.mux(packet)
            written += len(clip)
            i += 1
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--uploads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3600, help="each upload's length")
    parser.add_argument("--hold-s", type=float, default=240, help="stop sampling after this long")
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-int8.toml"))
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--set", action="append", default=[], metavar="ENV=VALUE",
                        help="extra environment for the server, e.g. ASR_DECODING__SPEECH_GUARD=false")
    args = parser.parse_args(argv)

    audio = one_hour_of_speech(args.manifest, args.out, args.seconds)
    server = Server(args.config, {"ASR_DECODING__LANGUAGE": json.dumps("en"),
                                  "ASR_SCHEDULER__MAX_ACTIVE_TASKS": str(max(32, args.uploads)),
                                  **dict(kv.split("=", 1) for kv in args.set)})
    idle_mb = rss_mb(server.proc.pid)
    samples: list[tuple[float, float]] = []
    try:
        def upload(_: int) -> str:
            with open(audio, "rb") as handle, httpx.Client(timeout=600) as client:
                response = client.post(server.url + "/api/v1/asr/task", files={"file": (audio.name, handle)})
            response.raise_for_status()
            return response.json()["task_id"]

        t0 = time.monotonic()
        with ThreadPoolExecutor(min(args.uploads, 8)) as pool:
            task_ids = list(pool.map(upload, range(args.uploads)))
        uploaded_s = time.monotonic() - t0
        prepared_all, windows_then, stats = None, 0, {}
        with httpx.Client(timeout=30) as client:
            while time.monotonic() - t0 < args.hold_s:
                samples.append((round(time.monotonic() - t0, 1), rss_mb(server.proc.pid)))
                if len(samples) % 4 == 0:
                    stats = server.stats()
                    if prepared_all is None and stats["active_tasks"] == args.uploads and not stats["preparing_tasks"]:
                        prepared_all, windows_then = round(time.monotonic() - t0, 1), stats["windows_decoded"]
                    if prepared_all is not None and stats["windows_decoded"] >= windows_then + 8:
                        break
                time.sleep(0.5)
            peak = server.peak_rss_mb()
            at_end = rss_mb(server.proc.pid)
            for task_id in task_ids:
                client.delete(f"{server.url}/api/v1/asr/task/{task_id}")
            time.sleep(5)
            after_delete = rss_mb(server.proc.pid)
    finally:
        server.stop()

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(), "set": args.set, "uploads": args.uploads, "seconds_each": args.seconds,
        "upload_mb": round(audio.stat().st_size / 1e6, 1), "uploaded_s": round(uploaded_s, 1),
        "every_task_prepared_after_s": prepared_all, "tasks_held_at_end": stats.get("active_tasks"),
        "windows_decoded": stats.get("windows_decoded"),
        "idle_rss_mb": round(idle_mb),
        "peak_rss_mb": round(peak), "rss_at_end_mb": round(at_end), "rss_after_delete_mb": round(after_delete),
        "samples": samples,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"long_uploads_{args.uploads}.json").write_text(json.dumps(result, indent=2))
    print(f"{args.uploads} uploads of {args.seconds:g} s: idle {idle_mb:.0f} MB, peak {peak:.0f} MB, "
          f"at the end {at_end:.0f} MB, 5 s after deleting them {after_delete:.0f} MB; "
          f"every task prepared after {prepared_all} s (hold {args.hold_s:g} s); "
          f"{stats.get('windows_decoded')} windows decoded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
