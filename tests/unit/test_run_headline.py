"""The lines `aiconform run` prints at its end: the MUST coverage and, per MUST not evidenced, what it needed."""

from __future__ import annotations

from pathlib import Path

from harness.report.sample import sample_results
from harness.report.writers import write_all
from harness.runner import conformance_lines


def test_run_ends_with_the_must_count_and_what_each_missing_must_needs(tmp_path: Path) -> None:
    write_all(sample_results(), tmp_path)
    lines = conformance_lines(tmp_path)
    assert lines[0].startswith("not conformant: ") and "MUSTs evidenced (CNCF checklist v1." in lines[0]
    missing = [ln for ln in lines[1:] if ln.startswith("  not evidenced: ")]
    assert missing, lines
    assert all(ln.split(": ", 2)[2] for ln in missing), lines  # each names a need, never an empty reason
    assert any("needs tier R: a real kubelet node" in ln for ln in missing), lines


def test_no_results_no_lines(tmp_path: Path) -> None:
    assert conformance_lines(tmp_path) == []
