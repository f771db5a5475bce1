"""The scheduler with a scripted engine: batching rules, isolation of failures, no idle waits.

The engine here is a fake (no model): it records every call and returns scripted tokens, so the
scheduler's bookkeeping can be checked exactly. The real engine is exercised end to end in
test_equivalence.py and test_seed_api.py.
"""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path

import numpy as np

from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.scheduling import preparation
from asr_server.scheduling.scheduler import Scheduler
from conftest import Job, ListSource
from scripted_engine import ScriptedEngine


# Tones stand in for speech in these tests, so the speech guard (which would find none) is off.
TONES = DecodingOptions(speech_guard=False)


def tone(path: Path, seconds: float, loudness: float) -> str:
    samples = (np.sin(np.arange(int(16000 * seconds)) / 5) * loudness * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    return str(path)


def run(engine, jobs, decoding: DecodingOptions | None = None, **config) -> ListSource:
    source = ListSource(jobs)
    scheduler = Scheduler(engine, source, SchedulerConfig(**config), decoding or TONES)
    scheduler.start()
    try:
        assert source.done.wait(60), "scheduler did not finish"
    finally:
        scheduler.stop()
    return source


def test_windows_of_many_tasks_share_batches(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    jobs = [Job(str(i), tone(tmp_path / f"{i}.wav", 5, 0.1 + i / 20)) for i in range(8)]
    source = run(engine, jobs, max_batch_size=8, max_wait_ms=2000)
    assert len(source.results) == 8 and not source.errors
    assert max(len(call) for call in engine.generate_calls) > 1
    assert sum(len(call) for call in engine.generate_calls) == 8


def test_batch_size_never_exceeds_the_limit(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    jobs = [Job(str(i), tone(tmp_path / f"{i}.wav", 3, 0.5)) for i in range(10)]
    run(engine, jobs, max_batch_size=3)
    assert max(len(call) for call in engine.generate_calls) <= 3


def test_long_recordings_advance_window_by_window_with_previous_text(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    jobs = [Job(str(i), tone(tmp_path / f"{i}.wav", 95, 0.2 + i / 10)) for i in range(3)]
    source = run(engine, jobs, max_batch_size=8)
    for i in range(3):
        segments = source.results[str(i)]["segments"]
        assert [s["seek"] for s in segments] == [0, 3000, 6000, 9000]
        assert [s["id"] for s in segments] == [0, 1, 2, 3]
        assert f"{0.2 + i / 10:.2f}" in segments[0]["text"], "a task's text must come from its own audio"
    tok = engine.tokenizer("transcribe", "en")
    assert any(prompt[0] == tok.sot_prev for call in engine.generate_calls for prompt in call)


def test_a_task_whose_audio_cannot_be_decoded_fails_alone(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio" * 50)
    jobs = [Job("good", tone(tmp_path / "g.wav", 2, 0.3)), Job("bad", str(bad))]
    source = run(engine, jobs)
    assert set(source.results) == {"good"}
    assert source.errors["bad"].startswith("Traceback (most recent call last):")


def test_an_engine_failure_fails_that_batch_and_the_loop_goes_on(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer, fail_when=lambda encoded: abs(encoded[0][0, 0] - 0.9) < 0.01)
    jobs = [Job("doomed", tone(tmp_path / "d.wav", 2, 0.9))]
    jobs += [Job(str(i), tone(tmp_path / f"{i}.wav", 2, 0.3)) for i in range(3)]
    source = run(engine, jobs, max_batch_size=1)
    assert "scripted engine failure" in source.errors["doomed"]
    assert set(source.results) == {"0", "1", "2"}


def slow_preparation(monkeypatch, hold: dict[str, threading.Event] | None = None, seconds: float = 0.1) -> list[str]:
    """Each task takes ``seconds`` to prepare; a file named in ``hold`` waits (3 s at most) for
    its event first. Returns the files whose wait ran out."""
    decode = preparation.decode_audio
    ran_out: list[str] = []

    def slow_decode(path, *args, **kwargs):
        event = (hold or {}).get(Path(path).name)
        if event is not None and not event.wait(3):
            ran_out.append(Path(path).name)
        time.sleep(seconds)
        return decode(path, *args, **kwargs)

    monkeypatch.setattr(preparation, "decode_audio", slow_decode)
    return ran_out


def record_batches(monkeypatch, first: threading.Event | None = None) -> list[list[int]]:
    """Clips per window of each batch the engine decodes; ``first`` is set at the first."""
    from asr_server.scheduling import scheduler as scheduler_module

    batches: list[list[int]] = []
    decode_windows = scheduler_module.decode_windows

    def recording(engine, batch, *args):
        batches.append([len(unit.transcriptions) for unit in batch])
        if first is not None:
            first.set()
        return decode_windows(engine, batch, *args)

    monkeypatch.setattr(scheduler_module, "decode_windows", recording)
    return batches


ENGLISH = DecodingOptions(language="en", speech_guard=False)  # a known language: short clips are packed


def test_packs_with_room_are_held_back_while_more_clips_are_prepared(hf_tokenizer, tmp_path, monkeypatch):
    # Two 9 s clips make two windows, a full batch by count, each with 11 s of room (packs fill
    # 20 s): the four 3 s clips being prepared fill them, so the first batch waits for them.
    slow_preparation(monkeypatch)
    batches = record_batches(monkeypatch)
    jobs = [Job(str(i), tone(tmp_path / f"{i}.wav", seconds, 0.3)) for i, seconds in enumerate([9, 9, 3, 3, 3, 3])]
    run(ScriptedEngine(hf_tokenizer), jobs, ENGLISH, max_batch_size=2, max_wait_ms=5000, pack_gap_ms=2000,
        pack_clips=True)
    assert batches[0] == [3, 3]


def test_a_batch_of_full_packs_is_not_held_back(hf_tokenizer, tmp_path, monkeypatch):
    # A 28 s clip fills a batch of one window. The 3 s clip's preparation waits for the first
    # batch: had the engine held that batch back for it, the wait would run out.
    first = threading.Event()
    ran_out = slow_preparation(monkeypatch, hold={"short.wav": first})
    batches = record_batches(monkeypatch, first)
    jobs = [Job("long", tone(tmp_path / "long.wav", 28, 0.3)), Job("short", tone(tmp_path / "short.wav", 3, 0.3))]
    run(ScriptedEngine(hf_tokenizer), jobs, ENGLISH, max_batch_size=1, max_wait_ms=10_000, prepare_workers=2,
        pack_clips=True)
    assert batches[0] == [1]
    assert ran_out == []


def test_with_packing_on_a_short_recording_alone_is_encoded_only_as_far_as_packs_fill(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    jobs = [Job("short", tone(tmp_path / "short.wav", 5, 0.3)), Job("long", tone(tmp_path / "long.wav", 45, 0.3))]
    run(engine, jobs, ENGLISH, max_batch_size=1, pack_clips=True)  # one short clip: a pack of one is its own window
    # The short one's first window is cut at 20 s; its later ones (the script moves seek by
    # 0.2 s a window) and the long one's are encoded whole.
    assert [frames for frames in engine.silent_from if frames is not None] == [2000]
    assert len(engine.silent_from) > 2


def test_a_window_whose_language_is_to_be_detected_is_encoded_whole(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], pack_clips=True)
    assert engine.silent_from[0] is None


def test_with_packing_off_every_window_is_encoded_whole(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], pack_clips=False)
    assert engine.silent_from and set(engine.silent_from) == {None}


def test_language_is_detected_once_per_task(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    source = run(engine, [Job("x", tone(tmp_path / "x.wav", 65, 0.3))])
    assert source.results["x"]["language"] == "en"
    tok = engine.tokenizer("transcribe", "en")
    assert all(prompt[-2] == tok.language for call in engine.generate_calls for prompt in call)


def test_the_default_configuration_detects_the_language_on_the_windows_own_encoding(hf_tokenizer, tmp_path):
    # As the server runs: a short clip's one window is encoded once, and detection reads it.
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))])
    assert engine.encode_calls == [1]


def test_exact_detection_encodes_faster_whispers_detection_features_too(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], detect_on_window=False)
    assert engine.encode_calls == [2]


