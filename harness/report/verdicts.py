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

The run's headline (every writer shows the same one, see :func:`headline`):

* ``failed``  — a check failed or errored;
* ``passed``  — none failed or errored, and every CNCF MUST of the run's checklist is *evidenced*: at least one
  check that names it reached a verdict (passed or failed; skipped and errored checks show nothing);
* ``partial: N of M MUSTs evidenced`` — none failed or errored, but a MUST has no such check (its checks were
  skipped, or no check for it ran): the run cannot say the platform conforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from harness.report.model import CheckResult, RunResults, Status
from harness.report.requirements import (
    CATALOG,
    Category,
    Level,
    Requirement,
    choose_checklist,
    cncf_checklist,
    lookup,
)

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


_EVIDENCING = (Status.PASSED, Status.FAILED)
"""Statuses of a check that evidence its requirement one way or the other."""


@dataclass(frozen=True)
class MustEvidence:
    """One CNCF MUST of the run's checklist and what this run showed about it."""

    requirement: Requirement
    summary: RequirementSummary | None
    """The checks that name it; None when no check named it."""

    @property
    def evidenced(self) -> bool:
        """A check that names it passed or failed (skipped and errored checks show nothing)."""
        return self.summary is not None and any(c.status in _EVIDENCING for c in self.summary.checks)

    @property
    def verdict(self) -> Verdict | None:
        return self.summary.verdict if self.summary else None

    @property
    def need(self) -> str:
        """What the run lacked to evidence it (empty when evidenced): the distinct reasons its checks were skipped
        or errored, with the tier's remedy spelled out; "no check ran" when none names it in this run."""
        if self.evidenced:
            return ""
        if self.summary is None or not self.summary.checks:
            return "no check of this run names it (run the suites that do)"
        reasons: list[str] = []
        for c in self.summary.checks:
            why = _need_of(c)
            if why and why not in reasons:
                reasons.append(why)
        return "; ".join(reasons) or "its checks reached no verdict"


_TIER_REMEDY = {
    "R": "a real kubelet node: the conformance profile (every MUST in one run) or another tier R one, as root on "
         "Linux with the tier R packages (docs/tiers.md)",
    "G": "real GPUs: run against a GPU cluster with --kubeconfig",
}


def _need_of(check: CheckResult) -> str:
    """One check's non-verdict as what it needed: ``needs tier R: <remedy>``, ``needs capability X``, or the
    error's first line."""
    reason = " ".join(check.reason.split())
    if check.status is Status.SKIPPED:
        if reason.startswith("needs tier "):
            tier = reason.removeprefix("needs tier ")[:1]
            return f"needs tier {tier}: {_TIER_REMEDY[tier]}" if tier in _TIER_REMEDY else reason
        if reason.startswith("cluster lacks capability "):
            return "needs " + reason.removeprefix("cluster lacks ")
        return reason or "skipped"
    if check.status is Status.ERROR:
        return f"errored: {reason[:160]}" if reason else "errored"
    return ""


@dataclass(frozen=True)
class MustCoverage:
    """Every CNCF MUST of the checklist for the run's Kubernetes version, evidenced or not, in catalogue order."""

    checklist: tuple[int, int]
    musts: tuple[MustEvidence, ...]
    checklist_note: str = ""
    """Why the checklist is not the cluster's own minor version's (empty when it is)."""

    @property
    def total(self) -> int:
        return len(self.musts)

    @property
    def evidenced(self) -> tuple[str, ...]:
        return tuple(m.requirement.id for m in self.musts if m.evidenced)

    @property
    def unevidenced(self) -> tuple[str, ...]:
        return tuple(m.requirement.id for m in self.musts if not m.evidenced)

    @property
    def checklist_label(self) -> str:
        return f"v{self.checklist[0]}.{self.checklist[1]}"

    @property
    def line(self) -> str:
        """``3 of 8 MUSTs evidenced``."""
        return f"{len(self.evidenced)} of {self.total} MUSTs evidenced"


def must_coverage(results: RunResults) -> MustCoverage:
    """Which CNCF MUSTs of the run's checklist a check of this run evidenced."""
    by_id = {s.requirement_id: s for s in summarize(results)}
    musts = tuple(MustEvidence(r, by_id.get(r.id)) for r in cncf_checklist(results.info.kubernetes_version)
                  if r.level is Level.MUST)
    choice = choose_checklist(results.info.kubernetes_version)
    return MustCoverage(choice.version, musts, choice.note)


class Overall(StrEnum):
    """The run's headline verdict (see the module docstring)."""

    PASSED = "passed"
    FAILED = "failed"
    PARTIAL = "partial"


@dataclass(frozen=True)
class Headline:
    verdict: Overall
    coverage: MustCoverage

    @property
    def text(self) -> str:
        """``passed``, ``failed`` or ``partial: N of M MUSTs evidenced``."""
        return f"partial: {self.coverage.line}" if self.verdict is Overall.PARTIAL else self.verdict.value


def headline(results: RunResults) -> Headline:
    """The run's one headline: failed on any failed or errored check; passed only when every CNCF MUST is
    evidenced; partial otherwise."""
    coverage = must_coverage(results)
    if not results.ok:
        return Headline(Overall.FAILED, coverage)
    return Headline(Overall.PARTIAL if coverage.unevidenced else Overall.PASSED, coverage)


def conformance_dict(results: RunResults) -> dict[str, object]:
    """The headline and the MUST coverage as plain data (``results.json`` key ``conformance``)."""
    head = headline(results)
    cov = head.coverage
    return {
        "headline": head.text,
        "verdict": head.verdict.value,
        "checklist": cov.checklist_label,
        "checklist_note": cov.checklist_note or None,
        "musts_total": cov.total,
        "musts_evidenced": len(cov.evidenced),
        "musts": [
            {"id": m.requirement.id, "category": m.requirement.category.value, "evidenced": m.evidenced,
             "verdict": m.verdict.value if m.verdict else None,
             "checks": len(m.summary.checks) if m.summary else 0,
             "needs": m.need or None}
            for m in cov.musts
        ],
    }
