"""A two-worker training Job asking one GPU per worker gets both workers placed on GPU nodes by the scheduler.

Creates the Job with the official client (``batch_v1``) and waits with aiconform's fast client (``kube``), whose
waits are watches with a deadline that also stop early when the scheduler says a pod does not fit.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from harness.contract import SIMULATED_TOLERATION
from harness.kube import is_bound, unschedulable_message

if TYPE_CHECKING:
    from kubernetes.client import BatchV1Api

    from harness.kube import KubeClient
    from harness.testing import Evidence, Tenant

GPU = "nvidia.com/gpu"


def training_job(name: str, workers: int) -> dict[str, Any]:
    worker = {
        "name": "trainer",
        # Only the placement is checked, so the image never has to run; use one your nodes can pull.
        "image": "aiconform.local/pause:3.10",
        "resources": {"limits": {GPU: "1"}},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "parallelism": workers,
            "completions": workers,
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "containers": [worker],
                # aiconform's simulated nodes carry their own taint (KWOK's kwok.x-k8s.io/node=fake:NoSchedule) so
                # that pods nobody meant for them never land there: a placement-only check tolerates it too.  On a
                # real platform no node has that taint and the toleration changes nothing.
                "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}, dict(SIMULATED_TOLERATION)],
            }},
        },
    }


# An aiconform.* requirement id: this check adds evidence to aiconform's own GPU-scheduling requirement.
@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", tier="S", gpus=2)
def test_training_job_workers_land_on_gpu_nodes(
    batch_v1: BatchV1Api, kube: KubeClient, tenant: Tenant, evidence: Evidence
) -> None:
    t0 = time.monotonic()
    batch_v1.create_namespaced_job(tenant.name, training_job("train", workers=2))

    def failure(pods: dict[str, Any]) -> str | None:
        return next((msg for p in pods.values() if (msg := unschedulable_message(p))), None)

    pods = kube.wait_for(
        "Pod", namespace=tenant.name, label_selector="batch.kubernetes.io/job-name=train",
        condition=lambda s: len(s) == 2 and all(is_bound(p) for p in s.values()),
        failure=failure, timeout=60, what="both training workers bound",
    )
    evidence.timing("time_to_bind_s", time.monotonic() - t0)
    nodes = sorted(p["spec"]["nodeName"] for p in pods.values())
    evidence["nodes"] = nodes
    for name in set(nodes):
        allocatable = int(kube.get("Node", name)["status"]["allocatable"].get(GPU, 0))
        assert allocatable >= 1, f"worker placed on {name}, which has no {GPU}"
