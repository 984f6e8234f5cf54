"""Native gang scheduling of Kubernetes 1.37: ``scheduling.k8s.io/v1beta1`` Workload and PodGroup manifests, and a
reader of how much of a gang the scheduler has bound.

The API is served only when a profile turns on the ``GenericWorkload`` feature gate and
``--runtime-config=scheduling.k8s.io/v1beta1=true`` (``harness/profiles/gang.yaml``); the scheduler's GangScheduling
plugin then holds every pod of a PodGroup until ``minCount`` of them can be placed together.  This module only writes
the objects a user would write; the all-or-nothing decision is kube-scheduler's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.kube import KubeClient, is_bound
from harness.workloads import gpu_pod

API = "scheduling.k8s.io/v1beta1"
TEMPLATE = "workers"
GANG_LABEL = "aiconform.io/gang"


def workload(name: str, min_count: int) -> dict[str, Any]:
    """A Workload with one pod-group template whose policy is a gang of ``min_count``."""
    return {"apiVersion": API, "kind": "Workload", "metadata": {"name": name},
            "spec": {"podGroupTemplates": [{"name": TEMPLATE,
                                            "schedulingPolicy": {"gang": {"minCount": min_count}}}]}}


def pod_group(name: str, min_count: int, *, workload_name: str | None = None) -> dict[str, Any]:
    """A PodGroup (gang of ``min_count``), made from ``workload_name``'s template when given."""
    spec: dict[str, Any] = {"schedulingPolicy": {"gang": {"minCount": min_count}}}
    if workload_name:
        spec["workloadRef"] = {"workloadName": workload_name, "templateName": TEMPLATE}
    return {"apiVersion": API, "kind": "PodGroup", "metadata": {"name": name}, "spec": spec}


def member_pod(group: str, index: int, gpus: int, **kw: Any) -> dict[str, Any]:
    """Pod ``<group>-<index>`` of ``gpus`` GPUs, a member of PodGroup ``group``."""
    p = gpu_pod(f"{group}-{index}", gpus, labels={GANG_LABEL: group}, **kw)
    p["spec"]["schedulingGroup"] = {"podGroupName": group}
    return p


@dataclass(frozen=True)
class GangState:
    """How much of a gang is bound, as the API says."""

    members: int
    bound: int
    nodes: tuple[str, ...]

    @property
    def whole(self) -> bool:
        return self.members > 0 and self.bound == self.members

    @property
    def partial(self) -> bool:
        return 0 < self.bound < self.members


def gang_state(client: KubeClient, namespace: str, group: str) -> GangState:
    pods = client.list("Pod", namespace, label_selector=f"{GANG_LABEL}={group}")["items"]
    bound = [p for p in pods if is_bound(p)]
    return GangState(len(pods), len(bound), tuple(sorted({p["spec"]["nodeName"] for p in bound})))


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == ctype:
            return dict(c)
    return None
