"""Packing short clips into one window: each clip gets its own text, or is decoded alone.

The rules are checked on scripted decoder outputs (exact token control); the proof that packing
keeps clips apart on real speech runs the real model on real clips from ../shared/eval.
"""

from __future__ import annotations

import json
import re
import sys
from difflib import SequenceMatcher

import numpy as np
import pytest

from asr_server.engine.audio import decode
from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.engine.whisper_engine import Generated
from asr_server.whisper.batch_decoding import decode_windows
from asr_server.whisper.pack_attribution import MARGIN_S, PackedWindow
from asr_server.whisper.pack_clips import Clip, Clips
from asr_server.whisper.pack_layout import pack_windows
from asr_server.scheduling.scheduler import Scheduler
from asr_server.whisper.transcription import Transcription
from asr_server.whisper.units import Outcome
from conftest import EVAL, REPO, Job, run_jobs
from scripted_engine import ScriptedEngine

sys.path.insert(0, str(REPO / "benchmarks"))
from word_attribution import foreign_words  # noqa: E402


def clip(engine: ScriptedEngine, seconds: float, language: str | None = "en", **options) -> Clip:
    audio = np.full(int(16000 * seconds), 0.1, np.float32)
    return Clip(Transcription(engine.features(audio), DecodingOptions(language=language, **options), engine))


def held(*clips: Clip) -> Clips:
    """The clips as a scheduler holds them."""
    registry = Clips()
    for one in clips:
        registry.add(one)
    return registry


def packs(clips: list[Clip], **layout) -> list:
    """pack_windows over these clips' windows, as the scheduler calls it."""
    return pack_windows([c.transcription.next_window() for c in clips], held(*clips), **layout)


def outcome(engine: ScriptedEngine, pieces: list[tuple[float, str, float]], *, avg_logprob: float = -0.2,
            no_speech_prob: float = 0.01, temperature: float = 0.0) -> Outcome:
    """One clip's decoder result after its forced start timestamp: (start, text, end) segments
    with times in the window, Whisper's token layout."""
    tok = engine.tokenizer("transcribe", "en")
    tokens: list[int] = []
    for n, (start, text, end) in enumerate(pieces):
        if n:
            tokens.append(tok.timestamp_begin + round(start / 0.02))
        tokens += [*tok.encode(text), tok.timestamp_begin + round(end / 0.02)]
    return Outcome(Generated(tokens, -5.0, no_speech_prob), avg_logprob, temperature, 1.2)


@pytest.fixture
def scripted(hf_tokenizer):  # noqa: F811
    return ScriptedEngine(hf_tokenizer)


def test_each_clip_is_prompted_with_its_own_start_time(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 5.0)
    pack = PackedWindow([first, second], [0.0, 6.0])
    tok = scripted.tokenizer("transcribe", "en")
    assert pack.prompts() == [[*tok.sot_sequence, tok.timestamp_begin], [*tok.sot_sequence, tok.timestamp_begin + 300]]


def test_each_clip_reads_the_windows_encoding_only_over_its_own_span(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 5.0)
    pack = PackedWindow([first, second], [0.0, 6.0])
    pack.features()
    encoded = np.arange(1500, dtype=np.float32)[:, None] + np.ones((1500, 80), np.float32)
    own_first, own_second = pack.encodings(encoded)
    silence = scripted.silence(80, 0.1 - 2.0)  # the clips' own floor: 8 (log10) below their loudest
    margin = round(MARGIN_S / 0.02)
    assert np.array_equal(own_first[: 200 + margin], encoded[: 200 + margin])
    assert np.array_equal(own_first[200 + margin + 1 :], silence[200 + margin + 1 :]), "the second clip is hidden"
    assert np.array_equal(own_second[: 300 - margin], silence[: 300 - margin]), "the first clip is hidden"
    assert np.array_equal(own_second[300 - margin : 550 + margin], encoded[300 - margin : 550 + margin])
    assert np.array_equal(own_second[550 + margin + 1 :], silence[550 + margin + 1 :])


def test_a_clips_segments_have_times_and_timestamp_tokens_of_the_clip(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 5.0)
    pack = PackedWindow([first, second], [0.0, 6.0])
    pack.complete([outcome(scripted, [(0.0, " One two.", 3.9)]),
                   outcome(scripted, [(6.0, " Three.", 8.0), (8.0, " Four.", 10.8)])])
    assert first.transcription.result()["text"] == " One two."
    assert second.transcription.result()["text"] == " Three. Four."
    tok = scripted.tokenizer("transcribe", "en")
    segments = second.transcription.result()["segments"]
    assert [(s["id"], s["seek"], s["start"], s["end"]) for s in segments] == [(0, 0, 0.0, 2.0), (1, 0, 2.0, 4.8)]
    for segment in segments:
        assert segment["tokens"][0] == tok.timestamp_begin + round(segment["start"] / 0.02)
        assert segment["tokens"][-1] == tok.timestamp_begin + round(segment["end"] / 0.02)
    assert first.transcription.finished and second.transcription.finished