def test_stop_waits_for_the_preparations_under_way(hf_tokenizer, tmp_path, monkeypatch):
    # A preparation still running when stop() is called ends (here: fails) before stop()
    # returns, so that no worker writes to a store the caller closes next.
    started, stop_returned = threading.Event(), threading.Event()

    def decode(path, *args, **kwargs):
        started.set()
        stop_returned.wait(1)
        raise RuntimeError("not audio")

    monkeypatch.setattr(preparation, "decode_audio", decode)
    source = ListSource([Job("x", tone(tmp_path / "x.wav", 2, 0.3))])
    scheduler = Scheduler(ScriptedEngine(hf_tokenizer), source, SchedulerConfig(), TONES)
    scheduler.start()
    assert started.wait(10)
    scheduler.stop()
    failed_before_stop_returned = set(source.errors)
    stop_returned.set()
    assert failed_before_stop_returned == {"x"}


def record_packs(monkeypatch) -> list[list[str]]:
    """The tenants of the clips of each pack the engine decodes."""
    from asr_server.scheduling import scheduler as scheduler_module
    from asr_server.whisper.pack_attribution import PackedWindow

    packs: list[list[str]] = []
    decode_windows = scheduler_module.decode_windows

    def recording(engine, batch, *args):
        packs.extend([clip.tenant for clip in unit.clips] for unit in batch if isinstance(unit, PackedWindow))
        return decode_windows(engine, batch, *args)

    monkeypatch.setattr(scheduler_module, "decode_windows", recording)
    return packs


