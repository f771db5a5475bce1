"""The configured models as a ``ModelPool``: how each one loads, and for how long it stays."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asr_server.config import ModelConfig, Settings
from asr_server.engine.models import resolve_model
from asr_server.scheduling.model_pool import ModelPool, ModelSpec

log = logging.getLogger("asr_server.service.model_loading")


def model_pool(settings: Settings) -> ModelPool:
    """Every model of ``settings``, the default first, none loaded yet."""
    specs = {model_id: ModelSpec(_loader(config), config.unload_after_s)
             for model_id, config in settings.all_models.items()}
    return ModelPool(specs, settings.scheduler.max_loaded_models)


def _loader(config: ModelConfig) -> Callable[[], Any]:
    def load() -> Any:
        from asr_server.engine.whisper_engine import WhisperEngine  # heavy import, off the start-up path

        model_dir = resolve_model(config.name, config.resolved_cache_dir())
        engine = WhisperEngine(model_dir, config)
        if engine.is_multilingual == config.is_english_only:
            log.warning("model %s: english_only = %s, but the model %s multilingual; set english_only "
                        "to what it is", config.model_id, config.is_english_only,
                        "is" if engine.is_multilingual else "is not")
        log.info("model %s loaded from %s", config.model_id, model_dir)
        return engine

    return load
