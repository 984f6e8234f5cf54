"""Compare two runs (e.g. before and after a cluster upgrade): ``diff`` → ``DiffResult``, ``render_diff`` → text.

The two headlines are shown first.  A regression is a check that passed before and failed or errored after;
``has_regression`` is what ``aiconform report diff`` turns into exit status 1.  Also reported, without failing:
fixes, new skips, checks added or removed, and timing changes (duration and each named timing) beyond both a
relative and an absolute threshold.  Two results of different schema versions are refused with one ``ReportError`` line.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO

from harness.report.model import CheckResult, ReportError, RunResults, Status, from_dict, read_json
from harness.report.verdicts import headline

DEFAULT_RELATIVE_THRESHOLD = 0.5
"""A timing change counts when it is more than 50 % of the earlier value …"""
DEFAULT_ABSOLUTE_THRESHOLD_S = 1.0
"""… and more than 1 s."""


@dataclass(frozen=True)
class StatusChange:
    check_id: str
    before: Status
    after: Status
    reason: str
    """The reason recorded in the later run."""


@dataclass(frozen=True)
class TimingChange:
    check_id: str
    metric: str
    """``duration_s`` or a timing key such as ``time_to_schedule_s``."""
    before_s: float
    after_s: float

    @property
    def delta_s(self) -> float:
        return self.after_s - self.before_s

    @property
    def ratio(self) -> float:
        return self.after_s / self.before_s if self.before_s else float("inf")


@dataclass(frozen=True)
class DiffResult:
    before_run: str
    after_run: str
    regressions: tuple[StatusChange, ...] = ()
    """passed → failed or error."""
    fixes: tuple[StatusChange, ...] = ()
    """failed or error → passed."""
    new_skips: tuple[StatusChange, ...] = ()
    """anything but skipped → skipped."""
    other_changes: tuple[StatusChange, ...] = ()
    """any other status change (failed → error, skipped → passed, …)."""
    added: tuple[CheckResult, ...] = ()
    removed: tuple[CheckResult, ...] = ()
    timing_changes: tuple[TimingChange, ...] = ()
    headlines: tuple[str, str] = ("", "")
    """The two runs' headlines (``passed`` / ``failed`` / ``partial: N of M MUSTs evidenced``)."""

    @property
    def has_regression(self) -> bool:
        return bool(self.regressions)


def _significant(before: float, after: float, relative: float, absolute_s: float) -> bool:
    change = abs(after - before)
    return change > absolute_s and (before == 0 or change / before > relative)


def diff(
    before: RunResults,
    after: RunResults,
    *,
    relative_threshold: float = DEFAULT_RELATIVE_THRESHOLD,
    absolute_threshold_s: float = DEFAULT_ABSOLUTE_THRESHOLD_S,
) -> DiffResult:
    """Compare ``after`` against ``before``, matching checks by id."""
    if before.schema_version != after.schema_version:
        raise ReportError(
            f"cannot compare results of schema_version {before.schema_version} and {after.schema_version}"
        )
    old, new = before.by_id(), after.by_id()
    regressions, fixes, skips, others, timings = [], [], [], [], []
    bad = (Status.FAILED, Status.ERROR)
    for check_id, a in new.items():
        b = old.get(check_id)
        if b is None:
            continue
        if a.status is not b.status:
            change = StatusChange(check_id, b.status, a.status, a.reason)
            if b.status is Status.PASSED and a.status in bad:
                regressions.append(change)
            elif b.status in bad and a.status is Status.PASSED:
                fixes.append(change)
            elif a.status is Status.SKIPPED:
                skips.append(change)
            else:
                others.append(change)
        pairs = [("duration_s", b.duration_s, a.duration_s)]
        pairs += [(k, b.timings[k], a.timings[k]) for k in a.timings if k in b.timings]
        for metric, x, y in pairs:
            if _significant(x, y, relative_threshold, absolute_threshold_s):
                timings.append(TimingChange(check_id, metric, x, y))
    return DiffResult(
        before_run=before.info.run_id,
        after_run=after.info.run_id,
        regressions=tuple(regressions),
        fixes=tuple(fixes),
        new_skips=tuple(skips),
        other_changes=tuple(others),
        added=tuple(c for i, c in new.items() if i not in old),
        removed=tuple(c for i, c in old.items() if i not in new),
        timing_changes=tuple(timings),
        headlines=(headline(before).text, headline(after).text),
    )


def render_diff(result: DiffResult) -> str:
    """Plain text for a terminal or CI log; empty sections are left out."""
    lines = [f"aiconform report diff: {result.before_run} → {result.after_run}"]
    if any(result.headlines):
        lines.append(f"headline: {result.headlines[0]} → {result.headlines[1]}")

    def section(title: str, items: list[str]) -> None:
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines.extend(f"  {item}" for item in items)

    def status_line(c: StatusChange) -> str:
        reason = " ".join(c.reason.split())
        return f"{c.check_id}: {c.before.value} → {c.after.value}" + (f" — {reason}" if reason else "")

    section("REGRESSIONS", [status_line(c) for c in result.regressions])
    section("Fixed", [status_line(c) for c in result.fixes])
    section("Newly skipped", [status_line(c) for c in result.new_skips])
    section("Other status changes", [status_line(c) for c in result.other_changes])
    section("Added checks", [f"{c.id} ({c.status.value})" for c in result.added])
    section("Removed checks", [f"{c.id} (was {c.status.value})" for c in result.removed])
    section(
        "Timing changes",
        [
            f"{t.check_id} {t.metric}: {t.before_s:.2f} s → {t.after_s:.2f} s ({t.delta_s:+.2f} s"
            + (f", ×{t.ratio:.1f})" if t.before_s else ")")
            for t in result.timing_changes
        ],
    )
    if len(lines) == 1 + any(result.headlines):
        lines.append("no differences")
    lines.append("result: " + ("REGRESSION" if result.has_regression else "no regression"))
    return "\n".join(lines) + "\n"


def load_pair(before_path: str | os.PathLike[str], after_path: str | os.PathLike[str]) -> tuple[RunResults, RunResults]:
    """Load two results (files or report directories), refusing different schema versions in one line."""
    (before_file, before_data), (after_file, after_data) = read_json(before_path), read_json(after_path)
    versions = [d.get("schema_version") if isinstance(d, dict) else None for d in (before_data, after_data)]
    if versions[0] != versions[1]:
        raise ReportError(
            f"cannot compare results of different schema versions: {before_file} has schema_version "
            f"{versions[0]!r}, {after_file} has {versions[1]!r}"
        )
    return from_dict(before_data, str(before_file)), from_dict(after_data, str(after_file))


def diff_main(
    before_path: str | os.PathLike[str],
    after_path: str | os.PathLike[str],
    out: TextIO | None = None,
    *,
    relative_threshold: float = DEFAULT_RELATIVE_THRESHOLD,
    absolute_threshold_s: float = DEFAULT_ABSOLUTE_THRESHOLD_S,
) -> int:
    """``aiconform report diff BEFORE AFTER``: print the diff to ``out`` (stdout); 1 on regression, else 0.

    Raises ``ReportError`` (one line) for a missing or invalid file; the CLI prints it and exits non-zero.
    """
    before, after = load_pair(before_path, after_path)
    result = diff(before, after, relative_threshold=relative_threshold, absolute_threshold_s=absolute_threshold_s)
    (out or sys.stdout).write(render_diff(result))
    return 1 if result.has_regression else 0
