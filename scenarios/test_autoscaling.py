"""Autoscaling suite (``cluster_autoscaling``, the CNCF plan's KAR-0055 scenario): pending GPU pods make the node
autoscaler add a node of the requested GPU type and the pod binds there; CPU-only pods never cause a GPU node;
once the pods are gone the added node is removed.

Every verdict is upstream Karpenter's (which node to add, when to remove it) and the real scheduler's (where each
pod binds).  Autoscaled pools are found through the API (Karpenter NodePools whose template labels carry
``nvidia.com/gpu.product``), so the checks run on any cluster with Karpenter; a cluster that declares no
``node-autoscaling`` fact skips them with that reason.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness.errors import AiconformError
from harness.kube import KubeClient
from harness.testing import Evidence, Tenant
from harness.workloads import GPU, gpu_pod, pod, untolerated_taints, wait_bound

NODEPOOL = ("karpenter.sh/v1", "NodePool")
LABEL_NODEPOOL = "karpenter.sh/nodepool"
PRODUCT = "nvidia.com/gpu.product"
SCALE_UP_S = 120.0
SCALE_DOWN_S = 150.0


def _node_pools(kube: KubeClient) -> list[dict[str, Any]]:
    try:
        return list(kube.list(NODEPOOL[1], api_version=NODEPOOL[0])["items"])
    except AiconformError as err:  # the kind is not served (no Karpenter) or the API refused it: said in the skip
        pytest.skip(f"no Karpenter NodePool API on this cluster ({type(err).__name__})")


def _template_labels(np: dict[str, Any]) -> dict[str, str]:
    return dict(np["spec"]["template"].get("metadata", {}).get("labels", {}) or {})


def _ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions", []) or [])


def _requested(kube: KubeClient, resource: str) -> dict[str, float]:
    """Node → sum of ``resource`` requested by its non-terminated pods."""
    out: dict[str, float] = {}
    for p in kube.list("Pod")["items"]:
        node = p["spec"].get("nodeName")
        if not node or p.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for c in p["spec"]["containers"]:
            v = (c.get("resources", {}).get("requests") or c.get("resources", {}).get("limits") or {}).get(resource)
            if v:
                out[node] = out.get(node, 0.0) + _qty(str(v))
    return out


def _qty(v: str) -> float:
    return float(v[:-1]) / 1000 if v.endswith("m") else float(v)


def _wait_node_gone(kube: KubeClient, name: str, timeout: float) -> float:
    t0 = time.monotonic()
    kube.wait_for("Node", condition=lambda s: name not in s, timeout=timeout,
                  what=f"Karpenter to remove the node {name} it added (consolidation of an empty node)")
    return time.monotonic() - t0


@pytest.mark.aiconform(requirement="cluster_autoscaling", tier="S", gpus=1, capabilities=("node-autoscaling",),
                       exclusive=True, destructive=True,
                       mutations=("gpu-pools-not-autoscaled",))
def test_pending_gpu_pods_add_a_node_of_the_requested_type_and_it_goes_when_empty(
        kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """N+1 one-GPU pods of one GPU product on N free GPUs of that product: N bind on the existing nodes, Karpenter
    adds a node of that product, the last pod binds there; the pods deleted, the added node is removed."""
    pools = {(_template_labels(np).get(PRODUCT) or ""): np for np in _node_pools(kube)}
    products = sorted(p for p in pools if p)
    if not products:
        pytest.skip("no Karpenter NodePool makes GPU nodes (no nvidia.com/gpu.product template label)")
    target = products[-1]  # with several, the last by name: the pod must get the type it asked for, not any GPU
    nodes = {n["metadata"]["name"]: n for n in kube.list("Node")["items"]}
    used = _requested(kube, GPU)
    existing = [n for n, o in nodes.items() if o["metadata"].get("labels", {}).get(PRODUCT) == target and _ready(o)]
    free = sum(int(nodes[n]["status"].get("allocatable", {}).get(GPU, 0)) - int(used.get(n, 0)) for n in existing)
    if free + 1 > 32:
        pytest.skip(f"{free} free {target} GPUs: too many to fill with one-GPU pods in a check")
    names = [f"gpu-{i}" for i in range(free + 1)]
    t0 = time.monotonic()
    for name in names:
        tenant.create(gpu_pod(name, 1, node_selector={PRODUCT: target}))
    placed = wait_bound(kube, tenant.name, names, timeout=SCALE_UP_S, fail_fast=False)
    bound_s = time.monotonic() - t0
    added = sorted({p.node for p in placed.values()} - set(nodes))
    evidence["requested_product"] = target
    evidence["existing_nodes"] = existing
    evidence["free_gpus_before"] = free
    evidence["added_nodes"] = added
    evidence.timing("pending_to_all_bound_s", bound_s)
    assert len(added) == 1, f"expected exactly one added node for the one pod that did not fit, got {added}"
    node = kube.get("Node", added[0])
    labels = node["metadata"].get("labels", {})
    evidence["added_node_labels"] = {k: v for k, v in labels.items() if k.startswith(("nvidia.com/", "karpenter"))}
    assert labels.get(PRODUCT) == target, f"added node has {labels.get(PRODUCT)!r}, pods asked for {target!r}"
    assert labels.get(LABEL_NODEPOOL) == pools[target]["metadata"]["name"]
    assert int(node["status"]["allocatable"].get(GPU, 0)) >= 1

    for name in names:
        kube.delete("Pod", name, tenant.name, grace_period=0)
    gone_s = _wait_node_gone(kube, added[0], SCALE_DOWN_S)
    evidence.timing("pods_deleted_to_node_removed_s", gone_s)
    left = [n["metadata"]["name"] for n in kube.list("Node")["items"]]
    assert all(n in left for n in existing), "Karpenter removed a node it did not add"


@pytest.mark.aiconform(requirement="cluster_autoscaling", tier="S", capabilities=("node-autoscaling",),
                       exclusive=True, destructive=True)
def test_cpu_only_pods_never_cause_a_gpu_node(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """More CPU-only pods than the nodes open to them hold (no taint but the simulated nodes' own): Karpenter adds
    capacity for them from a CPU NodePool, and none of the nodes it adds carries a GPU."""
    cpu_pools = [np for np in _node_pools(kube) if PRODUCT not in _template_labels(np)]
    if not cpu_pools:
        pytest.skip("no Karpenter NodePool without GPUs: CPU-only pods would have nowhere to go")
    nodes = {n["metadata"]["name"]: n for n in kube.list("Node")["items"]}
    used = _requested(kube, "cpu")
    per_pod = 6.0
    fits = 0
    for name, n in nodes.items():
        if untolerated_taints(n):
            continue
        free = _qty(str(n["status"].get("allocatable", {}).get("cpu", "0"))) - used.get(name, 0.0)
        fits += max(0, int(free // per_pod))
    count = fits + 1
    if count > 24:
        pytest.skip(f"{fits} CPU-only pods of {per_pod:g} CPUs fit already: too many for a check")
    names = [f"cpu-{i}" for i in range(count)]
    for name in names:
        tenant.create(pod(name, resources={"cpu": f"{per_pod:g}", "memory": "1Gi"}, tolerate_gpu=False))
    placed = wait_bound(kube, tenant.name, names, timeout=SCALE_UP_S, fail_fast=False)
    after = {n["metadata"]["name"]: n for n in kube.list("Node")["items"]}
    added = sorted(set(after) - set(nodes))
    gpu_nodes = [n for n in added if int(after[n]["status"].get("allocatable", {}).get(GPU, 0) or 0) > 0
                 or "nvidia.com/gpu.present" in after[n]["metadata"].get("labels", {})]
    evidence["cpu_pods"] = count
    evidence["added_nodes"] = added
    evidence["added_gpu_nodes"] = gpu_nodes
    assert any(p.node in added for p in placed.values()), "no CPU-only pod needed an added node"
    assert not gpu_nodes, f"CPU-only pods caused GPU nodes: {gpu_nodes}"
