"""Packing short clips into one window: each clip gets its own text, or is decoded alone.

The rules are checked on scripted decoder outputs (exact token control); the proof that packing
keeps clips apart on real speech runs the real model on real clips from ../shared/eval.
"""

from __future__ import annotations

import json
import re
from difflib import SequenceMatcher

import numpy as np
import pytest

from asr_server.engine.audio import decode
from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.engine.whisper_engine import Generated
from asr_server.whisper.batch_decoding import decode_windows
from asr_server.whisper.pack_attribution import PackedWindow
from asr_server.whisper.pack_clips import Clip, Clips, Rung
from asr_server.whisper.pack_layout import LAST_GAP_S, has_room, pack_windows
from asr_server.scheduling.scheduler import Scheduler
from asr_server.whisper.transcription import Transcription
from asr_server.whisper.units import Outcome
from conftest import EVAL, Job, run_jobs
from scripted_engine import ScriptedEngine


def clip(engine: ScriptedEngine, seconds: float, language: str | None = "en", **options) -> Clip:
    audio = np.full(int(16000 * seconds), 0.1, np.float32)
    return Clip(Transcription(engine.features(audio), DecodingOptions(language=language, **options), engine), audio)


def held(*clips: Clip) -> Clips:
    """The clips as a scheduler holds them."""
    registry = Clips()
    for one in clips:
        registry.add(one)
    return registry


def packs(clips: list[Clip], **layout) -> list:
    """pack_windows over these clips' windows, as the scheduler calls it."""
    return pack_windows([c.transcription.next_window() for c in clips], held(*clips), **layout)


def outcome(engine: ScriptedEngine, pieces: list[tuple[float, str, float]], final: float | None = None,
            word_times: list[tuple[float, float]] | None = None) -> Outcome:
    """A decoder result made of (start, text, end) segments, Whisper's token layout."""
    tok = engine.tokenizer("transcribe", "en")
    tokens: list[int] = []
    for start, text, end in pieces:
        tokens += [tok.timestamp_begin + round(start / 0.02), *tok.encode(text), tok.timestamp_begin + round(end / 0.02)]
    if final is not None:
        tokens.append(tok.timestamp_begin + round(final / 0.02))
    if word_times is None:
        return Outcome(Generated(tokens, -5.0, 0.01), -0.2, 0.0, 1.2)
    engine.word_times = word_times  # the window's words, aligned
    return Outcome(Generated(tokens, -5.0, 0.01), -0.2, 0.0, 1.2, encoded=np.zeros((1500, 512), np.float32))


@pytest.fixture
def scripted(hf_tokenizer):  # noqa: F811
    return ScriptedEngine(hf_tokenizer)


def test_each_segment_goes_to_the_clip_it_covers_with_times_from_that_clip(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 5.0)
    pack = PackedWindow([first, second], [0.0, 5.0], gap_s=1.0)
    pack.complete(outcome(scripted, [(0.0, " One two.", 3.9), (5.2, " Three four.", 9.8)]))
    assert first.transcription.result()["text"] == " One two."
    assert second.transcription.result()["text"] == " Three four."
    segment = second.transcription.result()["segments"][0]
    assert (segment["id"], segment["seek"], segment["start"], segment["end"]) == (0, 0, 0.2, 4.8)
    tok = scripted.tokenizer("transcribe", "en")
    assert segment["tokens"][0] == tok.timestamp_begin + 10, "timestamp tokens are shifted to the clip"
    assert first.transcription.finished and second.transcription.finished


def test_a_segment_that_runs_across_a_gap_gives_both_clips_another_pack(scripted):
    first, second, third = clip(scripted, 4.0), clip(scripted, 4.0), clip(scripted, 4.0)
    pack = PackedWindow([first, second, third], [0.0, 5.0, 10.0], gap_s=1.0)
    pack.complete(outcome(scripted, [(0.0, " One two three four.", 7.0), (10.1, " Five.", 13.9)]))
    assert not first.transcription.finished and not second.transcription.finished
    assert first.packable and second.packable and pack.retried == ["straddle", "straddle"]
    assert third.transcription.finished and third.transcription.result()["text"] == " Five."


