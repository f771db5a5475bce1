"""Previous-text prompts cut to a multiple of ``scheduler.prompt_bucket_tokens``: the oldest
tokens go, as Whisper's own 223-token cap drops them, so that long recordings share batches."""

from __future__ import annotations

import numpy as np

from asr_server.config import DecodingOptions
from asr_server.whisper.transcription import Transcription
from scripted_engine import ScriptedEngine

ENGLISH = DecodingOptions(language="en", speech_guard=False)


def transcription(engine, told: int, bucket: int | None) -> Transcription:
    t = Transcription(np.zeros((80, 9001), np.float32), ENGLISH, engine, prompt_bucket=bucket)
    t._all_tokens.extend(range(1000, 1000 + told))
    return t


def test_a_prompt_is_cut_to_a_multiple_of_the_bucket_keeping_the_newest_tokens(hf_tokenizer):
    window = transcription(ScriptedEngine(hf_tokenizer), 90, 32).next_window()
    assert window.previous_tokens == list(range(1000 + 26, 1000 + 90))


def test_prompts_in_one_bucket_share_a_batch_key(hf_tokenizer):
    engine = ScriptedEngine(hf_tokenizer)
    keys = {transcription(engine, told, 32).next_window().batch_key for told in (70, 90)}
    assert len(keys) == 1


def test_a_prompt_shorter_than_the_bucket_is_kept_whole(hf_tokenizer):
    window = transcription(ScriptedEngine(hf_tokenizer), 20, 32).next_window()
    assert len(window.previous_tokens) == 20


def test_without_buckets_prompts_are_whispers_own_capped_at_223_tokens(hf_tokenizer):
    engine = ScriptedEngine(hf_tokenizer)
    assert len(transcription(engine, 90, None).next_window().previous_tokens) == 90
    assert len(transcription(engine, 400, None).next_window().previous_tokens) == 223
