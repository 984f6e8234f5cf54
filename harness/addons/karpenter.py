"""Karpenter with its KWOK cloud provider (``sigs.k8s.io/karpenter/kwok``): node autoscaling at tier S.

Owns what Karpenter is told about the profile's autoscaled pools: one instance type per pool (its file, read by
the upstream binary at start-up), one NodePool per pool and the KWOKNodeClass they share, and where its CRDs come
from (the pinned module in the Go module cache, read at install time, never copied into the repository).  The
provisioning, binding and consolidation verdicts are upstream Karpenter's and the real scheduler's; nothing here
decides which node to add or remove.

What shaped it (PLATFORM-NOTES, 2026-11-27, and the module's kwok/cloudprovider source):
- the kwok provider creates the Node itself with the annotation ``kwok.x-k8s.io/node=fake``, so the cluster's own
  KWOK (which manages nodes by that annotation) makes it Ready with aiconform's stages;
- a node's labels are the NodePool template labels plus the instance type's and offering's single-valued
  requirements; its allocatable is the instance type less a fixed kube-reserved (100m CPU, 10Mi), its capacity
  only what the pods that caused it asked for (upstream's choice, ``toNode``);
- so the template labels and taints are exactly what a simulated node of the pool carries
  (``harness.nodes.pool_labels`` and ``pool_taints``, the former from fake_gpu_plugin's ``node_labels``), and the instance
  type's resources are the pool's node resources (``pool_resources``, from ``resource_counts``) plus that
  kube-reserved: an added node has the pool's shape (allocatable included) by construction, and
  tests/integration/test_autoscaling.py compares them;
- the same binary runs as a host process at tier S and as a Deployment on the real node at tier R (the installer
  picks; tier R is not exercised by a test yet);
- it runs out of cluster with env only (KUBECONFIG, INSTANCE_TYPES_FILE_PATH, DISABLE_LEADER_ELECTION,
  METRICS_PORT, HEALTH_PROBE_PORT); it listens on every interface (no bind-address setting), on free ports.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import images
from harness.addons.base import Addon, AddonContext, HostContext, HostProcess
from harness.errors import ConfigError
from harness.hostproc import free_port
from harness.nodes import pool_labels, pool_resources, pool_taints

if TYPE_CHECKING:
    from harness.config import Pool
    from harness.kube import KubeClient

Obj = dict[str, Any]

NAME = "karpenter"
BINARY = "karpenter-kwok"
NODECLASS_NAME = "aiconform"
ZONE = "aiconform-zone-a"
INSTANCE_TYPE_PREFIX = "aiconform-"
NODEPOOL_API = ("karpenter.sh/v1", "NodePool")
LABEL_NODEPOOL = "karpenter.sh/nodepool"
KARPENTER_LABEL_DOMAINS = ("karpenter.sh/", "karpenter.kwok.sh/", "kwok.x-k8s.io/", "node.kubernetes.io/instance-type",
                           "topology.kubernetes.io/zone", "eks-node-viewer/", "kwok-partition")
"""Labels Karpenter adds to its nodes on top of the pool's (its own bookkeeping): a node it made carries the pool's
labels plus these, nothing else."""
# Labels Karpenter sets from the instance type itself (well-known, refused in NodePool template labels).
_FROM_INSTANCE_TYPE = ("kubernetes.io/os", "kubernetes.io/arch")


def instance_type_name(pool: Pool) -> str:
    return f"{INSTANCE_TYPE_PREFIX}{pool.name}"


def autoscaled(pools: tuple[Pool, ...] | list[Pool]) -> list[Pool]:
    return [p for p in pools if p.autoscale is not None]


def instance_types(pools: tuple[Pool, ...] | list[Pool]) -> list[Obj]:
    """The INSTANCE_TYPES_FILE_PATH document: one instance type per autoscaled pool, its resources the pool's node
    resources, one on-demand offering in one zone.  The price grows with GPUs (then CPUs), so that a pod that fits
    a cheaper shape never causes a GPU node."""
    out = []
    for pool in autoscaled(pools):
        res = with_kube_reserved(pool_resources(pool))
        gpus = sum(int(v) for k, v in res.items() if k.startswith("nvidia.com/"))
        price = round(0.01 * _cpu_cores(pool.cpu) + 4.0 * gpus, 4)
        out.append({
            "name": instance_type_name(pool),
            "architecture": "amd64",
            "operatingSystems": ["linux"],
            "resources": res,
            "offerings": [{
                "Price": price,
                "Available": True,
                "Requirements": [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [ZONE]},
                ],
            }],
        })
    return out


KUBE_RESERVED_MILLICPU = 100
KUBE_RESERVED_MEMORY = 10 * 2**20
"""The kwok provider's fixed kube-reserved overhead (kwok/cloudprovider/helpers.go): a node's allocatable is its
instance type's resources less this."""
_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def with_kube_reserved(resources: dict[str, str]) -> dict[str, str]:
    """The instance type's resources whose allocatable (after the provider's kube-reserved) is ``resources``."""
    out = dict(resources)
    out["cpu"] = f"{round(_cpu_cores(resources['cpu']) * 1000) + KUBE_RESERVED_MILLICPU}m"
    out["memory"] = str(_bytes(resources["memory"]) + KUBE_RESERVED_MEMORY)
    return out


