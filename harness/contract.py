"""The facts that cross layers, each with one owner: the tiers and their order, the node labels the providers set
and everyone else selects on, the ports one component listens on and another dials, and which node is simulated
(and the taint that keeps pods nobody meant for it off it).

Providers, addons, the pytest seam, the report, the scenarios, the reference workloads, the benchmarks and the
tests import these names instead of repeating the literals.  The GPU-side names (resource, DRA driver, driver
version, the fake-GPU label, the DCGM exporter port) are owned by :mod:`fake_gpu_plugin.names` and re-exported here
so harness code has one place to import from.  Nothing here imports the harness or talks to a cluster; YAML
manifests and Go sources that cannot import Python keep their literals.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from fake_gpu_plugin.names import DCGM_EXPORTER_PORT as DCGM_EXPORTER_PORT
from fake_gpu_plugin.names import DRA_DRIVER as DRA_DRIVER
from fake_gpu_plugin.names import FAKE_DRIVER_VERSION as FAKE_DRIVER_VERSION
from fake_gpu_plugin.names import FAKE_GPU_LABEL as FAKE_GPU_LABEL
from fake_gpu_plugin.names import GPU_RESOURCE as GPU_RESOURCE
from fake_gpu_plugin.names import UTILIZATION_ANNOTATION as UTILIZATION_ANNOTATION

# -- tiers -------------------------------------------------------------------------------------------------------


class Tier(StrEnum):
    """How much of the stack is real (see DESIGN.md): S scheduling, R runtime, G real GPUs.  S < R < G."""

    S = "S"
    R = "R"
    G = "G"

    @property
    def rank(self) -> int:
        return TIERS.index(self.value)

    @property
    def note(self) -> str:
        """What a verdict at this tier rests on."""
        return TIER_NOTES[self]


TIERS: tuple[str, ...] = tuple(t.value for t in Tier)
"""The tier names, lowest first: ``("S", "R", "G")``."""

TIER_NOTES = {
    Tier.S: "simulated GPU nodes (KWOK); scheduler, admission, quota and RBAC decisions by real "
    "kube-scheduler/kube-apiserver/controllers",
    Tier.R: "real kubelet, containerd, runc and device-plugin gRPC with real containers; GPUs emulated by "
    "fake_gpu_plugin",
    Tier.G: "real GPU hardware; nothing emulated",
}


def highest_tier(*tiers: str) -> Tier:
    """The highest of ``tiers`` (S when none); ValueError for a name that is not a tier."""
    return max((Tier(t) for t in tiers), key=lambda t: t.rank, default=Tier.S)


# -- node labels -------------------------------------------------------------------------------------------------

SIMULATED_LABEL = "aiconform.io/simulated"
"""``true`` on a simulated (KWOK) node: it runs no containers."""
REAL_NODE_LABEL = "aiconform.io/real-node"
"""``true`` on a node with a real kubelet and container runtime: traffic-carrying pods are pinned to it."""
POOL_LABEL = "aiconform.io/pool"
"""The profile pool (or kind worker) a node belongs to."""
CLUSTER_LABEL = "aiconform.io/cluster"
"""The name of the cluster that made the node."""


SIMULATED_TAINT: Mapping[str, str] = MappingProxyType(
    {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"})
"""The taint of every simulated node aiconform makes (profile pools, sandbox pools, nodes Karpenter adds): KWOK's own
key and value (the annotation KWOK manages such nodes by, too), so a pod nobody meant for a node that runs nothing (a
third-party suite's pod with no nodeSelector) is never bound there.  Read-only: copy it (``dict(...)``) into a
manifest."""
SIMULATED_TAINT_TEXT = f"{SIMULATED_TAINT['key']}={SIMULATED_TAINT['value']}:{SIMULATED_TAINT['effect']}"
""":data:`SIMULATED_TAINT` as ``kubectl taint`` writes it, for messages and the report."""
SIMULATED_TOLERATION: Mapping[str, str] = MappingProxyType(
    {"key": SIMULATED_TAINT["key"], "operator": "Equal", "value": SIMULATED_TAINT["value"], "effect": "NoSchedule"})
"""What every pod aiconform means for simulated nodes tolerates (:data:`SIMULATED_TAINT`, exactly).  Read-only."""


def is_simulated(node: Mapping[str, Any]) -> bool:
    """Whether a Node object (as the API returns it) is a simulated node: no kubelet, no containers."""
    return bool(node.get("metadata", {}).get("labels", {}).get(SIMULATED_LABEL) == "true")


def declares_fake_gpus(node: Mapping[str, Any]) -> bool:
    """Whether a Node object carries the fake's label (``FAKE_GPU_LABEL``): its GPUs are fake_gpu_plugin's."""
    return bool((node.get("metadata", {}).get("labels") or {}).get(FAKE_GPU_LABEL) == "true")


# -- ports -------------------------------------------------------------------------------------------------------

PROMETHEUS_PORT = 9090
"""Prometheus on the real node (harness/addons/prometheus.py); the serving stack and prometheus-adapter dial it."""
GATEWAY_PORT = 18000
"""The Gateway API listener (Traefik's ``web`` entrypoint) on the real node's address."""
