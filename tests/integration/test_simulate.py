"""``aiconform simulate`` end to end on real local clusters (one per policy): a small user trace whose outcome
differs by policy, and every difference read back from what the cluster did.

The trace (trace seconds, compression 240: one wall second is four trace minutes) on 3 nodes × 8 GPUs:
- ``hog`` (team-a, low priority, 16 GPUs = 2 pods) and ``wide`` (team-a, low, 16 GPUs) arrive first: only 3 of
  their 4 pods fit;
- ``urgent`` (team-b, high priority, 8 GPUs) arrives a little later.
Priority: ``wide`` runs partly placed (one pod holds 8 GPUs without its peer) and when every GPU is taken the
scheduler preempts a low-priority pod for ``urgent``.  Gang: ``wide`` waits whole until two nodes are free, no job
is ever partly placed and nothing is preempted.  (FIFO, the third shipped policy, costs another cluster: the unit
tests and the bench cover it.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRACE = """name,team,gpus,duration,priority,arrival
hog,team-a,16,1200,low,0
wide,team-a,16,1200,low,5
urgent,team-b,8,600,high,240
"""


def test_policies_differ_as_the_cluster_decided(tmp_path: Path, state_dir: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE)
    report = tmp_path / "report"
    res = subprocess.run(
        [sys.executable, "-m", "harness.cli", "simulate", "--trace", str(trace),
         "--policy", "priority", "--policy", "gang", "--nodes", "3", "--compression", "240",
         "--report-dir", str(report)],
        capture_output=True, text=True, timeout=400, cwd=REPO, env=_env(state_dir),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads((report / "results.json").read_text())
    by = {p["policy"]: p for p in doc["policies"]}
    assert set(by) == {"priority", "gang"}
    for p in by.values():
        assert p["jobs_finished"] == 3 and p["finished_all"], p
        assert 0 < p["gpu_utilization_avg"] <= 1 and p["fairness_jain"] is not None
        assert len(p["timeline"]) > 10
    prio, gang = by["priority"], by["gang"]
    assert prio["pods_preempted"] >= 1 and prio["preemption_events"] >= 1, prio
    assert prio["preempt_reasons"].get("PreemptionByScheduler", 0) >= 1, prio["preempt_reasons"]
    assert gang["pods_preempted"] == 0 and gang["preemption_events"] == 0, gang
    # without gangs `wide` ran with one pod placed: GPUs held without progress
    assert prio["productive_utilization_avg"] < 0.9 * prio["gpu_utilization_avg"], prio
    # gang scheduling placed every job whole or not at all
    assert gang["productive_utilization_avg"] >= 0.97 * gang["gpu_utilization_avg"], gang
    assert gang["jobs_never_fully_ran"] == 0
    # the controllers' timers played at the same compression: kube-scheduler's backoffs clamped to its 1 s minimum
    timers = {t["setting"]: t for t in doc["timers"]}
    assert timers["podMaxBackoffSeconds"]["value_s"] == 1 and timers["podMaxBackoffSeconds"]["clamped"], timers
    assert timers["--pod-max-in-unschedulable-pods-duration"]["value_s"] == 1.25, timers
    assert not any(t["component"] == "kueue" for t in doc["timers"])  # no kueue policy, no Kueue
    html = (report / "report.html").read_text()
    assert "<svg" in html and "Time compression 240" in html and "team-b" in html
    assert not list(state_dir.glob("sim-*")), "a simulation cluster was left behind"


def test_bad_trace_row_and_unknown_policy_are_one_line(tmp_path: Path, state_dir: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,team,gpus,duration,priority,arrival\nok,team-a,1,60,low,0\nbad,team-a,9,60,low,0\n")
    for argv, message in (
        (["--trace", str(bad)], "row 3: field gpus"),
        (["--policy", "lottery"], "unknown policy 'lottery'"),
    ):
        res = subprocess.run([sys.executable, "-m", "harness.cli", "simulate", *argv, "--report-dir",
                              str(tmp_path / "r")], capture_output=True, text=True, timeout=60, cwd=REPO,
                             env=_env(state_dir))
        assert res.returncode != 0
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aiconform: ") and message in lines[0], res.stderr
    assert not list(state_dir.glob("sim-*"))


def _env(state_dir: Path) -> dict[str, str]:
    import os

    return {**os.environ, "AICONFORM_STATE_DIR": str(state_dir)}
