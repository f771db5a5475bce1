"""Configuration: one pydantic model tree, validated once at start-up.

Each section is a frozen model that refuses unknown keys; every field carries the description
that docs/configuration.md is generated from. Where the values come from (file, environment,
flags) is ``config_loading``'s business. Nothing reads the environment at import time.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, IPvAnyNetwork, field_validator, model_validator

from asr_server.model_config import ModelConfig, _Section

__all__ = ["ModelConfig", "Settings"]  # ModelConfig lives in model_config.py; most import it from here


class SchedulerConfig(_Section):
    """How the engine loop batches windows from many tasks."""

    max_batch_size: int = Field(8, ge=1, le=256, description="Windows per generate() call.")
    max_wait_ms: int = Field(
        3000, ge=0, le=10_000,
        description="How long an idle engine may wait for a fuller batch while other tasks' "
        "audio is still being prepared (counted from when it first waits); never spent when "
        "nothing else is on the way.",
    )
    max_active_tasks: int = Field(32, ge=1, description="Tasks decoded and held in memory at once.")
    max_loaded_models: int = Field(
        0, ge=0, description="Models loaded at once: loading one more first unloads the least recently "
        "used model that no task holds, and waits for one when every loaded model is in use. 0 = no limit.",
    )
    max_step_s: float = Field(
        4.0, ge=0, le=600,
        description="How long one engine step of whole windows (a long recording's) may be expected "
        "to take: such a batch holds as many windows as fit at their measured cost (one at least, "
        "max_batch_size at most). A step cannot be interrupted, so new work (a short clip, an "
        "interactive task) waits for the step under way; on a GPU batches fill anyway, on a CPU this "
        "keeps that wait short. Trimmed short clips always fill to max_batch_size: a newcomer would "
        "queue behind them anyway. Raise it for throughput on CPU-bound long files; 0 = no limit.",
    )
    prompt_bucket_tokens: int = Field(
        0, ge=0, le=223,
        description="Cut each window's previous-text prompt to a multiple of this many tokens, dropping "
        "the oldest as Whisper's own 223-token cap does, so that windows of different long recordings "
        "share a prompt length and so a batch (CTranslate2 needs <|startoftranscript|> at one position). "
        "0 = off: faster-whisper's prompts exactly (benchmarks/RESULTS.md, prompt buckets).",
    )
    starvation_bound_s: float = Field(
        30.0, gt=0, le=3600,
        description="The longest a batch task's window is passed over for interactive work or "
        "fresher tasks: once it has waited this long it runs before anything else (scheduling/policy.py).",
    )
    prepare_workers: int = Field(1, ge=1, le=64, description="Threads decoding audio and computing features.")
    poll_interval_ms: int = Field(
        500, ge=10, description="How often an idle scheduler looks for queued tasks (an upload also wakes it at once).",
    )
    trim_short_clips: bool = Field(
        True,
        description="Encode a recording shorter than one window "
        "only over its own length and trim_margin_s of silence, and decode it on that encoding "
        "alone: a fraction of a 30 s window's encoder and decoder cost, with the same accuracy "
        "(benchmarks/RESULTS.md, trimming); nothing of another recording is in its computation. "
        "false = faster-whisper's exact computation for every window; a task sent with "
        "pack=false gets that too.",
    )
    trim_margin_s: float = Field(
        8.0, ge=2.0, le=29.0,
        description="Silence kept after a trimmed recording's end, rounded up to a whole second. "
        "Less is faster; at 4 s and below the error rate rose on the eval clips, and with 1 s "
        "the decoder sometimes repeated itself (benchmarks/trimming.py).",
    )
    trim_detection_below: float = Field(
        0.9, ge=0.0, le=1.0,
        description="A short recording whose language is to be detected is trimmed too, and its "
        "language detected on the trimmed encoding; when the top language's probability is "
        "below this, it is detected again, and decoded, on 20 s of its window (on the whole "
        "window for a clip trimmed to 20 s or more) (benchmarks/RESULTS.md, detection). 1 = "
        "detect on the whole window always. Needs detect_on_window.",
    )
    detect_on_window: bool = Field(
        True,
        description="Detect the language on the first window's own encoding instead of "
        "faster-whisper's separate pass (saves one encoder run per short clip); false = "
        "faster-whisper's exact detection.",
    )


class DecodingOptions(_Section):
    """Whisper decoding options; the defaults are faster-whisper's transcribe() defaults."""

    language: str | None = Field(None, description="ISO code (en, de, zh, ...); unset: detected on the first window.")
    task: Literal["transcribe", "translate"] = Field("transcribe", description="'translate' writes English.")
    beam_size: int = Field(5, ge=1, le=32, description="Beam width at temperature 0.")
    best_of: int = Field(5, ge=1, le=32, description="Candidates sampled at each temperature above 0.")
    patience: float = Field(1.0, gt=0, description="Beam search patience factor.")
    length_penalty: float = Field(1.0, description="Exponential length penalty of beam search.")
    repetition_penalty: float = Field(1.0, gt=0, description="Penalty on tokens already generated (1 = none).")
    no_repeat_ngram_size: int = Field(0, ge=0, description="Forbid repeating n-grams of this size (0 = off).")
    temperatures: tuple[float, ...] = Field(
        (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        description="The fallback ladder: a window that fails the checks below is decoded again at the next.",
    )
    compression_ratio_threshold: float | None = Field(
        2.4, description="Fall back when the text's gzip compression ratio is above this (too repetitive).",
    )
    log_prob_threshold: float | None = Field(
        -1.0, description="Fall back when the average log-probability is below this (too improbable).",
    )
    no_speech_threshold: float | None = Field(
        0.6, description="Skip a window as silence when its no-speech probability is above this and its "
        "text is improbable too.",
    )
    condition_on_previous_text: bool = Field(
        True, description="Prompt each window with the text before it (Whisper's sequential semantics).",
    )
    prompt_reset_on_temperature: float = Field(
        0.5, description="Drop the previous-text prompt after a window decoded at a temperature above this.",
    )
    initial_prompt: str | None = Field(None, description="Text to condition the first window on.")
    suppress_blank: bool = Field(True, description="Suppress a blank at the start of the text.")
    suppress_tokens: tuple[int, ...] = Field(
        (-1,), description="Token ids never generated; -1 = Whisper's default set."
    )
    without_timestamps: bool = Field(False, description="Decode text only, no timestamp tokens.")
    max_initial_timestamp: float = Field(
        1.0, ge=0, description="The latest a window's first timestamp may be, seconds."
    )
    max_new_tokens: int | None = Field(
        None, ge=1, description="At most this many tokens per window; None = the model's limit."
    )
    word_timestamps: bool = Field(
        False, description="Add Whisper's `words` (word, start, end, probability) to each segment."
    )
    prepend_punctuations: str = Field(
        "\"'“¿([{-", description="With word timestamps: punctuation merged into the next word.",
    )
    append_punctuations: str = Field(
        "\"'.。,，!！?？:：”)]}、", description="With word timestamps: punctuation merged into the word before.",
    )
    vad_filter: bool = Field(
        False,
        description="VAD-chunked mode: Silero VAD cuts the speech into chunks of at most 30 s, "
        "each decoded on its own (BatchedInferencePipeline's semantics), so one recording's "
        "chunks share batches. False keeps Whisper's sequential semantics.",
    )
    speech_guard: bool = Field(
        True,
        description="In sequential mode, Silero VAD looks for speech first: a window without speech "
        "is not decoded (once the language is known) and a segment whose span holds no speech is "
        "dropped, so silence, noise and music give no text. Speech is decoded unchanged. False "
        "gives faster-whisper's raw output.",
    )

    @field_validator("language", "initial_prompt", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        # faster-whisper's list of Whisper's language codes (pinned version; no public name).
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        if value is not None and value not in _LANGUAGE_CODES:
            raise ValueError(f"unknown language code {value!r}; expected an ISO 639-1 code Whisper knows, such as 'en'")
        return value

    @field_validator("temperatures", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, (int, float)):
            return (float(value),)
        if isinstance(value, str):
            return tuple(float(v) for v in value.split(",") if v.strip())
        return value

    @field_validator("temperatures")
    @classmethod
    def _non_empty(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(t < 0 for t in value):
            raise ValueError("must be one or more temperatures >= 0")
        return value


def apply_decoding(decoding: DecodingOptions, options: dict[str, Any]) -> DecodingOptions:
    """The config's decoding options with a task's overrides (its stored ``decoding`` options),
    validated again (stored JSON holds lists where the model wants tuples)."""
    overrides = options.get("decoding", {})
    if not overrides:
        return decoding
    return DecodingOptions.model_validate({**decoding.model_dump(), **overrides})


class ServerConfig(_Section):
    """The HTTP server, its limits, and the data directory."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on.")
    data_dir: str = Field("data", description="Uploads and the embedded task store live here.")
    max_queued_tasks: int = Field(
        10_000, ge=1, description="Tasks waiting for the engine; beyond it POST gets 503 with Retry-After."
    )
    max_upload_mb: float = Field(
        1000, gt=0, description="Largest request body accepted, in MB (10^6 bytes); larger ones get 413."
    )
    min_free_disk_mb: float = Field(
        50, ge=0,
        description="Uploads are refused with 507 and Retry-After, before their body is read, while the "
        "filesystem of data_dir has less than this free, in MB: the space left serves the results of the "
        "tasks already accepted. An upload that still finds the disk full while it is written gets 507 "
        "too, and leaves nothing behind. 0 = no check.",
    )
    max_audio_seconds: float = Field(
        14_400, ge=0,
        description="Longest audio per task, in seconds; longer ends as error with the reason. 0 = no limit.",
    )
    upload_idle_timeout_s: float = Field(
        30, gt=0, le=3600, description="An upload that sends no data for this long gets 408 and is dropped."
    )
    max_connections: int = Field(
        1000, ge=1, description="Open connections and requests at once (uvicorn limit_concurrency); beyond, 503."
    )
    sweep_interval_s: float = Field(
        60, gt=0, le=86_400, description="How often expired tasks and orphan uploads are looked for."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="'json': one JSON object per line, with request_id and task_id where known."
    )
    shutdown_timeout_s: float = Field(
        30, ge=0, le=3600,
        description="On SIGTERM, how long running tasks may take to finish before they are handed back.",
    )
    expose_tracebacks: bool = Field(
        True, description="A failed task's 500 body holds the traceback (the seed's behaviour); false "
        "gives a short error instead, for deployments that must not show internals.",
    )
    replica_name: str = Field(
        "", pattern=r"^[A-Za-z0-9_.:-]*$",
        description="This replica's name, sent as X-ASR-Replica and owning its leases; '' = host:port. "
        "Unique among live replicas; keep it across restarts.",
    )


class StoreConfig(_Section):
    """Where tasks, their queue and their results are kept."""

    kind: Literal["sqlite", "redis"] = Field(
        "sqlite", description="'sqlite': embedded, one machine. 'redis': shared by many replicas."
    )
    max_attempts: int = Field(
        3, ge=1,
        description="A task whose processing was interrupted this many times (crashes) ends as error.",
    )
    result_ttl_hours: float = Field(
        0, ge=0, description="Finished tasks (results and errors) are removed this long after they end; 0 = kept."
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="kind = 'redis': the server every replica shares.")
    key_prefix: str = Field("asr:", min_length=1, description="kind = 'redis': prefix of every key the store writes.")
    visibility_timeout_s: float = Field(
        30, ge=1, le=3600,
        description="kind = 'redis': a task whose replica stopped renewing its lease this long ago is taken again.",
    )
    max_audio_mb: float = Field(
        100, gt=0, le=500,
        description="kind = 'redis': largest upload kept in Redis, in MB; larger ones get 413.",
    )


class AudioStoreConfig(_Section):
    """Where uploaded audio waits for its task, with store.kind = 'redis' (the embedded store
    keeps it in the data directory). Credentials for S3 come from the standard environment
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, an instance
    role), never from this file."""

    kind: Literal["auto", "local", "redis", "s3"] = Field(
        "auto",
        description="'auto': the data directory with store.kind = 'sqlite', Redis with 'redis'. 'redis': "
        "beside the task records, at most store.max_audio_mb a file. 's3': an S3-compatible bucket. "
        "'local': audio_store.dir, a directory every replica mounts.",
    )
    dir: str = Field("", description="kind = 'local' with store.kind = 'redis': the directory every replica shares.")
    s3_endpoint_url: str = Field(
        "", description="kind = 's3': the S3 API's URL, such as 'http://127.0.0.1:8333'; '' = AWS S3 itself."
    )
    s3_bucket: str = Field("asr-audio", description="kind = 's3': the bucket; created at start-up when missing.")
    s3_prefix: str = Field("audio/", description="kind = 's3': prefix of every object the server writes.")
    s3_region: str = Field("", description="kind = 's3': region; '' = AWS_REGION / AWS_DEFAULT_REGION, else us-east-1.")
    s3_multipart_threshold_mb: float = Field(
        8, ge=5, le=5000,
        description="kind = 's3': files above this go up in parts of this size, several at once.",
    )
    s3_expire_days: int = Field(
        7, ge=0, le=3650,
        description="kind = 's3': a lifecycle rule set at start-up expires the server's objects after this "
        "many days, behind their removal when a task ends; 0 = no rule. Keep it longer than a task waits.",
    )
    s3_timeout_s: float = Field(10, gt=0, le=300, description="kind = 's3': connect and read timeout of each request.")


class WebhookConfig(_Section):
    """Deliveries to a task's ``callback_url`` when it ends."""

    secret: str = Field("", description="HMAC-SHA256 key for the X-ASR-Signature header; '' sends no signature.")
    max_attempts: int = Field(5, ge=1, le=20, description="Deliveries tried per task, the first included.")
    backoff_s: float = Field(1.0, gt=0, le=3600, description="First retry delay; doubled at each retry.")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Per delivery attempt, seconds.")
    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks (CIDR) a callback_url may reach besides public addresses, such as "
        "[\"127.0.0.0/8\"] for a receiver on this machine. By default a URL whose host is, or "
        "resolves to, a loopback, private, link-local, shared, multicast or reserved address is refused.",
    )


def is_key_digest(text: str) -> bool:
    """Whether a text is what API keys are listed as: a SHA-256 digest in hex."""
    return re.fullmatch(r"[0-9a-fA-F]{64}", text.strip()) is not None


class AuthConfig(_Section):
    """Optional API keys; with none listed the API is open (the seed's behaviour)."""

    api_key_hashes: list[str] = Field(
        default_factory=list, description="SHA-256 hex digests of accepted keys (`asr-server hash-key KEY`)."
    )
    api_keys_file: str = Field(
        "", description="A file of digests, one per line ('#' comments), each optionally followed by a label "
        "and by queued_tasks=N / requests_per_minute=N, that key's own limits; read at start-up.",
    )

    @field_validator("api_key_hashes")
    @classmethod
    def _digests(cls, value: list[str]) -> list[str]:
        for digest in value:
            if not is_key_digest(digest):
                raise ValueError(f"{digest[:20]!r} is not a SHA-256 hex digest (use `asr-server hash-key KEY`)")
        return value


class OutputOptions(_Section):
    """How finished results are written out; a task may override each key."""

    zh_script: Literal["simplified", "traditional", "as-is"] = Field(
        "simplified",
        description="Script of Chinese results (text, segments, words, every format), converted "
        "with OpenCC; tokens stay the model's own.",
    )


class LimitsConfig(_Section):
    """Limits per API key, so that one key cannot fill the queue for every other."""

    queued_tasks: int = Field(
        0, ge=0,
        description="Tasks one key may have waiting or running at once; beyond, a POST gets 429 with "
        "Retry-After and RateLimit headers. Counted in the store, so every replica shares it. "
        "0 = no limit. With auth off, per client address. A key's line in auth.api_keys_file may override it.",
    )
    requests_per_minute: int = Field(
        0, ge=0,
        description="Task-creating requests one key may make in any minute (a moving window); with auth "
        "off, per client address. Reads (polls, long polls, downloads) do not count. Beyond, 429 with "
        "Retry-After and RateLimit headers. Kept in Redis with store.kind = 'redis', so replicas share "
        "it. 0 = no limit. A key's line in auth.api_keys_file may override it.",
    )


class OpenAIConfig(_Section):
    """The OpenAI-compatible endpoints (``/v1/...``)."""

    lenient_model: bool = Field(
        False,
        description="false: a request without `model` gets 400 and one naming a model this server does not "
        "have gets 404 `model_not_found`, as OpenAI answers. true: either is served by the default model, "
        "for clients written against servers that ignore the field.",
    )


class Settings(_Section):
    model: ModelConfig = ModelConfig()
    models: list[ModelConfig] = Field(
        default_factory=list,
        description="More models, each chosen per task by its id ([[models]] tables with the keys of "
        "[model]); [model] is the default one.",
    )
    scheduler: SchedulerConfig = SchedulerConfig()
    decoding: DecodingOptions = DecodingOptions()
    output: OutputOptions = OutputOptions()
    webhooks: WebhookConfig = WebhookConfig()
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    audio_store: AudioStoreConfig = AudioStoreConfig()
    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    openai: OpenAIConfig = OpenAIConfig()

    @model_validator(mode="after")
    def _audio_store_fits_the_store(self) -> Settings:
        audio, kind = self.audio_store.kind, self.store.kind
        if kind == "sqlite" and audio not in ("auto", "local"):
            raise ValueError(f"audio_store.kind = {audio!r} needs store.kind = 'redis' (the embedded "
                             "store keeps audio in its data directory)")
        if kind == "sqlite" and audio == "local" and self.audio_store.dir:
            raise ValueError("audio_store.dir is for store.kind = 'redis'; the embedded store keeps "
                             "audio in server.data_dir")
        if kind == "redis" and audio == "local" and not self.audio_store.dir:
            raise ValueError("audio_store.kind = 'local' with store.kind = 'redis' needs audio_store.dir, "
                             "a directory every replica mounts")
        return self

    @model_validator(mode="after")
    def _model_ids_are_unique(self) -> Settings:
        seen: set[str] = set()
        for where, model in [("model", self.model), *((f"models[{i}]", m) for i, m in enumerate(self.models))]:
            if model.model_id in seen or model.model_id == "whisper-1":
                raise ValueError(f"{where}.id = {model.model_id!r} names another model already; "
                                 "give each model its own id ('whisper-1' means the default model)")
            seen.add(model.model_id)
        return self

    @property
    def all_models(self) -> dict[str, ModelConfig]:
        """Every configured model by id, the default ([model]) first."""
        return {model.model_id: model for model in (self.model, *self.models)}

    @property
    def audio_kind(self) -> str:
        """The audio store in effect: 'auto' resolved."""
        if self.audio_store.kind != "auto":
            return self.audio_store.kind
        return "redis" if self.store.kind == "redis" else "local"
