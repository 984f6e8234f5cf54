"""Requirement ids a check can evidence: the CNCF Kubernetes AI Conformance checklist plus aiconform's own.

Owns the catalogue (id, category, level, one-line description) and which CNCF checklist version lists which
id at which level.  The CNCF data follows the published checklists in github.com/cncf/k8s-ai-conformance
(``docs/AIConformance-1.33/1.34/1.35.md`` and ``docs/AIConformance-1.37.yaml``).  Project-own ids start with
``aiconform.``.  Pure data and lookups; nothing here reads results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PROJECT_PREFIX = "aiconform."


class Category(StrEnum):
    """A CNCF checklist section.  ``yaml_key`` is the key the CNCF submission YAML uses under ``spec``."""

    ACCELERATORS = "accelerators"
    NETWORKING = "networking"
    SCHEDULING_ORCHESTRATION = "scheduling_orchestration"
    OBSERVABILITY = "observability"
    SECURITY = "security"
    OPERATOR = "operator"

    @property
    def yaml_key(self) -> str:
        head, *rest = self.value.split("_")
        return head + "".join(part.capitalize() for part in rest)

    @property
    def label(self) -> str:
        """The section title the CNCF checklist uses."""
        return _CATEGORY_TITLES[self]


_CATEGORY_TITLES = {
    Category.ACCELERATORS: "Accelerators",
    Category.NETWORKING: "Networking",
    Category.SCHEDULING_ORCHESTRATION: "Scheduling & Orchestration",
    Category.OBSERVABILITY: "Observability",
    Category.SECURITY: "Security",
    Category.OPERATOR: "Operator Support",
}


class Level(StrEnum):
    """How binding a requirement is (RFC 2119 words, as the CNCF checklist uses them)."""

    MUST = "MUST"
    SHOULD = "SHOULD"


@dataclass(frozen=True)
class Requirement:
    """One requirement id a check can name."""

    id: str
    """The id as written in a check's marker and in the CNCF YAML (``gang_scheduling``, ``aiconform.quota``)."""
    category: Category
    level: Level
    """The level in the newest checklist that lists the id (see ``level_for`` for a given Kubernetes version)."""
    description: str
    """One line: what a platform must show."""

    @property
    def is_cncf(self) -> bool:
        return not self.id.startswith(PROJECT_PREFIX)


_M, _S = Level.MUST, Level.SHOULD
_C = Category

CNCF_REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("dra_support", _C.ACCELERATORS, _M,
                "Support Dynamic Resource Allocation (DRA) APIs for requests beyond simple device counts."),
    Requirement("driver_runtime_management", _C.ACCELERATORS, _S,
                "Verifiable mechanism that compatible accelerator drivers and container runtime config are installed."),
    Requirement("gpu_sharing", _C.ACCELERATORS, _S,
                "At least one GPU sharing strategy (MIG partitions as resources, or time-slicing oversubscription)."),
    Requirement("virtualized_accelerator", _C.ACCELERATORS, _S,
                "Virtualized accelerators (e.g. vGPU) exposed and managed consistently with fractional GPUs."),
    Requirement("ai_inference", _C.NETWORKING, _M,
                "Gateway API implementation with traffic management for inference (weighted split, header routing)."),
    Requirement("advanced_inference_ingress", _C.NETWORKING, _S,
                "Gateway API Inference Extension implementation routing requests to models on Kubernetes."),
    Requirement("high_performance_networking", _C.NETWORKING, _S,
                "Discoverable high-performance network resources and multiple pod interfaces, preferably via DRA."),
    Requirement("disaggregated_inference", _C.NETWORKING, _S,
                "Install and run a disaggregated inference solution (separate prefill and decode instances)."),
    Requirement("gang_scheduling", _C.SCHEDULING_ORCHESTRATION, _M,
                "At least one gang scheduling solution (e.g. Kueue, Volcano) gives all-or-nothing scheduling."),
    Requirement("cluster_autoscaling", _C.SCHEDULING_ORCHESTRATION, _M,
                "Cluster autoscaler scales node groups of a given accelerator type on pending pods that request it."),
    Requirement("pod_autoscaling", _C.SCHEDULING_ORCHESTRATION, _M,
                "HorizontalPodAutoscaler works for accelerator pods, including on custom AI/ML metrics."),
    Requirement("accelerator_metrics", _C.OBSERVABILITY, _M,
                "An accelerator metrics solution exposes per-accelerator utilization and memory on a standard "
                "endpoint."),
    Requirement("ai_service_metrics", _C.OBSERVABILITY, _M,
                "A monitoring system discovers and collects metrics workloads expose (e.g. Prometheus format)."),
    Requirement("secure_accelerator_access", _C.SECURITY, _M,
                "Accelerator access from containers is isolated and mediated by device plugin/DRA and the runtime."),
    Requirement("workload_sandboxing", _C.SECURITY, _S,
                "Run workloads in a sandbox strongly isolated from the host kernel and co-located pods."),
    Requirement("robust_controller", _C.OPERATOR, _M,
                "A complex AI operator with CRDs (e.g. Ray, Kubeflow) installs, its webhooks work, its CRs reconcile."),
)

