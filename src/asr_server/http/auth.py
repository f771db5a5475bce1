"""Optional API keys, and the owner each key gives the tasks it creates.

Keys are never stored: the config lists their SHA-256 digests (``auth.api_key_hashes``) or names a
file of them (``auth.api_keys_file``: one digest per line, optionally followed by a label and by
``queued_tasks=N`` / ``requests_per_minute=N``, which override the ``limits`` section for that
key; ``#`` starts a comment). ``asr-server hash-key`` prints a key's digest. A request to a protected path
must carry a listed key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; it then gets
``scope["state"]["owner"]``, the first 16 hex digits of its digest, which the routes store with
each task and compare on every read, so that a task is visible only to the key that created it,
and ``scope["state"]["limits"]``, the key's overrides of the ``limits`` section.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from asr_server.config import LimitsConfig, is_key_digest

PROTECTED_PREFIXES = ("/api/", "/v1/")
OVERRIDABLE_LIMITS = tuple(LimitsConfig.model_fields)  # keys file: NAME=N after a digest

KeyLimits = dict[str, int]  # a key's overrides of the limits section


class KeysFileError(ValueError):
    """``auth.api_keys_file`` cannot be read, or holds a line that is not a digest."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def owner_of(digest: str) -> str:
    """The id stored with a key's tasks: enough to tell keys apart, useless to forge one."""
    return digest[:16]


def request_owner(scope: Scope) -> str | None:
    """The owner id ``ApiKeyAuth`` put in the scope; None when API keys are off."""
    return scope.get("state", {}).get("owner")


def request_limits(scope: Scope) -> KeyLimits:
    """The overrides of the ``limits`` section that the request's key has; none with auth off."""
    return scope.get("state", {}).get("limits", {})


def load_digests(hashes: Iterable[str], keys_file: str) -> dict[str, KeyLimits]:
    """Every accepted digest with its limit overrides, from the config list and the keys file;
    KeysFileError names what is wrong with the file, and the line."""
    digests: dict[str, KeyLimits] = {h.strip().lower(): {} for h in hashes}
    if keys_file:
        try:
            lines = Path(keys_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise KeysFileError(f"cannot read {keys_file}: {exc}") from None
        for number, line in enumerate(lines, 1):
            words = line.split("#", 1)[0].split()
            if words:
                digests[words[0].lower()] = _limits(words[1:], f"{keys_file} line {number}")
    bad = sorted(d for d in digests if not is_key_digest(d))
    if bad:
        raise KeysFileError(f"not a SHA-256 hex digest: {bad[0][:20]!r} (use `asr-server hash-key KEY`)")
    return digests


def _limits(words: list[str], where: str) -> KeyLimits:
    """The ``NAME=N`` words of a keys file line; the others are its label."""
    limits: KeyLimits = {}
    for word in words:
        if "=" not in word:
            continue
        name, _, value = word.partition("=")
        if name not in OVERRIDABLE_LIMITS:
            raise KeysFileError(f"{where}: unknown limit {name!r} (known: {', '.join(OVERRIDABLE_LIMITS)})")
        if not value.isdigit():
            raise KeysFileError(f"{where}: {name} must be a whole number >= 0 (0 = no limit), not {value!r}")
        limits[name] = int(value)
    return limits


class ApiKeyAuth:
    """401 for a protected path without a listed key; the owner in the scope for one with it.

    The web page, its assets, /docs, /openapi.json and the health probes stay open: a person
    must be able to load the page to type a key, and a load balancer to probe the replica.
    """

    def __init__(self, app: ASGIApp, digests: dict[str, KeyLimits]) -> None:
        self.app = app
        self.digests = dict(digests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        key = _presented_key(scope)
        digest = hash_key(key) if key else None
        if digest is None or digest not in self.digests:
            await _unauthorized(send, "Missing API key" if key is None else "Invalid API key",
                                openai=scope["path"].startswith("/v1/"))
            return
        state = scope.setdefault("state", {})
        state["owner"] = owner_of(digest)
        state["limits"] = self.digests[digest]
        await self.app(scope, receive, send)


def _presented_key(scope: Scope) -> str | None:
    headers = dict(scope["headers"])
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return authorization[7:].strip()
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


async def _unauthorized(send: Send, message: str, openai: bool) -> None:
    """401; under ``/v1/`` in OpenAI's error shape, with its ``invalid_api_key`` code."""
    text = f"{message}: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    error: object = text
    if openai:
        error = {"message": text, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
    body = json.dumps({"error": error}).encode()
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="asr-server"')],
    })
    await send({"type": "http.response.body", "body": body})
