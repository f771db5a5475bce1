"""Where configuration values come from, and how they are merged: pydantic-settings' sources.

Sources, later ones winning: the model defaults, a TOML file (``--config``), environment
variables named ``ASR_<SECTION>__<KEY>`` (for example ``ASR_SCHEDULER__MAX_BATCH_SIZE=4``; a
value is parsed as JSON where it can be, ``null`` is None), then command-line flags. An unknown
key fails from any source, with a message that names it; so does an ``ASR_<SECTION>__<KEY>``
variable whose section does not exist, which pydantic-settings alone would ignore.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from asr_server.config import Settings

ENV_PREFIX = "ASR_"
ENV_DELIMITER = "__"


class ConfigError(Exception):
    """An invalid configuration; the message names the offending key."""


class _Environment(EnvSettingsSource):
    """The ``ASR_*`` variables of a given mapping (the process's environment by default)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}

    def prepare_field_value(self, field_name: str, field: Any, value: Any, value_is_complex: bool) -> Any:
        # Every variable is JSON where it parses ("6", "[0.0, 0.5]", "true", "null"), text where not.
        prepared = super().prepare_field_value(field_name, field, value, value_is_complex)
        if isinstance(prepared, dict):
            return {key: _json_or_text(item) for key, item in prepared.items()}
        return prepared


def _json_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _sources(path: Path | None, environ: Mapping[str, str]) -> type[Settings]:
    """The settings class whose sources are the flags it is given, this environment and this file."""

    class Layered(Settings, BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, env_parse_none_str="null",
            extra="forbid", frozen=True,
        )

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, _Environment(settings_cls, environ)]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    return Layered


def _refuse_unknown_sections(environ: Mapping[str, str]) -> None:
    sections = set(Settings.model_fields)
    for name in environ:
        if name.upper().startswith(ENV_PREFIX) and ENV_DELIMITER in name:
            section = name[len(ENV_PREFIX):].lower().partition(ENV_DELIMITER)[0]
            if section not in sections:
                raise ConfigError(f"invalid configuration (environment): {name}: no section {section!r} "
                                  f"(sections: {', '.join(sorted(sections))})")


def _describe(error: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def load_settings(
    path: str | Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from file, environment and flag overrides; raise ConfigError."""
    environ = os.environ if environ is None else environ
    _refuse_unknown_sections(environ)
    origin = "defaults"
    if path is not None:
        path, origin = Path(path), str(path)
        if not path.is_file():
            raise ConfigError(f"configuration file not found: {path}")
    flags = {section: dict(values) for section, values in (overrides or {}).items() if values}
    try:
        return _sources(path, environ)(**flags)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid configuration ({origin}): not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