# Words of " One two. Three four.": " One", " two", ".", " Three", " four", ".".
def test_a_segment_across_a_gap_is_cut_where_its_words_fall_on_either_side_of_it(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 4.0)
    pack = PackedWindow([first, second], [0.0, 5.0], gap_s=1.0)
    times = [(0.2, 1.0), (1.0, 3.5), (3.5, 3.6), (5.2, 6.0), (6.0, 8.5), (8.5, 8.6)]
    pack.complete(outcome(scripted, [(0.0, " One two. Three four.", 9.0)], word_times=times))
    assert pack.cuts == 1 and pack.retried == []
    assert first.transcription.result()["text"] == " One two." and second.transcription.result()["text"] == " Three four."
    segment = second.transcription.result()["segments"][0]
    assert (segment["start"], segment["end"]) == (0.2, 4.0), "from the first word to the clip's end"
    tok = scripted.tokenizer("transcribe", "en")
    assert segment["tokens"] == [tok.timestamp_begin + 10, *tok.encode(" Three four."), tok.timestamp_begin + 200]


@pytest.mark.parametrize("text, times", [
    pytest.param(" One two three four.", [(0.2, 1.0), (1.0, 3.5), (5.2, 6.0), (6.0, 8.5), (8.5, 8.6)],
                 id="the model read on from one clip into the next without ending a clause"),
    pytest.param(" One two. Three four.", [(0.2, 1.0), (1.0, 2.0), (2.0, 2.1), (3.0, 6.0), (6.0, 8.5), (8.5, 8.6)],
                 id="a word is drawn over the gap"),
    pytest.param(" One two. Three four.", [(0.2, 1.0), (1.0, 2.0), (2.0, 2.1), (4.1, 4.9), (6.0, 8.5), (8.5, 8.6)],
                 id="a word lies in the gap"),
])
def test_a_segment_across_a_gap_is_left_whole_when_its_words_do_not_fall_cleanly_on_either_side(scripted, text, times):
    first, second = clip(scripted, 4.0), clip(scripted, 4.0)
    pack = PackedWindow([first, second], [0.0, 5.0], gap_s=1.0)
    pack.complete(outcome(scripted, [(0.0, text, 9.0)], word_times=times))
    assert pack.cuts == 0 and pack.retried == ["straddle", "straddle"]


def test_a_clip_in_a_straddling_segment_where_the_model_stopped_is_retried_once(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 8.0)
    pack = PackedWindow([first, second], [0.0, 5.0], gap_s=1.0)
    # One segment runs from the first clip into the second, and the model stops there.
    pack.complete(outcome(scripted, [(0.0, " One two three.", 7.0)], final=8.0))
    assert pack.retried == ["straddle", "straddle"], "the second clip is not counted again as not reached"
    assert first.packable and second.packable


def test_clips_that_ran_together_are_never_packed_side_by_side_again(scripted):
    first, second, third = clip(scripted, 4.0), clip(scripted, 4.0), clip(scripted, 4.0)
    PackedWindow([first, second, third], [0.0, 5.0, 10.0], gap_s=1.0).complete(
        outcome(scripted, [(0.0, " One two three four.", 7.0), (10.1, " Five.", 13.9)]))
    others = [clip(scripted, 4.0) for _ in range(2)]
    units = packs([first, second, *others], gap_s=1.0, window_s=30.0)
    assert not any(first.transcription in u.transcriptions and second.transcription in u.transcriptions for u in units)


