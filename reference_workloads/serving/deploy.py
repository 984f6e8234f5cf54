"""Deploying the model server onto a cluster the harness made, and reaching it: the small API scenarios (and the
gateway's routes) use.

    ep = deploy_model(client, namespace, "v1", replicas=1)
    ep.service, ep.port        # in-cluster: http://<service>.<namespace>.svc:<port>
    ep.url                     # from this host: http://<node address>:<nodePort> (kube-proxy on the real node)

The model server's pods run on the real node only (traffic-carrying), each with one fake GPU.  Every wait has a
deadline; a model that fails to load or a server that never becomes Ready raises WorkloadError carrying the pod's
own log lines.  Owns no cluster objects besides the ones it creates in ``namespace``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from harness.contract import REAL_NODE_LABEL
from harness.errors import WaitFailed, WaitTimeout, WorkloadError
from harness.kube import KubeClient
from harness.workloads import pod_failure, pod_log_tail, pod_ready
from reference_workloads.serving.manifests import (
    HTTP_PORT,
    IMAGE_NAME,
    MODEL_NAME,
    ModelSpec,
    deployment,
    infer_body,
    service,
)

READY_TIMEOUT_S = 180.0
"""Deadline for a model server's pods to become Ready (import kserve + load the model under a CPU limit)."""


@dataclass(frozen=True)
class ModelEndpoint:
    """Where a deployed model version answers."""

    namespace: str
    service: str
    """Service (and Deployment) name."""
    port: int
    """The Service port (in-cluster: ``http://<service>.<namespace>.svc:<port>``)."""
    node_ip: str
    """The real node's own address (NodePorts listen there only)."""
    node_port: int
    version: str
    pods: tuple[str, ...] = field(default_factory=tuple)
    """The pods that were Ready when the deploy returned."""

    @property
    def url(self) -> str:
        """Base URL from this host, through kube-proxy's NodePort on the node's own address."""
        return f"http://{self.node_ip}:{self.node_port}"

    @property
    def in_cluster_url(self) -> str:
        return f"http://{self.service}.{self.namespace}.svc:{self.port}"

    @property
    def infer_path(self) -> str:
        return f"/v2/models/{MODEL_NAME}/infer"


def model_image() -> str:
    """The model server image reference; the image itself is built and loaded by :func:`ensure_image`."""
    from harness import images

    return images.image_ref(IMAGE_NAME)


def deploy_model(client: KubeClient, namespace: str, version: str = "v1", replicas: int = 1, *,
                 cpu: str = "250m", gpus: int = 1, name: str = "", node_port: int | None = None,
                 env: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                 timeout: float = READY_TIMEOUT_S) -> ModelEndpoint:
    """Apply the model server Deployment + NodePort Service for ``version`` in ``namespace`` and wait until all
    ``replicas`` pods are Ready; WorkloadError (with the pods' log lines) when one fails or the deadline passes.
    The image must already be in the node's containerd (the provider loads it: ``aiconform images`` /
    :func:`ensure_image`)."""
    spec = ModelSpec(version=version, replicas=replicas, image=model_image(), cpu=cpu, gpus=gpus, name=name,
                     node_port=node_port, env=dict(env or {}), annotations=dict(annotations or {}))
    return apply_model(client, namespace, spec, timeout=timeout)


def apply_model(client: KubeClient, namespace: str, spec: ModelSpec, *, timeout: float = READY_TIMEOUT_S) -> ModelEndpoint:
    dep, svc = deployment(spec), service(spec)
    for obj in (dep, svc):
        obj["metadata"]["namespace"] = namespace
        client.apply(obj)
    pods = wait_model_ready(client, namespace, spec.resource_name, spec.replicas, timeout=timeout)
    got = client.get("Service", spec.resource_name, namespace)
    node_port = int(got["spec"]["ports"][0]["nodePort"])
    return ModelEndpoint(namespace, spec.resource_name, HTTP_PORT, real_node_ip(client), node_port, spec.version,
                         tuple(sorted(pods)))


