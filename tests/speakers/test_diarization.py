"""Speaker labels end to end, on conversations made here: espeak-ng's male and female voices
taking turns with pauses. The changes of speaker must be found where the turns change, with
labels stable over the recording, through the seed API, the OpenAI API and the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from asr_server.engine.audio import decode
from asr_server.speakers.diarize import diarize
from asr_server.speakers.encoder import load_encoder
from conftest import submit, wait_for_task, write_wav

pytestmark = pytest.mark.slow  # loads the voice encoder, or a server and its model

RATE = 16000
PAUSE_S = 0.8
TURNS = [  # (voice, sentence): two voices that differ, alternating
    ("en+m3", "Good morning. I wanted to ask you about the schedule for next week."),
    ("en+f3", "Sure. The meeting moved to Thursday afternoon, at three o'clock."),
    ("en+m3", "Thank you. Will the whole team be there?"),
    ("en+f3", "Yes, everyone confirmed yesterday evening, except the designers."),
    ("en+m3", "Then I will send them the notes after the meeting."),
    ("en+f3", "Good idea. I will book the large room on the second floor."),
]


def conversation(folder: Path, turns: list[tuple[str, str]]) -> tuple[Path, list[tuple[float, float, str]]]:
    """The turns spoken one after another with pauses between: the file and the truth
    (start, end, voice) of each turn."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: `make test-deps` installs it")
    pieces, truth, at = [], [], 0.0
    for n, (voice, text) in enumerate(turns):
        spoken = folder / f"turn{n}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(spoken), text], check=True, timeout=60)
        audio = decode(str(spoken), RATE)
        truth.append((at, at + len(audio) / RATE, voice))
        pieces += [audio, np.zeros(int(PAUSE_S * RATE), np.float32)]
        at += len(audio) / RATE + PAUSE_S
    return write_wav(folder / "conversation.wav", np.concatenate(pieces)), truth


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> tuple[Path, list[tuple[float, float, str]]]:
    return conversation(tmp_path_factory.mktemp("talk"), TURNS)


def voice_at(truth: list[tuple[float, float, str]], start: float, end: float) -> str:
    """The voice that speaks most of ``start``..``end``."""
    return max(truth, key=lambda t: min(end, t[1]) - max(start, t[0]))[2]


def runs(labels: list[str]) -> list[str]:
    """Labels with repeats in a row merged: the order in which speakers take turns."""
    return [label for n, label in enumerate(labels) if n == 0 or labels[n - 1] != label]


def test_the_onnx_export_embeds_as_torch_does_and_the_filterbank_is_librosas(talk, tmp_path):
    import librosa  # resemblyzer's own dependency

    from asr_server.speakers.encoder import Encoder, bundled_weights, export_onnx, mel_filters

    assert np.abs(mel_filters() - librosa.filters.mel(sr=RATE, n_fft=400, n_mels=40)).max() < 1e-7
    exported = Encoder(export_onnx(tmp_path / "ge2e.onnx"))
    original = Encoder(bundled_weights())
    audio = decode(str(talk[0]), RATE)
    mel = original.mel(audio)
    windows = np.stack([mel[s:s + 160] for s in range(0, len(mel) - 160, 80)])
    for batch in (windows[:1], windows[:7], windows):
        assert np.abs(exported.embed(batch) - original.embed(batch)).max() < 1e-4


def test_turns_are_found_where_the_voices_change(talk):
    path, truth = talk
    audio = decode(str(path), RATE)
    turns = diarize(lambda a, b: audio[a:b], len(audio), load_encoder())
    assert [t.speaker for t in turns] == [0, 1, 0, 1, 0, 1]
    for found, (start, end, _) in zip(turns, truth, strict=True):
        assert abs(found.start - start) < 0.5 and abs(found.end - end) < 0.5


def test_one_voice_is_one_speaker_and_silence_none(tmp_path):
    path, _ = conversation(tmp_path, [("en+m3", text) for _, text in TURNS[:4]])
    audio = decode(str(path), RATE)
    assert {t.speaker for t in diarize(lambda a, b: audio[a:b], len(audio), load_encoder())} == {0}
    silence = np.zeros(10 * RATE, np.float32)
    assert diarize(lambda a, b: silence[a:b], len(silence), load_encoder()) == []


def test_seed_api_labels_segments_and_words(server, talk):
    path, truth = talk
    task = submit(server.url, path, diarize="true", word_timestamps="true", language="en").json()["task_id"]
    result = wait_for_task(server.url, task).json()["result"]
    assert result["speakers"] == ["A", "B"]
    segments = result["segments"]
    name = {"en+m3": "A", "en+f3": "B"}
    for segment in segments:
        assert segment["speaker"] == name[voice_at(truth, segment["start"], segment["end"])], segment
        assert {w["speaker"] for w in segment["words"]} == {segment["speaker"]}
    assert runs([s["speaker"] for s in segments]) == ["A", "B"] * 3