def test_a_segment_across_a_gap_in_a_clips_second_pack_leaves_it_a_last_resort(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 4.0)
    for part in (first, second):
        part.rung = Rung.SECOND_PACK
    PackedWindow([first, second], [0.0, 5.0], gap_s=1.0).complete(outcome(scripted, [(0.0, " One two three.", 7.0)]))
    assert first.rung == Rung.LAST_RESORT and second.rung == Rung.LAST_RESORT
    assert first.packable and not first.transcription.finished and not first.refused


def last_resort_clips(scripted, *seconds: float) -> list[Clip]:
    clips = [clip(scripted, s) for s in seconds]
    for part in clips:
        part.rung = Rung.LAST_RESORT  # two packs tried and failed
    return clips


def test_clips_that_failed_two_packs_share_a_window_two_by_two_far_apart(scripted):
    clips = last_resort_clips(scripted, 4.0, 3.0, 5.0)
    units = packs(clips, gap_s=2.0, window_s=30.0)
    pairs = [u for u in units if isinstance(u, PackedWindow)]
    assert len(pairs) == 1 and len(units) == 2, "two share a window; the third, with no partner, goes alone"
    assert pairs[0].clips == clips[:2]
    assert pairs[0].offsets[1] - clips[0].transcription.duration >= LAST_GAP_S


def test_a_batch_is_not_held_back_for_room_in_a_last_resort_window(scripted):
    single, *pair = last_resort_clips(scripted, 4.0, 3.0, 3.0)
    units = packs(pair, gap_s=2.0, window_s=30.0)
    fresh = clip(scripted, 4.0)
    registry = held(single, *pair, fresh)
    assert not has_room(units[0], registry, 2.0, 30.0)
    assert not has_room(single.transcription.next_window(), registry, 2.0, 30.0)
    assert has_room(fresh.transcription.next_window(), registry, 2.0, 30.0)


def test_last_resort_clips_that_met_before_are_not_paired(scripted):
    first, second = last_resort_clips(scripted, 4.0, 3.0)
    first.apart.add(second.id)
    units = packs([first, second], gap_s=2.0, window_s=30.0)
    assert not any(isinstance(u, PackedWindow) for u in units)


def test_last_resort_clips_of_two_tenants_are_not_paired(scripted):
    first, second = last_resort_clips(scripted, 4.0, 3.0)
    first.tenant, second.tenant = "a", "b"
    units = packs([first, second], gap_s=2.0, window_s=30.0)
    assert not any(isinstance(u, PackedWindow) for u in units)


def test_clips_of_two_tenants_are_not_packed_together(scripted):
    clips = [clip(scripted, 4.0) for _ in range(4)]
    for n, one in enumerate(clips):
        one.tenant = "ab"[n % 2]
    units = packs(clips, gap_s=1.0, window_s=30.0)
    assert sorted(sorted(clips.index(c) for c in u.clips) for u in units) == [[0, 2], [1, 3]]


def test_a_clip_whose_last_resort_pair_fails_is_decoded_alone(scripted):
    first, second = last_resort_clips(scripted, 4.0, 4.0)
    pair, = packs([first, second], gap_s=2.0, window_s=30.0)
    reach = pair.offsets[1] + 2.0
    pair.complete(outcome(scripted, [(0.0, " One two three.", reach)]))
    assert first.refused == second.refused == "straddle"
    assert not first.packable and not first.transcription.finished


def test_text_lying_wholly_in_a_gap_gives_both_neighbours_another_pack(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 4.0)
    PackedWindow([first, second], [0.0, 8.0], gap_s=4.0).complete(
        outcome(scripted, [(0.0, " One.", 3.8), (4.6, " Thank you.", 7.4), (8.0, " Two.", 11.8)]))
    assert not first.transcription.finished and not second.transcription.finished
    assert first.packable and second.packable
    assert second.id in first.apart