def test_a_segment_end_past_the_clip_is_cut_to_its_end_with_its_timestamp_token(scripted):
    only, other = clip(scripted, 4.0), clip(scripted, 3.0)
    PackedWindow([only, other], [0.0, 6.0]).complete(
        [outcome(scripted, [(0.0, " One two.", 4.6)]), outcome(scripted, [(6.0, " Three.", 8.8)])])
    segment, = only.transcription.result()["segments"]
    tok = scripted.tokenizer("transcribe", "en")
    assert segment["end"] == 4.0 and segment["tokens"][-1] == tok.timestamp_begin + 200


def test_text_written_after_a_clips_end_is_not_kept(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 3.0)
    PackedWindow([first, second], [0.0, 6.0]).complete(
        [outcome(scripted, [(0.0, " One two.", 3.9), (4.2, " Thank you.", 5.6)]),
         outcome(scripted, [(6.0, " Three.", 8.8)])])
    assert first.transcription.result()["text"] == " One two."


def test_a_clips_fields_are_those_of_its_own_decoding(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 3.0)
    PackedWindow([first, second], [0.0, 6.0]).complete(
        [outcome(scripted, [(0.0, " One two.", 3.9)], avg_logprob=-0.3, no_speech_prob=0.02, temperature=0.0),
         outcome(scripted, [(6.0, " Three.", 8.8)], avg_logprob=-0.7, no_speech_prob=0.2, temperature=0.4)])
    one, = first.transcription.result()["segments"]
    two, = second.transcription.result()["segments"]
    assert (one["avg_logprob"], one["no_speech_prob"], one["temperature"]) == (-0.3, 0.02, 0.0)
    assert (two["avg_logprob"], two["no_speech_prob"], two["temperature"]) == (-0.7, 0.2, 0.4)


def test_a_clip_whose_own_decoding_is_silent_is_decoded_alone(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 3.0)
    pack = PackedWindow([first, second], [0.0, 6.0])
    pack.complete([outcome(scripted, [(0.0, " One two.", 3.9)]),
                   outcome(scripted, [(6.0, " Hmm.", 8.8)], avg_logprob=-1.5, no_speech_prob=0.9)])
    assert first.transcription.finished
    assert second.refused == "silent" and not second.packable and not second.transcription.finished
    assert pack.refused == ["silent"]


def test_a_high_no_speech_probability_with_confident_text_keeps_the_text(scripted):
    # Whisper's rule: a window is skipped as silence only if its text is improbable too.
    only, other = clip(scripted, 4.0), clip(scripted, 3.0)
    PackedWindow([only, other], [0.0, 6.0]).complete(
        [outcome(scripted, [(0.0, " One.", 3.8)], avg_logprob=-0.2, no_speech_prob=0.9),
         outcome(scripted, [(6.0, " Two.", 8.8)])])
    assert only.transcription.result()["text"] == " One."


def test_a_clip_given_no_text_is_decoded_alone(scripted):
    first, second = clip(scripted, 4.0), clip(scripted, 3.0)
    PackedWindow([first, second], [0.0, 6.0]).complete(
        [outcome(scripted, [(0.0, " One two.", 3.9)]), outcome(scripted, [(6.0, " ", 6.4)])])
    assert second.refused == "no_text" and not second.transcription.finished


def test_a_clip_whose_own_decoding_needs_fallback_alone_is_decoded_again_warmer(scripted):
    # The scripted engine scores a prompt at temperature 0 badly for the second clip only.
    first, second = clip(scripted, 4.0), clip(scripted, 3.0)
    pack = PackedWindow([first, second], [0.0, 6.0])
    tok = scripted.tokenizer("transcribe", "en")

    def generate(encoded, prompts, params):
        scripted.generate_calls.append(prompts)
        return [Generated([*tok.encode(" Word."), prompt[-1] + 100],
                          -3.0 if prompt[-1] == tok.timestamp_begin + 300 and params.temperature == 0 else -0.1, 0.01)
                for prompt in prompts]

    scripted.generate = generate
    outcomes, = decode_windows(scripted, [pack])
    assert [len(call) for call in scripted.generate_calls] == [2, 1], "only the second clip is decoded again"
    assert [o.temperature for o in outcomes] == [0.0, 0.2]
    pack.complete(outcomes)
    assert first.transcription.result()["segments"][0]["temperature"] == 0.0
    assert second.transcription.result()["segments"][0]["temperature"] == 0.2


