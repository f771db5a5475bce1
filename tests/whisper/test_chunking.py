"""VAD-chunked mode: speech cut into independent chunks that share batches, times kept."""

from __future__ import annotations

import json
import re
from difflib import SequenceMatcher

import numpy as np
from faster_whisper.audio import decode_audio

from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.scheduling.scheduler import Scheduler
from asr_server.whisper.chunking import group_speech
from conftest import AUDIO, EVAL, Job, run_jobs, write_wav


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def transcribe(engine, paths: list[str], **options) -> tuple[dict[str, dict], Scheduler]:
    jobs = [Job(str(i), path) for i, path in enumerate(paths)]
    decoding = DecodingOptions(vad_filter=True, **options)
    source, scheduler = run_jobs(engine, jobs, SchedulerConfig(max_step_s=0), decoding)
    return source.results, scheduler


def test_speech_is_grouped_in_order_up_to_one_window():
    speech = [{"start": s, "end": s + 10} for s in (0, 20, 40, 60, 80)]
    assert group_speech(speech, 25) == [speech[0:2], speech[2:4], speech[4:5]]
    assert group_speech([], 25) == []


def test_times_map_back_across_removed_silence(engine, tmp_path):
    jfk = decode_audio(str(AUDIO / "jfk.flac"))
    silence = np.zeros(16000 * 8, np.float32)
    path = str(write_wav(tmp_path / "gaps.wav", np.concatenate([silence, jfk, silence, jfk])))
    results, _ = transcribe(engine, [path], language="en")
    segments = results["0"]["segments"]
    assert words(results["0"]["text"]).count("country") == 4, results["0"]["text"]
    first_jfk, second_jfk = 8.0, 8.0 + 11.0 + 8.0  # where each copy starts in the recording
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    assert first_jfk - 0.5 <= starts[0] < first_jfk + 1.5

    def in_speech(t: float) -> bool:
        return first_jfk - 0.5 <= t <= first_jfk + 11.5 or second_jfk - 0.5 <= t <= second_jfk + 11.5

    outside = [(s["start"], s["end"], s["text"], s["temperature"]) for s in segments
               if not (in_speech(s["start"]) and in_speech(s["end"]))]
    assert outside == [], "no time falls in removed silence"
    assert segments[-1]["end"] > second_jfk + 8, "times run on into the second copy"
    assert [s["id"] for s in segments] == list(range(len(segments)))


def test_chunks_of_one_long_recording_share_a_batch_and_keep_its_text(engine):
    path = str(EVAL / "en_lucier_sitting_in_a_room.mp3")
    results, scheduler = transcribe(engine, [path], language="en")
    assert max(scheduler.batch_sizes) > 1, "chunks of one recording should be decoded together"
    # Against the human reference: sequential decoding of this file may fall back to sampling and
    # loop, so it is no stable yardstick.
    reference = next(json.loads(line)["ref"] for line in (EVAL / "manifest.jsonl").read_text().splitlines()
                     if json.loads(line)["file"] == "en_lucier_sitting_in_a_room.mp3")
    assert SequenceMatcher(None, words(results["0"]["text"]), words(reference)).ratio() > 0.9


def test_the_language_is_detected_once_and_holds_for_every_chunk(engine):
    results, _ = transcribe(engine, [str(EVAL / "de_librivox_simplicissimus.mp3")])
    assert results["0"]["language"] == "de"
    assert {"und", "der", "die"} <= set(words(results["0"]["text"])), "every chunk decoded as German"