def test_a_clip_the_model_reached_without_text_gets_another_pack_then_a_last_resort_then_is_decoded_alone(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 4.0)
    PackedWindow([first, second], [0.0, 5.0], gap_s=1.0).complete(outcome(scripted, [(0.0, " One.", 3.8)]))
    assert first.transcription.finished
    assert second.packable and not second.transcription.finished
    third = clip(scripted, 4.0)
    PackedWindow([third, second], [0.0, 5.0], gap_s=1.0).complete(outcome(scripted, [(0.0, " Three.", 3.8)]))
    assert second.rung == Rung.LAST_RESORT and second.packable and not second.transcription.finished
    fourth = last_resort_clips(scripted, 4.0)[0]
    PackedWindow([fourth, second], [0.0, 12.0], gap_s=1.0).complete(outcome(scripted, [(0.0, " Four.", 3.8)]))
    assert second.refused == "no_text" and not second.packable and not second.transcription.finished


def test_a_clip_a_pack_did_not_reach_goes_first_in_its_next_pack(scripted):
    clips = [clip(scripted, 4.0) for _ in range(3)]
    clips[2].rung = Rung.SECOND_PACK
    units = packs(clips, gap_s=1.0, window_s=30.0)
    assert len(units) == 1 and units[0].clips[0] is clips[2]


def test_clips_after_where_the_model_stopped_are_packed_again(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 8.0)
    pack = PackedWindow([first, second], [0.0, 5.0], gap_s=1.0)
    # Two timestamps in a row at the end: the model stopped at 6.0 s with more to come.
    pack.complete(outcome(scripted, [(0.0, " One.", 3.8), (5.0, " Two", 6.0)], final=6.0))
    assert first.transcription.finished
    assert not second.transcription.finished and not second.refused and second.packable


def test_a_pack_is_silent_from_its_last_clip_to_the_windows_end(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 5.0)
    audio = PackedWindow([first, second], [0.0, 6.0], gap_s=2.0).audio()
    assert len(audio) == 30 * 16000, "the window is filled with samples, not left to feature padding"
    assert np.all(audio[11 * 16000 :] == 0) and np.all(audio[6 * 16000 : 11 * 16000] == 0.1)


def test_a_clip_the_model_stopped_short_of_in_its_second_pack_gets_a_last_resort(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 8.0)
    second.rung = Rung.SECOND_PACK
    PackedWindow([first, second], [0.0, 5.0], gap_s=1.0).complete(
        outcome(scripted, [(0.0, " One.", 3.8), (5.0, " Two", 6.0)], final=6.0))
    assert second.rung == Rung.LAST_RESORT and second.packable and not second.transcription.finished


def two_clips_scored(scripted, avg_logprob: float, no_speech_prob: float,
                     first: Clip | None = None) -> tuple[Clip, Clip]:
    """Two packed clips, each with its own segment, decoded with the given scores."""
    first, second = first or clip(scripted, 4.0), clip(scripted, 4.0)
    tokens = outcome(scripted, [(0.0, " One.", 3.8), (5.0, " Two.", 8.8)]).generated.tokens
    scored = Outcome(Generated(tokens, -5.0, no_speech_prob), avg_logprob, 0.0, 1.2)
    PackedWindow([first, second], [0.0, 5.0], gap_s=1.0).complete(scored)
    return first, second


def test_clips_of_a_window_that_would_need_temperature_fallback_get_another_pack_apart(scripted):
    first, second = two_clips_scored(scripted, avg_logprob=-2.0, no_speech_prob=0.01)
    assert not first.transcription.finished and not second.transcription.finished
    assert first.packable and second.packable and second.id in first.apart


def test_a_clip_whose_packs_keep_needing_temperature_fallback_is_decoded_alone(scripted):
    first, _ = two_clips_scored(scripted, avg_logprob=-2.0, no_speech_prob=0.01)
    two_clips_scored(scripted, avg_logprob=-2.0, no_speech_prob=0.01, first=first)
    assert first.rung == Rung.LAST_RESORT
    two_clips_scored(scripted, avg_logprob=-2.0, no_speech_prob=0.01, first=first)
    assert first.refused == "fallback" and not first.packable


