"""Requirement ids a check can evidence: the CNCF Kubernetes AI Conformance checklist plus aiconform's own.

Owns the catalogue (id, category, level, one-line description) and which CNCF checklist version lists which
id at which level, and which checklist a Kubernetes version is judged against.  The checklists themselves (ids,
levels and the verbatim descriptions) are data in ``harness.report.checklists``.  Project-own ids start with
``aiconform.``.  Pure data and lookups; nothing here reads results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from harness.report.checklists import PUBLISHED

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
    Requirement("aiconform.training_resume", _C.OPERATOR, _M,
                "A distributed training job under its operator survives a killed worker: the whole group is "
                "restarted and resumes from its last checkpoint (step count continues, loss keeps falling) to "
                "completion."),
)

CATALOG: dict[str, Requirement] = {r.id: r for r in CNCF_REQUIREMENTS + PROJECT_REQUIREMENTS}

CHECKLISTS: dict[tuple[int, int], dict[str, Level]] = {
    version: {rid: Level(level) for _key, rid, level, _text in entries} for version, entries in PUBLISHED.items()
}
"""Which published CNCF checklist lists which id, at which level (from ``harness.report.checklists``)."""

_MINOR_RE = re.compile(r"v?(\d+)\.(\d+)")


@dataclass(frozen=True)
class ChecklistChoice:
    """The published checklist a run is judged against, and why when it is not the cluster's own minor version."""

    version: tuple[int, int]
    note: str = ""
    """Empty when the cluster's minor version has its own published checklist; else one line saying which list is
    used instead and why (``Kubernetes v1.38 has no published CNCF checklist yet; judged against v1.37``)."""

    @property
    def label(self) -> str:
        return f"v{self.version[0]}.{self.version[1]}"


def choose_checklist(kubernetes_version: str) -> ChecklistChoice:
    """The CNCF checklist for a Kubernetes version: its own minor's when published; a newer minor than the newest
    published uses the newest (until the program publishes its own), an older one the oldest; each says so."""
    known = sorted(CHECKLISTS)
    match = _MINOR_RE.match(kubernetes_version.strip())
    if not match:
        return ChecklistChoice(known[-1], f"Kubernetes version {kubernetes_version!r} is not vX.Y[.Z]; judged against "
                                          f"the newest published checklist, v{known[-1][0]}.{known[-1][1]}")
    wanted = (int(match.group(1)), int(match.group(2)))
    if wanted in CHECKLISTS:
        return ChecklistChoice(wanted)
    older = [v for v in known if v <= wanted]
    use = older[-1] if older else known[0]
    why = "has no published CNCF checklist yet" if older else "is older than the first published CNCF checklist"
    return ChecklistChoice(use, f"Kubernetes v{wanted[0]}.{wanted[1]} {why}; judged against v{use[0]}.{use[1]}")


def checklist_version(kubernetes_version: str) -> tuple[int, int]:
    """The CNCF checklist version that applies to a Kubernetes version (see :func:`choose_checklist`)."""
    return choose_checklist(kubernetes_version).version


@dataclass(frozen=True)
class PublishedRequirement:
    """One requirement exactly as a published checklist states it (what a PRODUCT.yaml must repeat unchanged)."""

    category_key: str
    """The key under ``spec`` (``schedulingOrchestration``)."""
    id: str
    level: Level
    description: str


def published_checklist(version: tuple[int, int]) -> tuple[PublishedRequirement, ...]:
    """The requirements of the published checklist ``version`` in the program's order; KeyError if unpublished."""
    return tuple(PublishedRequirement(key, rid, Level(level), text) for key, rid, level, text in PUBLISHED[version])


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
