"""Manifests and watch-based waits that scenarios share: GPU pods, quotas, priority classes, and the questions a
scenario asks the real cluster ("was it bound, and where?", "what did the scheduler say?").

Owns building objects and reading answers; never decides an outcome itself.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from harness.contract import GPU_RESOURCE, REAL_NODE_LABEL, SIMULATED_TOLERATION
from harness.errors import ApiError, KubeError
from harness.images import PAUSE_IMAGE as LOCAL_PAUSE_IMAGE
from harness.images import run_ref
from harness.kube import KubeClient, Obj, is_bound, unschedulable_message

GPU = GPU_RESOURCE
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
PAUSE_IMAGE = run_ref(LOCAL_PAUSE_IMAGE)
"""harness.images builds it for real nodes (nothing is pulled); under ``aiconform run --image-registry`` its name
there (pushed by ``aiconform images push``)."""
# REAL_NODE_LABEL (harness.contract): the one label of real (kubelet) nodes, ``"true"`` on them.  Workloads that
# carry real traffic (serving, training, DNS or Service checks) are pinned to it with :func:`real_node_selector` /
# :func:`pin_to_real_node`: a pod on a simulated node has a fake IP that is unreachable from this host by design.
REAL_NODE_IP, REAL_NODE_PREFIX = "172.31.255.1", 30
REAL_POD_CIDR = "10.244.0.0/24"
"""Where a real node of this host lives (the ``local`` provider's veth address and pod bridge, realnode.py): with
loopback, the only addresses a load generator of this host may send traffic to (reference_workloads/serving/load.py)."""


def untolerated_taints(node: Obj) -> list[Obj]:
    """The node's NoSchedule/NoExecute taints that keep off a :func:`pod` built with ``tolerate_gpu=False``: every
    one but the simulated nodes' own, which such a pod tolerates."""
    return [t for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") in ("NoSchedule", "NoExecute") and t.get("key") != SIMULATED_TOLERATION["key"]]


NODE_SELECTOR_ENV = "AICONFORM_NODE_SELECTOR"
"""Set (by ``aiconform run --kubeconfig``): the nodeSelector of pods that need a real node, ``key=value[,key=value]``,
or empty for none (a cluster with no simulated node).  Unset: the real-node label of aiconform's own clusters."""


def parse_node_selector(text: str) -> dict[str, str]:
    """``key=value[,key=value]`` (``none`` or empty: no selector); ValueError naming the bad item."""
    out: dict[str, str] = {}
    if text.strip().lower() in ("", "none"):
        return out
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item.strip()!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def real_node_selector() -> dict[str, str]:
    """nodeSelector that keeps a pod on a real node: the real-node label, or what the run says
    (:data:`NODE_SELECTOR_ENV`)."""
    raw = os.environ.get(NODE_SELECTOR_ENV)
    return {REAL_NODE_LABEL: "true"} if raw is None else parse_node_selector(raw)


def pin_to_real_node(obj: Obj) -> Obj:
    """Add the real-node nodeSelector to a Pod, or to the pod template of a workload (Deployment, StatefulSet,
    DaemonSet, ReplicaSet, Job: ``spec.template``; CronJob: ``spec.jobTemplate.spec.template``; JobSet:
    every ``spec.replicatedJobs[].template.spec.template``).  Changes ``obj`` in place and returns it; an
    object with no pod spec is a ValueError."""
    specs: list[dict[str, Any]] = []
    spec = obj.get("spec", {})
    if obj.get("kind") == "Pod":
        specs.append(spec)
    elif "template" in spec:
        specs.append(spec["template"].setdefault("spec", {}))
    elif "jobTemplate" in spec:
        specs.append(spec["jobTemplate"]["spec"]["template"].setdefault("spec", {}))
    elif "replicatedJobs" in spec:
        specs += [rj["template"]["spec"]["template"].setdefault("spec", {}) for rj in spec["replicatedJobs"]]
    if not specs:
        raise ValueError(f"{obj.get('kind')} has no pod spec to pin to a real node")
    for pod_spec in specs:
        pod_spec["nodeSelector"] = {**pod_spec.get("nodeSelector", {}), **real_node_selector()}
    return obj


def pod(
    name: str,
    *,
    resources: dict[str, int | str] | None = None,
    tolerate_gpu: bool = True,
    node_selector: dict[str, str] | None = None,
    affinity: dict[str, Any] | None = None,
    priority_class: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    image: str = PAUSE_IMAGE,
    command: list[str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    service_account: str | None = None,
    security_context: dict[str, Any] | None = None,
) -> Obj:
    """A one-container pod; ``resources`` go to limits (requests default to limits for extended resources).  It
    tolerates the simulated nodes' own taint (``contract.SIMULATED_TAINT``) always, a GPU pool's only with
    ``tolerate_gpu``: aiconform's pods may land on simulated nodes, unless a selector keeps them off."""
    container: dict[str, Any] = {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}
    if command:
        container["command"] = command
    if resources:
        limits = {k: str(v) for k, v in resources.items()}
        container["resources"] = {"limits": limits, "requests": dict(limits)}
    if security_context is not None:
        container["securityContext"] = security_context
    spec: dict[str, Any] = {
        "containers": containers or [container],
        "terminationGracePeriodSeconds": 0,
        "restartPolicy": "Never" if command else "Always",
    }
    spec["tolerations"] = [*([dict(GPU_TOLERATION)] if tolerate_gpu else []), dict(SIMULATED_TOLERATION)]
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    if priority_class:
        spec["priorityClassName"] = priority_class
    if service_account:
        spec["serviceAccountName"] = service_account
    md: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/part-of": "aiconform", **(labels or {})}}
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


def gpu_pod(name: str, gpus: int, *, resource: str = GPU, **kw: Any) -> Obj:
    return pod(name, resources={resource: gpus, "cpu": "100m", "memory": "64Mi"}, **kw)


def gpu_quota(name: str, gpus: int, *, resource: str = GPU) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name},
        "spec": {"hard": {f"requests.{resource}": str(gpus)}},
    }


def wait_quota_published(client: KubeClient, namespace: str, name: str, *, timeout: float = 30.0) -> None:
    """Watch until the quota controller has published the quota's status: until then the apiserver's quota
    admission cannot judge a pod against it."""
    client.wait_for("ResourceQuota", namespace=namespace, name=name, timeout=timeout,
                    condition=lambda s: bool(s) and "hard" in next(iter(s.values())).get("status", {}),
                    what=f"the quota controller to publish {namespace}/{name}")


def priority_class(name: str, value: int, *, preempt: bool = True) -> Obj:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "aiconform"}},
        "value": value,
        "preemptionPolicy": "PreemptLowerPriority" if preempt else "Never",
        "globalDefault": False,
    }


