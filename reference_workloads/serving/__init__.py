"""The reference serving stack (issue 9): an OIP v2 model server (KServe ``ModelServer`` + onnxruntime MiniLM, two
versions), its manifests, an HPA on per-pod queue depth, Prometheus queries and locust load.

Public surface for scenarios and other slices (the gateway's routes):

- :func:`deploy_model` (``client, namespace, version, replicas``) → :class:`ModelEndpoint` (Service name/port,
  NodePort URL from this host);
- :func:`infer`, :func:`metadata`: one OIP v2 call; :mod:`reference_workloads.serving.load`: locust load;
- :mod:`reference_workloads.serving.manifests`: the objects (Deployment, Service, HPA) as dicts;
- :mod:`reference_workloads.serving.prom`: Prometheus HTTP API queries.

``server.py`` runs inside the ``model-server`` image only and is never imported here.  The names below are loaded
on first use, so ``python -m reference_workloads.serving.load`` (locust, gevent) starts with nothing imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reference_workloads.serving.deploy import (
        ModelEndpoint,
        deploy_model,
        infer,
        metadata,
        remove_model,
        wait_answering,
    )
    from reference_workloads.serving.manifests import IMAGE_NAME, MODEL_NAME, VERSIONS, ModelSpec, queue_depth_hpa

_EXPORTS = {
    "ModelEndpoint": "deploy", "deploy_model": "deploy", "infer": "deploy", "metadata": "deploy",
    "wait_answering": "deploy", "remove_model": "deploy",
    "IMAGE_NAME": "manifests", "MODEL_NAME": "manifests", "VERSIONS": "manifests",
    "ModelSpec": "manifests", "queue_depth_hpa": "manifests",
}
__all__ = ["IMAGE_NAME", "MODEL_NAME", "VERSIONS", "ModelEndpoint", "ModelSpec", "deploy_model", "infer", "metadata",
           "queue_depth_hpa", "remove_model", "wait_answering"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"reference_workloads.serving.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
