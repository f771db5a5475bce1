"""Screenshots of the web page for the README, at desktop and phone widths.

    .venv/bin/python docs/screenshots.py     # starts a server, writes docs/page-desktop.png and docs/page-phone.png

It uploads ../shared/audio/jfk.flac and a broken file in Debian's headless Chromium, waits for
both to end, and plays the first segment, as a person would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
JFK = REPO.parent / "shared" / "audio" / "jfk.flac"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def start_server(data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "asr_server", "serve", "--port", str(port), "--data-dir", data_dir],
                            env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server not ready")


def shoot(browser, url: str, broken: Path, out: Path, **context_args) -> None:
    context = browser.new_context(**context_args)
    page = context.new_page()
    page.goto(url + "/")
    page.set_input_files("#files", [str(JFK), str(broken)])
    for name in ("jfk.flac", "broken.mp3"):
        page.locator(".task", has_text=name).locator('.status:text-matches("^(done|error)$")').wait_for(timeout=120_000)
    page.locator(".segment").first.click()
    page.wait_for_function("() => !document.querySelector('audio').paused")
    page.evaluate("document.querySelector('audio').pause()")
    page.screenshot(path=str(out), full_page=True)
    context.close()
    print(f"wrote {out}")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        broken = Path(tmp) / "broken.mp3"
        broken.write_bytes(b"this is not audio at all " * 200)
        proc, url = start_server(str(Path(tmp) / "data"))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                shoot(browser, url, broken, DOCS / "page-desktop.png", viewport={"width": 1200, "height": 800})
                shoot(browser, url, broken, DOCS / "page-phone.png", viewport={"width": 390, "height": 844},
                      device_scale_factor=2, is_mobile=True, has_touch=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
