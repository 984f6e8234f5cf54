"""``aiconform simulate``: replay a workload trace under several scheduling policies on real local control planes
(simulated GPU nodes) and compare GPU utilization and fairness, every figure read back from the cluster.

trace.py (what is asked) → policies.py (what is submitted) → replay.py (a fresh cluster per policy; what the API
showed) → metrics.py (figures) → report.py (results.json + report.html).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import timescale
from harness.errors import ConfigError
from harness.simulate import (
    kueue_policy,  # noqa: F401  (registers the kueue policy)
    metrics,
    policies,
    replay,
    report,
    trace,
)

DEFAULT_POLICIES = ("fifo", "priority", "gang", "kueue")  # kueue: registered by kueue_policy (imported above)


@dataclass(frozen=True)
class SimulateSettings:
    report_dir: Path
    policies: tuple[str, ...] = DEFAULT_POLICIES
    trace_file: Path | None = None
    seed: int = 1
    jobs: int = 200
    teams: int = 4
    load: float = 1.1
    """Offered load of a generated trace, as a multiple of the cluster's GPU capacity."""
    replay: replay.ReplaySettings = replay.ReplaySettings()
    starve_after_h: float = 4.0


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def simulate(settings: SimulateSettings, *, progress: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Validate everything first (policies, trace, report directory), then replay per policy; returns the
    results document (also written to the report directory)."""
    chosen = policies.lookup(list(settings.policies))
    if settings.replay.nodes < 1 or settings.replay.compression <= 0:
        raise ConfigError("simulate: --nodes must be >= 1 and --compression > 0")
    if settings.trace_file is not None:
        tr = trace.load(settings.trace_file)
    else:
        tr = trace.generate(seed=settings.seed, jobs=settings.jobs, teams=settings.teams,
                            cluster_gpus=settings.replay.total_gpus, load=settings.load)
    _check_writable(settings.report_dir)
    results = []
    kube_version = ""
    for pol in chosen:
        t0 = time.monotonic()
        progress(f"simulate {pol.name}: {len(tr.jobs)} jobs on {settings.replay.nodes} nodes "
                 f"({settings.replay.total_gpus} GPUs), compression {settings.replay.compression:g}x")
        obs = replay.replay(pol, tr, settings.replay, progress=progress)
        figures = metrics.compute(obs, tr, starve_after_s=settings.starve_after_h * 3600)
        figures["description"] = pol.description
        figures["notes"] = list(obs.notes)
        figures["total_wall_s"] = round(time.monotonic() - t0, 2)
        figures["jobs_per_wall_s"] = round(figures["jobs_finished"] / max(obs.end, 1e-9), 2)
        figures["pods_per_wall_s"] = round(figures["pods_succeeded"] / max(obs.end, 1e-9), 2)
        kube_version = obs.kubernetes
        results.append(figures)
    doc = {
        "schema": report.SCHEMA,
        "kind": "aiconform-simulate",
        "trace": tr.describe(),
        "compression": settings.replay.compression,
        "nodes": settings.replay.nodes,
        "gpu_model": replay.GPU_MODEL,
        "total_gpus": settings.replay.total_gpus,
        "kubernetes": kube_version,
        "timers": [t.as_dict() for t in timescale.timers(
            settings.replay.compression,
            (timescale.SCHEDULER, *((timescale.KUEUE,) if any("kueue" in p.addons for p in chosen) else ())))],
        "policies": results,
    }
    paths = report.write(settings.report_dir, doc)
    progress(f"report: {paths[1]}")
    return doc


def _check_writable(d: Path) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"report directory {d} cannot be written: {err.strerror}") from None
