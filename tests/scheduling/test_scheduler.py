"""The scheduler with a scripted engine: batching rules, isolation of failures, no idle waits.
Most tests run the loop on the test's own thread (``Scheduler.run_until_idle``); the last two
start its threads, since what they check is how those threads stop and cancel.

The engine here is a fake (no model): it records every call and returns scripted tokens, so the
scheduler's bookkeeping can be checked exactly. The real engine is exercised end to end in
test_equivalence.py and test_seed_api.py.
"""

from __future__ import annotations

import threading
import time

from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.scheduling import preparation
from asr_server.scheduling.scheduler import Scheduler
from conftest import Job, ListSource
from scripted_engine import ScriptedEngine, tone

# Tones stand in for speech in these tests, so the speech guard (which would find none) is off.
TONES = DecodingOptions(speech_guard=False)


def run_scheduler(engine, jobs, decoding: DecodingOptions | None = None, **config) -> tuple[ListSource, Scheduler]:
    """Every job claimed and prepared, then decoded until none is left, on this thread: the
    batches depend on the jobs alone (``Scheduler.run_until_idle``)."""
    source = ListSource(jobs)
    scheduler = Scheduler(engine, source, SchedulerConfig(**config), decoding or TONES)
    scheduler.run_until_idle()
    assert source.done.is_set(), "a job was left undone"
    return source, scheduler


def run(engine, jobs, decoding: DecodingOptions | None = None, **config) -> ListSource:
    return run_scheduler(engine, jobs, decoding, **config)[0]


def test_windows_of_many_tasks_share_batches(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    jobs = [Job(str(i), tone(tmp_path / f"{i}.wav", 5, 0.1 + i / 20)) for i in range(8)]
    source = run(engine, jobs, max_batch_size=8)
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


ENGLISH = DecodingOptions(language="en", speech_guard=False)  # a known language: short clips are trimmed


def test_a_short_recording_of_known_language_is_trimmed_to_its_length_and_margin(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], ENGLISH, trim_margin_s=4)
    # 5 s of audio and 4 s of margin, a whole number of seconds: 900 frames. The script moves
    # seek by 0.2 s a window, and only the first window (seek 0) is trimmed.
    assert engine.trim_at[0] == 900
    assert set(engine.trim_at[1:]) <= {None}


def test_trimmed_windows_of_similar_length_are_cut_at_the_longer_ones_length(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    jobs = [Job(str(s), tone(tmp_path / f"{s}.wav", s, 0.3)) for s in (5, 6)]
    run(engine, jobs, ENGLISH, trim_margin_s=4, max_step_s=0)
    assert engine.encode_calls[0] == 2, "both in one batch"
    assert engine.trim_at[:2] == [1000, 1000]  # 5 s gains 1 s of silence: a quarter of its margin


def test_a_trimmed_window_never_gains_more_than_a_quarter_of_its_margin_from_its_batch(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    jobs = [Job(str(s), tone(tmp_path / f"{s}.wav", s, 0.3)) for s in (5, 7)]
    run(engine, jobs, ENGLISH, trim_margin_s=4, max_step_s=0)
    assert engine.encode_calls[0] == 2, "both in one batch"
    assert sorted(engine.trim_at[:2]) == [900, 1100]  # in the order their preparations ended


def test_a_recording_longer_than_a_window_is_encoded_whole(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("long", tone(tmp_path / "long.wav", 45, 0.3))], ENGLISH)
    assert engine.trim_at and set(engine.trim_at) == {None}


def test_a_recording_whose_trim_would_reach_the_windows_end_is_encoded_whole(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("x", tone(tmp_path / "x.wav", 27, 0.3))], ENGLISH, trim_margin_s=4)
    assert engine.trim_at[0] is None


def test_a_short_recording_whose_language_is_to_be_detected_is_trimmed_and_detected_there(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)  # detects English at 0.9
    source = run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], trim_margin_s=4)
    assert engine.trim_at[0] == 900 and engine.encode_calls[0] == 1
    assert source.results["short"]["language"] == "en"


def test_languages_of_windows_trimmed_at_different_lengths_are_detected_in_one_batch(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)  # as CTranslate2: one encoding length per call
    jobs = [Job(str(s), tone(tmp_path / f"{s}.wav", s, 0.3)) for s in (2, 9)]
    source = run(engine, jobs, trim_margin_s=4, max_step_s=0)
    assert engine.encode_calls[0] == 2, "both in one batch"
    assert sorted(engine.trim_at[:2]) == [600, 1300]
    assert {r["language"] for r in source.results.values()} == {"en"} and not source.errors


