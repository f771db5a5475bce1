"""Build the two peer servers from their own source checkouts and lock files, and start them.

    .venv/bin/python benchmarks/build_peers.py build \\
        --whisper-asr-webservice /work/peers-cache/src/whisper-asr-webservice \\
        --speaches /work/peers-cache/src/speaches --cache /work/peers-cache
    .venv/bin/python benchmarks/build_peers.py serve speaches --cache /work/peers-cache --port 9001

The peers the targets name are whisper-asr-webservice (Python 3.10, a poetry lock) and speaches
(Python 3.12, a uv lock). Their source is not part of this repository and none of it is
committed: the checkouts and everything built from them live in the cache directory given
(``--cache``, outside the repository). Built here:

- ``<cache>/tools``: a venv with poetry, its export plugin and uv, on this interpreter.
- ``<cache>/venvs/whisper-asr-webservice``: pyenv's Python 3.10; the lock's main group with
  the ``cpu`` extra, exported by poetry and installed by pip with ``--no-deps`` (the export is the
  whole locked set), then the service itself. The lock takes ``torch``/``torchaudio`` 2.7.1+cpu
  from the PyTorch index, which this machine cannot reach: they are replaced by PyPI's 2.7.1 of
  the same version (a CUDA build, whose ``nvidia-*`` wheels the lock already pins for Linux; it
  runs on the CPU). ``av`` 14.4.0 has no wheel for Linux x86_64 on PyPI as reached here, and its
  sdist needs FFmpeg 7's headers (Debian 12 has FFmpeg 5): it is replaced by 14.2.0, the newest
  with a cp310 manylinux wheel (faster-whisper 1.1.1 asks for ``av>=11``). The service imports
  torch, whisperx and openai-whisper at start even with the faster-whisper engine, so none of
  them can be left out.
- ``<cache>/venvs/speaches``: pyenv's Python 3.12, ``uv sync --frozen --no-dev --no-editable`` of its lock,
  nothing substituted (it takes PyPI's torch 2.8.0, also a CUDA build; speaches imports it at
  start for its diarization routes).
- ``<cache>/models``: the bundled model (asr-server's provisioned multilingual Whisper base,
  CTranslate2) laid out as each expects. whisper-asr-webservice gets the faster-whisper model
  directory itself (``ASR_MODEL`` may be a path). speaches finds models only in a Hugging Face
  cache, under a repo id whose model card says ``library_name: ctranslate2`` and
  ``pipeline_tag: automatic-speech-recognition``, and needs ``preprocessor_config.json``: the
  cache here holds the same files under ``Systran/faster-whisper-base`` (the id speaches' docs
  use for this model) with that card and Whisper's default feature-extractor settings, and is
  read with ``HF_HUB_OFFLINE=1``.

Both peers then run with int8 on the CPU and CTranslate2's default threads (``cpu_threads=0``,
as asr-server's shipped config), on 127.0.0.1 only. whisper-asr-webservice converts uploads
with the ffmpeg program: Debian's ``ffmpeg`` must be installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
PEERS = ("whisper-asr-webservice", "speaches")
SPEACHES_MODEL_ID = "Systran/faster-whisper-base"
MODEL_CARD = """---
library_name: ctranslate2
pipeline_tag: automatic-speech-recognition
license: mit
language: [en, zh, de, es, ru, ko, fr, ja, pt, tr, pl, ca, nl, ar, sv, it, id, hi, fi, vi, he, uk, el, ms,
  cs, ro, da, hu, ta, "no", th, ur, hr, bg, lt, la, mi, ml, cy, sk, te, fa, lv, bn, sr, az, sl, kn, et, mk,
  br, eu, is, hy, ne, mn, bs, kk, sq, sw, gl, mr, pa, si, km, sn, yo, so, af, oc, ka, be, tg, sd, gu, am,
  yi, lo, uz, fo, ht, ps, tk, nn, mt, sa, lb, my, bo, tl, mg, as, tt, haw, ln, ha, ba, jw, su]
