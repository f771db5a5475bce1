"""The package's layout is its architecture: each subpackage one layer, imports pointing down only.

docs/architecture.md draws the layers; this test holds the code to the drawing.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "asr_server"
MAX_LINES = 450

# What each layer may import besides itself. "base" is config, errors and logs, which every
# layer may use; the entry points (cli, client, __main__) sit on top and may use anything.
BASE = {"config", "config_loading", "model_config", "errors", "logs", "__init__", "__version__"}
MAY_IMPORT = {
    "http": {"service", "store.records", "text"},
    "service": {"scheduling", "store", "engine", "text", "speakers"},
    "scheduling": {"whisper", "engine", "speakers"},
    "whisper": {"engine"},
    "speakers": set(),
    "engine": set(),
    "store": set(),
    "text": set(),
}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(dotted: str) -> str:
    """The layer of a module path relative to the package: 'http', 'store', ... or 'base'."""
    first = dotted.split(".")[0]
    return first if first in MAY_IMPORT else "base" if first in BASE else "entry"


def imported(path: Path) -> set[str]:
    """The package modules a file imports, relative to the package ('store.records')."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("asr_server"):
            assert node.level == 0, f"{path.name}: relative import"
            base = node.module.removeprefix("asr_server").lstrip(".")
            out.update(f"{base}.{alias.name}".lstrip(".") for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("asr_server.") for a in node.names if a.name.startswith("asr_server."))
    return out


def allowed(source_layer: str, target: str) -> bool:
    target_layer = layer_of(target)
    if source_layer == "entry" or target_layer in ("base", source_layer):
        return True
    rules = MAY_IMPORT[source_layer]
    return target_layer in rules or any(target == rule or target.startswith(rule + ".") for rule in rules)


def test_every_module_is_under_the_line_limit():
    lines = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in modules()}
    long = {name: n for name, n in lines.items() if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_imports_point_down_the_layers_only():
    wrong = []
    for path in modules():
        source = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for target in imported(path):
            if not allowed(layer_of(source), target):
                wrong.append(f"{source} -> {target}")
    assert not wrong, "imports against the layers: " + ", ".join(sorted(wrong))


def test_the_rule_refuses_an_upward_import():
    assert not allowed("scheduling", "service.task_options")
    assert not allowed("engine", "whisper.transcription")
    assert not allowed("http", "store.sqlite_store")
    assert allowed("http", "store.records")
