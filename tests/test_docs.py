"""The documentation stays true to the code: every relative link resolves, and the configuration
reference is the one docs/configuration.py generates from the pydantic models."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "benchmarks" / "RESULTS.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to '-'."""
    out = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_the_link_check_finds_a_broken_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [bad](#nowhere)\n")
    assert [t for t in relative_links(page) if t.partition("#")[2] not in anchors(page)] == ["#nowhere"]


def test_the_configuration_reference_is_generated_from_the_models():
    spec = importlib.util.spec_from_file_location("configuration_doc", REPO / "docs" / "configuration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == module.render(), (
        "docs/configuration.md is stale: run .venv/bin/python docs/configuration.py > docs/configuration.md")


def test_every_configuration_key_has_a_description():
    from asr_server.config import Settings

    sections = {name: field for name, field in Settings.model_fields.items() if name != "models"}
    missing = [f"{section}.{key}" for section, field in sections.items()
               for key, sub in field.annotation.model_fields.items() if not sub.description]
    if not Settings.model_fields["models"].description:
        missing.append("models")
    assert not missing, missing