def _bytes(q: str) -> int:
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * _SUFFIX[suffix])
    return int(float(q))


def node_pools(pools: tuple[Pool, ...] | list[Pool], cluster: str) -> list[Obj]:
    """One NodePool per autoscaled pool: template labels and taints are the pool's (``pool_taints``: the simulated
    nodes' own taint included), its only instance type is the pool's, its limit is ``maxNodes`` nodes' worth of CPU,
    and empty or underused nodes go after ``consolidateAfter`` (a 100% budget: all at once)."""
    out = []
    for pool in autoscaled(pools):
        assert pool.autoscale is not None
        labels = {k: v for k, v in pool_labels(pool, cluster).items() if k not in _FROM_INSTANCE_TYPE}
        spec: Obj = {
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": NODECLASS_NAME},
            "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                              "values": [instance_type_name(pool)]}],
            "expireAfter": "Never",
        }
        spec["taints"] = pool_taints(pool)
        out.append({
            "apiVersion": NODEPOOL_API[0],
            "kind": NODEPOOL_API[1],
            "metadata": {"name": pool.name, "labels": {"app.kubernetes.io/managed-by": "aiconform"}},
            "spec": {
                "template": {"metadata": {"labels": labels}, "spec": spec},
                "limits": {"cpu": f"{_cpu_cores(pool.cpu) * pool.autoscale.max_nodes:g}"},
                "disruption": {
                    "consolidationPolicy": "WhenEmptyOrUnderutilized",
                    "consolidateAfter": pool.autoscale.consolidate_after,
                    "budgets": [{"nodes": "100%"}],
                },
            },
        })
    return out


def node_class() -> Obj:
    return {"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass",
            "metadata": {"name": NODECLASS_NAME, "labels": {"app.kubernetes.io/managed-by": "aiconform"}},
            "spec": {}}


# -- the addon ----------------------------------------------------------------------------------------------------

NAMESPACE = "karpenter"
SERVICE_ACCOUNT = "karpenter"
TYPES_CONFIG_MAP = "karpenter-instance-types"
TYPES_KEY = "instance-types.json"
TYPES_MOUNT = "/etc/karpenter"


def image(binary: Path, version: str) -> images.ScratchImage:
    return images.static_binary_image(NAME, binary, tag=f"v{version}", dest="/karpenter")


def manifests(ctx: AddonContext) -> list[Obj]:
    """CRDs from the pinned module, Karpenter's identity and rights, the instance types, and its Deployment (the
    workload at tier R; at tier S the installer runs the same binary as a host process under that identity)."""
    if not autoscaled(ctx.pools):
        raise ConfigError("karpenter: no pool of the profile has autoscale: nothing for Karpenter to manage")
    objs: list[Obj] = []
    for path in CRD_FILES:
        objs += [o for o in ctx.upstream(path) if o.get("kind") == "CustomResourceDefinition"]
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/managed-by": "aiconform"}
    meta = {"labels": labels}
    rules = [
        # it reads the whole cluster state it simulates scheduling against
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["karpenter.sh", "karpenter.kwok.sh", "autoscaling.x-k8s.io"], "resources": ["*"],
         "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        # the kwok provider creates and deletes the Node objects itself (no kubelet registers them)
        {"apiGroups": [""], "resources": ["nodes", "nodes/status"], "verbs": ["create", "update", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "update", "patch"]},
    ]
    types = json.dumps(instance_types(ctx.pools), indent=2)
    container: Obj = {
        "name": NAME, "image": ctx.image, "imagePullPolicy": "Never",
        "env": [{"name": k, "value": v} for k, v in pod_env().items()],
        "volumeMounts": [{"name": "instance-types", "mountPath": TYPES_MOUNT, "readOnly": True}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE, **meta},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "serviceAccountName": SERVICE_ACCOUNT,
                "nodeSelector": dict(ctx.node_selector),
                "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True},
                "containers": [container],
                "volumes": [{"name": "instance-types", "configMap": {"name": TYPES_CONFIG_MAP}}],
            }},
        },
    }
    return [
        *objs,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, **meta}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "aiconform-karpenter", **meta}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "aiconform-karpenter", **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "aiconform-karpenter"},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": TYPES_CONFIG_MAP, "namespace": NAMESPACE, **meta},
         "data": {TYPES_KEY: types}},
        deployment,
    ]