def test_clips_that_share_a_window_are_decoded_in_one_generate_call(scripted):
    clips = [clip(scripted, 4.0) for _ in range(3)]
    pack, = packs(clips, gap_s=2.0, window_s=30.0)
    decode_windows(scripted, [pack])
    assert scripted.encode_calls == [1] and [len(call) for call in scripted.generate_calls[:1]] == [3]


def test_clips_of_two_tenants_are_not_packed_together(scripted):
    clips = [clip(scripted, 4.0) for _ in range(4)]
    for n, one in enumerate(clips):
        one.tenant = "ab"[n % 2]
    units = packs(clips, gap_s=1.0, window_s=30.0)
    assert sorted(sorted(clips.index(c) for c in u.clips) for u in units) == [[0, 2], [1, 3]]


def test_each_clip_keeps_its_own_features_and_floor_and_the_pack_is_silent_after_the_last(scripted):
    quiet, loud = clip(scripted, 4.0), clip(scripted, 5.0)
    quiet.transcription.features[:] = -0.5
    loud.transcription.features[:] = 0.5
    features = PackedWindow([quiet, loud], [0.0, 6.0]).features()
    assert np.array_equal(features[:, :400], quiet.transcription.features[:, :400])
    assert np.array_equal(features[:, 600:1100], loud.transcription.features[:, :500])
    assert np.all(features[:, 400:500] == -2.5) and np.all(features[:, 500:600] == -1.5), "each side's own floor"
    assert np.all(features[:, 1100:] == -1.5), "silence to the window's end"


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
    long = Clip(Transcription(scripted.features(audio), DecodingOptions(language="en"), scripted))
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
    texts = {name: packed[name]["text"] for name in names}
    found = foreign_words(texts, {n: MANIFEST[n]["ref"] for n in names}, {n: alone[n]["text"] for n in names})
    assert found == {}, found


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


# How far a packed clip's figures may lie from the same clip's decoded alone, where the texts
# agree: the encoder pass over the whole window shifts the log-probabilities a little, and
# more the more its neighbours differ (en_timit_LDC93S1.wav's avg_logprob has been seen 0.12
# from its own alone, its text the same token for token).
# no_speech_prob is not among them: it is Whisper's estimate for the clip's own view of the
# window, its audio at its offset in silence, and rises the later the clip lies (measured:
# 0.61 packed against 0.005 alone for a clip read the same; docs/api.md).
FIELD_TOLERANCE = {"start": 0.1, "end": 0.1, "avg_logprob": 0.2, "compression_ratio": 0.05}


def test_a_packed_clips_fields_are_its_own_as_if_decoded_alone(packed_and_alone):
    names, packed, alone, _ = packed_and_alone
    compared = 0
    for name in names:
        ours, theirs = packed[name]["segments"], alone[name]["segments"]
        if [s["text"] for s in ours] != [s["text"] for s in theirs]:
            continue  # a different reading: its figures measure different text
        compared += 1
        for mine, exact in zip(ours, theirs):
            assert (mine["id"], mine["seek"], mine["temperature"]) == (exact["id"], exact["seek"], exact["temperature"])
            assert mine["tokens"][1:-1] == exact["tokens"][1:-1], "the same text tokens"
            begin = mine["tokens"][0] - round(mine["start"] / 0.02)
            assert mine["tokens"][-1] == begin + round(mine["end"] / 0.02), "timestamp tokens agree with the times"
            for key, tolerance in FIELD_TOLERANCE.items():
                assert abs(mine[key] - exact[key]) <= tolerance, (name, key, mine[key], exact[key])
    assert compared >= 3, "too few clips read the same packed and alone to compare their figures"


# Pairs the model read as one text when one decoder wrote both: a sentence and the one that
# follows it in a recording, and a clip ending on a comma beside one that starts a new sentence.
READ_ON = [("en_ljspeech_LJ001-0001.wav", "en_ljspeech_LJ001-0002.wav"),
           ("en_ljspeech_LJ050-0131.wav", "en_mfa_mfa_thoughts.flac")]


def decode_pack(engine, names: list[str]) -> PackedWindow:
    """The clips packed in one window, in this order, and decoded."""
    clips = []
    for name in names:
        audio = decode(str(EVAL / name), engine.sampling_rate)
        clips.append(Clip(Transcription(engine.features(audio), DecodingOptions(language="en"), engine)))
    pack, = packs(clips, gap_s=2.0, window_s=30.0)
    assert isinstance(pack, PackedWindow) and pack.clips == clips
    pack.complete(decode_windows(engine, [pack])[0])
    return pack


def test_clips_that_read_on_into_each_other_each_get_only_their_own_words(engine):
    for pair in READ_ON:
        pack = decode_pack(engine, list(pair))
        for name, part, other in zip(pair, pack.parts, reversed(pair)):
            assert part.finished, f"{name} was sent back: {pack.refused}"
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
