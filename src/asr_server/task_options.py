"""Per-task options: the optional form fields of an upload, validated before a task exists.

A task stores its options as ``{"decoding": {...}, "output": {...}}``: keys that override the
server's ``[decoding]`` and ``[output]`` config for that task alone. Fields this server does not
know are ignored, so clients written for other Whisper servers keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from .config import DecodingOptions, OutputOptions
from .zh_script import apply_zh_script, steer_decoding

OUTPUT_FIELDS = ("zh_script",)


class OptionError(ValueError):
    """A form field with a value the server cannot use; the message names the field."""


def parse_task_options(fields: dict[str, str]) -> dict[str, Any]:
    """The task options named by ``fields``; raises OptionError naming a bad field."""
    output = {name: fields[name] for name in OUTPUT_FIELDS if fields.get(name, "") != ""}
    try:
        OutputOptions(**output)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "form"
        raise OptionError(f"Invalid '{field}': {error['msg']}") from None
    return {"output": output} if output else {}


def decoding_overrides(options: dict[str, Any]) -> dict[str, Any]:
    return dict(options.get("decoding", {}))


def decoding_for(decoding: DecodingOptions, output: OutputOptions) -> Callable[[dict[str, Any]], DecodingOptions]:
    """What gives a task its decoding options: the config's, the task's overrides, then what
    its output options call for (a Simplified prompt for zh)."""

    def options_for(options: dict[str, Any]) -> DecodingOptions:
        overrides = decoding_overrides(options)
        task_decoding = decoding.model_copy(update=overrides) if overrides else decoding
        return steer_decoding(task_decoding, output_options(output, options).zh_script)

    return options_for


def output_options(defaults: OutputOptions, options: dict[str, Any]) -> OutputOptions:
    return defaults.model_copy(update=options.get("output", {}))


def finalizer(defaults: OutputOptions) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """What turns a finished result into the one the task asked for (today: Chinese script)."""

    def finalize(result: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        return apply_zh_script(result, output_options(defaults, options).zh_script)

    return finalize