@dataclass(frozen=True)
class Placement:
    pod: str
    node: str
    seconds: float
    """From the wait's start to the moment the pod was seen bound."""


def wait_bound(
    client: KubeClient, namespace: str, names: list[str], *, timeout: float = 60.0, fail_fast: bool = True
) -> dict[str, Placement]:
    """Watch until every named pod is bound to a node; fails fast with the scheduler's message when one is
    marked Unschedulable (unless ``fail_fast`` is off: a preemptor is Unschedulable until its victims are gone)."""
    t0 = time.monotonic()
    seen: dict[str, float] = {}
    wanted = set(names)

    def cond(state: dict[str, Obj]) -> bool:
        now = time.monotonic() - t0
        for key, obj in state.items():
            short = key.split("/", 1)[-1]
            if short in wanted and is_bound(obj) and short not in seen:
                seen[short] = now
        return wanted <= set(seen)

    def fail(state: dict[str, Obj]) -> str | None:
        for key, obj in state.items():
            short = key.split("/", 1)[-1]
            if short in wanted:
                msg = unschedulable_message(obj)
                if msg:
                    return f"pod {short} is Unschedulable: {msg}"
        return None

    final = client.wait_for(
        "Pod", namespace=namespace, condition=cond, failure=fail if fail_fast else None, timeout=timeout,
        what=f"pods {', '.join(sorted(wanted))} in {namespace} to be bound",
    )
    return {
        n: Placement(n, final[f"{namespace}/{n}"]["spec"]["nodeName"], seen[n]) for n in names
    }


def wait_unschedulable(client: KubeClient, namespace: str, name: str, *, timeout: float = 30.0,
                       containing: str = "") -> str:
    """Watch until the scheduler marks the pod Unschedulable (with a message ``containing`` that text, when given:
    an earlier verdict, e.g. on a DeviceClass its informer has not seen yet, is waited past); returns its message.
    Fails if the pod is bound."""
    msg: dict[str, str] = {}

    def cond(state: dict[str, Obj]) -> bool:
        obj = state.get(f"{namespace}/{name}")
        m = unschedulable_message(obj) if obj else None
        if m:
            msg["m"] = m
        return bool(m) and containing in (m or "")

    def fail(state: dict[str, Obj]) -> str | None:
        obj = state.get(f"{namespace}/{name}")
        if obj and is_bound(obj):
            return f"pod {name} was bound to {obj['spec']['nodeName']}, expected it to stay Pending"
        return None

    client.wait_for("Pod", namespace=namespace, name=name, condition=cond, failure=fail, timeout=timeout,
                    what=f"the scheduler to mark {namespace}/{name} Unschedulable")
    return msg["m"]


def scheduler_events(client: KubeClient, namespace: str, pod_name: str, *, reason: str = "FailedScheduling",
                     timeout: float = 20.0) -> list[str]:
    """Watch until the scheduler has emitted an event of ``reason`` for the pod; returns the messages."""
    fsel = f"involvedObject.name={pod_name},involvedObject.kind=Pod,reason={reason}"
    events = client.wait_for("Event", namespace=namespace, field_selector=fsel, condition=bool, timeout=timeout,
                             what=f"a {reason} event for pod {namespace}/{pod_name}")
    return [str(e.get("message", "")) for e in events.values()]


