"""The serving stack's Kubernetes objects, as plain dicts: the model server Deployment and its Service, and the
HorizontalPodAutoscaler on per-pod queue depth.  Pure functions, no I/O (reference_workloads/serving/deploy.py
applies them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.images import pull_policy
from harness.workloads import GPU, GPU_TOLERATION, real_node_selector

Obj = dict[str, Any]

IMAGE_NAME = "model-server"
"""The image in harness/images/registry.py that carries this package, kserve, onnxruntime and the model."""
MODEL_NAME = "minilm"
VERSIONS = ("v1", "v2")
HTTP_PORT = 8080
APP_LABEL = "app.kubernetes.io/name"
APP = "aiconform-model-server"
VERSION_LABEL = "aiconform.io/model-version"
QUEUE_METRIC = "aiconform_model_queue_depth"
"""The per-pod gauge the HPA reads through custom.metrics.k8s.io (prometheus-adapter exposes it under this name)."""


@dataclass(frozen=True)
class ModelSpec:
    """One version of the model server as a Deployment."""

    version: str = "v1"
    """``v1`` or ``v2``: the model version every response names."""
    replicas: int = 1
    image: str = ""
    """The image reference (``harness.images.image_ref(IMAGE_NAME)``)."""
    name: str = ""
    """Deployment and Service name; default ``model-<version>``."""
    cpu: str = "250m"
    """CPU request and limit per replica (the limit makes one replica's capacity finite and known; the real node
    has only this machine's cores to give)."""
    memory: str = "768Mi"
    gpus: int = 1
    """``nvidia.com/gpu`` per replica, from the fake GPU plugin on the real node."""
    node_port: int | None = None
    """A fixed NodePort for the Service (on the node's own address); None lets the apiserver pick."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment (``AICONFORM_FAIL_LOAD`` for the bad-input path)."""
    annotations: dict[str, str] = field(default_factory=dict)
    """Extra pod annotations (the fake GPUs' utilisation, ``aiconform.io/gpu-utilization``)."""

    @property
    def resource_name(self) -> str:
        return self.name or f"model-{self.version}"


def labels(spec: ModelSpec) -> dict[str, str]:
    return {APP_LABEL: APP, VERSION_LABEL: spec.version, "app.kubernetes.io/instance": spec.resource_name}


def deployment(spec: ModelSpec) -> Obj:
    if spec.version not in VERSIONS:
        raise ValueError(f"model version must be one of {', '.join(VERSIONS)}, got {spec.version!r}")
    if not spec.image:
        raise ValueError("ModelSpec.image is empty")
    resources = {"cpu": spec.cpu, "memory": spec.memory}
    limits: dict[str, str] = dict(resources)
    if spec.gpus:
        limits[GPU] = str(spec.gpus)
    env = [{"name": "MODEL_NAME", "value": MODEL_NAME}, {"name": "MODEL_VERSION", "value": spec.version},
           {"name": "HTTP_PORT", "value": str(HTTP_PORT)},
           *({"name": k, "value": v} for k, v in sorted(spec.env.items()))]
    container = {
        "name": "server",
        "image": spec.image,
        "imagePullPolicy": pull_policy(spec.image),
        "env": env,
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],
        "resources": {"requests": {**resources, **({GPU: str(spec.gpus)} if spec.gpus else {})}, "limits": limits},
        "readinessProbe": {"httpGet": {"path": f"/v2/models/{MODEL_NAME}/ready", "port": HTTP_PORT},
                           "periodSeconds": 1, "failureThreshold": 2},
    }
    pod_labels = labels(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.resource_name, "labels": pod_labels},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": spec.resource_name}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(HTTP_PORT),
                                    "prometheus.io/path": "/metrics", **spec.annotations},
                },
                "spec": {
                    "nodeSelector": real_node_selector(),
                    "tolerations": [GPU_TOLERATION],
                    "terminationGracePeriodSeconds": 2,
                    "enableServiceLinks": False,
                    "containers": [container],
                },
            },
        },
    }


def service(spec: ModelSpec) -> Obj:
    port: Obj = {"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"}
    if spec.node_port is not None:
        port["nodePort"] = spec.node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.resource_name, "labels": labels(spec)},
        "spec": {"type": "NodePort", "selector": {"app.kubernetes.io/instance": spec.resource_name},
                 "ports": [port]},
    }


def queue_depth_hpa(target: str, *, min_replicas: int = 1, max_replicas: int = 4, average_queue: str = "2",
                    scale_down_window_s: int = 10) -> Obj:
    """autoscaling/v2 HPA on the per-pod ``aiconform_model_queue_depth`` (a Pods metric from custom.metrics.k8s.io),
    with a short scale-down stabilization window in ``behavior`` so a scale-in is seen within a check."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Pods", "pods": {"metric": {"name": QUEUE_METRIC},
                                                 "target": {"type": "AverageValue", "averageValue": average_queue}}}],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 5}]},
                "scaleDown": {"stabilizationWindowSeconds": scale_down_window_s,
                              "policies": [{"type": "Percent", "value": 100, "periodSeconds": 5}]},
            },
        },
    }


def infer_body(texts: list[str]) -> Obj:
    """An OIP v2 inference request for the model: input ``text`` (BYTES)."""
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
