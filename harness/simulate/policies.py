"""Scheduling policies the simulator compares: each turns a trace job into the real objects a team would submit
under that policy, and sets up the cluster for it.

Owns the objects (Jobs, PodGroups, PriorityClasses) and what a policy needs from the cluster (feature gates, API
groups, addons).  It decides nothing: the real scheduler, Job controller, preemption and (for ``kueue``) Kueue's
admission decide, and harness.simulate.metrics reads back what they did.

A policy is one entry of :data:`POLICIES`; a new one (Kueue's, from harness.governance) registers itself the same
way, so the replay and the report treat every policy alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.contract import GPU_RESOURCE, POOL_LABEL, SIMULATED_TOLERATION
from harness.errors import ConfigError
from harness.kube import KubeClient
from harness.simulate.trace import PRIORITIES, Trace, TraceJob

Obj = dict[str, Any]

LABEL_SIM = "aiconform.io/sim"
LABEL_JOB = "aiconform.io/sim-job"
LABEL_TEAM = "aiconform.io/sim-team"
ANNOTATION_DURATION = "aiconform.io/sim-duration"
"""KWOK's ``aiconform-pod-complete`` stage (harness/kwok/stages.yaml) completes a running pod this long after it
started: the job's trace duration divided by the replay's time compression factor."""
PAUSE_IMAGE = "aiconform.local/pause:3.10"
PRIORITY_VALUES = {"low": 1000, "normal": 10000, "high": 100000}
POD_GROUP_API = "scheduling.k8s.io/v1beta1"


@dataclass(frozen=True)
class JobContext:
    namespace: str
    compression: float
    """Trace seconds per wall second."""


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    feature_gates: dict[str, bool] = field(default_factory=dict)
    runtime_config: dict[str, str] = field(default_factory=dict)
    addons: tuple[str, ...] = ()
    priorities: bool = False
    """Pods carry a PriorityClass per trace priority (preemption by the real scheduler)."""
    gang: bool = False
    """Multi-pod jobs get a native PodGroup (all-or-nothing, kube-scheduler's GangScheduling plugin)."""
    setup: Callable[[KubeClient, Trace, int], None] = lambda client, trace, gpus: None
    """Cluster-wide objects the policy needs before the first job (queues, quotas), given the trace and the
    cluster's GPU count."""
    decorate: Callable[[Obj, TraceJob], Obj] = lambda job, tj: job
    """A last change to each Job (a queue label, ``suspend``)."""


def priority_classes() -> list[Obj]:
    return [{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
             "metadata": {"name": f"sim-{p}", "labels": {LABEL_SIM: "true"}},
             "value": PRIORITY_VALUES[p], "preemptionPolicy": "PreemptLowerPriority",
             "description": f"aiconform simulate: trace priority {p}"} for p in PRIORITIES]


def _setup_priorities(client: KubeClient, trace: Trace, gpus: int) -> None:
    for pc in priority_classes():
        client.apply(pc)


def job_objects(policy: Policy, tj: TraceJob, ctx: JobContext) -> list[Obj]:
    """The objects a team submits for one trace job under ``policy``: a batch/v1 Job of ``pods`` pods (and, for
    gang scheduling, its PodGroup first)."""
    labels = {LABEL_SIM: "true", LABEL_JOB: tj.name, LABEL_TEAM: tj.team}
    wall = max(0.05, tj.duration_s / ctx.compression)
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "main", "image": PAUSE_IMAGE, "imagePullPolicy": "Never",
                        "resources": {"requests": {"cpu": "100m", GPU_RESOURCE: str(tj.gpus_per_pod)},
                                      "limits": {GPU_RESOURCE: str(tj.gpus_per_pod)}}}],
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},
                        dict(SIMULATED_TOLERATION)],
        "nodeSelector": {POOL_LABEL: "sim"},
    }
    out: list[Obj] = []
    if policy.priorities:
        pod_spec["priorityClassName"] = f"sim-{tj.priority}"
    if policy.gang and tj.pods > 1:
        out.append({"apiVersion": POD_GROUP_API, "kind": "PodGroup",
                    "metadata": {"name": tj.name, "namespace": ctx.namespace, "labels": labels},
                    "spec": {"schedulingPolicy": {"gang": {"minCount": tj.pods}}}})
        pod_spec["schedulingGroup"] = {"podGroupName": tj.name}
    job: Obj = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": tj.name, "namespace": ctx.namespace, "labels": labels},
        "spec": {
            "parallelism": tj.pods, "completions": tj.pods, "backoffLimit": 1000,
            "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
            "template": {"metadata": {"labels": labels, "annotations": {ANNOTATION_DURATION: f"{wall * 1000:.0f}ms"}},
                         "spec": pod_spec},
        },
    }
    out.append(policy.decorate(job, tj))
    return out


POLICIES: dict[str, Policy] = {}


def register(policy: Policy) -> None:
    POLICIES[policy.name] = policy


register(Policy("fifo", "the default scheduler alone: one priority, pods placed as they come"))
register(Policy("priority", "PriorityClasses per trace priority (low/normal/high) with preemption by the scheduler",
                priorities=True, setup=_setup_priorities))
register(Policy("gang", "native gang scheduling: a PodGroup per multi-pod job (GenericWorkload, "
                "scheduling.k8s.io/v1beta1), all-or-nothing placement by the scheduler",
                feature_gates={"GenericWorkload": True}, runtime_config={"scheduling.k8s.io/v1beta1": "true"},
                gang=True))


def lookup(names: list[str]) -> list[Policy]:
    """The named policies, in order; an unknown name is a ConfigError listing the known ones."""
    out = []
    for n in names:
        if n not in POLICIES:
            raise ConfigError(f"unknown policy {n!r}; known policies: {', '.join(sorted(POLICIES))}")
        if POLICIES[n] not in out:
            out.append(POLICIES[n])
    return out
