"""Speaker labels on conversations assembled from ../shared/eval: diarization error rate and cost.

    .venv/bin/python benchmarks/diarization.py                      # DER, overhead
    .venv/bin/python benchmarks/diarization.py --thresholds 0.25,0.3,0.35,0.4,0.45 --no-overhead

The eval clips whose speaker is known from the file name (LibriSpeech and LibriTTS speaker ids,
the two Harvard-sentence speakers, LJSpeech, the LibriVox reader of Sense and Sensibility, CMU
ARCTIC, TIMIT, NST Swedish, the AISHELL-1 speakers) are put together into conversations of 2 to 4
speakers: turns of whole clips, the speaker changing at every turn, with pauses of 0.3 to 1.2 s.
A second set is the same conversations with some turns (about a third) starting 0.2 to 0.8 s
before the last one ends: short overlaps, the speech summed. Everything is seeded, so a run is
repeatable. The reference of each conversation is where each clip lies.

DER is pyannote.metrics' ``DiarizationErrorRate`` (missed speech + false alarm + confusion over
the reference's speech) on the turns ``speakers.diarize`` finds, with no collar and with the
customary 0.25 s collar; on the overlap set also with the overlapped regions left out of the
scoring. The overhead is the wall time of transcribing every conversation through the real
scheduler in process (configs/cpu-int8.toml, language given), with ``diarize`` and without,
in one run, and the time of diarization alone per hour of audio.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"
sys.path.insert(0, str(REPO / "src"))
RATE = 16000
SPEAKER_OF = [  # file name pattern -> speaker (the first group, prefixed)
    (r"en_librispeech_(\d+)-", "librispeech-"), (r"en_libritts_(\d+)_", "libritts-"),
    (r"en_harvard_sb_(spk\d)_", "harvard-"), (r"en_(ljspeech)_", ""), (r"en_librivox_(sense)_", "librivox-"),
    (r"en_(cmuarctic)_", ""), (r"en_(timit)_", ""), (r"sv_nst_(se10x016)-", "nst-"),
    (r"zh_aishell_sample_BAC009(S\d+)W", "aishell-"), (r"zh_BAC009(S\d+)W", "aishell-"),
]
MAX_CLIP_S = 20.0


def speakers_of_clips(manifest: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for line in manifest.read_text().splitlines():
        item = json.loads(line)
        if item["duration_s"] > MAX_CLIP_S:
            continue
        for pattern, prefix in SPEAKER_OF:
            if found := re.match(pattern, item["file"]):
                out.setdefault(prefix + found.group(1), []).append(EVAL / item["file"])
                break
    return out


def conversation(rng: np.random.Generator, pool: dict[str, list[np.ndarray]], speakers: int, turns: int,
                 overlap: bool) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Audio and reference (start, end, speaker) of one conversation."""
    chosen = list(rng.choice(sorted(pool), size=speakers, replace=False))
    order: list[str] = list(chosen)  # each speaks once first, then turns at random, never twice in a row
    while len(order) < turns:
        order.append(str(rng.choice([s for s in chosen if s != order[-1]])))
    used: dict[str, int] = {}
    placed: list[tuple[int, np.ndarray, str]] = []
    at = 0
    for speaker in order:
        clips = pool[speaker]
        clip = clips[used.get(speaker, int(rng.integers(len(clips)))) % len(clips)]
        used[speaker] = (used.get(speaker, 0) + 1)
        if placed and overlap and rng.random() < 0.35:
            at -= int(rng.uniform(0.2, 0.8) * RATE)  # starts before the last turn ends
        elif placed:
            at += int(rng.uniform(0.3, 1.2) * RATE)
        placed.append((at, clip, speaker))
        at += len(clip)
    audio = np.zeros(at + RATE // 2, np.float32)
    for start, clip, _ in placed:
        audio[start:start + len(clip)] += clip
    reference = [(start / RATE, (start + len(clip)) / RATE, speaker) for start, clip, speaker in placed]
    return np.clip(audio, -1, 1), reference


def tight(clip: np.ndarray) -> np.ndarray:
    """The clip without the silence at its ends (the reference is then where speech is)."""
    from asr_server.speakers.diarize import speech_regions

    regions = speech_regions(lambda a, b: clip[a:b], len(clip))
    return clip[regions[0][0]:regions[-1][1]] if regions else clip


def annotation(spans: list[tuple[float, float, str]]) -> Annotation:
    out = Annotation()
    for start, end, label in spans:
        out[Segment(start, end)] = label
    return out


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  (progress while it runs)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=12, help="per set (with and without overlap)")
    parser.add_argument("--thresholds", default="", help="comma-separated clustering thresholds to sweep")
    parser.add_argument("--no-overhead", action="store_true", help="DER only: skip the transcription runs")
    parser.add_argument("--rounds", type=int, default=2, help="transcriptions of each kind, alternated")
    parser.add_argument("--overhead-conversations", type=int, default=0,
                        help="transcribe only this many of the conversations for the overhead (0: all)")
    args = parser.parse_args()

    from faster_whisper import decode_audio

    from asr_server.speakers.clustering import THRESHOLD
    from asr_server.speakers.diarize import embed_speech, turns_of
    from asr_server.speakers.encoder import load_encoder

    clips = speakers_of_clips(EVAL / "manifest.jsonl")
    pool = {speaker: [tight(decode_audio(str(path), RATE)) for path in paths] for speaker, paths in clips.items()}
    print(f"{len(pool)} speakers, {sum(map(len, pool.values()))} clips: "
          + ", ".join(f"{s} ({len(c)})" for s, c in sorted(pool.items())))
    rng = np.random.default_rng(43)
    sets: dict[str, list[tuple[np.ndarray, list[tuple[float, float, str]]]]] = {"no overlap": [], "overlap": []}
    for n in range(args.conversations):
        speakers = 2 + n % 3
        turns = int(rng.integers(2 * speakers + 2, 2 * speakers + 7))
        seed = int(rng.integers(1 << 31))
        for name, overlap in (("no overlap", False), ("overlap", True)):
            sets[name].append(conversation(np.random.default_rng(seed), pool, speakers, turns, overlap))
    for name, convs in sets.items():
        seconds = sum(len(a) for a, _ in convs) / RATE
        print(f"{name}: {len(convs)} conversations, {seconds:.0f} s of audio")
    from asr_server.config_loading import load_settings

    cache = load_settings(str(REPO / "configs" / "cpu-int8.toml"), {}).model.resolved_cache_dir()
    encoder = load_encoder(cache_dir=cache)
    print(f"encoder: {'ONNX Runtime' if encoder._session is not None else 'torch'}")
    thresholds = [float(t) for t in args.thresholds.split(",") if t] or [THRESHOLD]
    print("\n| set | threshold | DER | DER, 0.25 s collar | DER, overlap not scored | missed | false alarm | "
          "confusion | speakers found = true |")
    print("|-|-|-|-|-|-|-|-|-|")
    diarize_s = 0.0
    audio_s = 0.0
    voices = {}
    for name, convs in sets.items():
        for n, (audio, _) in enumerate(convs):
            started = time.perf_counter()
            voices[name, n] = embed_speech(lambda a, b, audio=audio: audio[a:b], len(audio), encoder)
            turns_of(voices[name, n])
            diarize_s += time.perf_counter() - started
            audio_s += len(audio) / RATE
    for threshold in thresholds:
        for name, convs in sets.items():
            metrics = {"plain": DiarizationErrorRate(), "collar": DiarizationErrorRate(collar=0.5),
                       "skip": DiarizationErrorRate(skip_overlap=True)}
            right = 0
            for n, (_, reference) in enumerate(convs):
                turns = turns_of(voices[name, n], threshold=threshold)
                hypothesis = annotation([(t.start, t.end, f"h{t.speaker}") for t in turns])
                truth = annotation(reference)
                for metric in metrics.values():
                    metric(truth, hypothesis)
                right += len({t.speaker for t in turns}) == len({r[2] for r in reference})
            parts = metrics["plain"][:]
            total = parts["total"]
            print(f"| {name} | {threshold} | {abs(metrics['plain']):.1%} | {abs(metrics['collar']):.1%} | "
                  f"{abs(metrics['skip']):.1%} | {parts['missed detection'] / total:.1%} | "
                  f"{parts['false alarm'] / total:.1%} | {parts['confusion'] / total:.1%} | {right} of {len(convs)} |")
    print(f"\ndiarization alone: {diarize_s:.1f} s for {audio_s:.0f} s of audio = "
          f"{3600 * diarize_s / audio_s:.0f} s per hour of audio")
    if not args.no_overhead:
        every = [audio for convs in sets.values() for audio, _ in convs]
        overhead(every[:args.overhead_conversations or len(every)], args.rounds)
    return 0


