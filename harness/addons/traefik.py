"""Traefik's Gateway API provider (``github.com/traefik/traefik/v3``): the Gateway API implementation at tier R.

One Traefik on the real node (host network, pinned there by the installer's node selector), watching Gateway API
objects of GatewayClass ``traefik`` (controller ``traefik.io/gateway-controller``) and routing what reaches its
``web`` entrypoint on the node's own address.  Every routing decision (weights, header matches) is Traefik's; the
harness only renders the manifests and reads the status Traefik writes.

What shaped the manifests (checked on this project's machines, see PLATFORM-NOTES 2026-11-27):
- v3.6.12 is the newest Traefik the module proxy serves that builds unchanged (v3.7.x needs modules the proxy
  refuses); its go.mod has replace directives, so it is built inside the downloaded module (``build = "in-module"``);
- its Gateway API client is sigs.k8s.io/gateway-api v1.4.0: the standard-channel CRDs of that module
  (``config/crd``, a kustomization of ``standard/*.yaml``) are rendered from the Go module cache at install time
  (``ctx.upstream``; the module is pinned as ``[gateway-api]`` in versions.toml), never copied into the repository;
- a Gateway listener is served only when its port equals a Traefik entrypoint's port: Gateways made for this Traefik
  listen on :data:`WEB_PORT`, the ``web`` entrypoint, bound to the node's own address (``status.hostIP``), as is
  the ``traefik`` entrypoint that answers the readiness probe (``/ping``);
- no web UI in the module (``--api.dashboard=false``), no version checks or usage reports (nothing leaves the host);
- it reads its API config in-cluster: KUBERNETES_SERVICE_HOST/PORT point at the apiserver's own address, which a
  host-network pod reaches without kube-proxy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import images
from harness.addons.base import Addon, AddonContext, Obj, addon_labels, apiserver_env, cluster_rbac, host_network_workload
from harness.contract import GATEWAY_PORT
from harness.errors import ClusterError

NAMESPACE = "kube-system"
NAME = "traefik"
GATEWAY_CLASS = "traefik"
CONTROLLER_NAME = "traefik.io/gateway-controller"
WEB_PORT = GATEWAY_PORT
"""Port of the ``web`` entrypoint on the real node's address: the port every Gateway listener for this Traefik uses."""
PING_PORT = 18001
"""Port of the ``traefik`` entrypoint (``/ping``, the readiness probe) on the real node's address."""
CRD_GROUP = "gateway-api"
"""The versions.toml group of the Gateway API module whose CRDs Traefik's client was built against."""
CRD_KUSTOMIZATION = "config/crd"
"""The standard channel's CRDs (``config/crd/kustomization.yaml`` lists ``standard/*.yaml``)."""
BINARY_IN_IMAGE = "/traefik"


def image(binary: Path, version: str) -> images.ScratchImage:
    return images.static_binary_image(NAME, binary, tag=f"v{version}", dest=BINARY_IN_IMAGE)


def _rules() -> list[dict[str, Any]]:
    routes = ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants", "backendtlspolicies"]
    return [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["services", "secrets", "configmaps"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": routes, "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": [f"{r}/status" for r in routes],
         "verbs": ["update", "patch"]},
    ]


def args() -> list[str]:
    """Traefik's static configuration as flags (``$(NODE_IP)`` is expanded by the kubelet from the pod's env)."""
    return [
        f"--entrypoints.web.address=$(NODE_IP):{WEB_PORT}",
        f"--entrypoints.traefik.address=$(NODE_IP):{PING_PORT}",
        "--ping=true",
        "--ping.entrypoint=traefik",
        "--providers.kubernetesgateway=true",
        "--providers.kubernetesgateway.statusaddress.ip=$(NODE_IP)",
        "--api.dashboard=false",
        "--global.checknewversion=false",
        "--global.sendanonymoususage=false",
        "--log.level=INFO",
        "--log.nocolor=true",  # its lines end up in error messages and reports
    ]


def manifests(ctx: AddonContext) -> list[Obj]:
    """The Gateway API CRDs (rendered from the pinned gateway-api module), Traefik's RBAC and Deployment, and
    GatewayClass ``traefik`` (the installer applies it once the CRDs are Established)."""
    crds = [o for o in ctx.upstream(CRD_KUSTOMIZATION) if o.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise ClusterError(f"no CustomResourceDefinitions in {CRD_GROUP}'s {CRD_KUSTOMIZATION}")
    labels = addon_labels(NAME)
    container = {
        "name": NAME,
        "image": ctx.image,
        "imagePullPolicy": "Never",
        "args": args(),
        "env": [
            {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            *apiserver_env(ctx),
        ],
        "readinessProbe": {"httpGet": {"path": "/ping", "port": PING_PORT}, "periodSeconds": 2,
                           "failureThreshold": 3},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
    }
    return [
        *crds,
        *cluster_rbac(NAME, NAMESPACE, _rules()),
        host_network_workload("Deployment", NAME, NAMESPACE, ctx, container),
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
         "metadata": {"name": GATEWAY_CLASS, "labels": labels}, "spec": {"controllerName": CONTROLLER_NAME}},
    ]


ADDON = Addon(
    name=NAME,
    binary=NAME,
    image=image,
    manifests=manifests,
    workload=("Deployment", NAMESPACE, NAME),
    facts=("gateway-api",),
    needs_real_node=True,
    upstream_group=CRD_GROUP,
    gateway_class=GATEWAY_CLASS,
    description="Gateway API implementation on the real node (Traefik's kubernetesgateway provider)",
)
