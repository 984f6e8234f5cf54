"""Workload traces for the simulator: a seeded generator and a reader of a user's CSV or YAML trace.

Owns the trace's shape and its validation (a bad row is one ConfigError naming the row and the field).  A trace
says what was *asked* (who submits what, when, for how long, at which priority); it never says what happened:
every figure of the report comes from the cluster (harness.simulate.metrics).  Times are trace seconds; the
replay plays them compressed by a declared factor.
"""

from __future__ import annotations

import csv
import io
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError

GPUS_PER_NODE = 8
"""A job above one node asks for whole nodes: one pod of 8 GPUs per node (the simulated pools have 8 GPUs)."""
PRIORITIES = ("low", "normal", "high")
MAX_GPUS = 64
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
FIELDS = ("name", "team", "gpus", "duration", "priority", "arrival")


@dataclass(frozen=True)
class TraceJob:
    name: str
    """DNS-1123 label, unique in the trace."""
    team: str
    """The submitting team (a namespace in the replay)."""
    gpus: int
    """1..64; above 8 a multiple of 8 (whole nodes)."""
    duration_s: float
    """How long the job runs once all of it is placed, in trace seconds."""
    priority: str
    """low | normal | high."""
    arrival_s: float
    """Submission time, trace seconds from the trace's start."""

    @property
    def pods(self) -> int:
        return 1 if self.gpus <= GPUS_PER_NODE else self.gpus // GPUS_PER_NODE

    @property
    def gpus_per_pod(self) -> int:
        return self.gpus if self.gpus <= GPUS_PER_NODE else GPUS_PER_NODE


@dataclass(frozen=True)
class Trace:
    jobs: tuple[TraceJob, ...]
    entitlements: dict[str, float] = field(default_factory=dict)
    """Team → entitled share of the cluster's GPUs (sums to 1).  Default: equal shares."""
    source: str = "generated"
    seed: int | None = None

    @property
    def teams(self) -> list[str]:
        return sorted(self.entitlements)

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "seed": self.seed, "jobs": len(self.jobs),
                "pods": sum(j.pods for j in self.jobs), "teams": self.entitlements,
                "gpu_hours_asked": round(sum(j.gpus * j.duration_s for j in self.jobs) / 3600, 2),
                "span_s": max((j.arrival_s for j in self.jobs), default=0.0)}


# -- generation ----------------------------------------------------------------------------------------------------

SIZES = (1, 2, 4, 8, 16, 32, 64)
SIZE_WEIGHTS = (30, 20, 15, 15, 10, 6, 4)


def generate(*, seed: int, jobs: int, teams: int = 4, cluster_gpus: int, load: float = 1.1,
             median_duration_s: float = 1800.0) -> Trace:
    """A seeded trace: team ``team-a`` submits twice as many jobs as each other team (so the policies' fairness
    differs), sizes 1–64 GPUs (mostly small, some multi-node gangs), log-normal durations (median
    ``median_duration_s``, clipped to 5 min – 8 h), priorities low/normal/high 30/50/20 %, Poisson arrivals at a
    rate that offers ``load`` × the cluster's GPU capacity."""
    if jobs < 1 or teams < 1 or teams > 26 or cluster_gpus < 1:
        raise ConfigError("trace: jobs and teams must be >= 1 (teams <= 26) and the cluster must have GPUs")
    rng = random.Random(seed)
    names = [f"team-{chr(ord('a') + i)}" for i in range(teams)]
    team_weights = [2.0] + [1.0] * (teams - 1)
    sigma = 0.8
    mean_gpu_s = sum(s * w for s, w in zip(SIZES, SIZE_WEIGHTS, strict=True)) / sum(SIZE_WEIGHTS) * (
        median_duration_s * math.exp(sigma * sigma / 2))
    rate = load * cluster_gpus / mean_gpu_s  # jobs per trace second
    t = 0.0
    out = []
    for i in range(jobs):
        t += rng.expovariate(rate)
        size = rng.choices(SIZES, SIZE_WEIGHTS)[0]
        size = min(size, max(1, cluster_gpus - cluster_gpus % GPUS_PER_NODE if cluster_gpus >= 8 else cluster_gpus))
        duration = min(8 * 3600.0, max(300.0, rng.lognormvariate(math.log(median_duration_s), sigma)))
        out.append(TraceJob(name=f"job-{i:05d}", team=rng.choices(names, team_weights)[0], gpus=size,
                            duration_s=round(duration, 1), priority=rng.choices(PRIORITIES, (30, 50, 20))[0],
                            arrival_s=round(t, 1)))
    return Trace(tuple(out), {n: round(1 / teams, 6) for n in names}, source="generated", seed=seed)


