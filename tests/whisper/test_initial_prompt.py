"""An initial prompt is encoded before the language is known, as a client may send one without
a language; it then reads as faster-whisper reads it once it has detected the language."""

from __future__ import annotations

import pytest

from asr_server.config import DecodingOptions, SchedulerConfig
from conftest import PROMPT, PROMPT_CLIP, Job, run_jobs


@pytest.mark.parametrize("task", ["transcribe", "translate"])
def test_a_prompt_without_a_language_reads_as_faster_whisper_reads_it(engine, task):
    segments, info = engine.whisper_model.transcribe(str(PROMPT_CLIP), initial_prompt=PROMPT, task=task)
    expected = [(s.start, s.end, s.text, s.tokens) for s in segments]
    source, _ = run_jobs(engine, [Job("clip", str(PROMPT_CLIP))], SchedulerConfig(trim_short_clips=False),
                         DecodingOptions(initial_prompt=PROMPT, task=task))
    result = source.results["clip"]
    assert result["language"] == info.language
    assert [(s["start"], s["end"], s["text"], s["tokens"]) for s in result["segments"]] == expected


def test_a_prompt_without_a_language_conditions_a_trimmed_clip(engine):
    source, _ = run_jobs(engine, [Job("clip", str(PROMPT_CLIP))], SchedulerConfig(),
                         DecodingOptions(initial_prompt=PROMPT))
    assert "ComfyUI" in source.results["clip"]["text"]
