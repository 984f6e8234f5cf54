"""Simulated (tier S) Node objects: what KWOK plays, with the GPU resources and labels the fake plugin would give.

Owns the Node manifests of simulated pools and their bulk registration; starts no process.  Neutral ground: the
local provider registers its pools with it, the governance sandbox and scenarios add private pools, and the Karpenter
addon gives the nodes it adds the same labels and resources, so none of them imports another for it.  A simulated node's GPU
labels and extended resources come from fake_gpu_plugin (``labels.node_labels``, ``inventory.resource_counts``),
the same functions that label the real node and count what its plugin serves; nothing GPU-specific is decided here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fake_gpu_plugin.inventory import resource_counts
from fake_gpu_plugin.labels import node_labels
from harness.config import Pool
from harness.contract import CLUSTER_LABEL, POOL_LABEL, SIMULATED_LABEL, SIMULATED_TAINT
from harness.errors import AiconformError, ClusterError, Conflict
from harness.kube import KubeClient

SIM_ANNOTATION = (SIMULATED_TAINT["key"], SIMULATED_TAINT["value"])
"""KWOK manages the nodes annotated so (its ``--manage-nodes-with-annotation-selector``): the same key and value as
the simulated nodes' own taint."""
LABEL_SIMULATED = SIMULATED_LABEL
LABEL_POOL = POOL_LABEL
LABEL_CLUSTER = CLUSTER_LABEL
FAKE_NODE_IP = "127.0.0.10"
"""The InternalIP every simulated node reports (KWOK ``--node-ip``).  A loopback address on purpose: whatever dials
it (the apiserver for logs/exec of a simulated pod, a hostNetwork pod's endpoint) stays on this machine and is
refused at once, since nothing listens there.  (It was 192.0.2.10, a documentation address, until it turned out to
lie on this VM's own uplink network, where a connection would have left the machine.)"""


# -- node objects ---------------------------------------------------------------------------------------------------


def pool_labels(pool: Pool, cluster: str) -> dict[str, str]:
    """The labels every node of the pool carries, except ``kubernetes.io/hostname`` (simulated nodes from the
    profile and the nodes Karpenter adds to an autoscaled pool alike)."""
    labels = {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        LABEL_SIMULATED: "true",
        LABEL_POOL: pool.name,
        LABEL_CLUSTER: cluster,
    }
    if pool.gpu is not None:
        labels.update(node_labels(pool.gpu))
    labels.update(pool.labels)
    return labels


def pool_taints(pool: Pool) -> list[dict[str, str]]:
    """The taints every node of the pool carries: the pool's own, then the simulated nodes' own
    (``contract.SIMULATED_TAINT``), so only pods meant for simulated nodes land there."""
    return [*(t.to_api() for t in pool.taints), dict(SIMULATED_TAINT)]


def pool_resources(pool: Pool) -> dict[str, str]:
    """Capacity (= allocatable) of one node of the pool: its size and what the fake GPU plugin would advertise."""
    resources: dict[str, str] = {
        "cpu": pool.cpu,
        "memory": pool.memory,
        "pods": str(pool.pods),
        "ephemeral-storage": "1Ti",
    }
    if pool.gpu is not None:
        if not pool.dra:  # a DRA pool offers its GPUs through ResourceSlices (harness/dra.py), never both ways
            resources.update({k: str(v) for k, v in resource_counts(pool.gpu).items()})
    return resources


def simulated_node(pool: Pool, index: int, cluster: str) -> dict[str, Any]:
    """The Node object of one simulated node: KWOK manages it; capacity is what the fake GPU plugin would give."""
    name = f"{pool.name}-{index}"
    labels = {"kubernetes.io/hostname": name, **pool_labels(pool, cluster)}
    resources = pool_resources(pool)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {SIM_ANNOTATION[0]: SIM_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": pool_taints(pool)},
        "status": {"capacity": dict(resources), "allocatable": dict(resources), "phase": "Pending"},
    }


def node_ready(node: dict[str, Any]) -> bool:
    for c in node.get("status", {}).get("conditions", []) or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def register_nodes(client: KubeClient, nodes: list[dict[str, Any]], *, timeout: float = 120, workers: int = 32) -> None:
    """Create simulated Node objects and watch until KWOK has made every one of them Ready."""
    if not nodes:
        return
    create_nodes(client, nodes, workers=workers)
    client.wait_all("Node", [n["metadata"]["name"] for n in nodes], node_ready, label_selector=f"{LABEL_SIMULATED}=true",
                    timeout=timeout, what=f"{len(nodes)} simulated nodes to be Ready (KWOK)")


def create_nodes(client: KubeClient, nodes: list[dict[str, Any]], workers: int = 32) -> None:
    """Create Node objects in parallel (keep-alive connection per worker); existing ones are left as they are."""

    def one(node: dict[str, Any]) -> None:
        try:
            client.create_fast(node)
        except Conflict:
            pass

    errors: list[AiconformError] = []
    with ThreadPoolExecutor(max_workers=min(workers, len(nodes))) as pool:
        for fut in [pool.submit(one, n) for n in nodes]:
            try:
                fut.result()
            except AiconformError as err:
                errors.append(err)
    if errors:
        raise ClusterError(f"{len(errors)} of {len(nodes)} nodes could not be created; first: {errors[0]}")