def overhead(conversations: list[np.ndarray], rounds: int) -> None:
    """Wall and CPU time of transcribing every conversation through the scheduler, without and
    with diarize, alternated ``rounds`` times; the medians. CPU time (the process's, all its
    threads) is the fairer figure on a shared machine."""
    import tempfile
    import wave

    from asr_server.config_loading import load_settings
    from asr_server.scheduling.memory_source import Job, ListSource
    from asr_server.scheduling.scheduler import Scheduler
    from asr_server.service.model_loading import model_pool
    from asr_server.service.task_options import decoding_for, finalizer

    settings = load_settings(str(REPO / "configs" / "cpu-int8.toml"), {"decoding": {"language": "en"}})
    folder = Path(tempfile.mkdtemp(prefix="diarization-bench-"))
    paths = []
    for n, audio in enumerate(conversations):
        path = folder / f"c{n}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes((audio * 32767).astype(np.int16).tobytes())
        paths.append(str(path))
    walls: dict[str, list[float]] = {"without": [], "with diarize": []}
    cpu: dict[str, list[float]] = {"without": [], "with diarize": []}
    for _ in range(rounds):
        for name in walls:
            options = {"diarize": {}} if name == "with diarize" else {}
            source = ListSource([Job(str(i), p, dict(options)) for i, p in enumerate(paths)])
            # a pool of its own each time: stopping a scheduler closes its pool
            scheduler = Scheduler(model_pool(settings), source, settings.scheduler, settings.decoding,
                                  finalize=finalizer(settings.output, settings.decoding),
                                  options_for=decoding_for(settings.decoding, settings.output),
                                  model=settings.model.model_id, speaker_cache=settings.model.resolved_cache_dir())
            started, cpu_started = time.perf_counter(), time.process_time()
            scheduler.start()
            source.done.wait()
            walls[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
            scheduler.stop()
            chars = sum(len(r["text"]) for r in source.results.values())
            fallbacks = sum(s["temperature"] > 0 for r in source.results.values() for s in r["segments"])
            print(f"  {name}: {walls[name][-1]:.1f} s wall, {cpu[name][-1]:.1f} s CPU, {chars} characters, "
                  f"{fallbacks} segments at temperature > 0", flush=True)
            assert not source.errors, source.errors
    seconds = sum(len(a) for a in conversations) / RATE
    base, diarized = statistics.median(walls["without"]), statistics.median(walls["with diarize"])
    print(f"\ntranscription of {len(paths)} conversations ({seconds:.0f} s): {base:.1f} s without diarize "
          f"({walls['without']}), {diarized:.1f} s with ({walls['with diarize']}): +{diarized / base - 1:.1%} wall")
    base, diarized = statistics.median(cpu["without"]), statistics.median(cpu["with diarize"])
    print(f"CPU: {base:.1f} s without, {diarized:.1f} s with: +{diarized / base - 1:.1%}")


if __name__ == "__main__":
    raise SystemExit(main())
