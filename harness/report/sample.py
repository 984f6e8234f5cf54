"""A realistic demo run, for the report's unit tests and for previewing the report layout.

``python -m harness.report.sample DIR`` writes a full report directory from it.  The data is invented and
labelled so (run id ``demo-…``); nothing here is ever mixed into a real run.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from harness.contract import GPU_RESOURCE
from harness.report.model import CheckResult, RunInfo, RunResults, Status, Tier

_P, _F, _E, _S = Status.PASSED, Status.FAILED, Status.ERROR, Status.SKIPPED


def sample_results() -> RunResults:
    """A tier-S run with passes, failures, an infrastructure error and tier skips across requirements."""
    started = datetime(2025, 11, 20, 9, 30, 0, tzinfo=UTC)

    def check(
        module: str, name: str, requirement: str | None, status: Status, duration: float, *,
        tier: Tier = Tier.S, reason: str = "", tts: float | None = None, **evidence: object,
    ) -> CheckResult:
        return CheckResult(
            id=f"scenarios/test_{module}.py::{name}", name=name, suite=module, status=status,
            requirement=requirement, tier=tier, reason=reason, duration_s=duration, evidence=evidence,
            timings={"time_to_schedule_s": tts} if tts is not None else {},
        )

    skip_r = "needs tier R (real kubelet and container runtime); cluster under test is tier S"
    checks = (
        check("scheduling", "test_gpu_pod_fits[1gpu]", "aiconform.gpu_scheduling", _P, 2.1, tts=0.42,
              node="gpu-a100-0", requested={GPU_RESOURCE: 1}),
        check("scheduling", "test_gpu_pod_fits[8gpu]", "aiconform.gpu_scheduling", _P, 3.4, tts=1.31,
              node="gpu-h100-2", requested={GPU_RESOURCE: 8}),
        check("scheduling", "test_unschedulable_when_exhausted", "aiconform.gpu_scheduling", _P, 5.2,
              event="0/4 nodes are available: 4 Insufficient nvidia.com/gpu."),
        check("scheduling", "test_gang_all_or_nothing", "gang_scheduling", _P, 12.4, tts=3.05,
              workload="kueue Workload train-4x2", admitted=True, pods_running=8),
        check("scheduling", "test_gang_waits_for_capacity", "gang_scheduling", _F, 31.0,
              reason="2 of 8 pods of gang train-8x1 started before the gang was admitted (partial placement)",
              tts=6.8, pods_running=2, expected_running=0),
        check("scheduling", "test_quota_rejects_over_limit", "aiconform.quota", _P, 0.8,
              quota={"requests.nvidia.com/gpu": "4"}, denied=True),
        check("scheduling", "test_quota_counts_mig_slices", "aiconform.quota", _F, 1.1,
              reason="pod requesting nvidia.com/mig-1g.10gb=8 was admitted over hard limit 4",
              admitted_pod="tenant-a/mig-burst", used="8", hard="4"),
        check("scheduling", "test_priority_preemption", "aiconform.preemption", _P, 9.6, tts=2.2,
              preempted=["tenant-b/low-prio-0", "tenant-b/low-prio-1"]),
        check("isolation", "test_tenant_cannot_list_other_pods", "aiconform.tenant_isolation", _P, 0.6,
              status_code=403),
        check("isolation", "test_container_sees_only_allocated_gpus", "secure_accelerator_access", _S, 0.0,
              tier=Tier.R, reason=skip_r),
        check("sharing", "test_time_slicing_oversubscribes", "gpu_sharing", _S, 0.0, tier=Tier.R, reason=skip_r),
        check("sharing", "test_mig_partitions_schedulable", "gpu_sharing", _P, 2.7, tts=0.55,
              resource="nvidia.com/mig-1g.10gb", allocatable=7),
        check("autoscaling", "test_hpa_scales_on_custom_metric", "pod_autoscaling", _E, 120.4,
              reason="infrastructure: metrics adapter did not become Available within 120 s",
              apiservice="v1beta1.custom.metrics.k8s.io", condition="Available=False (MissingEndpoints)"),
        check("autoscaling", "test_scale_up_gpu_node_group", "cluster_autoscaling", _P, 46.3, tts=38.9,
              node_group="gpu-a100", nodes_before=2, nodes_after=3),
        check("observability", "test_dcgm_metrics_exposed", "accelerator_metrics", _S, 0.0, tier=Tier.R,
              reason=skip_r),
        check("properties", "test_inventory_state_machine", "aiconform.property_invariants", _P, 8.7,
              examples=200, invariants=["no device allocated twice", "allocation <= capacity", "quota never exceeded"]),
    )
    total = sum(c.duration_s for c in checks)
    info = RunInfo(
        run_id="demo-20251120-0930-7f3a", harness_version="0.1.0", kubernetes_version="v1.34.2",
        provider="local", tier=Tier.S, profile="laptop", started_at=started,
        finished_at=started + timedelta(seconds=total + 14), seed=271828,
    )
    return RunResults(info=info, checks=checks)


def main(argv: list[str] | None = None) -> int:
    """Write the demo report into the directory given as the only argument."""
    from harness.report.writers import write_all

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m harness.report.sample REPORT_DIR", file=sys.stderr)
        return 2
    for path in write_all(sample_results(), args[0]).values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
