"""The command line: version, and in-process transcription with the real model."""

from __future__ import annotations

import subprocess
import sys

from asr_server import __version__
from conftest import AUDIO, PROMPT, PROMPT_CLIP, REPO


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "asr_server", *args], capture_output=True, text=True, timeout=300)


def test_version_prints_the_package_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"asr-server {__version__}"


def test_transcribe_writes_srt_for_several_files(tmp_path):
    proc = run_cli("transcribe", str(AUDIO / "jfk.flac"), str(AUDIO / "hotwords.mp3"),
                   "--format", "srt", "--output-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    srt = (tmp_path / "jfk.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> 00:00:")
    assert "ask not what your country can do for you" in srt
    assert (tmp_path / "hotwords.srt").exists()


def test_transcribe_reports_an_undecodable_file_and_exits_1(tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"nope" * 100)
    proc = run_cli("transcribe", str(bad), "--format", "txt")
    assert proc.returncode == 1
    assert "bad.mp3" in proc.stderr


def test_submit_prints_task_ids_without_waiting(server):
    proc = run_cli("submit", str(AUDIO / "jfk.flac"), "--server", server.url)
    assert proc.returncode == 0, proc.stderr
    task_id, name = proc.stdout.strip().split("\t")
    assert len(task_id) == 20 and task_id.isdigit() and name.endswith("jfk.flac")


def test_submit_waits_and_writes_srt_through_the_server(server, tmp_path):
    proc = run_cli("submit", str(AUDIO / "jfk.flac"), "--server", server.url, "--wait", "--format", "srt",
                   "--language", "en", "--output-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    srt = (tmp_path / "jfk.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> ") and "ask not what your country can do for you" in srt


def test_submit_sends_an_initial_prompt_without_a_language(server, prompted_reference):
    proc = run_cli("submit", str(PROMPT_CLIP), "--server", server.url, "--wait", "--format", "txt",
                   "--initial-prompt", PROMPT, "--pack", "false")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == prompted_reference["transcribe"].strip() + "\n"


def test_submit_reports_a_refused_option_and_a_failed_task_and_exits_1(server, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"nope" * 100)
    refused = run_cli("submit", str(AUDIO / "jfk.flac"), "--server", server.url, "--beam-size", "0")
    assert refused.returncode == 1 and "beam_size" in refused.stderr
    failed = run_cli("submit", str(bad), "--server", server.url, "--wait")
    assert failed.returncode == 1 and "bad.mp3" in failed.stderr


def test_serve_on_cuda_without_a_usable_gpu_exits_3_naming_what_is_missing(tmp_path):
    import ctranslate2
    import pytest

    from asr_server.engine.cuda_check import cuda_problem

    if cuda_problem(0) is None:
        pytest.skip("this machine can run CTranslate2 on CUDA")
    done = subprocess.run(
        [sys.executable, "-m", "asr_server", "serve", "--config", "configs/gpu-fp16.toml", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert done.returncode == 3
    assert done.stderr.startswith("asr-server: model.device = 'cuda', but ")
    expected = "no CUDA device" if ctranslate2.get_cuda_device_count() == 0 else "libcublas.so.12"
    assert expected in done.stderr
