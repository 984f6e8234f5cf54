"""The verdict per requirement, derived from the statuses of the checks that name it.

The rule (one place; every writer uses it):

* ``fail``    — at least one check failed and none passed;
* ``partial`` — at least one check failed and at least one passed;
* ``error``   — no check failed, but at least one errored (the infrastructure broke): inconclusive;
* ``pass``    — at least one check passed and none failed or errored (skipped checks are listed, not counted
  against it);
* ``skipped`` — every check was skipped (e.g. the cluster's tier is below what the checks need).

CNCF status vocabulary: pass → ``Implemented``, partial → ``Partially Implemented``, fail → ``Not Implemented``;
error and skipped → ``""`` (left for a person to fill in: this run proves neither way, and the CNCF ``N/A``
means "does not apply", which a skip does not show).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from harness.report.model import CheckResult, RunResults, Status
from harness.report.requirements import CATALOG, Category, Level, Requirement, cncf_checklist, lookup

UNMAPPED = "(unmapped)"
"""Pseudo requirement id for checks that name no requirement."""


class Verdict(StrEnum):
    PASS = "pass"
    PARTIAL = "partial"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def cncf_status(self) -> str:
        return _CNCF_STATUS[self]


_CNCF_STATUS = {
    Verdict.PASS: "Implemented",
    Verdict.PARTIAL: "Partially Implemented",
    Verdict.FAIL: "Not Implemented",
    Verdict.ERROR: "",
    Verdict.SKIPPED: "",
}


def verdict_of(statuses: list[Status]) -> Verdict:
    """Apply the module's rule to the statuses of one requirement's checks (at least one)."""
    passed = Status.PASSED in statuses
    if Status.FAILED in statuses:
        return Verdict.PARTIAL if passed else Verdict.FAIL
    if Status.ERROR in statuses:
        return Verdict.ERROR
    return Verdict.PASS if passed else Verdict.SKIPPED


@dataclass(frozen=True)
class RequirementSummary:
    """One requirement's verdict and the checks it rests on."""

    requirement_id: str
    requirement: Requirement | None
    """The catalogue entry; None for an unknown id or ``UNMAPPED``."""
    verdict: Verdict
    checks: tuple[CheckResult, ...]

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status is status)

    @property
    def category(self) -> Category | None:
        return self.requirement.category if self.requirement else None

    @property
    def level(self) -> Level | None:
        return self.requirement.level if self.requirement else None


def summarize(results: RunResults) -> list[RequirementSummary]:
    """One summary per requirement id that any check names: CNCF ids first (catalogue order), then project
    ids, then unknown ids (sorted), then unmapped checks.  CNCF levels follow the checklist of the run's
    Kubernetes version."""
    grouped: dict[str, list[CheckResult]] = {}
    for check in results.checks:
        grouped.setdefault(check.requirement or UNMAPPED, []).append(check)

    position = {rid: i for i, rid in enumerate(CATALOG)}
    # CNCF levels as the checklist for the run's Kubernetes version states them
    at_version = {r.id: r for r in cncf_checklist(results.info.kubernetes_version)}

    def order(rid: str) -> tuple[int, int, str]:
        if rid in CATALOG:
            return (0 if CATALOG[rid].is_cncf else 1, position[rid], rid)
        return (3 if rid == UNMAPPED else 2, 0, rid)

    return [
        RequirementSummary(
            requirement_id=rid,
            requirement=at_version.get(rid) or lookup(rid),
            verdict=verdict_of([c.status for c in checks]),
            checks=tuple(checks),
        )
        for rid, checks in sorted(grouped.items(), key=lambda item: order(item[0]))
    ]
