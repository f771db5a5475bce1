"""Clustering and labelling without a model: synthetic embeddings and hand-made turns."""

from __future__ import annotations

import numpy as np
import pytest

from asr_server.service.task_options import OptionError, parse_speakers
from asr_server.speakers.clustering import Hints, cluster, first_seen_order
from asr_server.speakers.labels import Turn, label_result, speaker_name
from asr_server.text.formats import render


def voices(counts: list[int], seed: int = 3, spread: float = 0.15) -> np.ndarray:
    """Unit vectors around one random centre per voice, ``counts[i]`` of voice i, in turns."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(counts), 256))
    rows = [centres[i] + spread * np.linalg.norm(centres[i]) / 16 * rng.standard_normal(256)
            for i, count in enumerate(counts) for _ in range(count)]
    out = np.abs(np.array(rows))  # GE2E embeddings are positive (a ReLU before the norm)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_two_voices_are_two_clusters_numbered_by_first_appearance():
    embeddings = voices([5, 4])
    labels = cluster(embeddings[::-1].copy())  # the second voice speaks first
    assert labels.tolist() == [0] * 4 + [1] * 5


def test_one_voice_is_one_cluster_and_no_windows_none():
    assert set(cluster(voices([12])).tolist()) == {0}
    assert cluster(np.zeros((0, 256))).tolist() == []
    assert cluster(voices([1])).tolist() == [0]


def test_hints_set_the_count():
    embeddings = voices([4, 4, 4])
    assert len(set(cluster(embeddings).tolist())) == 3
    assert set(cluster(embeddings, Hints(num_speakers=2)).tolist()) == {0, 1}
    assert set(cluster(embeddings, Hints(max_speakers=1)).tolist()) == {0}
    assert len(set(cluster(voices([6, 6]), Hints(min_speakers=3)).tolist())) == 3


def test_first_seen_order_and_names():
    assert first_seen_order(np.array([7, 7, 2, 7, 5])).tolist() == [0, 0, 1, 0, 2]
    assert [speaker_name(i) for i in (0, 1, 25, 26)] == ["A", "B", "Z", "A2"]


def word(text: str, start: float, end: float) -> dict:
    return {"word": text, "start": start, "end": end, "probability": 0.9}


RESULT = {
    "text": " Hello there. Hi. How are you?",
    "language": "en",
    "segments": [
        {"id": 0, "seek": 0, "start": 0.0, "end": 3.0, "text": " Hello there. Hi.", "tokens": [1, 2, 3],
         "words": [word(" Hello", 0.0, 0.5), word(" there.", 0.5, 1.0), word(" Hi.", 2.0, 2.6)]},
        {"id": 1, "seek": 0, "start": 3.2, "end": 5.0, "text": " How are you?", "tokens": [4],
         "words": [word(" How", 3.2, 3.6), word(" are", 3.6, 4.0), word(" you?", 4.0, 4.8)]},
    ],
}
TURNS = [Turn(0.0, 1.2, 1), Turn(1.8, 2.8, 0), Turn(3.1, 5.0, 1)]


def test_a_segment_is_cut_where_the_speaker_changes_and_labels_follow_first_speech():
    labelled = label_result(RESULT, TURNS, keep_words=False)
    assert [(s["speaker"], s["text"], s["start"], s["end"]) for s in labelled["segments"]] == [
        ("A", " Hello there.", 0.0, 1.0), ("B", " Hi.", 2.0, 3.0), ("A", " How are you?", 3.2, 5.0)]
    assert [s["id"] for s in labelled["segments"]] == [0, 1, 2]
    assert labelled["speakers"] == ["A", "B"]
    assert labelled["text"] == RESULT["text"]
    assert all("words" not in s for s in labelled["segments"])


def test_words_carry_their_speaker_when_kept():
    labelled = label_result(RESULT, TURNS, keep_words=True)
    assert [(w["word"], w["speaker"]) for s in labelled["segments"] for w in s["words"]] == [
        (" Hello", "A"), (" there.", "A"), (" Hi.", "B"), (" How", "A"), (" are", "A"), (" you?", "A")]


def test_no_turns_no_speakers():
    labelled = label_result(RESULT, [], keep_words=False)
    assert labelled["speakers"] == [] and all(s["speaker"] is None for s in labelled["segments"])


def test_a_word_between_turns_takes_the_nearest_one():
    labelled = label_result(RESULT, [Turn(0.0, 0.4, 0), Turn(4.5, 5.0, 1)], keep_words=True)
    assert [w["speaker"] for s in labelled["segments"] for w in s["words"]] == ["A", "A", "A", "B", "B", "B"]


def test_text_formats_name_the_speaker_at_each_change():
    labelled = label_result(RESULT, [Turn(0.0, 2.8, 0), Turn(3.1, 5.0, 1)], keep_words=False)
    labelled["segments"].append({**labelled["segments"][-1], "id": 2, "start": 5.0, "end": 6.0, "text": " Fine."})
    assert render(labelled, "txt") == "A: Hello there. Hi.\nB: How are you?\nFine.\n"
    srt = render(labelled, "srt")
    assert "\n[A] Hello there. Hi.\n" in srt and "\n[B] How are you?\n" in srt and "\nFine.\n" in srt
    vtt = render(labelled, "vtt")
    assert "\n<v A>Hello there. Hi.\n" in vtt and "\n<v B>How are you?\n" in vtt


@pytest.mark.parametrize(("fields", "field"), [
    ({"diarize": "maybe"}, "diarize"),
    ({"diarize": "true", "num_speakers": "two"}, "num_speakers"),
    ({"diarize": "true", "num_speakers": "0"}, "num_speakers"),
    ({"diarize": "true", "max_speakers": "21"}, "max_speakers"),
    ({"diarize": "true", "min_speakers": "3", "max_speakers": "2"}, "min_speakers"),
    ({"diarize": "true", "num_speakers": "4", "max_speakers": "3"}, "num_speakers"),
    ({"num_speakers": "2"}, "num_speakers"),
])
def test_a_bad_hint_names_its_field(fields, field):
    with pytest.raises(OptionError) as raised:
        parse_speakers(fields)
    assert raised.value.field == field


def test_hints_are_kept_and_no_diarize_is_none():
    assert parse_speakers({}) is None
    assert parse_speakers({"diarize": "false"}) is None
    assert parse_speakers({"diarize": "true", "min_speakers": "2", "max_speakers": "3"}) == {
        "min_speakers": 2, "max_speakers": 3}