tags: [audio, automatic-speech-recognition]
---
Multilingual Whisper base converted to CTranslate2, laid out by asr-server's build_peers.py.
"""
# Whisper's feature extractor (what the model's Hugging Face repo ships as preprocessor_config.json).
PREPROCESSOR_CONFIG = {"chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor",
                       "feature_size": 80, "hop_length": 160, "n_fft": 400, "n_samples": 480000,
                       "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0,
                       "processor_class": "WhisperProcessor", "return_attention_mask": False,
                       "sampling_rate": 16000}


def run(args: list[str], **kwargs: object) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, **kwargs)  # type: ignore[arg-type]


def pyenv_python(version: str) -> Path:
    """The newest pyenv CPython of ``version`` (e.g. '3.10'): uv's own discovery does not see pyenv's."""
    found = sorted((p for p in PYENV.glob(f"{version}.*") if re.fullmatch(rf"{re.escape(version)}\.\d+", p.name)),
                   key=lambda p: int(p.name.rsplit(".", 1)[1]))
    if not found:
        raise SystemExit(f"no Python {version} under {PYENV}")
    return found[-1] / "bin" / f"python{version}"


def bundled_model_dir() -> Path:
    """asr-server's provisioned default model (``make provision``)."""
    sys.path.insert(0, str(REPO / "src"))
    from asr_server.config_loading import load_settings
    from asr_server.engine.models import resolve_model

    settings = load_settings(str(REPO / "configs" / "cpu-int8.toml"), environ={})
    return Path(resolve_model(settings.model.name, settings.model.resolved_cache_dir()))


# -- building -------------------------------------------------------------------------------------

def build_tools(cache: Path) -> Path:
    tools = cache / "tools"
    if not (tools / "bin" / "uv").exists() or not (tools / "bin" / "poetry").exists():
        run([sys.executable, "-m", "venv", tools])
        run([tools / "bin" / "pip", "install", "-q", "poetry", "poetry-plugin-export", "uv"])
    return tools


def build_whisper_asr_webservice(src: Path, cache: Path, tools: Path) -> None:
    venv = cache / "venvs" / "whisper-asr-webservice"
    exported = cache / "whisper-asr-webservice.lock.txt"
    run([tools / "bin" / "poetry", "export", "--directory", src, "--only", "main", "--extras", "cpu",
         "--without-hashes", "--without-urls", "-f", "requirements.txt", "-o", exported])
    lines = []
    for line in exported.read_text().splitlines():
        # The export keeps every torch variant of the lock, each behind its own markers; PyPI has
        # the plain 2.7.1 only (see the module's docstring).
        if re.match(r"^(torch|torchaudio)==2\.7\.1\+", line):
            continue
        line = re.sub(r"^(torch|torchaudio)==2\.7\.1 ;.*", r"\1==2.7.1", line)
        line = re.sub(r"^av==14\.4\.0 ", "av==14.2.0 ", line)
        lines.append(line)
    requirements = cache / "whisper-asr-webservice.requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    if not (venv / "bin" / "python").exists():
        run([pyenv_python("3.10"), "-m", "venv", venv])
    run([venv / "bin" / "pip", "install", "-q", "--no-deps", "-r", requirements])
    run([venv / "bin" / "pip", "install", "-q", "--no-deps", src])


def build_speaches(src: Path, cache: Path, tools: Path) -> None:
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(cache / "venvs" / "speaches"),
           "UV_CACHE_DIR": str(cache / "uv-cache")}
    uv_sync = [tools / "bin" / "uv", "sync", "--frozen", "--no-dev", "--no-editable", "--python", pyenv_python("3.12")]
    run(uv_sync, cwd=src, env=env)
    # speaches serves its checkout's realtime-console/dist by a relative path: it runs from there.
    (cache / "speaches-checkout").unlink(missing_ok=True)
    (cache / "speaches-checkout").symlink_to(src)


