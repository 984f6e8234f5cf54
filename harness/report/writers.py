"""Write a report directory: ``results.json``, ``junit.xml``, ``report.html``, ``report.md``, and the CNCF submission
folder ``cncf/v1.X/<product>/`` (PRODUCT.yaml, a transcript per requirement, aiconform.yaml: see ``submission``).

Each file is rendered in memory first, then written next to its final name and renamed into place, so a
reader never sees half a file.  A directory that cannot be created or written ends in one ``ReportError``
line naming it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from harness.report.html_report import render_html
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.report.model import RESULTS_FILE, ReportError, RunResults, dump_json, load_results
from harness.report.submission import SUBMISSION_ROOT, Product, Submission, build_submission
from harness.report.verdicts import conformance_dict

RENDERERS: dict[str, Callable[[RunResults], str]] = {
    "junit.xml": render_junit,
    "report.html": render_html,
    "report.md": render_markdown,
}
"""Every single file rendered from results.json, by file name (the CNCF submission folder is written next to them)."""


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


def write_submission(results: RunResults, report_dir: Path, product: Product | None = None) -> tuple[Submission,
                                                                                                    dict[str, Path]]:
    """Write the CNCF submission folder under ``report_dir/cncf/`` (replacing any earlier one: a rerun or another
    product file leaves no stale folder); returns it and relative name → path."""
    sub = build_submission(results, product)
    root = report_dir / SUBMISSION_ROOT
    try:
        if root.exists():
            shutil.rmtree(root)
        (report_dir / sub.folder).mkdir(parents=True)
    except OSError as err:
        raise ReportError(f"cannot write report directory {report_dir}: {err.strerror or err} ({sub.folder})") from err
    folder = report_dir / sub.folder
    return sub, {f"{sub.folder}/{name}": _write(folder, name, text) for name, text in sub.files.items()}


def write_all(results: RunResults, report_dir: str | os.PathLike[str], *, product: Product | None = None,
              notice: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write every file into ``report_dir`` (created if missing) and the CNCF submission folder for ``product``;
    returns name (relative to ``report_dir``) → path.  ``notice`` gets the one line saying the submission's
    metadata is incomplete, when it is."""
    directory = Path(report_dir)
    rendered = render_files(results)
    _prepare(directory)
    paths = {name: _write(directory, name, text) for name, text in rendered.items()}
    sub, sub_paths = write_submission(results, directory, product)
    line = sub.incomplete_line()
    if line and notice is not None:
        notice(line)
    return {**paths, **sub_paths}


def render_main(report_dir: str | os.PathLike[str], out: TextIO | None = None, product: Product | None = None) -> int:
    """``aiconform report render DIR``: regenerate the html/md/junit files and the CNCF submission folder (for
    ``product``) from ``DIR/results.json``.

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
    sub, paths = write_submission(results, directory, product)
    stream.write(f"{directory / sub.folder}/\n")
    line = sub.incomplete_line()
    if line:
        sys.stderr.write(f"aiconform: {line}\n")
    return 0
