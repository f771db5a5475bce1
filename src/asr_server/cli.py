"""Command line: ``asr-server serve | transcribe | provision | --version``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from asr_server import __version__
from asr_server.config import Settings
from asr_server.config_loading import ConfigError, load_settings
from asr_server.service.task_options import FORM_FIELDS
from asr_server.text.formats import FORMATS, render

EXIT_CONFIG = 2
EXIT_NO_CUDA = 3  # model.device = 'cuda' on a machine where CTranslate2 cannot use it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr-server", description=__doc__)
    parser.add_argument("--version", action="version", version=f"asr-server {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--config", help="TOML configuration file (see configs/)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir")
    serve.add_argument("--log-level", default="info")

    transcribe = commands.add_parser("transcribe", help="transcribe files in-process with the same engine")
    transcribe.add_argument("files", nargs="+")
    transcribe.add_argument("--config")
    transcribe.add_argument("--format", choices=FORMATS, default="txt")
    transcribe.add_argument("--language")
    transcribe.add_argument("--zh-script", choices=["simplified", "traditional", "as-is"],
                            help="script of Chinese results (default: the config's, simplified)")
    transcribe.add_argument("--output-dir", help="write <name>.<format> files here instead of stdout")
    transcribe.add_argument("--model", help="the id of one of the configured models (default: [model])")
    transcribe.add_argument("--diarize", action="store_true",
                            help="speaker labels on segments (needs the diarize extra)")
    for hint in ("num_speakers", "min_speakers", "max_speakers"):
        transcribe.add_argument(f"--{hint.replace('_', '-')}", dest=hint,
                                help=f"with --diarize: {hint.replace('_', ' ')}")

    submit = commands.add_parser("submit", help="send files to a running server and optionally wait for them")
    submit.add_argument("files", nargs="+")
    submit.add_argument("--server", default="http://127.0.0.1:8000", help="base URL of the server")
    submit.add_argument("--wait", action="store_true", help="wait for the transcripts and print them")
    submit.add_argument("--format", choices=FORMATS, default="txt", help="transcript format with --wait")
    submit.add_argument("--output-dir", help="with --wait: write <name>.<format> files here")
    for name in FORM_FIELDS:
        if name == "diarize":  # a switch: --diarize sends diarize=true
            submit.add_argument("--diarize", dest=name, action="store_const", const="true",
                                help="speaker labels on segments (task option diarize=true)")
            continue
        submit.add_argument(f"--{name.replace('_', '-')}", dest=name, help="task option, sent as a form field")
    submit.add_argument("--api-key", help="API key for a server that requires one (default: $ASR_API_KEY)")

    hash_key = commands.add_parser("hash-key", help="print the SHA-256 digest of an API key, for auth.api_key_hashes")
    hash_key.add_argument("key", nargs="?", help="the key (default: read one line from stdin)")

    provision = commands.add_parser("provision", help="assemble or fetch every configured model once")
    provision.add_argument("--config")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    server = {k: v for k, v in {"host": getattr(args, "host", None), "port": getattr(args, "port", None),
                               "data_dir": getattr(args, "data_dir", None)}.items() if v is not None}
    decoding = {"language": args.language} if getattr(args, "language", None) else {}
    output = {"zh_script": args.zh_script} if getattr(args, "zh_script", None) else {}
    return load_settings(args.config, {"server": server, "decoding": decoding, "output": output})


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "submit":
        from asr_server.client import submit

        options = {name: getattr(args, name) for name in FORM_FIELDS if getattr(args, name) is not None}
        return submit(args.files, args.server, options, args.wait, args.format, args.output_dir,
                      api_key=args.api_key)
    if args.command == "hash-key":
        from asr_server.http.auth import hash_key

        print(hash_key(args.key if args.key is not None else sys.stdin.readline().rstrip("\n")))
        return 0
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"asr-server: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from asr_server.logs import configure

    configure(settings.server.log_format, getattr(args, "log_level", "info"))
    if args.command in ("serve", "transcribe") and settings.model.device == "cuda":
        from asr_server.engine.cuda_check import cuda_problem

        problem = cuda_problem(settings.model.device_index)
        if problem is not None:
            print(f"asr-server: model.device = 'cuda', but {problem}", file=sys.stderr)
            return EXIT_NO_CUDA
    if args.command == "serve":
        return _serve(settings, args.log_level)
    if args.command == "provision":
        from asr_server.engine.models import resolve_model

        for model in settings.all_models.values():  # one directory a line, the default first
            print(resolve_model(model.name, model.resolved_cache_dir()))
        return _provision_speakers(settings)
    return _transcribe(settings, args)


def _provision_speakers(settings: Settings) -> int:
    """With the diarize extra: the voice encoder exported once to ONNX beside the models, so
    that the server runs it without torch (docs/decisions.md)."""
    import importlib.util

    from asr_server.speakers.encoder import ONNX_NAME, export_onnx

    target = settings.model.resolved_cache_dir() / ONNX_NAME
    if not target.is_file():
        if not all(importlib.util.find_spec(name) for name in ("torch", "onnx", "resemblyzer")):
            return 0  # no diarize extra: speaker labels are not offered
        export_onnx(target)
    print(target)
    return 0


def _serve(settings: Settings, log_level: str) -> int:
    import uvicorn

    from asr_server.http.app import create_app
    from asr_server.http.auth import KeysFileError

    try:
        app = create_app(settings)
    except KeysFileError as exc:
        print(f"asr-server: invalid configuration: auth.api_keys_file: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from asr_server.http.shutdown import DrainingServer

    config = uvicorn.Config(app, host=settings.server.host, port=settings.server.port, log_level=log_level,
                            log_config=None,  # logs.configure has set up every logger
                            timeout_graceful_shutdown=5, limit_concurrency=settings.server.max_connections)
    DrainingServer(config, app.state.service, settings.server.shutdown_timeout_s).run()
    return 0


def _transcribe(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from asr_server.scheduling.memory_source import Job, ListSource
    from asr_server.scheduling.scheduler import Scheduler
    from asr_server.service.model_loading import model_pool
    from asr_server.service.task_options import OptionError, choose_model, decoding_for, finalizer, parse_speakers

    hints = {name: getattr(args, name) or "" for name in ("num_speakers", "min_speakers", "max_speakers")}
    try:
        model = choose_model(args.model or "", settings.all_models,
                             {"language": settings.decoding.language, "task": settings.decoding.task})
        speakers = parse_speakers({"diarize": "true" if args.diarize else "", **hints},
                                  settings.model.resolved_cache_dir())
    except OptionError as exc:
        print(f"asr-server: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    options: dict[str, Any] = {"model": model} if args.model else {}
    if speakers is not None:
        options["diarize"] = speakers
    source = ListSource([Job(str(i), path, dict(options)) for i, path in enumerate(args.files)])
    progress: dict[str, tuple[float, float]] = {}
    bar = tqdm(total=len(args.files), unit="file", file=sys.stderr, dynamic_ncols=True)

    def on_progress(task_id: str, fraction: float, duration: float) -> None:
        progress[task_id] = (fraction, duration)
        done = sum(f * d for f, d in progress.values())
        bar.set_postfix_str(f"{done:.0f} s of audio transcribed")

    scheduler = Scheduler(model_pool(settings), source, settings.scheduler, settings.decoding,
                          on_progress=on_progress, finalize=finalizer(settings.output, settings.decoding),
                          options_for=decoding_for(settings.decoding, settings.output),
                          model=settings.model.model_id, speaker_cache=settings.model.resolved_cache_dir())
    scheduler.start()
    finished = 0
    while not source.done.wait(0.2):
        now = len(source.results) + len(source.errors)
        bar.update(now - finished)
        finished = now
    bar.update(len(args.files) - finished)
    bar.close()
    scheduler.stop()

    status = 0
    for index, path in enumerate(args.files):
        key = str(index)
        if key in source.errors:
            print(f"asr-server: {path}: {source.failures[key].message}", file=sys.stderr)
            status = 1
            continue
        text = render(source.results[key], args.format)
        if args.output_dir:
            out = Path(args.output_dir) / f"{Path(path).stem}.{args.format}"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        else:
            if len(args.files) > 1:
                print(f"==> {path} <==")
            sys.stdout.write(text)
    return status
