"""Languages detected on trimmed encodings, on every short clip of ../shared/eval: the server's
scheduler as configured by default, language not given, against faster-whisper's own detection
(its detection features, a whole window) and the human references."""

from __future__ import annotations

import json

import pytest
from faster_whisper.audio import pad_or_trim

from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.engine.audio import decode
from conftest import EVAL, Job, run_jobs

SHORT = [item for item in map(json.loads, (EVAL / "manifest.jsonl").read_text().splitlines())
         if item["duration_s"] <= 21]  # trimmed with the default 8 s margin


@pytest.fixture(scope="module")
def detected(engine):
    config = SchedulerConfig(max_batch_size=8, max_wait_ms=10_000)
    source, scheduler = run_jobs(engine, [Job(item["file"], str(EVAL / item["file"])) for item in SHORT], config,
                                 DecodingOptions())
    return source.results, scheduler.stats()


def faster_whisper_language(engine, name: str) -> str:
    features = engine.features(decode(str(EVAL / name), engine.sampling_rate))
    return engine.detect_language(engine.encode([pad_or_trim(features)]))[0][0][0]


def test_every_short_clip_is_trimmed_before_its_language_is_known(detected):
    _, stats = detected
    assert stats["windows_trimmed"] >= len(SHORT)


def test_every_short_clip_keeps_faster_whispers_language(engine, detected):
    results, _ = detected
    wrong = {item["file"]: results[item["file"]]["language"] for item in SHORT
             if results[item["file"]]["language"] != faster_whisper_language(engine, item["file"])}
    assert len(wrong) <= len(SHORT) // 100, wrong


def test_no_short_clip_with_speech_comes_back_empty(detected):
    results, _ = detected
    empty = [item["file"] for item in SHORT if item["ref"].strip() and not results[item["file"]]["text"].strip()]
    assert empty == []
