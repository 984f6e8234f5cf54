"""Utilization and fairness figures of one replay, computed only from what the cluster did (harness.simulate.replay's
Observation: when the API showed each pod bound, running, finished or stopped), never from the trace's intentions.
The trace contributes only who asked (team, entitlement) and when a job was submitted.

Definitions (times reported in trace hours/minutes: wall seconds × the declared compression factor):
- allocated GPU utilization: GPUs held by running pods / cluster GPUs, over time and its time average over the
  replay (first submission → last finish);
- productive utilization: the same, counting a job's GPUs only while *all* its pods run at once (a partly placed
  multi-pod job holds GPUs without making progress);
- queue wait of a job: from the API accepting its Job to the first moment all its pods were running together (or,
  if that never happened, the start of its last pod); p50/p99 per team;
- share of GPU-hours per team (allocated) against its entitlement, and Jain's fairness index over
  share / entitlement (1 = every team got exactly its entitlement; 1/n = one team got everything);
- preemptions: pods stopped before they finished (DisruptionTarget reason, or deleted) and the Events with
  reason Preempted;
- starved jobs: jobs that never fully ran, or waited longer than the starvation threshold;
- head-of-line blocking: for each small job (≤ 8 GPUs) the time it waited while at least its GPUs were free in the
  cluster and a multi-node job was waiting too (free GPUs counted cluster-wide: fragmentation across nodes may
  explain part of it).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from harness.simulate.replay import Observation, PodRecord
from harness.simulate.trace import GPUS_PER_NODE, Trace, TraceJob

TIMELINE_POINTS = 120


@dataclass(frozen=True)
class JobOutcome:
    name: str
    team: str
    gpus: int
    submitted: float | None
    started: float | None
    """Wall seconds: first moment all pods ran together (or the last pod's start)."""
    finished: float | None
    fully_ran: bool
    wait_s: float | None
    """Trace seconds."""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def jain(xs: list[float]) -> float | None:
    if not xs or all(x == 0 for x in xs):
        return None
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


def _end(p: PodRecord, horizon: float) -> float | None:
    if p.running is None:
        return None
    return p.succeeded if p.succeeded is not None else (p.stopped if p.stopped is not None else horizon)


def job_outcomes(obs: Observation, trace: Trace) -> list[JobOutcome]:
    by_job: dict[str, list[PodRecord]] = defaultdict(list)
    for p in obs.pods:
        by_job[p.job].append(p)
    out = []
    for tj in trace.jobs:
        pods = by_job.get(tj.name, [])
        started, full = _full_start(pods, tj, obs.end)
        finished = None
        done = [p.succeeded for p in pods if p.succeeded is not None]
        if len(done) >= tj.pods:
            finished = max(done)
        sub = obs.submitted.get(tj.name)
        wait = (started - sub) * obs.compression if started is not None and sub is not None else None
        out.append(JobOutcome(tj.name, tj.team, tj.gpus, sub, started, finished, full, wait))
    return out


def _full_start(pods: list[PodRecord], tj: TraceJob, horizon: float) -> tuple[float | None, bool]:
    """First time all ``tj.pods`` pods ran at once; else the last pod's start (if every pod ran at some point)."""
    edges: list[tuple[float, int]] = []
    for p in pods:
        end = _end(p, horizon)
        if p.running is not None and end is not None:
            edges += [(p.running, 1), (end, -1)]
    level = 0
    for t, d in sorted(edges, key=lambda e: (e[0], -e[1])):
        level += d
        if level >= tj.pods:
            return t, True
    starts = sorted(p.running for p in pods if p.running is not None)
    if len(starts) >= tj.pods:
        return starts[tj.pods - 1], False
    return None, False


def step_series(intervals: list[tuple[float, float, float]]) -> tuple[list[float], list[float]]:
    """Breakpoints and the value from each breakpoint to the next, for intervals (start, end, amount)."""
    deltas: dict[float, float] = defaultdict(float)
    for s, e, a in intervals:
        if e > s:
            deltas[s] += a
            deltas[e] -= a
    times = sorted(deltas)
    values, level = [], 0.0
    for t in times:
        level += deltas[t]
        values.append(level)
    return times, values


def integral(times: list[float], values: list[float], a: float, b: float) -> float:
    total = 0.0
    for i, t in enumerate(times):
        nxt = times[i + 1] if i + 1 < len(times) else b
        lo, hi = max(t, a), min(nxt, b)
        if hi > lo:
            total += values[i] * (hi - lo)
    return total


def value_at(times: list[float], values: list[float], t: float) -> float:
    i = bisect.bisect_right(times, t) - 1
    return values[i] if i >= 0 else 0.0


def compute(obs: Observation, trace: Trace, *, starve_after_s: float = 4 * 3600.0) -> dict[str, Any]:
    """The policy's figures (JSON-ready)."""
    c = obs.compression
    jobs = job_outcomes(obs, trace)
    tj_by_name = {j.name: j for j in trace.jobs}
    start = min(obs.submitted.values(), default=0.0)
    ends = [e for p in obs.pods if (e := _end(p, obs.end)) is not None]
    stop = max(ends, default=obs.end)
    span = max(stop - start, 1e-9)

    alloc = [(p.running, e, float(p.gpus)) for p in obs.pods if p.running is not None
             and (e := _end(p, obs.end)) is not None]
    at, av = step_series(alloc)
    productive = _productive_intervals(obs.pods, jobs, tj_by_name, obs.end)
    pt, pv = step_series(productive)
    util_avg = integral(at, av, start, stop) / (span * obs.total_gpus)
    prod_avg = integral(pt, pv, start, stop) / (span * obs.total_gpus)
    timeline = []
    for i in range(TIMELINE_POINTS + 1):
        t = start + span * i / TIMELINE_POINTS
        timeline.append({"t_h": round((t - start) * c / 3600, 4),
                         "allocated": round(value_at(at, av, t) / obs.total_gpus, 4),
                         "productive": round(value_at(pt, pv, t) / obs.total_gpus, 4)})

    gpu_s: dict[str, float] = defaultdict(float)
    for p in obs.pods:
        if p.running is not None and (e := _end(p, obs.end)) is not None:
            gpu_s[p.team] += (e - p.running) * p.gpus
    teams: dict[str, Any] = {}
    total_gpu_s = sum(gpu_s.values()) or 1e-9
    stopped = [p for p in obs.pods if p.stopped is not None and p.running is not None]
    ratios = []
    for team in trace.teams:
        tjobs = [j for j in jobs if j.team == team]
        waits = [j.wait_s for j in tjobs if j.wait_s is not None]
        share = gpu_s.get(team, 0.0) / total_gpu_s
        ent = trace.entitlements.get(team, 0.0)
        ratios.append(share / ent if ent else 0.0)
        teams[team] = {
            "jobs": len(tjobs),
            "finished": sum(1 for j in tjobs if j.finished is not None),
            "wait_p50_min": _minutes(percentile(waits, 50)),
            "wait_p99_min": _minutes(percentile(waits, 99)),
            "gpu_hours": round(gpu_s.get(team, 0.0) * c / 3600, 2),
            "share": round(share, 4),
            "entitlement": ent,
            "pods_preempted": sum(1 for p in stopped if p.team == team),
            "preemption_events": obs.preemption_events.get(team, 0),
        }
    starved = [j for j in jobs if j.started is None or (j.wait_s is not None and j.wait_s > starve_after_s)]
    hol = _head_of_line(jobs, at, av, obs.total_gpus, obs.end, c)
    waits_all = [j.wait_s for j in jobs if j.wait_s is not None]
    return {
        "policy": obs.policy,
        "finished_all": obs.finished,
        "wall_s": round(obs.end, 2),
        "jobs": len(jobs),
        "jobs_finished": sum(1 for j in jobs if j.finished is not None),
        "pods_succeeded": sum(1 for p in obs.pods if p.succeeded is not None),
        "gpu_utilization_avg": round(util_avg, 4),
        "productive_utilization_avg": round(prod_avg, 4),
        "makespan_h": round(span * c / 3600, 3),
        "wait_p50_min": _minutes(percentile(waits_all, 50)),
        "wait_p99_min": _minutes(percentile(waits_all, 99)),
        "fairness_jain": None if (j := jain(ratios)) is None else round(j, 4),
        "pods_preempted": len(stopped),
        "preemption_events": sum(obs.preemption_events.values()),
        "preempt_reasons": dict(sorted(_count(p.stop_reason for p in stopped).items())),
        "starved_jobs": len(starved),
        "starve_after_h": round(starve_after_s / 3600, 2),
        "starved": [j.name for j in starved][:50],
        "jobs_never_fully_ran": sum(1 for j in jobs if not j.fully_ran),
        "head_of_line": hol,
        "teams": teams,
        "timeline": timeline,
    }


def _productive_intervals(pods: tuple[PodRecord, ...], jobs: list[JobOutcome], tj_by_name: dict[str, TraceJob],
                          horizon: float) -> list[tuple[float, float, float]]:
    by_job: dict[str, list[PodRecord]] = defaultdict(list)
    for p in pods:
        by_job[p.job].append(p)
    out = []
    for j in jobs:
        tj = tj_by_name[j.name]
        edges = []
        for p in by_job.get(j.name, []):
            end = _end(p, horizon)
            if p.running is not None and end is not None:
                edges += [(p.running, 1, p.gpus), (end, -1, p.gpus)]
        level, since = 0, 0.0
        for t, d, _g in sorted(edges, key=lambda e: (e[0], e[1])):
            before = level
            level += d
            if before < tj.pods <= level:
                since = t
            elif level < tj.pods <= before:
                out.append((since, t, float(tj.gpus)))
    return out


def _head_of_line(jobs: list[JobOutcome], at: list[float], av: list[float], total: int, horizon: float,
                  c: float) -> dict[str, Any]:
    """Small jobs (≤ 8 GPUs) waiting while their GPUs were free cluster-wide and a multi-node job waited too."""
    large_waits = [(j.submitted, j.started if j.started is not None else horizon) for j in jobs
                   if j.gpus > GPUS_PER_NODE and j.submitted is not None]
    lt, lv = step_series([(s, e, 1.0) for s, e in large_waits])
    breaks = sorted(set(at) | set(lt))
    blocked_jobs, blocked_s = 0, 0.0
    for j in jobs:
        if j.gpus > GPUS_PER_NODE or j.submitted is None:
            continue
        w_end = j.started if j.started is not None else horizon
        if w_end <= j.submitted:
            continue
        lo = bisect.bisect_right(breaks, j.submitted) - 1
        t = j.submitted
        mine = 0.0
        i = max(lo, 0)
        while t < w_end:
            nxt = breaks[i + 1] if i + 1 < len(breaks) else w_end
            nxt = min(max(nxt, t), w_end)
            if nxt > t:
                free = total - value_at(at, av, t)
                if free >= j.gpus and value_at(lt, lv, t) > 0:
                    mine += nxt - t
            t = nxt
            i += 1
            if i >= len(breaks) and t < w_end:
                free = total - value_at(at, av, t)
                if free >= j.gpus and value_at(lt, lv, t) > 0:
                    mine += w_end - t
                break
        if mine > 0:
            blocked_jobs += 1
            blocked_s += mine
    return {"small_jobs_blocked": blocked_jobs, "blocked_hours": round(blocked_s * c / 3600, 2)}


def _minutes(s: float | None) -> float | None:
    return None if s is None else round(s / 60, 2)


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for i in items:
        out[i or "unknown"] += 1
    return dict(out)
