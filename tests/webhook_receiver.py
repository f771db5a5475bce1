"""A webhook receiver on loopback for the tests: records every POST it gets and answers it."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Post = tuple[str, dict[str, str], bytes, float]  # path, headers, body, when (monotonic)


class Receiver:
    """Answers 500 to the first ``fail_first`` POSTs of each path, then ``status`` (with a
    ``location`` header when given, for redirects)."""

    def __init__(self, fail_first: int = 0, status: int = 204, location: str = "") -> None:
        self.posts: list[Post] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.path, dict(self.headers), body, time.monotonic()))
                failing = len([p for p in receiver.posts if p[0] == self.path]) <= fail_first
                self.send_response(500 if failing else status)
                if location and not failing:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def paths(self) -> list[str]:
        return [post[0] for post in self.posts]

    def wait_for(self, path: str, count: int, timeout: float = 60) -> list[Post]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [p for p in self.posts if p[0] == path]
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise TimeoutError(f"{count} posts to {path} not received: {self.posts}")

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
