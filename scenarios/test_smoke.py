"""Smoke suite: the four verdicts every GPU cluster must give, each made by the real scheduler or apiserver.

- a pod asking for GPUs is bound by the default scheduler to a node that has them;
- an over-ask stays Pending, with the scheduler's ``Insufficient nvidia.com/gpu`` event;
- a pod that does not tolerate a GPU pool's taint stays off that pool;
- a ResourceQuota on ``requests.nvidia.com/gpu`` rejects, at admission, a pod that would exceed it;

and, where a real node runs containers, that a third-party pod (no nodeSelector) is never bound to a simulated node.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.contract import SIMULATED_TAINT, is_simulated
from harness.errors import Forbidden
from harness.images import image_ref
from harness.kube import KubeClient
from harness.nodes import node_ready
from harness.testing import Evidence, Tenant
from harness.workloads import (
    GPU,
    gpu_pod,
    gpu_quota,
    logs_until,
    pod,
    pod_failure,
    scheduler_events,
    wait_bound,
    wait_quota_published,
    wait_unschedulable,
)


def _max_gpus_per_node(kube: KubeClient) -> int:
    return max((int(n["status"].get("allocatable", {}).get(GPU, 0)) for n in kube.list("Node")["items"]), default=0)


@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", tier="S", gpus=2)
def test_gpu_pod_is_bound_to_a_node_with_gpus(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """A pod asking for 2 GPUs is bound by the default scheduler to a node with at least 2 allocatable."""
    tenant.create(gpu_pod("train-2gpu", 2))
    placed = wait_bound(kube, tenant.name, ["train-2gpu"])["train-2gpu"]
    node = kube.get("Node", placed.node)
    allocatable = int(node["status"]["allocatable"].get(GPU, 0))
    bound = kube.get("Pod", "train-2gpu", tenant.name)
    evidence["node"] = placed.node
    evidence["node_allocatable_gpus"] = allocatable
    evidence["scheduler"] = bound["spec"].get("schedulerName")
    evidence.timing("time_to_schedule_s", placed.seconds)
    assert allocatable >= 2, f"bound to {placed.node}, which has only {allocatable} GPUs"
    assert bound["spec"].get("schedulerName") == "default-scheduler"


@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", tier="S", gpus=1)
def test_gpu_over_ask_stays_pending_with_insufficient_event(
    kube: KubeClient, tenant: Tenant, evidence: Evidence
) -> None:
    """A pod asking for more GPUs than any node has stays Pending; the scheduler says Insufficient nvidia.com/gpu."""
    too_many = _max_gpus_per_node(kube) + 1
    tenant.create(gpu_pod("over-ask", too_many))
    message = wait_unschedulable(kube, tenant.name, "over-ask")
    events = scheduler_events(kube, tenant.name, "over-ask")
    evidence["requested_gpus"] = too_many
    evidence["condition_message"] = message
    evidence["events"] = events[:3]
    assert f"Insufficient {GPU}" in message
    assert any(f"Insufficient {GPU}" in e for e in events), events


@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", tier="S", gpus=1)
def test_pod_without_toleration_stays_off_tainted_gpu_pool(
    kube: KubeClient, tenant: Tenant, evidence: Evidence
) -> None:
    """A GPU pod that does not tolerate the GPU pools' taint is not placed on them."""
    tainted = [
        n["metadata"]["name"]
        for n in kube.list("Node")["items"]
        if int(n["status"].get("allocatable", {}).get(GPU, 0)) > 0
        and any(t.get("key") == GPU for t in n.get("spec", {}).get("taints", []) or [])
    ]
    if not tainted:
        pytest.skip("no GPU node carries a nvidia.com/gpu taint")
    untainted = [
        n["metadata"]["name"]
        for n in kube.list("Node")["items"]
        if int(n["status"].get("allocatable", {}).get(GPU, 0)) > 0
        and not any(t.get("key") == GPU for t in n.get("spec", {}).get("taints", []) or [])
    ]
    tenant.create(gpu_pod("no-toleration", 1, tolerate_gpu=False))
    tenant.create(pod("cpu-only", resources={"cpu": "100m"}, tolerate_gpu=False))
    placed = wait_bound(kube, tenant.name, ["cpu-only"])["cpu-only"]
    evidence["tainted_gpu_nodes"] = len(tainted)
    evidence["cpu_pod_node"] = placed.node
    assert placed.node not in tainted, f"cpu-only pod landed on tainted GPU node {placed.node}"
    if untainted:
        placed_gpu = wait_bound(kube, tenant.name, ["no-toleration"])["no-toleration"]
        evidence["gpu_pod_node"] = placed_gpu.node
        assert placed_gpu.node in untainted
    else:
        message = wait_unschedulable(kube, tenant.name, "no-toleration")
        evidence["condition_message"] = message
        assert "untolerated taint" in message, message


