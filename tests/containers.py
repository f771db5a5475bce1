"""Podman for the container tests: the local base image, the server's image, and podman calls.

No registry is reachable, so the base image is made here (``tests/container/base-image.sh``:
debootstrap + ``podman import``) and kept between runs; the server's image is built from the
``Containerfile`` on it, pip reaching PyPI the way it does on this machine. Every podman call
reads ``containers.conf`` from here (``CONTAINERS_CONF``), which suits a machine like this one:
runc, where crun refuses a hybrid cgroup hierarchy, and container rlimits that a root without
CAP_SYS_RESOURCE may set (open files at this process's own limit, 4096 processes), where
Podman's defaults are refused.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from conftest import REPO

BASE_IMAGE = "localhost/asr-base:bookworm"
IMAGE = "localhost/asr-server:test"
_CONF = Path(tempfile.gettempdir()) / "asr-containers.conf"


def missing_tools() -> str | None:
    """Why the container tests cannot run here, or None."""
    for tool in ("podman", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make container-test installs it)"
    return None


def podman_env() -> dict[str, str]:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    lines = ["[containers]", f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]']
    if shutil.which("runc") and Path("/sys/fs/cgroup/unified").is_dir():  # cgroup v1 + v2 hybrid
        lines += ["[engine]", 'runtime = "runc"']
    _CONF.write_text("\n".join(lines) + "\n")
    return {**os.environ, "CONTAINERS_CONF": str(_CONF)}


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def ensure_base_image() -> None:
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        subprocess.run([str(REPO / "tests" / "container" / "base-image.sh"), BASE_IMAGE], check=True,
                       env=podman_env(), timeout=1200)


def _pip_setting(name: str, env: str) -> str:
    """A pip setting as pip on this machine reads it (environment, then its configuration)."""
    if os.environ.get(env):
        return os.environ[env]
    found = subprocess.run([sys.executable, "-m", "pip", "config", "get", f"global.{name}"],
                           capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else ""


def build(image: str, containerfile: Path, context: Path, *args: str) -> float:
    """Build an image on the local base with the host network and pip's index and CA; return seconds."""
    index = _pip_setting("index-url", "PIP_INDEX_URL") or "https://pypi.org/simple"
    ca = _pip_setting("cert", "PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    ca_args = (["-v", f"{ca}:/run/pip-ca.crt:ro", "--build-arg", "PIP_CA_BUNDLE=/run/pip-ca.crt"]
               if Path(ca).is_file() else [])
    before = podman("image", "inspect", "--format", "{{.Id}}", image, check=False).stdout.strip()
    started = time.monotonic()
    podman("build", "--format", "docker", "--network", "host", "-f", str(containerfile), "-t", image,
           "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg", f"PIP_INDEX_URL={index}",
           *ca_args, *args, str(context), timeout=1800)
    seconds = time.monotonic() - started
    if before and before != podman("image", "inspect", "--format", "{{.Id}}", image).stdout.strip():
        podman("rmi", before, check=False)  # the previous build, now untagged
    return seconds


@functools.cache
def server_image() -> str:
    """The server's image, built once per session on the local base image."""
    ensure_base_image()
    seconds = build(IMAGE, REPO / "Containerfile", REPO)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    print(f"\nimage {IMAGE}: built in {seconds:.0f} s, {size / 1e6:.0f} MB")
    return IMAGE


def wait_ready(url: str, timeout: float = 120, container: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url}/readyz not 200 within {timeout} s\n{logs(container)[-4000:] if container else ''}")


def logs(container: str) -> str:
    result = podman("logs", container, check=False)
    return result.stdout + result.stderr
