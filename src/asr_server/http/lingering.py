"""Refusals every client can read: a refused request's body is read and discarded before the
answer goes out, as nginx's lingering close does.

The server refuses many uploads before reading their bodies (a missing key, a full queue, a
key over its limits, a declared size over the limit). Answered at once, the connection then
closes while the client is still sending; clients that write the whole body before reading
(Python's urllib, among others) see a broken pipe or a reset instead of the 4xx or 5xx and its
``Retry-After``. So the answer to a request whose body is still coming waits while the rest is
read and thrown away, up to ``max_bytes`` and ``max_seconds``, and while the client keeps sending
(``idle_seconds`` between reads): past any of them, the answer goes out and the connection
closes as before. A client that sent ``Expect: 100-continue`` and nothing
yet is answered at once: it waits for the answer before sending its body.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LINGER_BYTES = 32 << 20  # at most this much of a refused body is read and discarded
LINGER_S = 10.0  # for at most this long
LINGER_IDLE_S = 2.0  # and no longer than this after the client stops sending (it waits to read)


def _has_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    length = headers.get(b"content-length", b"0").strip()
    return b"chunked" in headers.get(b"transfer-encoding", b"").lower() or (length.isdigit() and int(length) > 0)


class LingeringClose:
    """ASGI middleware: an error answer waits until the request's body has been read (bounded)."""

    def __init__(self, app: ASGIApp, max_bytes: int = LINGER_BYTES, max_seconds: float = LINGER_S,
                 idle_seconds: float = LINGER_IDLE_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.idle_seconds = idle_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        expects_continue = dict(scope["headers"]).get(b"expect", b"").lower() == b"100-continue"
        body = {"read": False, "ended": False}
        held: list[Message] = []

        async def tracked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body["read"] = True
                body["ended"] = not message.get("more_body", False)
            else:
                body["ended"] = True  # the client went away
            return message

        async def lingering_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                unread = not body["ended"] and not (expects_continue and not body["read"])
                if message["status"] >= 400 and unread:
                    held.append(message)
                    return
            elif held:
                await self._discard_body(tracked_receive, body)
                await send(held.pop())
            await send(message)

        await self.app(scope, tracked_receive, lingering_send)

    async def _discard_body(self, receive: Receive, body: dict[str, bool]) -> None:
        deadline = time.monotonic() + self.max_seconds
        discarded = 0
        while not body["ended"] and discarded <= self.max_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), min(left, self.idle_seconds))
            except TimeoutError:
                return
            discarded += len(message.get("body", b""))
