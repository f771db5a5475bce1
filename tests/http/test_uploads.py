"""Streaming multipart parsing of uploads."""

from __future__ import annotations

import os
import threading

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from asr_server.http.uploads import UploadError, receive_upload


def make_client(directory):
    async def endpoint(request: Request) -> JSONResponse:
        try:
            upload = await receive_upload(request, directory)
        except UploadError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return JSONResponse({"path": str(upload.path), "filename": upload.filename, "size": upload.size,
                             "fields": upload.fields})

    return TestClient(Starlette(routes=[Route("/", endpoint, methods=["POST"])]))


def test_file_part_is_written_to_the_upload_directory_byte_for_byte(tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    body = make_client(tmp_path).post("/", files={"file": ("a b.mp3", payload)}).json()
    assert body["size"] == len(payload) and body["filename"] == "a b.mp3"
    path = tmp_path / os.path.basename(body["path"])
    assert path.parent == tmp_path and path.read_bytes() == payload


def test_text_fields_are_collected_beside_the_file(tmp_path):
    body = make_client(tmp_path).post("/", files={"file": ("x.wav", b"abc")}, data={"language": "de"}).json()
    assert body["fields"] == {"language": "de"}


def test_a_file_under_another_name_is_not_kept(tmp_path):
    response = make_client(tmp_path).post("/", files={"audio": ("x.wav", b"abc")})
    assert response.status_code == 400 and response.json() == {"error": "Missing 'file'"}
    assert list(tmp_path.iterdir()) == []


def test_a_body_cut_short_is_rejected_and_leaves_no_file(tmp_path):
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            b"Content-Type: audio/wav\r\n\r\n" + b"0" * 5000)
    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    response = make_client(tmp_path).post("/", content=body, headers=headers)
    assert response.status_code == 400 and "Malformed multipart body" in response.json()["error"]
    assert list(tmp_path.iterdir()) == []


def test_multipart_without_boundary_is_rejected(tmp_path):
    response = make_client(tmp_path).post("/", content=b"abc", headers={"content-type": "multipart/form-data"})
    assert response.status_code == 400 and "no boundary" in response.json()["error"]


def test_the_upload_is_written_and_made_durable_off_the_event_loop(tmp_path, monkeypatch):
    from asr_server.http import uploads

    threads: dict[str, set[int]] = {"loop": set(), "fsync": set(), "write": set()}
    real_fsync, real_write = os.fsync, uploads._PartCollector.write_pending

    def fsync(fd):
        threads["fsync"].add(threading.get_ident())
        return real_fsync(fd)

    def write_pending(self, last=False):
        threads["write"].add(threading.get_ident())
        return real_write(self, last)

    monkeypatch.setattr(uploads.os, "fsync", fsync)
    monkeypatch.setattr(uploads._PartCollector, "write_pending", write_pending)

    async def endpoint(request: Request) -> JSONResponse:
        threads["loop"].add(threading.get_ident())
        upload = await receive_upload(request, tmp_path)
        return JSONResponse({"size": upload.size})

    client = TestClient(Starlette(routes=[Route("/", endpoint, methods=["POST"])]))
    payload = os.urandom(3 * uploads.WRITE_BYTES + 5)
    assert client.post("/", files={"file": ("a.wav", payload)}).json() == {"size": len(payload)}
    assert threads["fsync"] and threads["write"], "the file was neither written nor synced"
    assert not (threads["fsync"] | threads["write"]) & threads["loop"]
