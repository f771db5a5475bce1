"""Streaming multipart uploads straight to a file in the data directory.

Starlette's ``request.form()`` spools uploads through a temporary file elsewhere; here the
``file`` part is written chunk by chunk into the uploads folder as it arrives, so an upload is
never held whole in memory and needs no second copy. Other (small) text fields are collected.
The parser runs on the event loop; the file's bytes are written, and finally fsync'ed, in a
worker thread, a buffer of ``WRITE_BYTES`` at a time, so that a slow disk never stalls the loop.
"""

from __future__ import annotations

import asyncio
import errno
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from asr_server.http.auth import request_limits, request_owner
from asr_server.service.runtime import Service

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks  # defined for type checkers only

FILE_FIELD = "file"
MAX_FIELD_BYTES = 64 * 1024
WRITE_BYTES = 1 << 20  # the file part's bytes are handed to a worker thread this many at a time


class UploadError(Exception):
    """A request whose body cannot become a task; ``status`` and ``message`` form the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


MISSING_FILE = "Missing 'file'"


@dataclass
class Upload:
    path: Path
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)


class _PartCollector:
    """Callbacks for python-multipart's parser: route each part's bytes to its destination."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fields: dict[str, str] = {}
        self.path: Path | None = None
        self.filename = ""
        self.size = 0
        self.ended = False
        self._file: BinaryIO | None = None
        self.pending = bytearray()  # the file part's bytes not yet written
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._kind: str = "skip"  # file | field | skip
        self._name = ""
        self._value = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_cb,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._kind = "skip"

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if self._name == FILE_FIELD and self.path is None:
            self._kind = "file"
            self.filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self.path = self.directory / f"{uuid.uuid4().hex}.upload"
            self._file = open(self.path, "wb")
        elif b"filename" not in params and self._name:
            self._kind = "field"
            self._value = bytearray()
        else:
            self._kind = "skip"  # a second file, or an upload under another name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "file":
            self.pending += data[start:end]
            self.size += end - start
        elif self._kind == "field":
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                raise UploadError(400, f"Form field {self._name!r} is larger than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._kind == "field":
            value = self._value.decode("utf-8", "replace")
            # A repeated field (timestamp_granularities[] in OpenAI's API) keeps every value.
            previous = self.fields.get(self._name)
            self.fields[self._name] = value if previous is None else f"{previous},{value}"
        self._kind = "skip"

    def _end(self) -> None:
        self.ended = True

    def write_pending(self, last: bool = False) -> None:
        """Write the buffered bytes of the file part; with ``last``, make it durable and close it.
        Blocking: called in a worker thread while the loop awaits it (so nothing else touches the
        buffer meanwhile)."""
        if self._file is None:
            return
        if self.pending:
            self._file.write(self.pending)
            self.pending = bytearray()
        if last:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def too_large(max_bytes: int) -> UploadError:
    return UploadError(413, f"Upload too large: the limit is {max_bytes / 1_000_000:g} MB")


async def receive_upload(request: Request, directory: Path, max_bytes: int | None = None,
                         idle_timeout_s: float | None = None) -> Upload:
    """Parse a multipart body, writing the ``file`` part into ``directory``; raise UploadError.

    With ``max_bytes``, a body that declares a larger Content-Length is refused before a byte
    is read, and one that grows past it is refused as soon as it does (the partial file is
    removed). With ``idle_timeout_s``, a client that sends nothing for that long gets 408 and
    its partial file is removed, so a stalled upload holds no disk and no connection slot for
    long."""
    if max_bytes is not None:
        try:
            declared = int(request.headers.get("content-length", "0"))
        except ValueError:
            declared = 0
        if declared > max_bytes:
            raise too_large(max_bytes)
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise UploadError(400, MISSING_FILE)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError(400, "Malformed multipart body: no boundary in Content-Type")
    directory.mkdir(parents=True, exist_ok=True)
    collector = _PartCollector(directory)
    parser = MultipartParser(boundary, collector.callbacks())
    received = 0
    chunks = request.stream().__aiter__()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), idle_timeout_s)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise UploadError(408, f"Upload stalled: no data received for {idle_timeout_s:g} s") from None
            except ClientDisconnect:  # nobody will read the answer; not a server error
                raise UploadError(400, "The client disconnected before the upload ended") from None
            received += len(chunk)
            if max_bytes is not None and received > max_bytes:
                raise too_large(max_bytes)
            if chunk:
                parser.write(chunk)
            if len(collector.pending) >= WRITE_BYTES:
                await run_in_threadpool(collector.write_pending)
        parser.finalize()
        if not collector.ended:
            raise UploadError(400, "Malformed multipart body: it ends before its closing boundary")
        await run_in_threadpool(collector.write_pending, True)
    except UploadError:
        collector.discard()
        raise
    except OSError as exc:
        collector.discard()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UploadError(507, "The server's disk is full: the upload could not be stored; retry later") from None
        raise
    except MultipartParseError as exc:
        collector.discard()
        raise UploadError(400, f"Malformed multipart body: {exc}") from None
    except BaseException:
        collector.discard()  # the client went away, or the server is stopping
        raise
    if collector.path is None:
        raise UploadError(400, MISSING_FILE)
    return Upload(collector.path, collector.filename, collector.size, collector.fields)


def client_address(request: Request) -> str | None:
    """The client's address as uvicorn reports it (behind a proxy: the proxy's, unless uvicorn
    is told to trust its forwarded headers)."""
    return request.client.host if request.client else None


async def receive_task_upload(request: Request, service: Service) -> Upload:
    """What every task-creating route does first: admission before a byte of the body is read
    (raises ``Refusal``: draining, a full queue, a key over its limits), then the upload within
    the server's size and idle limits (raises UploadError)."""
    await run_in_threadpool(service.tasks.admit, request_owner(request.scope), client_address(request),
                            request_limits(request.scope))
    return await receive_upload(request, service.uploads_dir, service.max_upload_bytes,
                                service.settings.server.upload_idle_timeout_s)
