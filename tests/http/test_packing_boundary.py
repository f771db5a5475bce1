"""Packing's trust boundary through the real server: a packed transcript holds only what its own
file says, and clips of two API keys never share a window."""

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
from conftest import EVAL, REPO, serving

sys.path.insert(0, str(REPO / "benchmarks"))
from throughput import DEFAULT_MANIFEST, load_workload  # noqa: E402
from word_attribution import foreign_words, words  # noqa: E402

ALICE, BOB = "alice-packing-key-0123", "bob-packing-key-4567"
# Each key's clips say words no clip of the other key says.
SPOKEN = {
    ALICE: ["The zebra played a xylophone.", "A kayak floated past the lighthouse.",
            "Quartz crystals glitter in the cave.", "The giraffe ate a pineapple."],
    BOB: ["A walrus slept near the cathedral.", "She plays the saxophone at midnight.",
          "The volcano rumbled over the village.", "A penguin carried an umbrella."],
}
ORDERS = 2  # shuffled bursts of every short English eval clip (benchmarks/foreign_words.py runs ten)


@pytest.fixture(scope="module")
def packing_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("packing-boundary")
    yield from serving(root / "data", {
        "ASR_SCHEDULER__PACK_CLIPS": "true",
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
        for _ in range(20):  # at most 20 long polls of 30 s
            done = client.get(f"{url}/api/v1/asr/task/{response.json()['task_id']}", params={"wait": 30},
                              headers=headers)
            if done.status_code != 202:
                break
        assert done.status_code == 200, done.text
        return done.json()["result"]["text"]

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=len(uploads) + 4)) as client:
        with ThreadPoolExecutor(len(uploads)) as pool:
            return list(pool.map(lambda upload: one(upload, client), uploads))


def packed_count(url: str) -> int:
    return httpx.get(url + "/readyz", timeout=10).json()["scheduler"]["clips_packed"]


def test_clips_of_two_api_keys_carry_none_of_each_others_words(packing_server, tmp_path):
    uploads = [(key, espeak(text, tmp_path / f"{n}-{i}.wav"))
               for n, key in enumerate(SPOKEN) for i, text in enumerate(SPOKEN[key])]
    random.Random(3).shuffle(uploads)
    before = packed_count(packing_server.url)
    texts = transcribe_at_once(packing_server.url, uploads)
    assert packed_count(packing_server.url) - before >= 4, "the clips were packed"
    rare = {key: {w for text in SPOKEN[key] for w in words(text)} - {w for other in SPOKEN if other != key
                                                                       for text in SPOKEN[other] for w in words(text)}
            for key in SPOKEN}
    for (key, _), text in zip(uploads, texts):
        others = set().union(*(rare[other] for other in rare if other != key))
        assert not set(words(text)) & others, (key, text)


def test_packed_short_english_clips_hold_no_foreign_words(packing_server):
    items = load_workload(DEFAULT_MANIFEST, "short", {"en"}, None)
    assert len(items) >= 60 and all(Path(item["path"]).parent == EVAL for item in items)
    references = {item["file"]: item["ref"] for item in items}
    alone = dict(zip(references, transcribe_at_once(packing_server.url, [(ALICE, Path(i["path"])) for i in items],
                                                     pack="false")))
    for seed in range(ORDERS):
        order = list(items)
        random.Random(seed).shuffle(order)
        before = packed_count(packing_server.url)
        texts = transcribe_at_once(packing_server.url, [(ALICE, Path(item["path"])) for item in order])
        assert packed_count(packing_server.url) - before >= len(items) // 2, "most clips were packed"
        found = foreign_words(dict(zip((item["file"] for item in order), texts)), references, alone)
        assert found == {}, f"order {seed}: {found}"