def test_a_pack_with_no_speech_and_no_confident_text_is_unpacked_as_silent(scripted):
    first, second = two_clips_scored(scripted, avg_logprob=-1.5, no_speech_prob=0.9)
    assert first.refused == second.refused == "silent"


def test_a_pack_with_a_high_no_speech_probability_but_confident_text_keeps_it(scripted):
    # Whisper's rule: a window is skipped as silence only if its text is improbable too. A pack
    # that opens with a quiet clip can score high on no-speech and still be read confidently.
    first, second = two_clips_scored(scripted, avg_logprob=-0.2, no_speech_prob=0.9)
    assert first.transcription.result()["text"] == " One." and second.transcription.result()["text"] == " Two."


def test_only_clips_of_one_language_and_options_share_a_pack(scripted):
    clips = [clip(scripted, 5.0, "en"), clip(scripted, 5.0, "de"), clip(scripted, 5.0, "en"),
             clip(scripted, 5.0, "en", beam_size=1), clip(scripted, 5.0, "de")]
    units = packs(clips, gap_s=1.0, window_s=30.0)
    packed = [u for u in units if isinstance(u, PackedWindow)]
    groups = sorted(sorted(clips.index(p) for p in pack.clips) for pack in packed)
    assert groups == [[0, 2], [1, 4]]
    assert len(units) == 3, "the beam-1 clip stays a window of its own"


def test_a_pack_never_holds_more_than_one_window_of_audio(scripted):
    clips = [clip(scripted, seconds) for seconds in (12.0, 9.0, 8.0, 7.0, 3.0, 2.0)]
    units = packs(clips, gap_s=1.0, window_s=30.0)
    for unit in units:
        if isinstance(unit, PackedWindow):
            assert unit.spans()[-1][1] <= 30.0
            starts = [start for start, _ in unit.spans()]
            ends = [end for _, end in unit.spans()]
            assert all(later - earlier >= 1.0 for earlier, later in zip(ends, starts[1:])), "a gap between clips"
    assert sum(len(u.parts) if isinstance(u, PackedWindow) else 1 for u in units) == len(clips)


def test_consecutive_uploads_are_dealt_to_different_packs(scripted):
    # Eight 6 s clips need two windows: dealt like cards, each pack holds every other upload,
    # so no two consecutive uploads (often two halves of one recording) sit side by side.
    clips = [clip(scripted, 6.0) for _ in range(8)]
    units = packs(clips, gap_s=1.0, window_s=30.0)
    assert all(isinstance(u, PackedWindow) for u in units)
    assert [[clips.index(p) for p in u.clips] for u in units] == [[0, 2, 4, 6], [1, 3, 5, 7]]


def test_a_clip_that_does_not_fit_its_turn_goes_to_the_next_pack_with_room(scripted):
    clips = [clip(scripted, seconds) for seconds in (14.0, 14.0, 9.0, 9.0, 9.0)]
    units = packs(clips, gap_s=1.0, window_s=30.0)
    owners = [c.transcription for c in clips]
    layout = [[clips.index(p) for p in u.clips] if isinstance(u, PackedWindow) else [owners.index(u.owner)] for u in units]
    assert sorted(sum(layout, [])) == [0, 1, 2, 3, 4], "every clip is in exactly one unit"
    assert all(sum(clips[i].transcription.duration for i in pack) + len(pack) - 1 <= 30.0 for pack in layout)
    assert len(layout) == 3


def test_with_a_batch_of_packs_capped_the_packs_that_run_first_are_full(scripted):
    # Twelve 6 s clips need three windows; with room for two packs in a batch, the first two
    # packs take four clips each (27 s of 30), and the rest wait behind them.
    clips = [clip(scripted, 6.0) for _ in range(12)]
    units = packs(clips, gap_s=1.0, window_s=30.0, max_packs=2)
    first, second, *rest = [[clips.index(p) for p in u.clips] for u in units]
    assert len(first) == len(second) == 4
    assert 0 in first, "the oldest clip runs first"
    assert sorted(first + second + sum(rest, [])) == list(range(12))
    assert all(later not in first + second for later in sum(rest, []))


