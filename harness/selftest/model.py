"""What a selftest is made of: the owning checks, each check's grade, each mutation's result, the settings.

Shared by the runner (harness/selftest/run.py) and the writers (harness/selftest/report.py), which import it and
not each other's internals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from harness.contract import Tier
from harness.selftest.mutations import Mutation


class Verdict(StrEnum):
    CAUGHT = "caught"
    MISSED = "missed"
    ERROR = "error"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class Owner:
    """A check whose marker names mutations it must catch."""

    id: str
    """pytest node id, as results.json names it (``scenarios/test_gang.py::test_x``)."""
    name: str
    """The test function's name (what ``-k`` selects)."""
    file: str
    requirement: str | None
    tier: str
    mutations: tuple[str, ...]


@dataclass(frozen=True)
class CheckOutcome:
    """What one owning check said on one platform (None: no verdict: it never ran)."""

    status: str | None
    reason: str = ""


@dataclass(frozen=True)
class CheckGrade:
    check: str
    verdict: Verdict
    reason: str
    status: str | None = None
    """The check's own verdict on the mutated platform."""


@dataclass
class MutationResult:
    mutation: Mutation
    owners: list[Owner]
    verdict: Verdict = Verdict.NOT_RUN
    why: str = ""
    """For a mutation that did not run: why; otherwise a summary line."""
    checks: list[CheckGrade] = field(default_factory=list)
    report_dir: str = ""
    duration_s: float = 0.0


def owners_of(mutation: Mutation, owners: Sequence[Owner]) -> list[Owner]:
    return [o for o in owners if mutation.id in o.mutations]


def why_not_here(mutation: Mutation, owners: Sequence[Owner], max_tier: str) -> str:
    """Why this mutation cannot run here (empty: it can)."""
    if not owners:
        return "no check names it in its marker"
    need = max([mutation.tier, *(o.tier for o in owners)], key=lambda t: Tier(t).rank)
    if Tier(need).rank > Tier(max_tier).rank:
        return f"needs tier {need} (a real node: run with --tier R as root)" if need == "R" else f"needs tier {need}"
    return ""


@dataclass(frozen=True)
class SelftestSettings:
    report_dir: Path
    requirements: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    mutations: tuple[str, ...] = ()
    suite: str | None = None
    """A folder (or file) of checks instead of the shipped suites (a user's own checks, or a test's)."""
    max_tier: str = "S"
    """The highest tier this run may bring up: S (simulated nodes) or R (a real node; needs root)."""
    baseline: bool = True
    """Run the owning checks on the unmutated platform first: a check that fails there proves nothing."""
    musts_only: bool = False
    """Only the mutations of the CNCF MUST requirements (``make selftest``)."""
