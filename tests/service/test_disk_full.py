"""A full disk: uploads are refused with 507 and leave nothing behind, the tasks already
accepted finish, the store stays intact, and service resumes once space is freed, with no
restart. The data directory is a small tmpfs of its own (root mounts it, as in CI)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from asr_server.http.uploads import UploadError, receive_upload
from conftest import AUDIO, ServerProcess, submit, wait_for_task

CLIP = AUDIO / "hotwords.mp3"  # 65 KB


def mounted(path: Path, size: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    return path


def fill(directory: Path, leave_bytes: int) -> Path:
    """A file that leaves ``leave_bytes`` free on the filesystem of ``directory``."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        out.truncate(0)
        out.write(b"\0" * max(0, shutil.disk_usage(directory).free - leave_bytes))
    return filler


@pytest.fixture
def small_disk(tmp_path):
    disk = mounted(tmp_path / "disk", "24m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_an_upload_past_min_free_disk_is_refused_and_service_resumes_once_space_is_freed(small_disk):
    data = small_disk / "data"
    server = ServerProcess(data, extra_env={"ASR_SERVER__MIN_FREE_DISK_MB": "8"}).start()
    try:
        accepted = submit(server.url, CLIP, language="en").json()["task_id"]
        filler = fill(small_disk, 4_000_000)
        before = sorted(p.name for p in (data / "uploads").iterdir())
        refused = submit(server.url, CLIP, language="en")
        assert refused.status_code == 507 and refused.headers["Retry-After"]
        assert "disk is full" in refused.json()["error"]
        assert sorted(p.name for p in (data / "uploads").iterdir()) == before, "no partial file"
        listed = httpx.get(server.url + "/api/v1/asr/tasks", timeout=10).json()["tasks"]
        assert [t["task_id"] for t in listed] == [accepted], "no record of the refused upload"
        assert wait_for_task(server.url, accepted).status_code == 200, "accepted tasks finish"
        filler.unlink()
        resumed = submit(server.url, CLIP, language="en")
        assert resumed.status_code == 201
        assert wait_for_task(server.url, resumed.json()["task_id"]).status_code == 200
    finally:
        server.stop()
    with sqlite3.connect(data / "tasks.sqlite3") as store:
        assert store.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_an_upload_that_finds_the_disk_full_while_written_gets_507_and_leaves_nothing(small_disk):
    async def endpoint(request: Request) -> JSONResponse:
        try:
            await receive_upload(request, small_disk / "uploads")
        except UploadError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return JSONResponse({}, status_code=201)

    (small_disk / "uploads").mkdir()
    fill(small_disk, 1_000_000)
    client = TestClient(Starlette(routes=[Route("/", endpoint, methods=["POST"])]))
    response = client.post("/", files={"file": ("big.wav", b"\1" * 3_000_000)})
    assert response.status_code == 507 and "disk is full" in response.json()["error"]
    assert list((small_disk / "uploads").iterdir()) == []