def remove_model(client: KubeClient, namespace: str, name: str) -> None:
    """Delete a model server's Deployment (its pods with it) and Service; absent ones are fine.
    Call it before the namespace goes: a live Deployment would replace pods a namespace sweep deletes."""
    client.delete("Deployment", name, namespace, grace_period=0, propagation="Foreground")
    client.delete("Service", name, namespace)


def wait_model_ready(client: KubeClient, namespace: str, name: str, replicas: int, *,
                     timeout: float = READY_TIMEOUT_S) -> list[str]:
    """Watch the Deployment's pods until ``replicas`` of them are Ready; names of the Ready pods."""
    selector = f"app.kubernetes.io/instance={name}"

    def ready(pods: dict[str, Any]) -> bool:
        live = [p for p in pods.values() if not p["metadata"].get("deletionTimestamp")]
        return sum(pod_ready(p) for p in live) >= replicas

    def broken(pods: dict[str, Any]) -> str | None:
        return next(filter(None, (pod_failure(p) for p in pods.values())), None)

    try:
        state = client.wait_for("Pod", namespace=namespace, label_selector=selector, condition=ready, failure=broken,
                                timeout=timeout, what=f"{replicas} Ready pod(s) of model server {namespace}/{name}")
    except (WaitFailed, WaitTimeout) as err:
        raise WorkloadError(f"model server {namespace}/{name} did not become Ready: {err}"
                            + logs_of(client, namespace, selector)) from err
    return [p["metadata"]["name"] for p in state.values() if pod_ready(p)]


def logs_of(client: KubeClient, namespace: str, selector: str, *, lines: int = 15) -> str:
    """The last log lines of every pod matching ``selector`` (the current and, when restarted, the previous
    container), formatted for an error message."""
    out = []
    for p in client.list("Pod", namespace, label_selector=selector).get("items", []):
        name = p["metadata"]["name"]
        restarted = any(cs.get("restartCount", 0) for cs in p.get("status", {}).get("containerStatuses", []) or [])
        text = pod_log_tail(client, namespace, name, lines=lines, previous=restarted)
        out.append(f"\n--- {namespace}/{name}{' (previous container)' if restarted else ''} log:\n"
                   + ("\n".join(text) or "(empty)"))
    return "".join(out) or f"\n(no pods match {selector} in {namespace})"


def real_node_ip(client: KubeClient) -> str:
    """The real node's InternalIP (where its NodePorts listen)."""
    for node in client.list("Node", label_selector=f"{REAL_NODE_LABEL}=true").get("items", []):
        for addr in node.get("status", {}).get("addresses", []) or []:
            if addr.get("type") == "InternalIP":
                return str(addr["address"])
    raise WorkloadError(f"no real node (label {REAL_NODE_LABEL}=true) with an InternalIP: serving needs tier R")


def infer(url: str, texts: list[str], *, timeout: float = 10.0, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """One OIP v2 inference request to ``url`` (a base URL); the decoded response.  For checks and smoke tests,
    not load (see reference_workloads.serving.load)."""
    data = json.dumps(infer_body(texts)).encode()
    req = urllib.request.Request(f"{url}/v2/models/{MODEL_NAME}/infer", data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return body


def metadata(url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The OIP v2 model metadata (``GET /v2/models/<name>``)."""
    with urllib.request.urlopen(f"{url}/v2/models/{MODEL_NAME}", timeout=timeout) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return body


def wait_answering(url: str, *, timeout: float = 30.0) -> float:
    """Until the model answers an inference at ``url`` (kube-proxy's rules for a new Service appear within its
    sync); seconds it took.  WorkloadError at the deadline with the last error."""
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        try:
            infer(url, ["ping"], timeout=5)
            return time.monotonic() - start
        except (urllib.error.URLError, OSError, ValueError) as err:
            last = str(err)
            time.sleep(0.5)  # polling a socket, not the API: there is nothing to watch
    raise WorkloadError(f"model at {url} did not answer within {timeout:.0f}s: {last}")
