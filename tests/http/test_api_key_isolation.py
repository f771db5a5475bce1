"""Two API keys' clips decoded in one burst through the real server: each is trimmed and
decoded on its own encoding, batched with the other key's, and neither key's transcripts hold
the other's words. Foreign words over the eval clips are measured by
benchmarks/foreign_words.py."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from asr_server.http.auth import hash_key
from conftest import REPO, serving

sys.path.insert(0, str(REPO / "benchmarks"))
from word_attribution import words

ALICE, BOB = "alice-isolation-key-0123", "bob-isolation-key-4567"
# Each key's clips say words no clip of the other key says.
SPOKEN = {
    ALICE: ["The zebra played a xylophone.", "A kayak floated past the lighthouse.",
            "Quartz crystals glitter in the cave.", "The giraffe ate a pineapple."],
    BOB: ["A walrus slept near the cathedral.", "She plays the saxophone at midnight.",
          "The volcano rumbled over the village.", "A penguin carried an umbrella."],
}


@pytest.fixture(scope="module")
def two_key_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("key-isolation")
    yield from serving(root / "data", {
        "ASR_DECODING__LANGUAGE": '"en"',
        "ASR_AUTH__API_KEY_HASHES": f'["{hash_key(ALICE)}", "{hash_key(BOB)}"]',
    })


def espeak(text: str, path: Path) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: `make test-deps` installs it")
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(path), text], check=True, timeout=60)
    return path


def transcribe_at_once(url: str, uploads: list[tuple[str, Path]], **fields: str) -> list[str]:
    """Every (key, file) uploaded at once, each awaited by long polling; the texts, in order."""
    def one(upload: tuple[str, Path], client: httpx.Client) -> str:
        key, path = upload
        headers = {"Authorization": f"Bearer {key}"}
        with open(path, "rb") as handle:
            response = client.post(f"{url}/api/v1/asr/task", files={"file": (path.name, handle)},
                                   data=fields, headers=headers)
        assert response.status_code == 201, response.text
        done = None
        for _ in range(20):  # at most 20 long polls of 30 s
            try:
                done = client.get(f"{url}/api/v1/asr/task/{response.json()['task_id']}", params={"wait": 30},
                                  headers=headers)
            except httpx.RemoteProtocolError:
                continue  # a pooled connection the server had closed while idle: poll again
            if done.status_code != 202:
                break
        assert done is not None and done.status_code == 200, done and done.text
        return done.json()["result"]["text"]

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=len(uploads) + 4)) as client:
        with ThreadPoolExecutor(len(uploads)) as pool:
            return list(pool.map(lambda upload: one(upload, client), uploads))


def counters(url: str) -> dict:
    return httpx.get(url + "/readyz", timeout=10).json()["scheduler"]


def test_clips_of_two_api_keys_carry_none_of_each_others_words(two_key_server, tmp_path):
    uploads = [(key, espeak(text, tmp_path / f"{n}-{i}.wav"))
               for n, key in enumerate(SPOKEN) for i, text in enumerate(SPOKEN[key])]
    random.Random(3).shuffle(uploads)
    before = counters(two_key_server.url)
    texts = transcribe_at_once(two_key_server.url, uploads)
    after = counters(two_key_server.url)
    assert after["windows_trimmed"] - before["windows_trimmed"] >= len(uploads), "every clip was trimmed"
    assert any(int(size) > 1 for size in after["batch_sizes"]), "clips of the burst shared batches"
    rare = {key: {w for text in SPOKEN[key] for w in words(text)} - {w for other in SPOKEN if other != key
                                                                       for text in SPOKEN[other] for w in words(text)}
            for key in SPOKEN}
    for (key, _), text in zip(uploads, texts, strict=True):
        others = set().union(*(rare[other] for other in rare if other != key))
        assert not set(words(text)) & others, (key, text)
