"""Upgrade suite: what an in-place upgrade breaks in practice, judged across ``aiconform run --upgrade-to``.

The same checks run before and after the upgrade.  Before it, a fixture starts a long-running GPU Deployment (on the
real node at tier R) under a PriorityClass and a GPU ResourceQuota it fills, and records what it started (pod uids,
container ids, restart counts, devices, the node's allocatable GPUs) in a ConfigMap: the cluster itself carries the
snapshot across the upgrade.  After it, the checks judge against that snapshot:

- the workload survived: the same pods and containers, no restart, replicas available, the same devices;
- the PriorityClass and the quota still hold, as judged by the upgraded apiserver's admission;
- the device plugin re-registered with the restarted kubelet (allocatable is back) and no GPU is handed out twice:
  filling the node's free GPUs gives every pod a distinct device (tier R), and one more stays Pending.

Outside ``--upgrade-to`` the checks skip (the runner does not pick this suite then).  The after phase removes the
namespace and the PriorityClass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from harness.contract import SIMULATED_TOLERATION
from harness.errors import Forbidden, NotFound
from harness.images import image_ref
from harness.kube import KubeClient
from harness.testing import ClusterHandle, Evidence, Tenant, UpgradePhase, label_value
from harness.workloads import (
    GPU,
    GPU_TOLERATION,
    PAUSE_IMAGE,
    gpu_pod,
    gpu_quota,
    logs_until,
    pod_ready,
    pod_request,
    priority_class,
    real_node_selector,
    wait_bound,
    wait_quota_published,
    wait_unschedulable,
)

SURVIVORS = 2
PRIORITY = 100_000
UPGRADE_LABEL = "aiconform.io/upgrade"
DEVICE = re.compile(r"NVIDIA_VISIBLE_DEVICES=(\S+)")
SCRIPT = "env | grep NVIDIA_VISIBLE; echo END; exec sleep 1000000"


@dataclass(frozen=True)
class Survivors:
    namespace: str
    priority_class: str
    node: str
    snapshot: dict[str, Any]
    """What the before phase recorded: ``pods`` (name → uid, container, restarts, devices), ``allocatable``."""


def _name(key: str) -> str:
    """The namespace and the PriorityClass of one upgrade run (both phases find them by the run's key)."""
    return f"aiconform-upgrade-{label_value(key).lower()}"[:63].rstrip("-.")


def _image(cluster: ClusterHandle) -> str:
    return image_ref("busybox") if cluster.tier == "R" else PAUSE_IMAGE


def _selector(cluster: ClusterHandle) -> dict[str, str]:
    return real_node_selector() if cluster.tier == "R" else {"nvidia.com/gpu.present": "true"}


def _container(cluster: ClusterHandle, gpus: int) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "main", "image": _image(cluster), "imagePullPolicy": "IfNotPresent",
                         "resources": {"limits": {GPU: str(gpus), "cpu": "50m", "memory": "32Mi"}}}
    if cluster.tier == "R":
        c["command"] = ["sh", "-c", SCRIPT]
    return c


def _deployment(cluster: ClusterHandle, pc: str, node: str | None) -> dict[str, Any]:
    labels = {"app": "survivor"}
    selector = {"kubernetes.io/hostname": node} if node else _selector(cluster)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "survivor"},
            "spec": {"replicas": SURVIVORS, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [_container(cluster, 1)], "priorityClassName": pc,
                                           "nodeSelector": selector,
                                           "tolerations": [GPU_TOLERATION, dict(SIMULATED_TOLERATION)],
                                           "terminationGracePeriodSeconds": 0}}}}


def _survivor_pods(kube: KubeClient, ns: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in kube.list("Pod", namespace=ns, label_selector="app=survivor")["items"]}


def _devices(kube: KubeClient, ns: str, name: str, cluster: ClusterHandle, timeout: float = 30) -> list[str]:
    """The devices the container was handed (its NVIDIA_VISIBLE_DEVICES, from its own log); none at tier S."""
    if cluster.tier != "R":
        return []
    text = logs_until(kube, ns, name, ["main"], timeout=timeout)["main"]
    found = DEVICE.findall(text)
    return sorted(d for m in found for d in m.split(","))


