"""Transcript writers follow Whisper's own conventions."""

from asr_server.text.formats import render

RESULT = {
    "text": " Hello there. General Kenobi.",
    "segments": [
        {"start": 0.0, "end": 1.5, "text": " Hello there."},
        {"start": 3661.25, "end": 3662.0, "text": " General --> Kenobi."},
    ],
    "language": "en",
}


def test_srt_numbers_blocks_and_uses_comma_milliseconds_with_hours():
    assert render(RESULT, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
        "2\n01:01:01,250 --> 01:01:02,000\nGeneral -> Kenobi.\n"
    )


def test_vtt_has_a_header_and_dot_milliseconds_always_with_hours():
    assert render(RESULT, "vtt") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n"
        "01:01:01.250 --> 01:01:02.000\nGeneral -> Kenobi.\n"
    )


def test_txt_is_one_stripped_segment_per_line():
    assert render(RESULT, "txt") == "Hello there.\nGeneral --> Kenobi.\n"
