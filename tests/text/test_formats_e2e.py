"""Containers and codecs that FFmpeg decodes reach the model through PyAV: each made here from
real speech (jfk.flac) with PyAV's own encoders, then transcribed by a real server."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import AUDIO, SHARED, submit, wait_for_task


def transcode(source: Path, target: Path, container: str, codec: str, rate: int, with_video: bool = False) -> Path:
    with av.open(str(source)) as src, av.open(str(target), "w", format=container) as out:
        audio = out.add_stream(codec, rate=rate)
        audio.layout = "stereo"
        video = None
        if with_video:
            video = out.add_stream("mpeg4", rate=5)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        resampler = av.AudioResampler(format=audio.format.name, layout="stereo", rate=rate)
        seconds = 0.0
        for frame in src.decode(audio=0):
            for converted in resampler.resample(frame):
                for packet in audio.encode(converted):
                    out.mux(packet)
            seconds += frame.samples / frame.sample_rate
        for packet in audio.encode(None):
            out.mux(packet)
        if video is not None:
            for i in range(int(seconds * 5)):
                picture = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
                picture.pts, picture.time_base = i, Fraction(1, 5)
                for packet in video.encode(picture):
                    out.mux(packet)
            for packet in video.encode(None):
                out.mux(packet)
    return target


CASES = [
    ("speech.m4a", "mp4", "aac", 44100, False),
    ("speech.ogg", "ogg", "libopus", 48000, False),
    ("speech.webm", "webm", "libopus", 48000, False),
    ("speech.mp4", "mp4", "aac", 44100, True),
]


@pytest.mark.parametrize("name,container,codec,rate,with_video", CASES, ids=[c[0] for c in CASES])
def test_container_is_decoded_and_transcribed(server, tmp_path, name, container, codec, rate, with_video):
    path = transcode(AUDIO / "jfk.flac", tmp_path / name, container, codec, rate, with_video)
    response = wait_for_task(server.url, submit(server.url, path).json()["task_id"])
    assert response.status_code == 200, response.text
    assert "ask not what your country can do for you" in response.json()["result"]["text"]


def test_opus_speech_in_spanish_is_detected_and_transcribed(server):
    path = SHARED / "eval" / "es_mls_13697_11991_000000.opus"
    response = wait_for_task(server.url, submit(server.url, path).json()["task_id"])
    assert response.status_code == 200, response.text
    assert response.json()["result"]["language"] == "es"