def test_seed_api_without_words_and_with_a_hint(server, talk):
    path, _ = talk
    task = submit(server.url, path, diarize="true", num_speakers="2", language="en").json()["task_id"]
    result = wait_for_task(server.url, task).json()["result"]
    assert runs([s["speaker"] for s in result["segments"]]) == ["A", "B"] * 3
    assert all("words" not in s for s in result["segments"])
    plain = wait_for_task(server.url, submit(server.url, path, language="en").json()["task_id"]).json()["result"]
    assert "speakers" not in plain and all("speaker" not in s for s in plain["segments"])


def test_one_speaker_gets_one_label_through_the_api(server, tmp_path):
    path, _ = conversation(tmp_path, [("en+f3", text) for _, text in TURNS[:3]])
    task = submit(server.url, path, diarize="true", language="en").json()["task_id"]
    result = wait_for_task(server.url, task).json()["result"]
    assert result["speakers"] == ["A"] and {s["speaker"] for s in result["segments"]} == {"A"}


def test_no_speech_no_speakers(server, tmp_path):
    path = write_wav(tmp_path / "silence.wav", np.zeros(8 * RATE, np.float32))
    result = wait_for_task(server.url, submit(server.url, path, diarize="true").json()["task_id"]).json()["result"]
    assert result["speakers"] == [] and result["segments"] == []


@pytest.mark.parametrize(("data", "field"), [
    ({"diarize": "true", "min_speakers": "4", "max_speakers": "2"}, "min_speakers"),
    ({"diarize": "true", "num_speakers": "99"}, "num_speakers"),
])
def test_a_bad_hint_is_400_naming_the_field(server, talk, data, field):
    response = submit(server.url, talk[0], **data)
    assert response.status_code == 400 and field in response.text
    with open(talk[0], "rb") as handle:
        openai = httpx.post(f"{server.url}/v1/audio/transcriptions", files={"file": ("c.wav", handle)},
                            data={"model": "whisper-1", "response_format": "diarized_json", **data}, timeout=60)
    assert openai.status_code == 400 and openai.json()["error"]["param"] == field


def test_openai_diarized_json_and_srt(server, talk):
    path, truth = talk
    with open(path, "rb") as handle:
        audio = handle.read()
    answer = httpx.post(f"{server.url}/v1/audio/transcriptions", files={"file": ("c.wav", audio)},
                        data={"model": "whisper-1", "response_format": "diarized_json", "language": "en"},
                        timeout=300)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"task", "duration", "text", "segments", "usage"} and body["task"] == "transcribe"
    segments = body["segments"]
    assert all(set(s) == {"type", "id", "start", "end", "text", "speaker"} for s in segments)
    assert all(s["type"] == "transcript.text.segment" for s in segments)
    assert runs([s["speaker"] for s in segments]) == ["A", "B"] * 3
    srt = httpx.post(f"{server.url}/v1/audio/transcriptions", files={"file": ("c.wav", audio)},
                     data={"model": "whisper-1", "response_format": "srt", "language": "en", "diarize": "true"},
                     timeout=300).text
    assert srt.count("[A] ") == 3 and srt.count("[B] ") == 3


def test_cli_transcribe_and_submit_name_the_speakers(server, talk, tmp_path):
    path, _ = talk
    done = subprocess.run([sys.executable, "-m", "asr_server", "transcribe", "--diarize", "--language", "en",
                           str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    starts = [line[:3] for line in done.stdout.splitlines() if line[:3] in ("A: ", "B: ")]
    assert starts == ["A: ", "B: "] * 3, done.stdout
    sent = subprocess.run([sys.executable, "-m", "asr_server", "submit", "--server", server.url, "--wait",
                           "--format", "vtt", "--diarize", "--language", "en", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.count("<v A>") == 3 and sent.stdout.count("<v B>") == 3


def test_the_web_page_colours_each_speaker(server, talk):
    import playwright.sync_api as playwright_sync

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail(f"Chromium is missing ({chromium}); `make test` installs Debian's chromium")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page()
        page.goto(server.url + "/")
        page.select_option("#language", "en")
        page.check("#diarize")
        page.set_input_files("#files", [str(talk[0])])
        page.locator('.task .status:text("done")').wait_for(timeout=300_000)
        labels = page.locator(".segment .speaker").all_inner_texts()
        colours = {label: page.locator(".segment .speaker", has_text=label).first.evaluate(
            "e => getComputedStyle(e).backgroundColor") for label in set(labels)}
        browser.close()
    assert runs(labels) == ["A", "B"] * 3
    assert len(set(colours.values())) == 2
