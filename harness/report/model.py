"""The results model of one conformance run and its ``results.json`` form (versioned schema).

Owns: the dataclasses (``RunInfo``, ``CheckResult``, ``RunResults``), conversion to and from plain JSON data
with validation, and load/save of ``results.json``.  Every problem with a file ends in one ``ReportError``
line that names the file and the bad field.  Nothing here renders or talks to a cluster.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.contract import Tier as Tier
from harness.errors import AiconformError

SCHEMA_VERSION = 1
"""Bump when a field changes meaning or is removed; loaders refuse other versions."""

RESULTS_FILE = "results.json"


class ReportError(AiconformError):
    """A results file is missing or invalid, a report cannot be written, or two results cannot be compared."""


class Status(StrEnum):
    """Outcome of one check.  ``error`` means the harness or infrastructure broke, not the platform."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"


SERIES_KIND = "aiconform.chart"
"""Marker key of an evidence value that is a chart: ``{SERIES_KIND: "series", "x", "y", "title", "lines"}`` (written
by ``Evidence.series``, drawn by the HTML report)."""

@dataclass(frozen=True)
class CheckResult:
    """One check (one pytest item) and what it observed."""

    id: str
    """Unique, pytest-nodeid-like: ``scenarios/test_scheduling.py::test_gpu_fit[2]``."""
    name: str
    """Short human name (the test function name with parameters)."""
    suite: str
    """The scenario suite (module concern): ``scheduling``, ``isolation``, ``sharing`` …"""
    status: Status
    requirement: str | None = None
    """The requirement id it evidences (``gang_scheduling``, ``aiconform.quota``); None when unmapped."""
    tier: Tier = Tier.S
    """The lowest tier at which this check's verdict means something."""
    reason: str = ""
    """Why it failed, errored or was skipped (one line is best); empty when it passed."""
    duration_s: float = 0.0
    evidence: Mapping[str, Any] = field(default_factory=dict)
    """Observations, JSON-able: ``{"node": "gpu-a-0", "allocated": ["GPU-1"]}``."""
    timings: Mapping[str, float] = field(default_factory=dict)
    """Named durations in seconds, e.g. ``time_to_schedule_s``."""


@dataclass(frozen=True)
class ClusterFact:
    """One cluster fact (harness/facts.py) as the run saw it: present or not, who said so, and what was read."""

    name: str
    present: bool
    source: str
    """``detected`` (from what the API serves), ``declared`` (``--capability``) or ``provider`` (the provider that
    built the cluster declared it)."""
    evidence: str = ""


FACT_SOURCES = ("detected", "declared", "provider")


@dataclass(frozen=True)
class RunInfo:
    """What was tested, with what, and when."""

    run_id: str
    harness_version: str
    kubernetes_version: str
    provider: str
    tier: Tier
    """The tier of the cluster under test."""
    profile: str
    started_at: datetime
    """Timezone-aware."""
    finished_at: datetime | None = None
    seed: int | str | None = None
    """The Hypothesis seed of the run, to reproduce property-based checks."""
    facts: tuple[ClusterFact, ...] = ()
    """The cluster's facts, each detected or declared with its evidence (empty in results written before them)."""