PROJECT_REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("aiconform.gpu_scheduling", _C.SCHEDULING_ORCHESTRATION, _M,
                "kube-scheduler places GPU pods only where enough allocatable GPUs exist, and never overcommits."),
    Requirement("aiconform.tenant_isolation", _C.SECURITY, _M,
                "Tenants cannot see, use or starve each other's accelerators (RBAC, namespaces, device mediation)."),
    Requirement("aiconform.quota", _C.SCHEDULING_ORCHESTRATION, _M,
                "ResourceQuota on accelerator resources is enforced at admission."),
    Requirement("aiconform.preemption", _C.SCHEDULING_ORCHESTRATION, _S,
                "Higher-priority GPU pods preempt lower-priority ones as PriorityClasses say."),
    Requirement("aiconform.property_invariants", _C.SCHEDULING_ORCHESTRATION, _M,
                "Property-based runs: no device allocated twice, allocation never exceeds capacity or quota."),
    Requirement("aiconform.upgrade_safety", _C.SCHEDULING_ORCHESTRATION, _S,
                "An in-place control-plane and kubelet upgrade keeps GPU workloads running on their devices, keeps "
                "quotas and PriorityClasses enforced, and the device plugin re-registers without double "
                "allocation."),
)

CATALOG: dict[str, Requirement] = {r.id: r for r in CNCF_REQUIREMENTS + PROJECT_REQUIREMENTS}

# Which CNCF checklist lists which id, at which level.  Versions not listed fall back to the nearest older one.
_ALL_MUST_1_34 = ("dra_support", "ai_inference", "gang_scheduling", "cluster_autoscaling", "pod_autoscaling",
                  "accelerator_metrics", "ai_service_metrics", "secure_accelerator_access", "robust_controller")
CHECKLISTS: dict[tuple[int, int], dict[str, Level]] = {
    (1, 33): {**{i: _M for i in _ALL_MUST_1_34}, "dra_support": _S},
    (1, 34): {i: _M for i in _ALL_MUST_1_34},
    (1, 35): {**{i: _M for i in _ALL_MUST_1_34},
              "driver_runtime_management": _S, "gpu_sharing": _S, "virtualized_accelerator": _S},
    (1, 37): {**{i: _M for i in _ALL_MUST_1_34 if i != "dra_support"},
              "driver_runtime_management": _S, "gpu_sharing": _S, "virtualized_accelerator": _S,
              "advanced_inference_ingress": _S, "high_performance_networking": _S, "disaggregated_inference": _S,
              "workload_sandboxing": _S},
}

_MINOR_RE = re.compile(r"v?(\d+)\.(\d+)")


def checklist_version(kubernetes_version: str) -> tuple[int, int]:
    """The CNCF checklist that applies to a Kubernetes version: the newest one not newer than it.

    Versions older than the first checklist get the first; unparseable ones get the newest.
    """
    known = sorted(CHECKLISTS)
    match = _MINOR_RE.match(kubernetes_version.strip())
    if not match:
        return known[-1]
    wanted = (int(match.group(1)), int(match.group(2)))
    older = [v for v in known if v <= wanted]
    return older[-1] if older else known[0]


def cncf_checklist(kubernetes_version: str) -> list[Requirement]:
    """The CNCF requirements of the checklist for ``kubernetes_version``, in catalogue order, at its levels."""
    levels = CHECKLISTS[checklist_version(kubernetes_version)]
    return [
        Requirement(r.id, r.category, levels[r.id], r.description) for r in CNCF_REQUIREMENTS if r.id in levels
    ]


def lookup(requirement_id: str) -> Requirement | None:
    """The catalogue entry for an id, or None for an id this version of aiconform does not know."""
    return CATALOG.get(requirement_id)


def is_known(requirement_id: str) -> bool:
    """True for a catalogued id.  The pytest plugin can use this to reject typos in markers."""
    return requirement_id in CATALOG