def test_a_clip_longer_than_a_pack_allows_still_gets_a_window_when_packs_are_capped(scripted):
    clips = [clip(scripted, 29.99), clip(scripted, 29.99)]
    units = packs(clips, gap_s=1.0, window_s=30.0, max_packs=1)
    assert [u.owner for u in units] == [c.transcription for c in clips]


def test_clips_of_unknown_language_long_recordings_and_prompted_ones_are_not_packed(scripted):
    unknown = clip(scripted, 5.0, None)
    prompted = clip(scripted, 5.0, initial_prompt="Glossary")
    audio = np.full(16000 * 40, 0.1, np.float32)
    long = Clip(Transcription(scripted.features(audio), DecodingOptions(language="en"), scripted), audio)
    assert not unknown.packable and not prompted.packable and not long.packable
    assert clip(scripted, 5.0).packable


# -- the real model on real speech ------------------------------------------------------------

UNRELATED = [  # short English clips from different corpora and speakers
    "en_jfk_inaugural.flac", "en_timit_LDC93S1.wav", "en_cmuarctic_a0024.wav",
    "en_harvard_sb_spk2_snt1.wav", "en_ljspeech_LJ001-0001.wav", "en_ami_ES2011a_headset_40-46s.wav",
    "en_common_voice_en_22058267.mp3", "en_cards_001.wav",
]


MANIFEST = {item["file"]: item for item in map(json.loads, (EVAL / "manifest.jsonl").read_text().splitlines())}


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def transcribe_all(engine, names: list[str], pack: bool) -> tuple[dict[str, dict], Scheduler]:
    # A long wait: the engine holds back only while clips are still being prepared, so that all
    # 8 are in view at once however slow preparation is on a loaded machine.
    config = SchedulerConfig(pack_clips=pack, max_batch_size=8, max_wait_ms=10_000)
    source, scheduler = run_jobs(engine, [Job(name, str(EVAL / name)) for name in names], config,
                                 DecodingOptions(language="en"))
    return source.results, scheduler


@pytest.fixture(scope="module")
def packed_and_alone(engine):
    names = [n for n in UNRELATED if (EVAL / n).exists()]
    packed, scheduler = transcribe_all(engine, names, pack=True)
    alone, _ = transcribe_all(engine, names, pack=False)
    return names, packed, alone, scheduler.stats()


def test_packing_real_clips_decodes_several_in_one_window(packed_and_alone):
    names, _, _, stats = packed_and_alone
    assert stats["clips_packed"] >= 4
    assert stats["windows_decoded"] < len(names)


def test_packed_clips_hold_no_words_of_other_clips(packed_and_alone):
    names, packed, alone, _ = packed_and_alone
    for name in names:
        own = set(words(alone[name]["text"]))
        for other in names:
            if other == name:
                continue
            foreign = set(words(alone[other]["text"])) - own - {"the", "a", "of", "and", "in", "to", "is", "it", "i"}
            leaked = foreign & set(words(packed[name]["text"]))
            assert len(leaked) <= 1, f"{name} took words of {other}: {sorted(leaked)}"


def test_packed_text_is_as_close_to_the_human_reference_as_decoding_alone(packed_and_alone):
    names, packed, alone, _ = packed_and_alone
    for name in names:
        ref = words(MANIFEST[name]["ref"])
        packed_score = SequenceMatcher(None, words(packed[name]["text"]), ref).ratio()
        alone_score = SequenceMatcher(None, words(alone[name]["text"]), ref).ratio()
        assert packed_score >= alone_score - 0.1, (name, packed[name]["text"], alone[name]["text"])


