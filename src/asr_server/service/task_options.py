"""Per-task options: the optional form fields of an upload, validated before a task exists.

A task stores its options as ``{"decoding": {...}, "output": {...}}``: keys that override the
server's ``[decoding]`` and ``[output]`` config for that task alone. Fields this server does not
know are ignored, so clients written for other Whisper servers keep working.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, TypeAdapter, ValidationError

from asr_server.config import DecodingOptions, ModelConfig, OutputOptions, apply_decoding
from asr_server.scheduling.core import Priority
from asr_server.service.webhook_targets import Network, TargetRefused, check_literal
from asr_server.speakers.clustering import MAX_SPEAKERS
from asr_server.speakers.encoder import ONNX_NAME
from asr_server.speakers.labels import label_result
from asr_server.text.zh_script import apply_zh_script, steer_decoding

OUTPUT_FIELDS = ("zh_script",)
# form field -> DecodingOptions key
DECODING_FIELDS = {
    "language": "language",
    "task": "task",
    "initial_prompt": "initial_prompt",
    "beam_size": "beam_size",
    "temperature": "temperatures",  # one value, or several separated by commas (fallback order)
    "vad_filter": "vad_filter",
    "word_timestamps": "word_timestamps",
    "speech_guard": "speech_guard",
}


SPEAKER_HINTS = ("num_speakers", "min_speakers", "max_speakers")
SPEAKER_FIELDS = ("diarize", *SPEAKER_HINTS)

# every option a task takes
FORM_FIELDS = (*DECODING_FIELDS, *OUTPUT_FIELDS, "callback_url", "pack", "priority", "deadline_s", "model",
               *SPEAKER_FIELDS)
DIARIZE_DESCRIPTION = ("true: a speaker label (A, B, ... in order of first speech) on every segment, and on every "
                       "word with word_timestamps; segments are cut where the speaker changes, and the result "
                       "lists its speakers. Needs the diarize extra (docs/api.md).")
HINT_DESCRIPTIONS = {
    "num_speakers": "With diarize: the number of speakers, when known.",
    "min_speakers": "With diarize: at least this many speakers.",
    "max_speakers": "With diarize: at most this many speakers.",
}
PACK_DESCRIPTION = ("false gives this task faster-whisper's exact computation: a recording shorter "
                    "than 30 s is encoded as a whole 30 s window, not trimmed to its own length "
                    "(scheduler.trim_short_clips).")
MAX_DEADLINE_S = 7 * 24 * 3600
DEADLINE_DESCRIPTION = ("Seconds after the upload by which the client wants the result: among tasks of one "
                        "priority, earlier deadlines run first, and a batch is never held back for company "
                        "past one. A wish that orders work, not a promise: a task past its deadline still runs.")
PRIORITY_DESCRIPTION = ("interactive: a client waits on this task live, and its windows run before batch "
                        "work; batch (the default): file work, never passed over for longer than "
                        "scheduler.starvation_bound_s.")


DEFAULT_MODEL_ALIAS = "whisper-1"  # OpenAI's name for its Whisper model: here, the default model
MODEL_DESCRIPTION = ("The id of one of the server's models (GET /v1/models); absent or whisper-1: the default model. "
                     "On a server with several models the result names the model that made it.")


def form_schema() -> dict[str, dict[str, Any]]:
    """Each form field's JSON schema, from the pydantic models that validate it (for OpenAPI)."""
    decoding = DecodingOptions.model_json_schema()["properties"]
    output = OutputOptions.model_json_schema()["properties"]
    out: dict[str, dict[str, Any]] = {}
    for name in FORM_FIELDS:
        if name == "callback_url":
            schema = {"type": "string", "format": "uri", "maxLength": 2048,
                      "description": "An http(s) URL to POST the task's GET body to when it ends."}
        elif name == "pack":
            schema = {"type": "boolean", "default": True, "description": PACK_DESCRIPTION}
        elif name == "priority":
            schema = {"type": "string", "enum": [p.value for p in Priority], "default": Priority.BATCH.value,
                      "description": PRIORITY_DESCRIPTION}
        elif name == "deadline_s":
            schema = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DEADLINE_S,
                      "description": DEADLINE_DESCRIPTION}
        elif name == "model":
            schema = {"type": "string", "description": MODEL_DESCRIPTION}
        elif name == "diarize":
            schema = {"type": "boolean", "default": False, "description": DIARIZE_DESCRIPTION}
        elif name in HINT_DESCRIPTIONS:
            schema = {"type": "integer", "minimum": 1, "maximum": MAX_SPEAKERS, "description": HINT_DESCRIPTIONS[name]}
        elif name == "temperature":
            schema = {"type": "string", "description": "One temperature, or several separated by commas: "
                      "the fallback order."}
        else:
            schema = _as_form_field(decoding[DECODING_FIELDS[name]] if name in DECODING_FIELDS else output[name])
        out[name] = schema
    return out


