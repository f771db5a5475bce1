"""The configuration of one Whisper model: which, where it runs, and when it loads. A section of
``config.Settings`` (``[model]`` and each of ``[[models]]``), kept in its own module."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    """Which Whisper model to load, and how."""

    name: str = Field(
        "base",
        description="A bundled model ('base', 'small'), a local CTranslate2 model directory, "
        "or a faster-whisper model name fetched from the Hugging Face hub.",
    )
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Where the model runs: 'cpu', 'cuda' or 'auto'.")
    compute_type: Literal[
        "default", "auto", "int8", "int8_float16", "int8_float32", "int8_bfloat16",
        "float16", "bfloat16", "float32",
    ] = Field("int8", description="CTranslate2 precision: 'int8' on CPU; 'float16' or 'int8_float16' on GPU.")
    cpu_threads: int = Field(
        0, ge=0, description="CTranslate2 intra_threads; 0 = its default. Keep it at or below the core count.",
    )
    device_index: int = Field(0, ge=0, description="Which GPU, with device = 'cuda'.")
    encode_batch_size: int = Field(
        1, ge=1, le=256,
        description="Windows per encoder call. On CPU the encoder gains nothing from batching "
        "(docs/decisions.md); on GPU it does.",
    )
    cache_dir: str = Field("", description="Where bundled models are assembled; '' = ~/.cache/asr-server.")
    id: str = Field(
        "", max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$|^$",
        description="The name clients choose this model by (the form field model, OpenAI's model); "
        "'' = name, or a local directory's last component.",
    )
    load: Literal["startup", "first_use"] = Field(
        "startup", description="When the model loads: at start-up, or when the first task for it is prepared.",
    )
    unload_after_s: float = Field(
        0, ge=0, description="Unload the model once no task has used it for this long (it loads again "
        "on its next task); 0 = keep it loaded.",
    )
    english_only: bool | None = Field(
        None, description="Whether the model knows English alone (Whisper's '.en' models), so that a task "
        "asking it for another language or for translation is refused; None = from the name.",
    )

    @property
    def model_id(self) -> str:
        """The name clients choose this model by."""
        if self.id:
            return self.id
        path = Path(self.name).expanduser()
        return path.name if path.is_absolute() or self.name.startswith(".") else self.name

    @property
    def is_english_only(self) -> bool:
        if self.english_only is not None:
            return self.english_only
        return self.name.rstrip("/").endswith(".en")

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "asr-server"