def node_gpu_usage(client: KubeClient, resource: str = GPU) -> dict[str, tuple[int, int]]:
    """node → (requested by bound pods that will stay, allocatable) for ``resource``, read from the API.

    Pods that are finished, being deleted, or in a namespace being deleted are not counted: their GPUs are about
    to be free."""
    alloc: dict[str, int] = {}
    for n in client.list("Node")["items"]:
        a = n.get("status", {}).get("allocatable", {}).get(resource)
        if a is not None:
            alloc[n["metadata"]["name"]] = int(a)
    used: dict[str, int] = {k: 0 for k in alloc}
    leaving = {ns["metadata"]["name"] for ns in client.list("Namespace")["items"]
               if ns.get("status", {}).get("phase") == "Terminating" or ns["metadata"].get("deletionTimestamp")}
    for p in client.list("Pod")["items"]:
        if p["metadata"].get("namespace") in leaving:
            continue
        node = p.get("spec", {}).get("nodeName")
        if not node or p.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if p["metadata"].get("deletionTimestamp"):
            continue
        used[node] = used.get(node, 0) + pod_request(p, resource)
    return {k: (used.get(k, 0), alloc.get(k, 0)) for k in set(alloc) | set(used)}


def wait_no_terminating_pods(client: KubeClient, nodes: list[str], *, timeout: float = 60.0) -> None:
    """Watch until no pod that is being deleted is still bound to one of ``nodes`` (its resources are free)."""
    wanted = set(nodes)

    def cond(state: dict[str, Obj]) -> bool:
        return not any(p["metadata"].get("deletionTimestamp") and p["spec"].get("nodeName") in wanted
                       for p in state.values())

    client.wait_for("Pod", condition=cond, timeout=timeout, what=f"terminating pods to leave {len(wanted)} nodes")


def pod_request(p: Obj, resource: str = GPU) -> int:
    total = 0
    for c in p.get("spec", {}).get("containers", []):
        r = c.get("resources", {})
        v = (r.get("requests") or {}).get(resource) or (r.get("limits") or {}).get(resource)
        if v is not None:
            total += int(v)
    return total


def pod_log_tail(client: KubeClient, namespace: str, pod_name: str, *, lines: int = 20, previous: bool = False,
                 container: str | None = None) -> list[str]:
    """The last ``lines`` of a pod's container log (through the apiserver and the kubelet), for error messages;
    ``previous`` reads the last terminated instance.  A log that cannot be read gives one line saying why."""
    params: dict[str, Any] = {"tailLines": lines, "previous": "true" if previous else None, "container": container}
    try:
        text = client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod_name}/log", params=params, raw=True)
    except (ApiError, KubeError) as err:
        return [f"(log of {namespace}/{pod_name} unreadable: {err})"]
    return [line for line in str(text).splitlines() if line.strip()][-lines:]


BAD_WAITING_REASONS = ("CrashLoopBackOff", "ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff",
                       "CreateContainerError", "CreateContainerConfigError", "RunContainerError", "InvalidImageName")
"""Reasons a container waits that it will not leave by itself (no image, a crash loop, a broken container spec)."""


def logs_until(client: KubeClient, namespace: str, pod_name: str, containers: list[str], *, marker: str = "END",
               timeout: float = 30.0) -> dict[str, str]:
    """Each container's log once it printed ``marker`` (a script that prints what it saw, then the marker, then
    sleeps); whatever was printed when the deadline passed otherwise.  The log endpoint has no watch: it is polled
    briefly, one deadline for all the containers."""
    path = client.kind_path("Pod", namespace, pod_name) + "/log"
    logs: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    for container in containers:
        while True:
            logs[container] = str(client.request("GET", path, params={"container": container}, raw=True))
            if marker in logs[container] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    return logs


def pod_failure(pod_obj: Obj) -> str | None:
    """Why a pod will not become Ready by itself: the scheduler found no node for it, or a container exited non-zero,
    crash-loops or has no image; None while it may still get there."""
    name = pod_obj.get("metadata", {}).get("name", "?")
    for cond in pod_obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
            return f"pod {name} is unschedulable: {cond.get('message', '')}"
    for cs in pod_obj.get("status", {}).get("containerStatuses", []) or []:
        waiting = cs.get("state", {}).get("waiting") or {}
        term = cs.get("state", {}).get("terminated") or cs.get("lastState", {}).get("terminated") or {}
        if waiting.get("reason") in BAD_WAITING_REASONS:
            return f"pod {name}: {waiting['reason']} {waiting.get('message', '')}".strip()
        if term and term.get("exitCode", 0) != 0:
            return f"pod {name}: container {cs.get('name')} exited {term.get('exitCode')} ({term.get('reason', '')})"
    return None


def pod_ready(pod_obj: Obj) -> bool:
    for c in pod_obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False
