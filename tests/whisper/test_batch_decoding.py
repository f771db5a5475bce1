"""A batch of windows through the engine, pass by pass, on a scripted engine: which encodings
are made, where languages are detected, and which windows are decoded again."""

from __future__ import annotations

import pytest

from asr_server.config import DecodingOptions
from asr_server.scheduling.preparation import prepare
from asr_server.whisper.batch_decoding import decode_windows
from asr_server.whisper.transcription import TrimRule
from scripted_engine import ScriptedEngine, tone

DETECTED = DecodingOptions(speech_guard=False)
ENGLISH = DecodingOptions(language="en", speech_guard=False)
MARGIN = 400  # frames of padding kept after a trimmed clip


def window(engine, path: str, options: DecodingOptions = ENGLISH, margin: int | None = MARGIN,
           detection_below: float | None = None):
    trim = TrimRule(margin, detection_below) if margin is not None else None
    return prepare(path, options, engine, trim).next_window()


def test_a_short_clip_is_encoded_on_its_cut_and_its_outcome_says_so(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    [outcome] = decode_windows(engine, [window(engine, tone(tmp_path / "a.wav", 5, 0.3))])
    assert engine.trim_at == [900] and outcome.trimmed


def test_windows_of_different_batch_keys_are_refused(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    first = window(engine, tone(tmp_path / "a.wav", 5, 0.3))
    other = window(engine, tone(tmp_path / "b.wav", 5, 0.3), DecodingOptions(language="en", beam_size=2,
                                                                               speech_guard=False))
    with pytest.raises(ValueError, match="batch key"):
        decode_windows(engine, [first, other])


def test_exact_detection_encodes_faster_whispers_detection_features_whole_beside_the_window(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)
    clip = window(engine, tone(tmp_path / "a.wav", 5, 0.3), DETECTED, margin=None)
    decode_windows(engine, [clip], detect_on_window=False)
    assert engine.encode_calls == [2] and engine.trim_at == [None, None]
    assert clip.owner.language == "en"


def test_an_unsure_detection_on_a_cut_is_made_again_on_20_s_and_decoded_there(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer)  # detects en at 0.9
    clip = window(engine, tone(tmp_path / "a.wav", 5, 0.3), DETECTED, detection_below=0.95)
    [outcome] = decode_windows(engine, [clip], detect_on_window=True)
    assert engine.trim_at == [900, 2000] and engine.generated_lengths == [1000] and outcome.trimmed


def test_a_cut_decoding_that_stops_short_is_decoded_again_whole_once(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer, stops_short_when_trimmed=True)
    [outcome] = decode_windows(engine, [window(engine, tone(tmp_path / "a.wav", 5, 0.3))])
    assert engine.trim_at == [900, None] and engine.generated_lengths == [450, 1500]
    assert not outcome.trimmed


def test_a_window_already_encoded_whole_is_never_decoded_whole_again(hf_tokenizer, tmp_path):
    # Unsure on a clip cut past 20 s: detected and decoded whole; that decoding stops short too,
    # but whole it is faster-whisper's own, and a second whole pass would give the same.
    engine = ScriptedEngine(hf_tokenizer, stops_short=True)
    clip = window(engine, tone(tmp_path / "a.wav", 17, 0.3), DETECTED, detection_below=0.95)
    [outcome] = decode_windows(engine, [clip], detect_on_window=True)
    assert engine.trim_at == [2100, None] and engine.generated_lengths == [1500]
    assert not outcome.trimmed


def test_only_the_windows_that_stop_short_are_decoded_again(hf_tokenizer, tmp_path):
    engine = ScriptedEngine(hf_tokenizer, stops_short_when_trimmed=True)
    cut = window(engine, tone(tmp_path / "cut.wav", 5, 0.3))
    whole = window(engine, tone(tmp_path / "whole.wav", 5, 0.6), margin=None)
    outcomes = decode_windows(engine, [cut, whole])
    assert engine.trim_at == [900, None, None], "the cut one encoded again, whole"
    assert sorted(engine.generated_lengths) == [450, 1500, 1500]
    assert [o.trimmed for o in outcomes] == [False, False]
