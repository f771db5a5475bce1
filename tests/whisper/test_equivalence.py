"""The service's transcription equals faster-whisper's WhisperModel.transcribe, batched or not.

Packing (several clips in one window) gives each clip its own text but not Whisper's exact
tokens, so it is off here; test_packing.py proves it keeps clips apart."""

from __future__ import annotations

from typing import Any

import pytest

from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.scheduling.scheduler import Scheduler
from conftest import AUDIO, Job, ListSource, run_jobs

CLIPS = ["jfk.flac", "hotwords.mp3", "multilingual.mp3", "stereo_diarization.wav"]


def run_scheduler(engine, jobs: list[Job], max_batch_size: int, **options) -> tuple[ListSource, Scheduler]:
    return run_jobs(engine, jobs, SchedulerConfig(max_batch_size=max_batch_size, pack_clips=False),
                    DecodingOptions(**options))


@pytest.fixture(scope="module")
def reference(engine) -> dict[str, list[tuple[Any, ...]]]:
    """faster-whisper's own sequential transcription of each clip, default options."""
    out = {}
    for name in CLIPS:
        segments, info = engine.whisper_model.transcribe(str(AUDIO / name))
        out[name] = (info.language, [(s.seek, round(s.start, 3), round(s.end, 3), s.text, s.tokens) for s in segments])
    return out


def as_comparable(result: dict[str, Any]) -> tuple[Any, ...]:
    return (result["language"], [(s["seek"], s["start"], s["end"], s["text"], s["tokens"]) for s in result["segments"]])


def test_batched_service_output_equals_sequential_faster_whisper(engine, reference):
    jobs = [Job(name, str(AUDIO / name)) for name in CLIPS]
    source, scheduler = run_scheduler(engine, jobs, max_batch_size=8)
    assert max(scheduler.batch_sizes) > 1, "the clips should have shared a batch"
    for name in CLIPS:
        assert as_comparable(source.results[name]) == reference[name], name


def test_one_window_at_a_time_gives_the_same_output_as_batching(engine, reference):
    jobs = [Job(name, str(AUDIO / name)) for name in CLIPS]
    source, scheduler = run_scheduler(engine, jobs, max_batch_size=1)
    assert set(scheduler.batch_sizes) == {1}
    for name in CLIPS:
        assert as_comparable(source.results[name]) == reference[name], name


def test_known_language_batches_equal_faster_whisper_with_that_language(engine):
    name = "multilingual.mp3"
    segments, _ = engine.whisper_model.transcribe(str(AUDIO / name), language="de")
    expected = [s.text for s in segments]
    jobs = [Job(f"{name}-{i}", str(AUDIO / name)) for i in range(3)]
    source, _ = run_scheduler(engine, jobs, max_batch_size=4, language="de")
    for job in jobs:
        result = source.results[job.task_id]
        assert result["language"] == "de"
        assert [s["text"] for s in result["segments"]] == expected