# -- a user's trace ------------------------------------------------------------------------------------------------


def load(path: Path) -> Trace:
    """A CSV (header ``name,team,gpus,duration,priority,arrival``; duration and arrival in seconds) or YAML trace
    (``jobs: [{name, team, gpus, duration, priority, arrival}]``, optional ``teams: {team: share}``)."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"trace {path}: cannot read it ({err.strerror})") from None
    if path.suffix.lower() == ".csv":
        rows: list[tuple[str, dict[str, Any]]] = []
        reader = csv.DictReader(io.StringIO(text))
        missing = [f for f in FIELDS if f not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"trace {path}: header must name {','.join(FIELDS)} (missing {', '.join(missing)})")
        for n, row in enumerate(reader, start=2):  # line 1 is the header
            rows.append((f"row {n}", dict(row)))
        shares: Any = None
    elif path.suffix.lower() in (".yaml", ".yml"):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"trace {path}: not valid YAML ({getattr(err, 'problem', err)})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list):
            raise ConfigError(f"trace {path}: must be a mapping with a list under 'jobs'")
        rows = [(f"jobs[{i}]", r if isinstance(r, dict) else {"": r}) for i, r in enumerate(doc["jobs"])]
        shares = doc.get("teams")
    else:
        raise ConfigError(f"trace {path}: must be a .csv, .yaml or .yml file")
    jobs = tuple(_job(where, row, path) for where, row in rows)
    if not jobs:
        raise ConfigError(f"trace {path}: has no jobs")
    seen: set[str] = set()
    for (where, _), job in zip(rows, jobs, strict=True):
        if job.name in seen:
            raise ConfigError(f"trace {path} {where}: field name: duplicate job name {job.name!r}")
        seen.add(job.name)
    return Trace(tuple(sorted(jobs, key=lambda j: (j.arrival_s, j.name))), _shares(shares, jobs, path),
                 source=str(path))


def _job(where: str, row: dict[str, Any], path: Path) -> TraceJob:
    def bad(fld: str, why: str) -> ConfigError:
        return ConfigError(f"trace {path} {where}: field {fld}: {why}, got {row.get(fld)!r}")

    unknown = [k for k in row if k not in FIELDS]
    if unknown:
        raise ConfigError(f"trace {path} {where}: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    name = str(row.get("name") or "").strip()
    if not _NAME.match(name) or len(name) > 50:
        raise bad("name", "must be a DNS-1123 label of at most 50 characters")
    team = str(row.get("team") or "").strip()
    if not _NAME.match(team) or len(team) > 40:
        raise bad("team", "must be a DNS-1123 label of at most 40 characters")
    try:
        gpus = int(str(row.get("gpus")).strip())
    except ValueError:
        raise bad("gpus", "must be an integer") from None
    if not 1 <= gpus <= MAX_GPUS or (gpus > GPUS_PER_NODE and gpus % GPUS_PER_NODE):
        raise bad("gpus", f"must be 1..{GPUS_PER_NODE}, or a multiple of {GPUS_PER_NODE} up to {MAX_GPUS}")
    duration = _seconds(row.get("duration"))
    if duration is None or duration <= 0:
        raise bad("duration", "must be a number of seconds > 0")
    arrival = _seconds(row.get("arrival"))
    if arrival is None or arrival < 0:
        raise bad("arrival", "must be a number of seconds >= 0")
    priority = str(row.get("priority") or "normal").strip()
    if priority not in PRIORITIES:
        raise bad("priority", f"must be one of {', '.join(PRIORITIES)}")
    return TraceJob(name, team, gpus, duration, priority, arrival)


def _seconds(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(str(v).strip())
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _shares(raw: Any, jobs: tuple[TraceJob, ...], path: Path) -> dict[str, float]:
    teams = sorted({j.team for j in jobs})
    if raw is None:
        return {t: round(1 / len(teams), 6) for t in teams}
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"trace {path}: teams: must map each team to its share of the GPUs")
    out: dict[str, float] = {}
    for t, v in raw.items():
        share = _seconds(v)
        if share is None or share <= 0:
            raise ConfigError(f"trace {path}: teams.{t}: must be a share > 0, got {v!r}")
        out[str(t)] = share
    missing = [t for t in teams if t not in out]
    if missing:
        raise ConfigError(f"trace {path}: teams: no share for team {missing[0]!r}")
    total = sum(out.values())
    return {t: round(v / total, 6) for t, v in out.items()}
