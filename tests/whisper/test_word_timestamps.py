"""word_timestamps: Whisper's `words` on every segment, equal to faster-whisper's own."""

from __future__ import annotations

import pytest

from asr_server.config import DecodingOptions, SchedulerConfig
from conftest import AUDIO, Job, run_jobs, submit, wait_for_task


@pytest.mark.parametrize("name", ["jfk.flac", "multilingual.mp3"])
def test_words_equal_faster_whisper_word_timestamps(engine, name):
    # Temperature 0 only: a fallback to sampling would make both sides random.
    segments, _ = engine.whisper_model.transcribe(str(AUDIO / name), word_timestamps=True, temperature=0.0)
    expected = [(round(s.start, 3), round(s.end, 3), [(w.word, w.start, w.end) for w in s.words]) for s in segments]
    source, _ = run_jobs(engine, [Job(name, str(AUDIO / name))], SchedulerConfig(),
                         DecodingOptions(word_timestamps=True, temperatures=(0.0,)))
    got = [(s["start"], s["end"], [(w["word"], w["start"], w["end"]) for w in s["words"]])
           for s in source.results[name]["segments"]]
    assert got == expected


def test_words_spell_out_each_segment_over_http(server):
    task_id = submit(server.url, AUDIO / "jfk.flac", word_timestamps="true").json()["task_id"]
    result = wait_for_task(server.url, task_id).json()["result"]
    for segment in result["segments"]:
        words = segment["words"]
        assert "".join(w["word"] for w in words) == segment["text"]
        assert all(w["start"] <= w["end"] and 0 <= w["probability"] <= 1 for w in words)
        assert [w["start"] for w in words] == sorted(w["start"] for w in words)


def test_segments_have_no_words_unless_asked(server):
    task_id = submit(server.url, AUDIO / "jfk.flac").json()["task_id"]
    result = wait_for_task(server.url, task_id).json()["result"]
    assert all("words" not in segment for segment in result["segments"])