def tenants_jobs(tmp_path, count: int = 8) -> list[Job]:
    """Short clips of two API keys' owners, their uploads interleaved."""
    return [Job(str(i), tone(tmp_path / f"{i}.wav", 3, 0.3), tenant="ab"[i % 2]) for i in range(count)]


def test_clips_of_two_tenants_never_share_a_window(hf_tokenizer, tmp_path, monkeypatch):
    packs = record_packs(monkeypatch)
    run(ScriptedEngine(hf_tokenizer), tenants_jobs(tmp_path), ENGLISH, pack_clips=True, max_wait_ms=10_000)
    assert packs, "nothing was packed: the test would prove nothing"
    assert all(len(set(tenants)) == 1 for tenants in packs), packs


def test_with_a_global_pack_scope_clips_of_all_tenants_may_share_a_window(hf_tokenizer, tmp_path, monkeypatch):
    packs = record_packs(monkeypatch)
    run(ScriptedEngine(hf_tokenizer), tenants_jobs(tmp_path), ENGLISH, pack_clips=True, max_wait_ms=10_000,
        pack_scope="global")
    assert packs and all(tenants == [""] * len(tenants) for tenants in packs), "no tenant is kept with a clip"


def test_a_task_that_asks_not_to_be_packed_is_decoded_and_encoded_alone(hf_tokenizer, tmp_path, monkeypatch):
    from asr_server.scheduling import scheduler as scheduler_module

    alone: list[bool] = []
    decode_windows = scheduler_module.decode_windows

    def recording(engine, batch, *args):
        alone.extend(unit.transcriptions == [unit.owner] and unit.silent_from is None
                     for unit in batch if "exact" in {id_of.get(id(t)) for t in unit.transcriptions})
        return decode_windows(engine, batch, *args)

    monkeypatch.setattr(scheduler_module, "decode_windows", recording)
    id_of: dict[int, str] = {}
    original = scheduler_module.prepare

    def remembering(path, *args, **kwargs):
        ready = original(path, *args, **kwargs)
        id_of[id(ready.transcription)] = Path(path).stem
        return ready

    monkeypatch.setattr(scheduler_module, "prepare", remembering)
    jobs = [Job(name, tone(tmp_path / f"{name}.wav", 3, 0.3), options={"pack": False} if name == "exact" else {})
            for name in ("one", "exact", "two", "three")]
    source = run(ScriptedEngine(hf_tokenizer), jobs, ENGLISH, pack_clips=True, max_wait_ms=10_000)
    assert set(source.results) == {"one", "exact", "two", "three"}
    assert alone == [True], "the task's one window, alone and encoded whole"


def test_a_cancelled_task_leaves_the_engine_at_the_next_step(hf_tokenizer, tmp_path, monkeypatch):
    from asr_server.scheduling import scheduler as scheduler_module

    steps: list[int] = []
    decode_windows = scheduler_module.decode_windows
    source = ListSource([Job("long", tone(tmp_path / "long.wav", 95, 0.3))])
    scheduler = Scheduler(ScriptedEngine(hf_tokenizer), source, SchedulerConfig(), ENGLISH)

    def cancelling_after_the_first(engine, batch, *args):
        steps.append(len(batch))
        if len(steps) == 1:
            scheduler.cancel("long")  # as a DELETE would, while the step runs
        return decode_windows(engine, batch, *args)

    monkeypatch.setattr(scheduler_module, "decode_windows", cancelling_after_the_first)
    scheduler.start()
    try:
        deadline = time.monotonic() + 30
        while not (steps and scheduler.idle):
            assert time.monotonic() < deadline, "the cancelled task was never let go"
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert steps == [1], "no step after the one under way"
    assert source.results == {} and source.errors == {}, "nothing is recorded for a cancelled task"