def _as_form_field(schema: dict[str, Any]) -> dict[str, Any]:
    """A model field's schema as a form field's: absent stands for None, so the optional type
    is the plain one."""
    schema = {key: value for key, value in schema.items() if key != "title"}
    variants = [v for v in schema.pop("anyOf", []) if v.get("type") != "null"]
    if variants:
        schema.update(variants[0])
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


class OptionError(ValueError):
    """A form field with a value the server cannot use; the message names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"Invalid '{field}': {reason}")
        self.field = field


def parse_callback_url(value: str, allowed_networks: Sequence[Network] = ()) -> str:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError:
        raise OptionError("callback_url", "the URL's port is not a number") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 2048:
        raise OptionError("callback_url", "expected an http:// or https:// URL of at most 2048 characters")
    try:
        check_literal(value, allowed_networks)
    except TargetRefused as exc:
        raise OptionError("callback_url", str(exc)) from None
    return value


def _validated(model: type[BaseModel], values: dict[str, Any], field_of: dict[str, str]) -> BaseModel:
    """``model(**values)``, or OptionError naming the form field (``field_of``: key -> field)."""
    try:
        return model(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "form"
        raise OptionError(field_of.get(key, key), error["msg"].removeprefix("Value error, ")) from None


def parse_task_options(fields: dict[str, str], allowed_networks: Sequence[Network] = (),
                       models: Mapping[str, ModelConfig] | None = None, now: float | None = None) -> dict[str, Any]:
    """The task options named by ``fields``; raises OptionError naming a bad field.
    ``allowed_networks``: where a callback_url may point besides public addresses; ``models``:
    the server's models by id, the default first (``Settings.all_models``); ``now``: the
    upload's time (Unix seconds), from which a ``deadline_s`` counts."""
    options: dict[str, Any] = {}
    output = {name: fields[name] for name in OUTPUT_FIELDS if fields.get(name, "") != ""}
    if output:
        _validated(OutputOptions, output, {})
        options["output"] = output
    given = {key: fields[name].strip() for name, key in DECODING_FIELDS.items() if fields.get(name, "").strip()}
    if given:
        field_of = {key: name for name, key in DECODING_FIELDS.items()}
        decoding = _validated(DecodingOptions, given, field_of)
        # The validated, typed values of the keys the task set, JSON-safe (tuples as lists).
        typed = {key: getattr(decoding, key) for key in given}
        options["decoding"] = {k: list(v) if isinstance(v, tuple) else v for k, v in typed.items()}
    if fields.get("callback_url", "").strip():
        options["callback_url"] = parse_callback_url(fields["callback_url"].strip(), allowed_networks)
    if fields.get("pack", "").strip():
        try:
            if not TypeAdapter(bool).validate_python(fields["pack"].strip()):
                options["pack"] = False
        except ValidationError as exc:
            raise OptionError("pack", exc.errors()[0]["msg"]) from None
    if priority := fields.get("priority", "").strip():
        if priority not in tuple(Priority):
            raise OptionError("priority", f"expected one of {', '.join(Priority)}")
        if priority != Priority.BATCH:
            options["priority"] = priority
    if deadline := fields.get("deadline_s", "").strip():
        try:
            seconds = float(deadline)
            if not 0 < seconds <= MAX_DEADLINE_S:
                raise ValueError
        except ValueError:
            limit = f"expected a number of seconds above 0 and at most {MAX_DEADLINE_S}"
            raise OptionError("deadline_s", limit) from None
        options["deadline_at"] = round((time.time() if now is None else now) + seconds, 3)
    cache_dir = next(iter(models.values())).resolved_cache_dir() if models else None
    if (speakers := parse_speakers(fields, cache_dir)) is not None:
        options["diarize"] = speakers
    if models is not None:
        model = choose_model(fields.get("model", "").strip(), models, options.get("decoding", {}))
        if len(models) > 1:
            options["model"] = model  # on a server of several models, the record says which
    return options