def test_a_language_detected_unsure_on_the_trimmed_encoding_is_detected_and_decoded_on_20_s(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)  # detects English at 0.9
    run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], trim_margin_s=4, trim_detection_below=0.95)
    assert engine.trim_at[:2] == [900, 2000], "encoded trimmed, then over 20 s"
    assert engine.generated_lengths == [1000], "decoded once, on the 20 s encoding"


def test_an_unsure_language_of_a_clip_trimmed_to_20_s_or_more_is_detected_and_decoded_whole(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    _, scheduler = run_scheduler(engine, [Job("short", tone(tmp_path / "short.wav", 17, 0.3))],
                                 trim_margin_s=4, trim_detection_below=0.95)
    assert engine.trim_at[:2] == [2100, None]
    assert engine.generated_lengths == [1500]
    assert scheduler.stats()["windows_retried_whole"] == 1


def test_a_trimmed_window_whose_decoding_stops_before_the_clips_end_is_decoded_again_whole(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer, stops_short_when_trimmed=True)
    source = run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], ENGLISH, trim_margin_s=4)
    assert engine.trim_at[:2] == [900, None], "encoded trimmed, then whole"
    assert engine.generated_lengths == [450, 1500], "one decoding each; no window over the rest"
    assert len(source.results["short"]["segments"]) == 1


def test_a_trimmed_window_whose_decoding_covers_the_clip_is_decoded_once(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], ENGLISH, trim_margin_s=4)
    assert engine.generated_lengths == [450]


def test_with_trim_detection_below_one_a_language_is_detected_on_the_whole_window(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], trim_detection_below=1)
    assert engine.trim_at[0] is None


def test_exact_detection_is_never_made_on_a_trimmed_encoding(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], detect_on_window=False)
    assert engine.trim_at[0] is None


def test_with_trimming_off_every_window_is_encoded_whole(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("short", tone(tmp_path / "short.wav", 5, 0.3))], ENGLISH, trim_short_clips=False)
    assert engine.trim_at and set(engine.trim_at) == {None}


def test_a_task_sent_with_pack_false_is_encoded_whole(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    run(engine, [Job("exact", tone(tmp_path / "exact.wav", 5, 0.3), options={"pack": False})], ENGLISH)
    assert engine.trim_at[0] is None


def test_trimmed_and_whole_windows_never_share_a_step(hf_tokenizer, tmp_path):
    # They would take an engine call each anyway (one encoding length per call), and the short
    # clip would wait for the whole window's step.
    engine = ScriptedEngine(hf_tokenizer)
    jobs = [Job("short", tone(tmp_path / "short.wav", 5, 0.3)), Job("long", tone(tmp_path / "long.wav", 45, 0.3))]
    run(engine, jobs, ENGLISH, max_step_s=0)
    assert engine.encode_calls[:2] == [1, 1]
    assert [len(call) for call in engine.generate_calls[:2]] == [1, 1]


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
    assert scheduler.stats()["active_tasks"] == 0, "the counters say so too"


def test_each_encoder_input_holds_one_tasks_audio_and_padding_alone(hf_tokenizer, tmp_path):
    # The scripted features carry each recording's loudness in row 0, and padding is 0.
    engine = ScriptedEngine(hf_tokenizer)
    inputs: list[set[float]] = []
    encode = engine.encode

    def recording(windows, trim_at=None):
        inputs.extend({round(float(v), 2) for v in w[0]} - {0.0} for w in windows)
        return encode(windows, trim_at)

    engine.encode = recording
    jobs = [Job(str(n), tone(tmp_path / f"{n}.wav", 3, loudness)) for n, loudness in enumerate((0.2, 0.4, 0.6, 0.8))]
    run(engine, jobs, ENGLISH, max_step_s=0)
    assert engine.encode_calls[0] == 4, "the four shared a batch"
    assert all(len(values) == 1 for values in inputs), inputs


def test_among_waiting_tasks_the_earlier_deadline_runs_first(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    soon = time.time() + 60
    jobs = [Job("none", tone(tmp_path / "a.wav", 3, 0.2)),
            Job("later", tone(tmp_path / "b.wav", 3, 0.4), {"deadline_at": soon + 60}),
            Job("sooner", tone(tmp_path / "c.wav", 3, 0.6), {"deadline_at": soon})]
    source = run(engine, jobs, ENGLISH, max_batch_size=1)
    assert list(source.results) == ["sooner", "later", "none"]
