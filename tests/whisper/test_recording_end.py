"""No segment or word ends after its recording: a window's timestamps may run into the padding
after its audio (a trimmed clip cut at a longer neighbour's length reads some of it as time),
and what lies past the end is the end."""

from __future__ import annotations

import json
import random

from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.scheduling.preparation import prepare
from asr_server.whisper.batch_decoding import decode_windows
from conftest import EVAL, Job, run_jobs
from scripted_engine import ScriptedEngine

MANIFEST = [json.loads(line) for line in (EVAL / "manifest.jsonl").read_text().splitlines()]
SHORT_ENGLISH = [item for item in MANIFEST if item["lang"] == "en" and item["duration_s"] < 30]


def overruns(results: dict, durations: dict[str, float]) -> list[tuple[str, float, float]]:
    """(clip, end, duration) of every segment or word that ends after its clip."""
    found = []
    for name, result in results.items():
        for segment in result["segments"]:
            for piece in [segment, *segment.get("words", [])]:
                if piece["end"] > durations[name] + 1e-6:
                    found.append((name, piece["end"], durations[name]))
    return found


def test_no_segment_or_word_ends_after_its_clip_in_shuffled_bursts(engine):
    durations = {item["file"]: item["duration_s"] for item in SHORT_ENGLISH}
    assert len(durations) >= 50
    config = SchedulerConfig(max_batch_size=8, max_wait_ms=10_000, max_step_s=0)
    for seed in (1, 2):
        names = list(durations)
        random.Random(seed).shuffle(names)
        source, _ = run_jobs(engine, [Job(name, str(EVAL / name)) for name in names], config, DecodingOptions())
        assert overruns(source.results, durations) == [], seed


def test_a_segment_timed_past_the_recording_ends_with_it(hf_tokenizer, tmp_path):
    # The scripted engine times every segment 0.0 to 0.2 s; the clip is 0.1 s long.
    import wave

    path = tmp_path / "blip.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x10\x00" * 1600)
    engine = ScriptedEngine(hf_tokenizer)
    transcription = prepare(str(path), DecodingOptions(language="en", speech_guard=False), engine)
    window = transcription.next_window()
    window.complete(decode_windows(engine, [window])[0])
    assert [(s["start"], s["end"]) for s in transcription.segments] == [(0.0, transcription.duration)]