def diarization_installed(cache_dir: Path | None = None) -> bool:
    """Whether speaker labels can run here: scipy, and the voice encoder exported to ONNX in
    ``cache_dir`` (``asr-server provision``) or torch with resemblyzer's weights."""
    def found(name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    exported = cache_dir is not None and (cache_dir / ONNX_NAME).is_file()
    return found("scipy") and (exported or (found("torch") and found("resemblyzer")))


def parse_speakers(fields: dict[str, str], cache_dir: Path | None = None) -> dict[str, int] | None:
    """The speaker hints of a task that asked for speaker labels ({} for none); None when it did not."""
    wanted = False
    if raw := fields.get("diarize", "").strip():
        try:
            wanted = TypeAdapter(bool).validate_python(raw)
        except ValidationError as exc:
            raise OptionError("diarize", exc.errors()[0]["msg"]) from None
    hints: dict[str, int] = {}
    for name in SPEAKER_HINTS:
        if raw := fields.get(name, "").strip():
            try:
                hints[name] = int(raw)
            except ValueError:
                raise OptionError(name, "expected a whole number") from None
            if not 1 <= hints[name] <= MAX_SPEAKERS:
                raise OptionError(name, f"expected a number of speakers from 1 to {MAX_SPEAKERS}")
            if not wanted:
                raise OptionError(name, "a hint for speaker labels: send it with diarize=true")
    low, high = hints.get("min_speakers", 1), hints.get("max_speakers", MAX_SPEAKERS)
    if low > high:
        raise OptionError("min_speakers", f"{low} is more than max_speakers ({high})")
    if "num_speakers" in hints and not low <= hints["num_speakers"] <= high:
        raise OptionError("num_speakers",
                          f"{hints['num_speakers']} is outside min_speakers..max_speakers ({low}..{high})")
    if wanted and not diarization_installed(cache_dir):
        raise OptionError("diarize", "this server is installed without speaker labels: "
                          "pip install 'asr-server[diarize]' (docs/api.md)")
    return hints if wanted else None


def choose_model(model: str, models: Mapping[str, ModelConfig], decoding: Mapping[str, Any]) -> str:
    """The id of the model a task asked for ('' for the default), checked against what the
    task asks of it: an English-only model neither translates nor reads another language."""
    default = next(iter(models))
    model = default if model in ("", DEFAULT_MODEL_ALIAS) else model
    if model not in models:
        raise OptionError("model", f"unknown model '{model}'; this server has: {', '.join(models)}")
    if models[model].is_english_only:
        if decoding.get("task") == "translate":
            raise OptionError("task", f"the model '{model}' knows English only and cannot translate")
        language = decoding.get("language")
        if language not in (None, "en"):
            raise OptionError("language", f"the model '{model}' knows English only, not '{language}'")
    return model


def decoding_for(decoding: DecodingOptions, output: OutputOptions) -> Callable[[dict[str, Any]], DecodingOptions]:
    """What gives a task its decoding options: the config's, the task's overrides, then what
    its output options call for (a Simplified prompt for zh)."""

    def options_for(options: dict[str, Any]) -> DecodingOptions:
        chosen = steer_decoding(apply_decoding(decoding, options), output_options(output, options).zh_script)
        if "diarize" in options:  # labels follow the words: their timings are needed, asked for or not
            chosen = chosen.model_copy(update={"word_timestamps": True})
        return chosen

    return options_for


def output_options(defaults: OutputOptions, options: dict[str, Any]) -> OutputOptions:
    return defaults.model_copy(update=options.get("output", {}))


def finalizer(defaults: OutputOptions, decoding: DecodingOptions | None = None,
              ) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """What turns a finished result into the one the task asked for: speaker labels (with the
    turns the scheduler found), Chinese script. ``decoding``: the server's, which says whether
    words are kept when the task did not say."""

    def finalize(result: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        if "speaker_turns" in result:
            result = dict(result)
            turns = result.pop("speaker_turns")
            default = decoding.word_timestamps if decoding is not None else False
            keep_words = bool(options.get("decoding", {}).get("word_timestamps", default))
            result = label_result(result, turns, keep_words)
        return apply_zh_script(result, output_options(defaults, options).zh_script)

    return finalize
