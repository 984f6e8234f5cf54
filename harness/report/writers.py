"""Write a report directory: ``results.json``, ``junit.xml``, ``report.html``, ``report.md``, ``cncf-evidence.yaml``.

Each file is rendered in memory first, then written next to its final name and renamed into place, so a
reader never sees half a file.  A directory that cannot be created or written ends in one ``ReportError``
line naming it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from harness.report.cncf import render_cncf_yaml
from harness.report.html_report import render_html
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.report.model import RESULTS_FILE, ReportError, RunResults, dump_json, load_results
from harness.report.verdicts import conformance_dict

RENDERERS: dict[str, Callable[[RunResults], str]] = {
    "junit.xml": render_junit,
    "report.html": render_html,
    "report.md": render_markdown,
    "cncf-evidence.yaml": render_cncf_yaml,
}
"""Every file rendered from results.json, by file name."""


def _prepare(report_dir: Path) -> None:
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportError(f"cannot create report directory {report_dir}: {err.strerror or err}") from err
    if not os.access(report_dir, os.W_OK | os.X_OK):
        raise ReportError(f"cannot write report directory {report_dir}: permission denied")


def _write(report_dir: Path, name: str, text: str) -> Path:
    target = report_dir / name
    temp = report_dir / f".{name}.tmp"
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, target)
    except OSError as err:
        temp.unlink(missing_ok=True)
        raise ReportError(f"cannot write report directory {report_dir}: {err.strerror or err} ({name})") from err
    return target


def render_files(results: RunResults) -> dict[str, str]:
    """Every report file's text by name, results.json included, without touching the disk."""
    files = {RESULTS_FILE: dump_json(results, {"conformance": conformance_dict(results)})}
    files.update({name: render(results) for name, render in RENDERERS.items()})
    return files


def write_all(results: RunResults, report_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write all five files into ``report_dir`` (created if missing); returns name → path."""
    directory = Path(report_dir)
    rendered = render_files(results)
    _prepare(directory)
    return {name: _write(directory, name, text) for name, text in rendered.items()}


def render_main(report_dir: str | os.PathLike[str], out: TextIO | None = None) -> int:
    """``aiconform report render DIR``: regenerate the html/md/yaml/junit files from ``DIR/results.json``.

    ``report_dir`` may also be the results.json file itself; the files go next to it.  Prints the paths
    written to ``out`` (stdout) and returns 0; a missing or invalid results file raises ``ReportError``.
    """
    path = Path(report_dir)
    directory = path if path.is_dir() else path.parent
    results = load_results(path)
    _prepare(directory)
    stream = out or sys.stdout
    for name, render in RENDERERS.items():
        stream.write(f"{_write(directory, name, render(results))}\n")
    return 0