def test_packed_segments_lie_within_their_own_clip(packed_and_alone):
    names, packed, _, _ = packed_and_alone
    for name in names:
        for segment in packed[name]["segments"]:
            # Whisper itself may end a clip's last segment past its end; it never starts one there.
            assert 0 <= segment["start"] < MANIFEST[name]["duration_s"] and segment["start"] <= segment["end"]
            assert segment["seek"] == 0


# Pairs the model reads as one text when packed: a sentence and the one that follows it in a
# recording, and a clip ending on a comma beside one that starts a new sentence.
READ_ON = [("en_ljspeech_LJ001-0001.wav", "en_ljspeech_LJ001-0002.wav"),
           ("en_ljspeech_LJ050-0131.wav", "en_mfa_mfa_thoughts.flac")]


def decode_pack(engine, names: list[str]) -> PackedWindow:
    """The clips packed in one window, in this order, and decoded."""
    clips = []
    for name in names:
        audio = decode(str(EVAL / name), engine.sampling_rate)
        clips.append(Clip(Transcription(engine.features(audio), DecodingOptions(language="en"), engine), audio))
    pack, = packs(clips, gap_s=2.0, window_s=30.0)
    assert isinstance(pack, PackedWindow) and pack.clips == clips
    pack.complete(decode_windows(engine, [pack])[0])
    return pack


def test_real_segments_across_a_gap_are_cut_into_each_clips_own_words(engine):
    packs = [decode_pack(engine, list(pair)) for pair in READ_ON if all((EVAL / n).exists() for n in pair)]
    assert sum(pack.cuts for pack in packs) >= 1, "the model wrote one segment over a gap in none of the pairs"
    for pair, pack in zip(READ_ON, packs):
        for name, part, other in zip(pair, pack.parts, reversed(pair)):
            if not part.finished:
                continue  # sent back: decoded again elsewhere
            text = words(part.result()["text"])
            ref, foreign = words(MANIFEST[name]["ref"]), set(words(MANIFEST[other]["ref"]))
            assert SequenceMatcher(None, text, ref).ratio() >= 0.85, (name, part.result()["text"])
            assert not (set(text) - set(ref)) & foreign, f"{name} took words of {other}"


def test_a_short_clip_decoded_alone_with_packing_on_reads_as_well_in_every_language(engine):
    # A clip alone in its window (here: one of each language the eval set has, language given)
    # is encoded, with packing on, only as far as packs fill, as packs are.
    first_of_each: dict[str, str] = {}
    for name, item in MANIFEST.items():
        if item["duration_s"] <= 20:
            first_of_each.setdefault(item["lang"], name)
    assert len(first_of_each) >= 8
    for lang, name in first_of_each.items():
        job, options = [Job(name, str(EVAL / name))], DecodingOptions(language=lang)
        cheap, scheduler = run_jobs(engine, job, SchedulerConfig(pack_clips=True), options)
        exact, _ = run_jobs(engine, job, SchedulerConfig(pack_clips=False), options)
        assert scheduler.stats()["windows_decoded"] == 1
        ref = MANIFEST[name]["ref"].lower()
        scores = [SequenceMatcher(None, r.results[name]["text"].lower(), ref).ratio() for r in (cheap, exact)]
        assert scores[0] >= scores[1] - 0.15, (name, cheap.results[name]["text"], exact.results[name]["text"])


def test_a_clip_is_never_kept_apart_from_a_clip_long_gone(scripted):
    # Clips are told apart by ids that are never reused, unlike id() of collected objects.
    import gc

    first = clip(scripted, 4.0)
    met = clip(scripted, 4.0)
    first.apart.add(met.id)
    gone_id = met.id
    del met
    gc.collect()
    newcomers = [clip(scripted, 4.0) for _ in range(50)]
    assert all(newcomer.id != gone_id and not first.kept_apart_from(newcomer) for newcomer in newcomers)
