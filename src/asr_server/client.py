"""``asr-server submit``: send files to a running server through its public API.

Each file becomes a task (``POST /api/v1/asr/task``, options as form fields). Without
``--wait`` it prints one line per file, ``<task_id>\t<file>``, and exits. With ``--wait`` it
waits (long polling, ``?wait=30``) until every task ends and prints (or writes, with
``--output-dir``) each transcript in ``--format`` through the server's own downloads. Exit
status: 0 when every task is done, 1 when any upload was refused or any task ended in error.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx

TASK = "/api/v1/asr/task"


def submit(files: list[str], server: str, options: dict[str, str], wait: bool, fmt: str,
           output_dir: str | None, poll_s: float = 1.0, timeout_s: float = 3600, api_key: str | None = None) -> int:
    server = server.rstrip("/")
    status = 0
    submitted: list[tuple[str, str]] = []
    key = api_key if api_key is not None else os.environ.get("ASR_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(timeout=120, headers=headers) as client:
        for name in files:
            try:
                with open(name, "rb") as handle:
                    response = client.post(server + TASK, files={"file": (Path(name).name, handle)}, data=options)
            except (OSError, httpx.HTTPError) as exc:
                print(f"asr-server: {name}: {exc}", file=sys.stderr)
                status = 1
                continue
            if response.status_code != 201:
                print(f"asr-server: {name}: {response.status_code} {_error(response)}", file=sys.stderr)
                status = 1
                continue
            task_id = response.json()["task_id"]
            submitted.append((task_id, name))
            if not wait:
                print(f"{task_id}\t{name}", flush=True)
        if not wait:
            return status
        deadline = time.monotonic() + timeout_s
        for task_id, name in submitted:
            while True:
                # Long polling: the server answers when the task ends (or after 30 s).
                asked = time.monotonic()
                response = client.get(f"{server}{TASK}/{task_id}", params={"format": fmt, "wait": 30})
                if response.status_code != 202 or time.monotonic() > deadline:
                    break
                if time.monotonic() - asked < poll_s:  # a server that does not hold requests
                    time.sleep(poll_s)
            if response.status_code != 200:
                print(f"asr-server: {name} (task {task_id}): {_why(response)}", file=sys.stderr)
                status = 1
                continue
            if output_dir:
                out = Path(output_dir) / f"{Path(name).stem}.{fmt}"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(response.content)
            else:
                if len(submitted) > 1:
                    print(f"==> {name} <==")
                sys.stdout.write(response.text)
    return status


def _why(response: httpx.Response) -> str:
    """A task's failure in one line: the traceback's last line, or the status."""
    if response.status_code == 202:
        return "still processing when the wait ran out"
    body = response.json() if _is_json(response) else {}
    detail = str(body.get("result") or body.get("status") or response.text).strip()
    return detail.splitlines()[-1] if detail else str(response.status_code)


def _is_json(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("application/json")


def _error(response: httpx.Response) -> str:
    return response.json().get("error", response.text) if _is_json(response) else response.text
