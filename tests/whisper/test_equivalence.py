"""The service's transcription equals faster-whisper's WhisperModel.transcribe, batched or not.

Trimming a short recording of known language to its own length gives Whisper's accuracy but
not its exact tokens, so it is off here; test_trimming.py measures it on real speech."""

from __future__ import annotations

from typing import Any

import pytest

from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.engine.audio import decode_pcm
from asr_server.engine.log_mel import LogMel, features_of
from asr_server.scheduling.scheduler import Scheduler
from conftest import AUDIO, Job, ListSource, run_jobs

CLIPS = ["jfk.flac", "hotwords.mp3", "multilingual.mp3", "stereo_diarization.wav"]


def run_scheduler(engine, jobs: list[Job], max_batch_size: int, **options) -> tuple[ListSource, Scheduler]:
    return run_jobs(engine, jobs, SchedulerConfig(max_batch_size=max_batch_size, trim_short_clips=False, max_step_s=0),
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


def test_a_recording_whose_features_are_computed_a_window_at_a_time_equals_faster_whisper_on_them(engine, monkeypatch):
    """A long recording's features differ from faster-whisper's in the last bit, as faster-
    whisper's own do from one BLAS thread count to another (tests/engine/test_log_mel.py), and
    on a long file that alone can change a word of faster-whisper's own transcript. So faster-
    whisper is given the same features here: the sequential loop over them must then be the
    same. The in-memory limit is lowered so that a two-window clip is held as a long one."""
    from asr_server.engine import audio

    monkeypatch.setattr(audio, "IN_MEMORY_SAMPLES", 16000)
    path = str(AUDIO / "multilingual.mp3")
    features = features_of(decode_pcm(path), engine.feature_extractor)
    assert isinstance(features, LogMel) and features.shape[1] > engine.frames_per_window
    whole = features[:, 0 : features.shape[1]]
    with monkeypatch.context() as patched:
        patched.setattr(engine.whisper_model, "feature_extractor", FixedFeatures(engine.feature_extractor, whole))
        segments, info = engine.whisper_model.transcribe(path)
        expected = (info.language, [(s.seek, round(s.start, 3), round(s.end, 3), s.text, s.tokens) for s in segments])
    source, _ = run_scheduler(engine, [Job("long", path)], max_batch_size=8)
    assert as_comparable(source.results["long"]) == expected


class FixedFeatures:
    """faster-whisper's feature extractor, answering with given features."""

    def __init__(self, extractor: Any, features: Any) -> None:
        self._extractor, self._features = extractor, features

    def __getattr__(self, name: str) -> Any:
        return getattr(self._extractor, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._features
