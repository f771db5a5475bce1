"""Languages detected on trimmed encodings, on every short clip of ../shared/eval: the server's
scheduler as configured by default, language not given, against faster-whisper's own detection,
and its text against the human references as closely as whole windows' text.

The same scheduler without trimming detects on whole windows, as faster-whisper does
(tests/whisper/test_equivalence.py holds the two equal), so its languages are faster-whisper's;
that one run gives both the languages and the texts to compare with."""

from __future__ import annotations

import json
import re
from difflib import SequenceMatcher

import pytest

from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.text.zh_script import convert_text
from conftest import EVAL, Job, run_jobs

SHORT = [item for item in map(json.loads, (EVAL / "manifest.jsonl").read_text().splitlines())
         if item["duration_s"] <= 21]  # trimmed with the default 8 s margin


def transcribe_all(engine, trim: bool):
    config = SchedulerConfig(max_batch_size=8, max_wait_ms=10_000, trim_short_clips=trim, max_step_s=0)
    source, scheduler = run_jobs(engine, [Job(item["file"], str(EVAL / item["file"])) for item in SHORT], config,
                                 DecodingOptions())
    return source.results, scheduler.stats()


@pytest.fixture(scope="module")
def detected(engine):
    return transcribe_all(engine, trim=True)


@pytest.fixture(scope="module")
def whole(engine):
    results, _ = transcribe_all(engine, trim=False)
    return results


def units(text: str, lang: str) -> list[str]:
    """Words, or characters for the languages written without spaces; Chinese in Simplified
    script, as the server returns it (output.zh_script)."""
    text = convert_text(text, "simplified") if lang == "zh" else text
    text = re.sub(r"[^\w\s']", " ", text.lower())
    return list("".join(text.split())) if lang in ("zh", "ja", "ko") else text.split()


def matched(text: str, ref: str, lang: str) -> int:
    blocks = SequenceMatcher(None, units(text, lang), units(ref, lang), autojunk=False).get_matching_blocks()
    return sum(block.size for block in blocks)


def test_every_short_clip_is_trimmed_before_its_language_is_known(detected):
    _, stats = detected
    assert stats["windows_trimmed"] >= len(SHORT)


def test_every_short_clip_keeps_faster_whispers_language(detected, whole):
    results, _ = detected
    wrong = {item["file"]: (results[item["file"]]["language"], whole[item["file"]]["language"]) for item in SHORT
             if results[item["file"]]["language"] != whole[item["file"]]["language"]}
    assert len(wrong) <= len(SHORT) // 100, wrong


def test_no_short_clip_with_speech_comes_back_empty(detected):
    results, _ = detected
    empty = [item["file"] for item in SHORT if item["ref"].strip() and not results[item["file"]]["text"].strip()]
    assert empty == []


def test_every_short_clips_text_holds_as_much_of_its_reference_as_the_whole_windows(detected, whole):
    # A misreading may move a word either way, and one that joins or splits a compound
    # ("PlatChat" for "plat chat") two; two characters in Chinese, Japanese, Korean. The total
    # below is the bound that matters: as many words as the whole windows, within 1%.
    results, _ = detected
    totals = [0, 0]
    for item in SHORT:
        name, lang = item["file"], item["lang"]
        ours, theirs = (matched(r[name]["text"], item["ref"], lang) for r in (results, whole))
        slack = 2
        assert ours >= theirs - slack, (name, results[name]["text"], whole[name]["text"])
        totals[0] += ours
        totals[1] += theirs
    assert totals[0] >= 0.99 * totals[1], totals
