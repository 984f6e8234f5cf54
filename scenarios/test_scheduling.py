"""Scheduling suite: GPU fit, pool selection by GPU-feature labels and node affinity, taints keeping non-GPU pods off
GPU pools, MIG mixed requests, time-sliced shared GPUs, and PriorityClass preemption.

Every placement asserted here is the real kube-scheduler's decision.  Pools are found by their GFD-style labels
(``nvidia.com/gpu.product``, ``nvidia.com/mig-*``, ``nvidia.com/gpu.replicas``), so the checks run on any cluster
that carries them; a check whose hardware is absent is skipped with that reason.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from harness.contract import POOL_LABEL
from harness.kube import KubeClient
from harness.testing import ClusterHandle, Evidence, Tenant
from harness.workloads import (
    GPU,
    gpu_pod,
    node_gpu_usage,
    pod,
    priority_class,
    untolerated_taints,
    wait_bound,
    wait_no_terminating_pods,
    wait_unschedulable,
)


def _nodes(kube: KubeClient) -> list[dict[str, Any]]:
    return list(kube.list("Node")["items"])


def _alloc(node: dict[str, Any], resource: str = GPU) -> int:
    return int(node.get("status", {}).get("allocatable", {}).get(resource, 0) or 0)


def _label(node: dict[str, Any], key: str) -> str | None:
    return node["metadata"].get("labels", {}).get(key)


def _gpu_taint_free(node: dict[str, Any]) -> bool:
    return not untolerated_taints(node)


# exclusive: the 8-GPU pod needs a whole free node, and GPU pods of checks beside it spread over the nodes.
@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", tier="S", gpus=8, exclusive=True)
def test_gpu_requests_fit_on_nodes_with_enough_free_gpus(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """Pods of 1, 2, 4 and 8 GPUs are each bound to a node whose allocatable covers everything bound there."""
    sizes = {"g1": 1, "g2": 2, "g4": 4, "g8": 8}
    for name, n in sizes.items():
        tenant.create(gpu_pod(name, n))
    placed = wait_bound(kube, tenant.name, list(sizes))
    usage = node_gpu_usage(kube)
    evidence["placements"] = {n: p.node for n, p in placed.items()}
    for name, p in placed.items():
        used, alloc = usage[p.node]
        assert used <= alloc, f"{p.node}: {used} GPUs bound > {alloc} allocatable"
        evidence.timing(f"time_to_schedule_{name}_s", p.seconds)
    evidence.timing("time_to_schedule_s", max(p.seconds for p in placed.values()))


@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", tier="S", gpus=1)
def test_pool_selection_by_gpu_product_label(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """A nodeSelector on nvidia.com/gpu.product puts the pod on a node of that product and no other."""
    products: dict[str, int] = {}
    for n in _nodes(kube):
        prod = _label(n, "nvidia.com/gpu.product")
        if prod and _alloc(n) > 0:
            products[prod] = products.get(prod, 0) + 1
    if len(products) < 2:
        pytest.skip(f"needs GPU nodes of two products to tell selection from chance; found {sorted(products)}")
    target = sorted(products, key=lambda p: (products[p], p))[0]  # the rarest product: least likely by chance
    tenant.create(gpu_pod("select", 1, node_selector={"nvidia.com/gpu.product": target}))
    placed = wait_bound(kube, tenant.name, ["select"])["select"]
    node = kube.get("Node", placed.node)
    evidence["wanted_product"] = target
    evidence["node"] = placed.node
    evidence.timing("time_to_schedule_s", placed.seconds)
    assert _label(node, "nvidia.com/gpu.product") == target


@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", tier="S", gpus=1)
def test_node_affinity_on_gpu_memory(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """Required node affinity ``nvidia.com/gpu.memory > 60000`` (MiB) only lands on large-memory GPUs; asking for
    more memory than any GPU has leaves the pod Unschedulable."""
    mems = sorted({int(_label(n, "nvidia.com/gpu.memory") or 0) for n in _nodes(kube) if _alloc(n) > 0})
    if not mems or mems[-1] <= 60000:
        pytest.skip(f"no GPU node with more than 60000 MiB per GPU (found {mems})")

    def affinity(op: str, value: int) -> dict[str, Any]:
        expr = {"key": "nvidia.com/gpu.memory", "operator": op, "values": [str(value)]}
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [expr]}]}}}

    tenant.create(gpu_pod("big-mem", 1, affinity=affinity("Gt", 60000)))
    tenant.create(gpu_pod("huge-mem", 1, affinity=affinity("Gt", mems[-1])))
    placed = wait_bound(kube, tenant.name, ["big-mem"])["big-mem"]
    got = int(_label(kube.get("Node", placed.node), "nvidia.com/gpu.memory") or 0)
    message = wait_unschedulable(kube, tenant.name, "huge-mem")
    evidence["node_gpu_memory_mib"] = got
    evidence["unschedulable_message"] = message
    assert got > 60000
    assert "affinity" in message.lower() or "selector" in message.lower(), message


@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", tier="S")
def test_taints_keep_non_gpu_pods_off_gpu_pools(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """Pods that ask for no GPU and tolerate no GPU taint (only the simulated nodes' own) all land on nodes without
    a GPU taint, never on tainted GPU nodes."""
    tainted_gpu = {n["metadata"]["name"] for n in _nodes(kube) if _alloc(n) > 0 and not _gpu_taint_free(n)}
    free = [n["metadata"]["name"] for n in _nodes(kube) if _gpu_taint_free(n)]
    if not tainted_gpu:
        pytest.skip("no GPU node carries a NoSchedule taint")
    if not free:
        pytest.skip("no untainted node for CPU pods")
    names = [f"cpu-{i}" for i in range(10)]
    for name in names:
        tenant.create(pod(name, resources={"cpu": "50m"}, tolerate_gpu=False))
    placed = wait_bound(kube, tenant.name, names)
    nodes = sorted({p.node for p in placed.values()})
    evidence["cpu_pod_nodes"] = nodes
    evidence["tainted_gpu_nodes"] = len(tainted_gpu)
    assert not set(nodes) & tainted_gpu


# exclusive: it takes every slice of one MIG profile in the cluster and expects one more to find no room.
@pytest.mark.aiconform(requirement="gpu_sharing", tier="S", exclusive=True, mutations=("gpu-sharing-left-out",))
def test_mig_mixed_requests_land_on_mig_slices(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """Pods asking for ``nvidia.com/mig-<profile>`` resources are bound to nodes advertising those slices, up to
    the slice count and not beyond."""
    mig: dict[str, int] = {}
    for n in _nodes(kube):
        for res, v in n.get("status", {}).get("allocatable", {}).items():
            if res.startswith("nvidia.com/mig-"):
                mig[res] = mig.get(res, 0) + int(v)
    if not mig:
        pytest.skip("no node advertises MIG (mixed strategy) resources")
    resource = min(mig, key=lambda r: (mig[r], r))
    total = mig[resource]
    names = [f"mig-{i}" for i in range(total)]
    for name in names:
        tenant.create(gpu_pod(name, 1, resource=resource))
    placed = wait_bound(kube, tenant.name, names)
    tenant.create(gpu_pod("mig-extra", 1, resource=resource))
    message = wait_unschedulable(kube, tenant.name, "mig-extra")
    evidence["resource"] = resource
    evidence["slices_in_cluster"] = total
    evidence["nodes"] = sorted({p.node for p in placed.values()})
    evidence["extra_pod"] = message
    for p in placed.values():
        assert _alloc(kube.get("Node", p.node), resource) > 0
    assert f"Insufficient {resource}" in message


# exclusive: it takes every free replica of one node (the product-selection check may pick the same node).
@pytest.mark.aiconform(requirement="gpu_sharing", tier="S", exclusive=True,
                       mutations=("gpu-sharing-left-out",))
def test_time_sliced_gpu_is_shared_by_replicas(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """On a time-sliced node (GPUs x replicas advertised), more one-GPU pods than physical GPUs run side by side."""
    shared = [n for n in _nodes(kube) if int(_label(n, "nvidia.com/gpu.replicas") or 1) > 1 and _alloc(n) > 0]
    if not shared:
        pytest.skip("no node advertises time-sliced GPUs (nvidia.com/gpu.replicas > 1)")
    node = shared[0]
    name = node["metadata"]["name"]
    physical = int(_label(node, "nvidia.com/gpu.count") or 0)
    used, alloc = node_gpu_usage(kube).get(name, (0, _alloc(node)))
    want = alloc - used
    if want <= physical:
        pytest.skip(f"{name} has only {want} free replicas for {physical} physical GPUs")
    names = [f"ts-{i}" for i in range(want)]
    for n in names:
        tenant.create(gpu_pod(n, 1, node_selector={"kubernetes.io/hostname": name}))
    placed = wait_bound(kube, tenant.name, names)
    evidence["node"] = name
    evidence["physical_gpus"] = physical
    evidence["pods_sharing"] = len(placed)
    assert len(placed) > physical
    assert {p.node for p in placed.values()} == {name}


# destructive (cluster-wide PriorityClasses) and so exclusive: it fills a whole pool and preempts in it.
@pytest.mark.aiconform(requirement="aiconform.preemption", tier="S", gpus=8, destructive=True)
def test_high_priority_training_pod_preempts_low_priority(
    kube: KubeClient, tenant: Tenant, evidence: Evidence, aiconform_cluster: ClusterHandle
) -> None:
    """A pool filled with low-priority pods; a high-priority 8-GPU training pod preempts some of them and lands."""
    eight = [n for n in _nodes(kube) if _alloc(n) >= 8 and _label(n, POOL_LABEL)
             and int(_label(n, "nvidia.com/gpu.replicas") or 1) == 1]
    pools = sorted({_label(n, POOL_LABEL) for n in eight} - {None})
    if not pools:
        pytest.skip(f"no pool of nodes with 8 GPUs (label {POOL_LABEL})")
    pool_nodes: dict[str, list[str]] = {}
    for n in eight:
        pool_nodes.setdefault(str(_label(n, POOL_LABEL)), []).append(n["metadata"]["name"])
    pool = min(pool_nodes, key=lambda p: (len(pool_nodes[p]), p))  # smallest such pool: fewest pods to fill it
    sel = {POOL_LABEL: pool}
    suffix = secrets.token_hex(3)
    low, high = f"aic-low-{suffix}", f"aic-high-{suffix}"
    kube.create(priority_class(low, 100))
    kube.create(priority_class(high, 100000))
    try:
        wait_no_terminating_pods(kube, pool_nodes[pool])
        usage = node_gpu_usage(kube)
        fill: list[str] = []
        for node in pool_nodes[pool]:
            used, alloc = usage.get(node, (0, 8))
            for i in range((alloc - used) // 2):
                name = f"low-{node}-{i}"
                tenant.create(gpu_pod(name, 2, priority_class=low, node_selector=sel))
                fill.append(name)
        where = {n: p.node for n, p in wait_bound(kube, tenant.name, fill, timeout=90).items()}
        tenant.create(gpu_pod("train-high", 8, priority_class=high, node_selector=sel))
        placed = wait_bound(kube, tenant.name, ["train-high"], timeout=90, fail_fast=False)["train-high"]
        remaining = {p["metadata"]["name"] for p in kube.list("Pod", tenant.name)["items"]
                     if not p["metadata"].get("deletionTimestamp")}
        preempted = sorted(set(fill) - remaining)
        evidence["pool"] = pool
        evidence["low_priority_pods"] = len(fill)
        evidence["preempted"] = preempted
        evidence["high_priority_node"] = placed.node
        evidence.timing("time_to_schedule_s", placed.seconds)
        assert preempted, "the high-priority pod landed without preempting anyone, so the pool was not full"
        evidence["preempted_from"] = sorted({where[p] for p in preempted})
        assert {where[p] for p in preempted} == {placed.node}, "victims were taken from another node than the one used"
        used_after = node_gpu_usage(kube)[placed.node]
        evidence["gpus_on_node_after"] = list(used_after)
        assert used_after[0] <= used_after[1]
    finally:
        kube.delete("PriorityClass", low)
        kube.delete("PriorityClass", high)
