"""The documentation: the MkDocs site builds in strict mode (and a broken link fails it), the architecture page
names only paths that exist (and every registered provider and every addon module), and the README stays a short
front page whose links all resolve."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ARCHITECTURE = DOCS / "architecture.md"
README = ROOT / "README.md"
README_MAX_BYTES = 15_000

# The stages of a run, in the order the architecture diagram must show them.
STAGES = ("profile", "provider.create", "GPU stack", "addons", "pytest", "results", "report", "provider.delete")
# Top-level folders whose paths the architecture page names in running text.
TOP = ("harness", "fake_gpu_plugin", "scenarios", "reference_workloads", "tests", "bench", "ci", "examples")
PATH_IN_TEXT = re.compile(rf"(?<![\w./-])((?:{'|'.join(TOP)})/[\w./*-]*)")
MD_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def build_site(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (it comes with the dev extra: pip install -e '.[dev]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (it comes with the dev extra)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True, text=True, env=env, cwd=config.parent, timeout=300,
    )


def test_the_site_builds_in_strict_mode_without_a_warning(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = build_site(ROOT / "mkdocs.yml", site)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    for page in ("index.html", "getting-started.html", "architecture.html", "dra.html", "realnode.html"):
        assert (site / page).is_file(), page
    assert (site / "img" / "report.png").is_file()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "tiers.md"
    page.write_text(page.read_text() + "\nSee [the providers](providers.md#no-such-section).\n")
    done = build_site(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-section" in done.stderr


def _layout_paths(text: str) -> list[str]:
    """Paths of the layout tree ("Where a change goes"): one entry per line, children indented under their folder,
    a description after two or more spaces, continued on lines indented past the name column.  A module a folder's
    description names (``registry.py (named definitions, build)``) counts as a path in that folder."""
    block = text.split("## Where a change goes", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    stack: list[tuple[int, str]] = []
    entries: list[tuple[str, bool, str]] = []  # (path, is a folder, description)
    for line in block.splitlines():
        m = re.match(r"^( *)(\S+)(?: {2,}(.*))?$", line)
        if not m or len(m.group(1)) >= 20:
            if entries and line.strip():
                path, folder, desc = entries[-1]
                entries[-1] = (path, folder, desc + " " + line.strip())
            continue
        indent, name = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        entries.append(("/".join([p for _, p in stack] + [name.rstrip("/")]), name.endswith("/"), m.group(3) or ""))
        if name.endswith("/"):
            stack.append((indent, name.rstrip("/")))
    paths = [path for path, _, _ in entries]
    for path, folder, desc in entries:
        if folder:
            paths += [f"{path}/**/{module}" for module in re.findall(r"(?<![\w/.])(\w+\.py)\b", desc)]
    return paths


def _named_paths(text: str) -> set[str]:
    named = {m.rstrip(".,:;)") for m in PATH_IN_TEXT.findall(text)}
    return named | set(_layout_paths(text))


def test_every_path_the_architecture_page_names_exists() -> None:
    text = ARCHITECTURE.read_text()
    named = _named_paths(text)
    assert len(named) > 90, sorted(named)  # the diagram and the layout tree were both read
    missing = sorted(p for p in named if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists()))
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_diagram_shows_the_stages_of_a_run_in_order() -> None:
    diagram = ARCHITECTURE.read_text().split("## The flow of a run", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    heads = [m.group(1) for m in (re.match(r"^ (\S.*?)(?: {2,}|$)", line) for line in diagram.splitlines()) if m]
    assert heads == list(STAGES)


def test_the_architecture_page_names_every_provider_and_addon_module() -> None:
    text = ARCHITECTURE.read_text()
    named = _named_paths(text)
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["aiconform.providers"]
    for provider, target in entry_points.items():
        module = target.split(":", 1)[0].replace(".", "/")
        assert module in named or f"{module}.py" in named, f"provider {provider!r} ({module}) is not on the page"
    addons = sorted(p.name for p in (ROOT / "harness" / "addons").glob("*.py") if p.stem not in ("__init__", "base", "installer"))
    unnamed = [a for a in addons if a not in text]
    assert not unnamed, f"addon modules the architecture page does not name: {unnamed}"


def test_the_readme_is_a_short_front_page_whose_links_resolve() -> None:
    text = README.read_text()
    size = len(text.encode())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes (at most {README_MAX_BYTES}): move the detail to docs/"
    assert "make test-cluster" in text and "make test " in text
    links = [target for target in MD_LINK.findall(text) if not re.match(r"[a-z]+:", target)]
    assert any(t.startswith("docs/") for t in links)
    broken = [t for t in links if not (ROOT / t.split("#", 1)[0]).is_file()]
    assert not broken, f"README.md links to files that do not exist: {broken}"
