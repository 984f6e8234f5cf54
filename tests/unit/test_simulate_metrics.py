"""The simulator's figures from a hand-made observation (what a replay's watch would have recorded): utilization,
productive utilization of partly placed gangs, queue waits, share vs entitlement with Jain's index, preemptions,
starvation and head-of-line blocking."""

from __future__ import annotations

import pytest

from harness.simulate import metrics
from harness.simulate.replay import Observation, PodRecord
from harness.simulate.trace import Trace, TraceJob


def _obs(pods: list[PodRecord], submitted: dict[str, float], *, gpus: int = 16, end: float = 100.0) -> Observation:
    return Observation(policy="fifo", compression=60.0, total_gpus=gpus, nodes=gpus // 8, submitted=submitted,
                       pods=tuple(pods), preemption_events={"a": 1}, end=end, finished=True)


def test_utilization_waits_and_fairness() -> None:
    tr = Trace((TraceJob("j1", "a", 8, 60, "normal", 0), TraceJob("j2", "b", 8, 60, "normal", 0)),
               {"a": 0.5, "b": 0.5})
    pods = [PodRecord("a/j1-x", "j1", "a", 8, 0, bound=0, running=0, succeeded=10),
            PodRecord("b/j2-x", "j2", "b", 8, 0, bound=10, running=10, succeeded=20)]
    fig = metrics.compute(_obs(pods, {"j1": 0.0, "j2": 0.0}), tr)
    # 8 of 16 GPUs busy for the whole 20 s span
    assert fig["gpu_utilization_avg"] == pytest.approx(0.5, abs=1e-3)
    assert fig["productive_utilization_avg"] == pytest.approx(0.5, abs=1e-3)
    assert fig["teams"]["a"]["wait_p50_min"] == 0.0
    assert fig["teams"]["b"]["wait_p50_min"] == pytest.approx(10 * 60 / 60, abs=1e-3)  # 10 wall s × 60 = 10 trace minutes
    assert fig["teams"]["a"]["share"] == pytest.approx(0.5, abs=1e-3) and fig["fairness_jain"] == pytest.approx(1.0, abs=1e-3)
    assert fig["makespan_h"] == pytest.approx(20 * 60 / 3600, abs=1e-3)
    assert fig["jobs_finished"] == 2 and fig["starved_jobs"] == 0
    assert fig["timeline"][0]["allocated"] == pytest.approx(0.5, abs=1e-3)


def test_partly_placed_gang_holds_gpus_without_progress_and_preemption_counts() -> None:
    tr = Trace((TraceJob("g", "a", 16, 60, "low", 0), TraceJob("s", "b", 8, 60, "high", 0)), {"a": 0.5, "b": 0.5})
    pods = [
        # the gang's first pod runs alone for 10 s, is preempted, then both run together 20..30
        PodRecord("a/g-1", "g", "a", 8, 0, bound=0, running=0, stopped=10, stop_reason="PreemptionByScheduler"),
        PodRecord("a/g-2", "g", "a", 8, 0, bound=20, running=20, succeeded=30),
        PodRecord("a/g-3", "g", "a", 8, 10, bound=20, running=20, succeeded=30),
        PodRecord("b/s-1", "s", "b", 8, 0, bound=10, running=10, succeeded=20),
    ]
    fig = metrics.compute(_obs(pods, {"g": 0.0, "s": 0.0}), tr)
    assert fig["pods_preempted"] == 1 and fig["preempt_reasons"] == {"PreemptionByScheduler": 1}
    assert fig["preemption_events"] == 1
    # allocated: 8 GPUs 0..10, 8 10..20, 16 20..30 = 320 GPU·s over 30 s × 16 GPUs
    assert fig["gpu_utilization_avg"] == pytest.approx(320 / (30 * 16), abs=1e-3)
    # productive: the gang only 20..30 (16 GPUs), the single 10..20 (8) = 240
    assert fig["productive_utilization_avg"] == pytest.approx(240 / (30 * 16), abs=1e-3)
    jobs = {j.name: j for j in metrics.job_outcomes(_obs(pods, {"g": 0.0, "s": 0.0}), tr)}
    assert jobs["g"].started == 20 and jobs["g"].fully_ran
    assert fig["teams"]["a"]["share"] == pytest.approx(240 / 320, abs=1e-3)
    assert fig["fairness_jain"] < 1.0


def test_never_started_job_is_starved_and_small_job_blocked_behind_a_waiting_gang() -> None:
    tr = Trace((TraceJob("big", "a", 64, 600, "normal", 0), TraceJob("small", "b", 1, 60, "normal", 0)),
               {"a": 0.5, "b": 0.5})
    pods = [PodRecord("b/small-1", "small", "b", 1, 5, bound=50, running=50, succeeded=60)]
    fig = metrics.compute(_obs(pods, {"big": 0.0, "small": 5.0}, end=100.0), tr)
    assert fig["starved_jobs"] == 1 and fig["starved"] == ["big"]
    assert fig["jobs_never_fully_ran"] == 1
    # the small job waited 5..50 with all 16 GPUs free while the 64-GPU job waited
    assert fig["head_of_line"]["small_jobs_blocked"] == 1
    assert fig["head_of_line"]["blocked_hours"] == pytest.approx(45 * 60 / 3600, abs=1e-3)


def test_percentile_and_jain() -> None:
    assert metrics.percentile([], 50) is None
    assert metrics.percentile([1, 2, 3, 4], 50) == 2 and metrics.percentile(list(range(1, 101)), 99) == 99
    assert metrics.jain([1, 1, 1]) == pytest.approx(1.0, abs=1e-3)
    assert metrics.jain([4, 0, 0, 0]) == pytest.approx(0.25, abs=1e-3)


def test_unfinished_jobs_say_what_they_waited_on() -> None:
    from harness.simulate.replay import unfinished

    tr = Trace(tuple(TraceJob(n, "a", 8, 60, "normal", 0) for n in ("done", "queued", "evicted", "pending", "run")),
               {"a": 1.0})
    pods = [PodRecord("a/done-x", "done", "a", 8, 0, bound=0, running=0, succeeded=1),
            PodRecord("a/evicted-x", "evicted", "a", 8, 0, bound=0, running=0, stopped=2, stop_reason="Deleted"),
            PodRecord("a/pending-x", "pending", "a", 8, 0, bound=0, running=0),
            PodRecord("a/pending-y", "pending", "a", 8, 0),
            PodRecord("a/run-x", "run", "a", 8, 0, bound=1, running=1)]
    assert unfinished(tr, pods, lambda job: job == "done") == (
        "4 jobs unfinished: 2 without a live pod (not admitted, or not yet created), 1 with pods not yet bound, "
        "1 with every live pod bound (running)")
