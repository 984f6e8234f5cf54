"""The fake GPU stack of a kind cluster, as a real DaemonSet: manifests from ``fake_gpu_plugin/deploy/daemonset.yaml``
with one inventory config per GPU worker, and the wait until every GPU worker advertises its GPUs and carries the
labels its plugin wrote.

Owns filling in that file (the ConfigMap's ``<node>.yaml`` entries, the image name of the builder's
``fake-gpu-plugin`` image) and the readiness wait.  The labels are written by the plugin from inside the cluster
(``serve --label-node``); nothing here sets a GPU label.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fake_gpu_plugin.config import InventoryConfig, to_pool
from fake_gpu_plugin.inventory import build_inventory
from fake_gpu_plugin.labels import node_labels
from harness.errors import ClusterError, WaitTimeout
from harness.kube import KubeClient, Obj

DAEMONSET_FILE = Path(__file__).resolve().parents[3] / "fake_gpu_plugin" / "deploy" / "daemonset.yaml"
NAMESPACE = "kube-system"
APP_LABEL = "app.kubernetes.io/name=aiconform-fake-gpu-plugin"
READY_TIMEOUT = 180.0


def manifests(specs: dict[str, InventoryConfig], image: str, source: Path = DAEMONSET_FILE) -> list[Obj]:
    """The objects of ``daemonset.yaml`` with the ConfigMap holding ``<node>.yaml`` for each GPU node of ``specs``
    and the plugin container's image set to ``image`` (pure apart from reading the file)."""
    docs = [d for d in yaml.safe_load_all(source.read_text()) if d]
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            doc["data"] = {f"{node}.yaml": yaml.safe_dump(to_pool(spec, name=node), sort_keys=False)
                           for node, spec in sorted(specs.items())}
        elif doc["kind"] == "DaemonSet":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                container["image"] = image
    return docs


def expected_resources(node: str, spec: InventoryConfig) -> dict[str, int]:
    """Extended resources the plugin advertises on ``node`` for ``spec`` (from the plugin's own inventory)."""
    inventory = build_inventory(spec, node)
    return {name: len(devices) for name, devices in inventory.resources.items()}


def deploy(client: KubeClient, specs: dict[str, InventoryConfig], image: str) -> None:
    for obj in manifests(specs, image):
        client.apply(obj, field_manager="aiconform-kind")


def _pod_failure(pods: dict[str, Obj]) -> str | None:
    for pod in pods.values():
        for cs in pod.get("status", {}).get("containerStatuses", []) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in ("CrashLoopBackOff", "ErrImageNeverPull", "CreateContainerError",
                                         "InvalidImageName"):
                last = ((cs.get("lastState") or {}).get("terminated") or {}).get("message", "")
                return (f"fake GPU plugin pod {pod['metadata']['name']} on {pod['spec'].get('nodeName')}: "
                        f"{waiting.get('reason')}: {waiting.get('message', '') or last}".strip())
    return None


def wait_ready(client: KubeClient, specs: dict[str, InventoryConfig], *, timeout: float = READY_TIMEOUT) -> None:
    """Watch the GPU nodes until each advertises its spec's resources and carries its spec's labels; fails at
    once when a plugin pod crash-loops (with its message)."""
    wanted = {node: (expected_resources(node, spec), node_labels(spec)) for node, spec in specs.items()}

    def ready(node: Obj) -> bool:
        resources, labels = wanted[node["metadata"]["name"]]
        have = node.get("status", {}).get("allocatable", {}) or {}
        have_labels = node["metadata"].get("labels", {}) or {}
        return (all(str(have.get(r)) == str(n) for r, n in resources.items())
                and all(have_labels.get(k) == v for k, v in labels.items()))

    failure = None
    try:
        client.wait_all("Node", list(wanted), ready, timeout=timeout,
                        what="GPU workers advertising their fake GPUs and labelled by the plugin")
    except WaitTimeout as err:
        pods = {p["metadata"]["name"]: p for p in client.list("Pod", NAMESPACE, label_selector=APP_LABEL)["items"]}
        failure = _pod_failure(pods) or str(err)
    if failure:
        raise ClusterError(failure)