@pytest.mark.aiconform(requirement="aiconform.quota", tier="S")
def test_gpu_quota_rejects_pod_at_admission(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """With requests.nvidia.com/gpu=2 in the namespace, a 3-GPU pod is refused by the apiserver at admission."""
    tenant.create(gpu_quota("gpu-quota", 2))
    wait_quota_published(kube, tenant.name, "gpu-quota")
    with pytest.raises(Forbidden) as refused:
        tenant.create(gpu_pod("over-quota", 3))
    evidence["admission_error"] = refused.value.message
    assert "exceeded quota" in refused.value.message
    tenant.create(gpu_pod("within-quota", 2))
    evidence["within_quota_pod"] = "admitted"


@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", tier="R")
def test_third_party_pod_without_selector_lands_on_a_real_node(
    kube: KubeClient, tenant: Tenant, evidence: Evidence
) -> None:
    """A pod as a third-party suite writes it (no nodeSelector, no claim, a toleration for every taint in the
    cluster but the simulated nodes' own ``kwok.x-k8s.io/node``) running ``ls /dev/nvidia*`` is bound to a real
    node, never a simulated one, and its logs read back."""
    nodes = kube.list("Node")["items"]
    real = sorted(n["metadata"]["name"] for n in nodes if not is_simulated(n) and node_ready(n))
    if not real:
        pytest.skip("no real node: every Ready node is simulated, so no pod's logs could be read")
    tolerated = sorted({(t["key"], t["effect"]) for n in nodes for t in (n.get("spec") or {}).get("taints") or []
                        if t.get("key") != SIMULATED_TAINT["key"]})
    manifest: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "third-party"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                 "tolerations": [{"key": k, "operator": "Exists", "effect": e} for k, e in tolerated],
                 "containers": [{"name": "main", "image": image_ref("busybox"), "imagePullPolicy": "IfNotPresent",
                                 "command": ["sh", "-c", "ls /dev/nvidia* 2>&1; echo END"]}]},
    }
    tenant.create(manifest)
    placed = wait_bound(kube, tenant.name, ["third-party"])["third-party"]
    evidence["node"] = placed.node
    evidence["real_nodes"] = real
    evidence["simulated_nodes"] = sum(map(is_simulated, nodes))
    evidence["tolerated_taints"] = [f"{k}:{e}" for k, e in tolerated]
    assert placed.node in real, f"bound to {placed.node}, a simulated node: it runs nothing and serves no logs"

    def ended(s: dict[str, dict[str, Any]]) -> bool:
        return bool(s) and next(iter(s.values()))["status"].get("phase") in ("Succeeded", "Failed")

    def failed(s: dict[str, dict[str, Any]]) -> str | None:
        return pod_failure(next(iter(s.values()))) if s else None

    kube.wait_for("Pod", namespace=tenant.name, name="third-party", timeout=60, condition=ended, failure=failed,
                  what="pod third-party to run to its end")
    logs = logs_until(kube, tenant.name, "third-party", ["main"])["main"]
    evidence["logs"] = logs.strip()[:300]
    assert "END" in logs and "/dev/nvidia" in logs, f"the pod's logs did not read back: {logs!r}"