def lay_out_models(cache: Path) -> None:
    """The speaches Hugging Face cache: blobs linked to the bundled model's files, one snapshot."""
    model = bundled_model_dir()
    repo = cache / "models" / "hf" / ("models--" + SPEACHES_MODEL_ID.replace("/", "--"))
    revision = "0" * 40
    if repo.exists():
        shutil.rmtree(repo)
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "blobs" / "README.md").write_text(MODEL_CARD)
    (repo / "blobs" / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
    for path in model.iterdir():
        (repo / "blobs" / path.name).symlink_to(path)
    for blob in (repo / "blobs").iterdir():
        (snapshot / blob.name).symlink_to(Path("../../blobs") / blob.name)
    (cache / "models" / "faster-whisper").unlink(missing_ok=True)
    (cache / "models" / "faster-whisper").symlink_to(model)


def build(args: argparse.Namespace) -> None:
    cache = args.cache.resolve()
    if REPO in cache.parents or cache == REPO:
        raise SystemExit("the cache must be outside the repository")
    if shutil.which("ffmpeg") is None:
        print("warning: no ffmpeg program: whisper-asr-webservice needs it (apt-get install ffmpeg)")
    cache.mkdir(parents=True, exist_ok=True)
    tools = build_tools(cache)
    lay_out_models(cache)
    if args.whisper_asr_webservice:
        build_whisper_asr_webservice(args.whisper_asr_webservice.resolve(), cache, tools)
    if args.speaches:
        build_speaches(args.speaches.resolve(), cache, tools)


# -- serving --------------------------------------------------------------------------------------

def command(name: str, cache: Path, port: int) -> tuple[list[str], dict[str, str], Path]:
    """The command line, environment and working directory that serve one peer on 127.0.0.1:``port``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}
    if name == "whisper-asr-webservice":
        venv = cache / "venvs" / name
        env.update(ASR_ENGINE="faster_whisper", ASR_DEVICE="cpu", ASR_QUANTIZATION="int8",
                   ASR_MODEL=str(cache / "models" / "faster-whisper"), MODEL_IDLE_TIMEOUT="0")
        return [str(venv / "bin" / "whisper-asr-webservice"), "--host", "127.0.0.1", "--port", str(port)], env, cache
    if name == "speaches":
        venv = cache / "venvs" / name
        env.update(HF_HUB_CACHE=str(cache / "models" / "hf"), WHISPER__INFERENCE_DEVICE="cpu",
                   WHISPER__COMPUTE_TYPE="int8", WHISPER__CPU_THREADS="0", STT_MODEL_TTL="-1",
                   ENABLE_UI="false", LOG_LEVEL="warning", GRADIO_ANALYTICS_ENABLED="False",
                   DISABLE_TELEMETRY="1", PYANNOTE_METRICS_ENABLED="0")
        return [str(venv / "bin" / "uvicorn"), "--factory", "speaches.main:create_app", "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning"], env, cache / "speaches-checkout"
    raise ValueError(name)


class Peer:
    """One peer server in a subprocess on loopback; ``stop()`` ends it."""

    def __init__(self, name: str, cache: Path, port: int, log_path: Path) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        args, env, cwd = command(name, cache, port)
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=cwd, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: see {log_path}")
            try:
                httpx.get(self.url + ("/health" if name == "speaches" else "/docs"), timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"{name} is not ready: see {log_path}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def serve(args: argparse.Namespace) -> None:
    cmd, env, cwd = command(args.peer, args.cache.resolve(), args.port)
    os.chdir(cwd)
    os.execve(cmd[0], cmd, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the peers' venvs and lay out the model")
    b.add_argument("--whisper-asr-webservice", type=Path, help="its source checkout")
    b.add_argument("--speaches", type=Path, help="its source checkout")
    b.add_argument("--cache", type=Path, required=True, help="where venvs and models go (outside the repository)")
    s = sub.add_parser("serve", help="serve one peer in the foreground on 127.0.0.1")
    s.add_argument("peer", choices=PEERS)
    s.add_argument("--cache", type=Path, required=True)
    s.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    build(args) if args.command == "build" else serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
