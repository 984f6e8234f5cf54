"""Benchmark of the utilization simulator: a seeded 1,000-job, 4-team trace replayed on 128 simulated 8-GPU nodes
(1,024 GPUs) under each chosen policy; jobs and pods completed per wall second, and the wall time of each replay
(target: ≤ 5 min per trace).  Prints figures and writes JSON; not a test.

Usage: ``python bench/bench_simulate.py [--jobs 1000] [--nodes 128] [--policy fifo ...] [--compression 300]
[--out bench/results-simulate.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from harness.simulate import SimulateSettings, simulate
from harness.simulate.replay import ReplaySettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench._common when run as a script
from bench._common import run_bench  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--teams", type=int, default=4)
    ap.add_argument("--nodes", type=int, default=128)
    ap.add_argument("--policy", action="append", help="default: fifo")
    ap.add_argument("--compression", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="bench/results-simulate.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiconform-bench-sim-") as tmp:
        t0 = time.monotonic()
        doc = simulate(SimulateSettings(report_dir=Path(tmp), policies=tuple(args.policy or ["fifo"]),
                                        seed=args.seed, jobs=args.jobs, teams=args.teams,
                                        replay=ReplaySettings(nodes=args.nodes, compression=args.compression)))
        total = time.monotonic() - t0
    rows = []
    for p in doc["policies"]:
        rows.append({"policy": p["policy"], "jobs": p["jobs"], "jobs_finished": p["jobs_finished"],
                     "pods_succeeded": p["pods_succeeded"], "replay_wall_s": p["wall_s"],
                     "with_bring_up_s": p["total_wall_s"], "jobs_per_wall_s": p["jobs_per_wall_s"],
                     "pods_per_wall_s": p["pods_per_wall_s"], "gpu_utilization_avg": p["gpu_utilization_avg"],
                     "within_5_min": p["total_wall_s"] <= 300})
        print(f"{p['policy']}: {p['jobs_finished']}/{p['jobs']} jobs, {p['pods_succeeded']} pods in "
              f"{p['wall_s']:.1f}s of replay ({p['total_wall_s']:.1f}s with bring-up and teardown): "
              f"{p['jobs_per_wall_s']} jobs/s, {p['pods_per_wall_s']} pods/s; utilization "
              f"{100 * p['gpu_utilization_avg']:.1f}%")
    out = {"nodes": args.nodes, "gpus": doc["total_gpus"], "compression": args.compression, "trace": doc["trace"],
           "kubernetes": doc["kubernetes"], "timers": doc["timers"], "total_wall_s": round(total, 1), "policies": rows}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_bench(main))