CRD_FILES = (
    "kwok/charts/crds/karpenter.sh_nodepools.yaml",
    "kwok/charts/crds/karpenter.sh_nodeclaims.yaml",
    "kwok/charts/crds/karpenter.sh_nodeoverlays.yaml",
    "kwok/charts/crds/autoscaling.x-k8s.io_capacitybuffers.yaml",
    "kwok/apis/crds/karpenter.kwok.sh_kwoknodeclasses.yaml",
)
"""Karpenter's and the kwok provider's CRDs in the pinned module (read from the Go module cache at install time)."""


def pod_env() -> dict[str, str]:
    """Karpenter's settings (it takes them from the environment): no leader election (one replica), short batching
    windows (a simulated cloud answers at once), the instance types of the profile's autoscaled pools."""
    return {
        "INSTANCE_TYPES_FILE_PATH": f"{TYPES_MOUNT}/{TYPES_KEY}",
        "DISABLE_LEADER_ELECTION": "true",
        "BATCH_IDLE_DURATION": "500ms",
        "BATCH_MAX_DURATION": "3s",
        "KUBE_CLIENT_QPS": "500",
        "KUBE_CLIENT_BURST": "1000",
        "LOG_LEVEL": "info",
    }


def host(h: HostContext) -> HostProcess:
    """Tier S: the same binary as a host process, out of cluster, its kubeconfig the installer's (Karpenter's
    ServiceAccount identity).  It listens on every interface (there is no bind-address setting): its health port is
    the installer's, its metrics port another free one."""
    types = h.workdir / TYPES_KEY
    env = {**pod_env(), "KUBECONFIG": str(h.kubeconfig), "INSTANCE_TYPES_FILE_PATH": str(types),
           "HEALTH_PROBE_PORT": str(h.health_port), "METRICS_PORT": str(free_port())}
    return HostProcess(argv=(str(h.binary),), files=((TYPES_KEY, json.dumps(instance_types(h.pools), indent=2)),),
                       env=tuple(env.items()))


def after_ready(client: KubeClient, ctx: AddonContext) -> None:
    """Write nothing Karpenter decides: the node class (reported Ready, see :func:`mark_node_class_ready`) and one
    NodePool per autoscaled pool; then watch until Karpenter marks every NodePool Ready."""
    client.apply(node_class())
    mark_node_class_ready(client)
    pools = node_pools(ctx.pools, ctx.cluster)
    for np in pools:
        client.apply(np)
    names = [np["metadata"]["name"] for np in pools]

    def ready(obj: Obj) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in obj.get("status", {}).get("conditions", []) or [])

    client.wait_all(NODEPOOL_API[1], names, ready, api_version=NODEPOOL_API[0], timeout=60,
                    what=f"Karpenter to mark the NodePools {', '.join(names)} Ready")


def mark_node_class_ready(client: KubeClient) -> None:
    """The kwok provider has no controller for its KWOKNodeClass (a real cloud provider's resolves images and
    subnets, then reports Ready) and NodePools provision only from a Ready class: the harness, which owns this
    simulated cloud, reports it Ready."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    obj = client.get("KWOKNodeClass", NODECLASS_NAME, api_version="karpenter.kwok.sh/v1alpha1")
    obj["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                     "lastTransitionTime": now,
                                     "observedGeneration": obj["metadata"].get("generation", 1)}]}
    client.replace_status(obj)


ADDON = Addon(
    name=NAME,
    binary=BINARY,
    image=image,
    manifests=manifests,
    workload=("Deployment", NAMESPACE, NAME),
    facts=("node-autoscaling",),
    needs_real_node=False,
    host=host,
    after_ready=after_ready,
    description="Karpenter (kwok cloud provider): adds nodes of an autoscaled pool's shape for pending pods and "
                "removes empty ones",
)


def _cpu_cores(cpu: str) -> float:
    return float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