def _record(kube: KubeClient, ns: str, cluster: ClusterHandle) -> dict[str, Any]:
    pods = _survivor_pods(kube, ns)
    node = next(iter(pods.values()))["spec"]["nodeName"]
    out: dict[str, Any] = {"node": node, "pods": {},
                           "allocatable": int(kube.get("Node", node)["status"]["allocatable"].get(GPU, 0))}
    for name, p in sorted(pods.items()):
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        out["pods"][name] = {"uid": p["metadata"]["uid"], "node": p["spec"]["nodeName"],
                             "container": cs.get("containerID", ""), "restarts": cs.get("restartCount", 0),
                             "devices": _devices(kube, ns, name, cluster)}
    return out


@pytest.fixture(scope="module")
def survivors(kube: KubeClient, upgrade_phase: UpgradePhase, aiconform_cluster: ClusterHandle) -> Iterator[Survivors]:
    ns = pc = _name(upgrade_phase.key)
    if upgrade_phase.before:
        kube.create({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": ns, "labels": {UPGRADE_LABEL: label_value(upgrade_phase.key)}}})
        kube.wait_for("ServiceAccount", namespace=ns, name="default", condition=bool, timeout=60,
                      what=f"the default service account of {ns}")
        kube.create(priority_class(pc, PRIORITY))
        kube.create(gpu_quota("gpus", SURVIVORS), namespace=ns)
        wait_quota_published(kube, ns, "gpus")
        kube.create(_deployment(aiconform_cluster, pc, None), namespace=ns)
        kube.wait_for("Pod", namespace=ns, label_selector="app=survivor", timeout=120,
                      condition=lambda s: len(s) == SURVIVORS and all(map(pod_ready, s.values())),
                      what=f"{SURVIVORS} survivor pods Ready")
        snapshot = _record(kube, ns, aiconform_cluster)
        kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "before"},
                     "data": {"snapshot": json.dumps(snapshot)}}, namespace=ns)
        yield Survivors(ns, pc, snapshot["node"], snapshot)
        return
    try:
        snapshot = json.loads(kube.get("ConfigMap", "before", namespace=ns)["data"]["snapshot"])
    except NotFound:
        pytest.fail(f"the before phase left no snapshot in {ns}: its survivors were never started")
    try:
        yield Survivors(ns, pc, snapshot["node"], snapshot)
    finally:
        kube.delete("Namespace", ns)
        kube.delete("PriorityClass", pc)


# exclusive: these checks count the GPUs of one node, which GPU pods of other checks may hold.
@pytest.mark.aiconform(requirement="aiconform.upgrade_safety", tier="S", gpus=SURVIVORS, exclusive=True)
def test_gpu_workload_survives_the_upgrade(
    kube: KubeClient, survivors: Survivors, upgrade_phase: UpgradePhase, aiconform_cluster: ClusterHandle,
    evidence: Evidence,
) -> None:
    """The long-running GPU Deployment keeps the same pods and containers (no restart), its replicas stay
    available, and every container keeps the devices it was given."""
    now = _record(kube, survivors.namespace, aiconform_cluster)
    deploy = kube.get("Deployment", "survivor", namespace=survivors.namespace)
    evidence["phase"] = upgrade_phase.phase
    to = upgrade_phase.to_version  # before --upgrade-with's command: not a version, the command decides it
    evidence["versions"] = f"v{upgrade_phase.from_version} -> {'v' + to if to[:1].isdigit() else to}"
    evidence["before"] = survivors.snapshot["pods"]
    evidence["now"] = now["pods"]
    evidence["available_replicas"] = deploy.get("status", {}).get("availableReplicas", 0)
    assert set(now["pods"]) == set(survivors.snapshot["pods"]), "pods were recreated across the upgrade"
    for name, was in survivors.snapshot["pods"].items():
        got = now["pods"][name]
        assert got["uid"] == was["uid"], f"{name} was recreated"
        assert got["container"] == was["container"], f"{name}'s container was replaced"
        assert got["restarts"] == was["restarts"], f"{name} restarted {got['restarts'] - was['restarts']} time(s)"
        assert got["devices"] == was["devices"], f"{name} now reports devices {got['devices']}, not {was['devices']}"
    assert deploy.get("status", {}).get("availableReplicas", 0) == SURVIVORS


