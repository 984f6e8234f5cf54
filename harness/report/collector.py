"""``ResultsCollector``: the mutable builder the pytest plugin feeds while a run goes on.

Evidence and timings may be recorded before a check's outcome is known (the test body records them, the
plugin adds the check when pytest reports the outcome); they are merged into the check when it is added.
Values are checked to be JSON-able when recorded, so a bad value fails in the test that recorded it, not at
the end of the run.  ``results()`` freezes the state into ``RunResults``; ``write_all`` writes every file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.report import writers
from harness.report.model import CheckResult, ClusterFact, ReportError, RunInfo, RunResults, Status, Tier
from harness.report.submission import Product


def _jsonable(value: Any, what: str) -> Any:
    """``value`` as it will read back from ``results.json`` (tuples become lists), or ReportError."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ReportError(f"{what} is not JSON-serializable: {err}") from err


class ResultsCollector:
    """Collects checks of one run.  Not thread-safe; one per pytest session."""

    def __init__(
        self,
        *,
        run_id: str,
        harness_version: str,
        kubernetes_version: str,
        provider: str,
        tier: Tier | str,
        profile: str,
        seed: int | str | None = None,
        started_at: datetime | None = None,
        facts: tuple[ClusterFact, ...] = (),
    ) -> None:
        self._info = RunInfo(
            run_id=run_id,
            harness_version=harness_version,
            kubernetes_version=kubernetes_version,
            provider=provider,
            tier=Tier(tier),
            profile=profile,
            started_at=started_at or datetime.now(UTC),
            seed=seed,
            facts=tuple(facts),
        )
        self._checks: dict[str, CheckResult] = {}
        self._pending_evidence: dict[str, dict[str, Any]] = {}
        self._pending_timings: dict[str, dict[str, float]] = {}

    @property
    def info(self) -> RunInfo:
        return self._info

    def add_check(
        self,
        check_id: str,
        *,
        name: str,
        suite: str,
        status: Status | str,
        requirement: str | None = None,
        tier: Tier | str = Tier.S,
        reason: str = "",
        duration_s: float = 0.0,
        evidence: dict[str, Any] | None = None,
        timings: dict[str, float] | None = None,
        replace: bool = False,
    ) -> CheckResult:
        """Record a check's outcome.  Evidence/timings recorded earlier for ``check_id`` are merged in (the
        arguments win on equal keys).  Adding an id twice raises ``ReportError`` unless ``replace=True``, which
        keeps the earlier check's evidence and timings and overwrites the rest."""
        if not check_id:
            raise ReportError("a check needs a non-empty id")
        earlier = self._checks.get(check_id)
        if earlier is not None and not replace:
            raise ReportError(f"check {check_id!r} was already recorded")
        if not math.isfinite(duration_s) or duration_s < 0:
            raise ReportError(f"check {check_id!r}: duration_s must be a non-negative number, got {duration_s!r}")
        merged_evidence = dict(earlier.evidence) if earlier else {}
        merged_evidence.update(self._pending_evidence.pop(check_id, {}))
        merged_evidence.update(_jsonable(evidence or {}, f"evidence of check {check_id!r}"))
        merged_timings = dict(earlier.timings) if earlier else {}
        merged_timings.update(self._pending_timings.pop(check_id, {}))
        for key, seconds in (timings or {}).items():
            merged_timings[key] = self._seconds(check_id, key, seconds)
        check = CheckResult(
            id=check_id,
            name=name,
            suite=suite,
            status=Status(status),
            requirement=requirement or None,
            tier=Tier(tier),
            reason=reason,
            duration_s=float(duration_s),
            evidence=merged_evidence,
            timings=merged_timings,
        )
        self._checks[check_id] = check
        return check

    def record_evidence(self, check_id: str, key: str, value: Any) -> None:
        """Attach one observation to a check (added already or later)."""
        value = _jsonable(value, f"evidence {key!r} of check {check_id!r}")
        if check_id in self._checks:
            check = self._checks[check_id]
            self._checks[check_id] = dataclasses.replace(check, evidence={**check.evidence, key: value})
        else:
            self._pending_evidence.setdefault(check_id, {})[key] = value

    def record_timing(self, check_id: str, key: str, seconds: float) -> None:
        """Attach a named duration (e.g. ``time_to_schedule_s``) to a check (added already or later)."""
        seconds = self._seconds(check_id, key, seconds)
        if check_id in self._checks:
            check = self._checks[check_id]
            self._checks[check_id] = dataclasses.replace(check, timings={**check.timings, key: seconds})
        else:
            self._pending_timings.setdefault(check_id, {})[key] = seconds

    @staticmethod
    def _seconds(check_id: str, key: str, seconds: float) -> float:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            raise ReportError(f"timing {key!r} of check {check_id!r} must be a number of seconds, got {seconds!r}")
        if seconds < 0:
            raise ReportError(f"timing {key!r} of check {check_id!r} must not be negative, got {seconds!r}")
        return float(seconds)

    def results(self, finished_at: datetime | None = None) -> RunResults:
        """The run so far, frozen.  ``finished_at`` defaults to now."""
        info = dataclasses.replace(self._info, finished_at=finished_at or datetime.now(UTC))
        return RunResults(info=info, checks=tuple(self._checks.values()))

    def write_all(self, report_dir: str | os.PathLike[str], finished_at: datetime | None = None, *,
                  product: Product | None = None, notice: Callable[[str], None] | None = None) -> dict[str, Path]:
        """Write every report file and the CNCF submission folder (for ``product``) into ``report_dir`` (created if
        missing); returns name → path.  ``notice`` gets the line saying the submission's metadata is incomplete."""
        return writers.write_all(self.results(finished_at), report_dir, product=product, notice=notice)