@dataclass(frozen=True)
class RunResults:
    """A whole run: its info and its checks in execution order."""

    info: RunInfo
    checks: tuple[CheckResult, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def counts(self) -> dict[Status, int]:
        """Checks per status, every status present."""
        out = {s: 0 for s in Status}
        for check in self.checks:
            out[check.status] += 1
        return out

    @property
    def ok(self) -> bool:
        """True when no check failed or errored."""
        return not any(c.status in (Status.FAILED, Status.ERROR) for c in self.checks)

    def by_id(self) -> dict[str, CheckResult]:
        return {c.id: c for c in self.checks}


# --- to and from JSON data ---------------------------------------------------------------------------------


def to_dict(results: RunResults, derived: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Plain JSON data for ``results.json``; keys in a stable, readable order.  ``derived`` (e.g. ``conformance``:
    the headline and which CNCF MUSTs a check evidenced, from harness.report.verdicts, which builds on this module)
    is written after the summary for readers and ignored on load."""
    info = results.info
    return {
        "schema_version": results.schema_version,
        "run": {
            "run_id": info.run_id,
            "harness_version": info.harness_version,
            "kubernetes_version": info.kubernetes_version,
            "provider": info.provider,
            "tier": info.tier.value,
            "profile": info.profile,
            "started_at": info.started_at.isoformat(),
            "finished_at": info.finished_at.isoformat() if info.finished_at else None,
            "seed": info.seed,
        },
        **({"cluster": {"facts": [{"name": f.name, "present": f.present, "source": f.source, "evidence": f.evidence}
                                  for f in info.facts]}} if info.facts else {}),
        "summary": {s.value: n for s, n in results.counts().items()},
        **dict(derived or {}),
        "checks": [
            {
                "id": c.id,
                "name": c.name,
                "suite": c.suite,
                "requirement": c.requirement,
                "tier": c.tier.value,
                "status": c.status.value,
                "reason": c.reason,
                "duration_s": c.duration_s,
                "evidence": dict(c.evidence),
                "timings": dict(c.timings),
            }
            for c in results.checks
        ],
    }


class _Fields:
    """Typed access to one JSON object with errors that say where the bad field is."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise ReportError(f"{where}: expected an object, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.where = where

    def _bad(self, key: str, wanted: str) -> ReportError:
        return ReportError(f"{self.where}.{key}: expected {wanted}, got {self.data.get(key)!r}")

    def text(self, key: str, *, optional: bool = False, allow_empty: bool = False) -> Any:
        value = self.data.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or (not value and not allow_empty):
            raise self._bad(key, "a string" if allow_empty else "a non-empty string")
        return value

    def number(self, key: str) -> float:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise self._bad(key, "a non-negative number")
        return float(value)

    def enum(self, key: str, kind: type[StrEnum]) -> Any:
        value = self.data.get(key)
        try:
            return kind(value if isinstance(value, str) else "")
        except ValueError:
            raise self._bad(key, "one of " + "/".join(m.value for m in kind)) from None

    def time(self, key: str, *, optional: bool = False) -> datetime | None:
        raw = self.text(key, optional=optional)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise self._bad(key, "an ISO 8601 timestamp") from None
        if value.tzinfo is None:
            raise self._bad(key, "a timestamp with a UTC offset")
        return value

    def obj(self, key: str) -> dict[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise self._bad(key, "an object")
        return value


def from_dict(data: object, source: str = "results") -> RunResults:
    """Validate JSON data and build ``RunResults``; raises ``ReportError`` naming ``source`` and the field."""
    top = _Fields(data, source)
    version = top.data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"{source}: unsupported schema_version {version!r} (this aiconform reads schema_version {SCHEMA_VERSION})"
        )
    run = _Fields(top.data.get("run"), f"{source}: run")
    seed = run.data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
        raise run._bad("seed", "an integer, a string or null")
    started = run.time("started_at")
    assert started is not None
    info = RunInfo(
        run_id=run.text("run_id"),
        harness_version=run.text("harness_version"),
        kubernetes_version=run.text("kubernetes_version", allow_empty=True),
        provider=run.text("provider"),
        tier=run.enum("tier", Tier),
        profile=run.text("profile", allow_empty=True),
        started_at=started,
        finished_at=run.time("finished_at", optional=True),
        seed=seed,
        facts=_facts(top.data.get("cluster"), source),
    )
    raw_checks = top.data.get("checks")
    if not isinstance(raw_checks, list):
        raise top._bad("checks", "a list")
    checks: list[CheckResult] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_checks):
        f = _Fields(raw, f"{source}: checks[{index}]")
        check_id = f.text("id")
        if check_id in seen:
            raise ReportError(f"{f.where}.id: duplicate check id {check_id!r}")
        seen.add(check_id)
        timings = f.obj("timings")
        for key in timings:
            _Fields(timings, f"{f.where}.timings").number(key)
        checks.append(
            CheckResult(
                id=check_id,
                name=f.text("name"),
                suite=f.text("suite", allow_empty=True),
                status=f.enum("status", Status),
                requirement=f.text("requirement", optional=True),
                tier=f.enum("tier", Tier),
                reason=f.text("reason", allow_empty=True),
                duration_s=f.number("duration_s"),
                evidence=f.obj("evidence"),
                timings={k: float(v) for k, v in timings.items()},
            )
        )
    return RunResults(info=info, checks=tuple(checks))


def _facts(data: object, source: str) -> tuple[ClusterFact, ...]:
    """The ``cluster.facts`` list (absent in older results: none)."""
    if data is None:
        return ()
    raw = _Fields(data, f"{source}: cluster").data.get("facts", [])
    if not isinstance(raw, list):
        raise ReportError(f"{source}: cluster.facts: expected a list, got {raw!r}")
    out = []
    for index, item in enumerate(raw):
        f = _Fields(item, f"{source}: cluster.facts[{index}]")
        if not isinstance(f.data.get("present"), bool):
            raise f._bad("present", "true or false")
        if f.data.get("source") not in FACT_SOURCES:
            raise f._bad("source", "one of " + "/".join(FACT_SOURCES))
        out.append(ClusterFact(f.text("name"), f.data["present"], f.data["source"],
                               f.text("evidence", allow_empty=True)))
    return tuple(out)


# --- files ---------------------------------------------------------------------------------------------------


def results_path(path: str | os.PathLike[str]) -> Path:
    """A results file, given either the file or a report directory that holds ``results.json``."""
    p = Path(path)
    return p / RESULTS_FILE if p.is_dir() else p


def read_json(path: str | os.PathLike[str]) -> tuple[Path, object]:
    """Read a results file (or a report directory's) as JSON data; one-line ``ReportError`` on failure."""
    file = results_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"no results file at {file}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"cannot read results file {file}: {err}") from err
    try:
        return file, json.loads(text)
    except json.JSONDecodeError as err:
        raise ReportError(f"{file}: not valid JSON (line {err.lineno}: {err.msg})") from err


def load_results(path: str | os.PathLike[str]) -> RunResults:
    """Load and validate ``results.json`` (a file path or a report directory)."""
    file, data = read_json(path)
    return from_dict(data, str(file))


def dump_json(results: RunResults, derived: Mapping[str, Any] | None = None) -> str:
    """The ``results.json`` text."""
    return json.dumps(to_dict(results, derived), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def save_results(results: RunResults, path: str | os.PathLike[str],
                 derived: Mapping[str, Any] | None = None) -> Path:
    """Write ``results.json`` (``path`` may be the file or its directory); returns the file written."""
    p = Path(path)
    file = p / RESULTS_FILE if p.is_dir() else p
    try:
        file.write_text(dump_json(results, derived), encoding="utf-8")
    except OSError as err:
        raise ReportError(f"cannot write results file {file}: {err.strerror or err}") from err
    return file