@pytest.mark.aiconform(requirement="aiconform.upgrade_safety", tier="S", gpus=SURVIVORS, exclusive=True)
def test_quota_and_priority_class_still_hold(
    kube: KubeClient, survivors: Survivors, upgrade_phase: UpgradePhase, aiconform_cluster: ClusterHandle,
    evidence: Evidence,
) -> None:
    """The PriorityClass is still there and still applied at admission (a new pod gets its value), and the GPU
    quota the survivors fill still refuses one more GPU pod, both as the running apiserver judges."""
    ns = survivors.namespace
    pc = kube.get("PriorityClass", survivors.priority_class)
    probe = kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"priority-{upgrade_phase.phase}"},
                         "spec": {"containers": [{"name": "main", "image": PAUSE_IMAGE}],
                                  "priorityClassName": survivors.priority_class,
                                  "nodeSelector": {"aiconform.io/never": "schedule"}}}, namespace=ns)
    try:
        with pytest.raises(Forbidden) as refused:
            kube.create(gpu_pod(f"over-quota-{upgrade_phase.phase}", 1, node_selector=_selector(aiconform_cluster)),
                        namespace=ns)
    finally:
        kube.delete("Pod", probe["metadata"]["name"], namespace=ns)
    evidence["phase"] = upgrade_phase.phase
    evidence["priority_class_value"] = pc["value"]
    evidence["admitted_priority"] = probe["spec"].get("priority")
    evidence["quota_refusal"] = str(refused.value)[:300]
    assert pc["value"] == PRIORITY
    assert probe["spec"].get("priority") == PRIORITY, "the PriorityClass was not applied at admission"
    assert "exceeded quota" in str(refused.value)


@pytest.mark.aiconform(requirement="aiconform.upgrade_safety", tier="S", gpus=SURVIVORS, exclusive=True)
def test_device_plugin_reregisters_and_no_gpu_is_handed_out_twice(
    kube: KubeClient, survivors: Survivors, upgrade_phase: UpgradePhase, aiconform_cluster: ClusterHandle,
    tenant: Tenant, evidence: Evidence,
) -> None:
    """The node's allocatable GPUs are what they were before (at tier R: the plugin re-registered with the restarted
    kubelet); its free GPUs all go to new pods, each with a device nobody else holds (tier R), and one more GPU pod
    stays Pending with the scheduler's Insufficient message."""
    node = survivors.node
    allocatable = int(kube.get("Node", node)["status"]["allocatable"].get(GPU, 0))
    used = sum(pod_request(p) for p in kube.list("Pod", field_selector=f"spec.nodeName={node}")["items"]
               if p["status"].get("phase") not in ("Succeeded", "Failed"))
    free = allocatable - used
    evidence["phase"] = upgrade_phase.phase
    evidence["node"] = node
    evidence["allocatable_before"] = survivors.snapshot["allocatable"]
    evidence["allocatable_now"] = allocatable
    evidence["free"] = free
    assert allocatable == survivors.snapshot["allocatable"], "the node's allocatable GPUs changed"
    names = [f"fill-{i}" for i in range(free)]
    for name in names:
        tenant.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [_container(aiconform_cluster, 1)], "restartPolicy": "Always",
                                "nodeSelector": {"kubernetes.io/hostname": node},
                                "tolerations": [GPU_TOLERATION, dict(SIMULATED_TOLERATION)],
                                "terminationGracePeriodSeconds": 0}})
    if names:
        wait_bound(kube, tenant.name, names, timeout=90)
        kube.wait_for("Pod", namespace=tenant.name, timeout=120, what=f"{len(names)} filler pods Ready",
                      condition=lambda s: len(s) == len(names) and all(map(pod_ready, s.values())))
    held = {n: p["devices"] for n, p in survivors.snapshot["pods"].items()}
    held |= {n: _devices(kube, tenant.name, n, aiconform_cluster) for n in names}
    tenant.create(gpu_pod("one-too-many", 1, node_selector={"kubernetes.io/hostname": node}))
    message = wait_unschedulable(kube, tenant.name, "one-too-many", timeout=60)
    evidence["devices"] = held
    evidence["one_too_many"] = message[:300]
    assert f"Insufficient {GPU}" in message
    if aiconform_cluster.tier == "R":
        every = [d for devs in held.values() for d in devs]
        assert all(held.values()), f"a pod on the real node was given no device: {held}"
        assert len(every) == len(set(every)), f"a GPU was handed out twice: {held}"
        assert len(every) == allocatable
