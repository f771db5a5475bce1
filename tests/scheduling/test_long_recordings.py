"""Long recordings on the real server: the memory they cost does not grow with their length.

Four twenty-minute uploads held at once would cost the server over a gigabyte if their samples
and features were held whole (and more while the features are computed); held on disk, they
cost it the engine's working set for a few windows."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import httpx
import numpy as np

from asr_server.engine.audio import decode
from conftest import AUDIO, submit

MINUTES = 20
UPLOADS = 4
HEADROOM_MB = 700  # the engine's working set for a batch of windows, and the model's buffers


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def twenty_minutes_of_speech(path: Path) -> Path:
    clip = decode(str(AUDIO / "multilingual.mp3"))
    samples = np.tile((clip * 32767).astype(np.int16), MINUTES)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    return path


def test_long_uploads_held_at_once_cost_the_server_a_few_windows_of_memory(server_factory, tmp_path):
    server = server_factory(extra_env={"ASR_DECODING__LANGUAGE": '"en"'}).start()
    path = twenty_minutes_of_speech(tmp_path / "twenty_minutes.wav")
    idle = rss_mb(server.proc.pid, "VmRSS")
    ids = [submit(server.url, path).json()["task_id"] for _ in range(UPLOADS)]
    deadline = time.monotonic() + 240
    while True:
        stats = httpx.get(server.url + "/readyz", timeout=10).json()["scheduler"]
        if stats["active_tasks"] == UPLOADS and not stats["preparing_tasks"] and stats["windows_decoded"]:
            break
        assert time.monotonic() < deadline, f"the uploads were never all prepared: {stats}"
        time.sleep(0.5)
    peak = rss_mb(server.proc.pid, "VmHWM")
    for task_id in ids:
        httpx.delete(f"{server.url}/api/v1/asr/task/{task_id}", timeout=10)
    assert peak - idle < HEADROOM_MB, f"{UPLOADS} x {MINUTES} min took the server from {idle:.0f} to {peak:.0f} MB"
