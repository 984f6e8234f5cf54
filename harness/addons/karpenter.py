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
  requirements; its allocatable is the whole instance type, its capacity only what the pods that caused it asked
  for (upstream's choice, ``toNode``);
- so the template labels and taints are exactly what a simulated node of the pool carries
  (``harness.providers.local.nodes.pool_labels``, itself from fake_gpu_plugin's ``node_labels``), and the instance
  type's resources are the pool's node resources (``pool_resources``, from ``resource_counts``): an added node has
  the pool's shape by construction, and tests/integration/test_autoscaling.py compares them;
- it runs out of cluster with env only (KUBECONFIG, INSTANCE_TYPES_FILE_PATH, DISABLE_LEADER_ELECTION,
  METRICS_PORT, HEALTH_PROBE_PORT); it listens on every interface (no bind-address setting), on free ports.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness import proc
from harness.errors import BinaryError, CommandError, ConfigError
from harness.kube import KubeClient
from harness.providers.common import free_port

if TYPE_CHECKING:
    from harness.config import Pool

Obj = dict[str, Any]

NAME = "karpenter"
BINARY = "karpenter-kwok"
MODULE = "sigs.k8s.io/karpenter"
NODECLASS_NAME = "aiconform"
ZONE = "aiconform-zone-a"
INSTANCE_TYPE_PREFIX = "aiconform-"
CRD_DIRS = ("kwok/charts/crds", "kwok/apis/crds")
NODEPOOL_API = ("karpenter.sh/v1", "NodePool")
NODECLAIM_API = ("karpenter.sh/v1", "NodeClaim")
LABEL_NODEPOOL = "karpenter.sh/nodepool"
KARPENTER_LABEL_DOMAINS = ("karpenter.sh/", "karpenter.kwok.sh/", "kwok.x-k8s.io/", "node.kubernetes.io/instance-type",
                           "topology.kubernetes.io/zone", "eks-node-viewer/")
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
    from harness.providers.local.nodes import pool_resources

    out = []
    for pool in autoscaled(pools):
        res = pool_resources(pool)
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


def node_pools(pools: tuple[Pool, ...] | list[Pool], cluster: str) -> list[Obj]:
    """One NodePool per autoscaled pool: template labels and taints are the pool's, its only instance type is the
    pool's, its limit is ``maxNodes`` nodes' worth of CPU, and empty or underused nodes go after
    ``consolidateAfter`` (a 100% budget: all at once)."""
    from harness.providers.local.nodes import pool_labels

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
        if pool.taints:
            spec["taints"] = [t.to_api() for t in pool.taints]
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


def manifests(pools: tuple[Pool, ...] | list[Pool], cluster: str) -> list[Obj]:
    """What is applied after the CRDs are Established: the node class, then the NodePools."""
    return [node_class(), *node_pools(pools, cluster)]


# -- the pinned module: CRDs -------------------------------------------------------------------------------------


def module_dir(version: str) -> Path:
    """The pinned module's directory in the Go module cache (``go mod download`` puts it there if missing)."""
    go = shutil.which("go") or next((c for c in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if os.access(c, os.X_OK)),
                                    None)
    if go is None:
        raise BinaryError(f"reading Karpenter's CRDs needs Go (the module {MODULE}@v{version} in its module cache)")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    try:
        out = proc.run([go, "mod", "download", "-json", f"{MODULE}@v{version}"], env=env, timeout=600, cwd=Path("/"))
    except CommandError as err:
        raise BinaryError(f"downloading {MODULE}@v{version} for its CRDs failed: {err}") from err
    info = json.loads(out.stdout)
    if info.get("Error"):
        raise BinaryError(f"{MODULE}@v{version}: {info['Error']}")
    return Path(info["Dir"])


def crds(version: str) -> list[Obj]:
    """Karpenter's and the kwok provider's CRDs from the pinned module (NodePool, NodeClaim, NodeOverlay,
    CapacityBuffer, KWOKNodeClass)."""
    root = module_dir(version)
    out: list[Obj] = []
    for sub in CRD_DIRS:
        for path in sorted((root / sub).glob("*.yaml")):
            out += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "CustomResourceDefinition"]
    if not out:
        raise BinaryError(f"no CRDs found under {root} ({', '.join(CRD_DIRS)})")
    return out


# -- the host process ---------------------------------------------------------------------------------------------


def host_env(*, kubeconfig: Path, instance_types_file: Path, metrics_port: int, health_port: int) -> dict[str, str]:
    """Karpenter's settings (it takes them from the environment): out of cluster, no leader election, short
    batching windows (a simulated cloud answers at once), its two listeners on ports the harness chose."""
    return {
        "KUBECONFIG": str(kubeconfig),
        "INSTANCE_TYPES_FILE_PATH": str(instance_types_file),
        "DISABLE_LEADER_ELECTION": "true",
        "METRICS_PORT": str(metrics_port),
        "HEALTH_PROBE_PORT": str(health_port),
        "BATCH_IDLE_DURATION": "500ms",
        "BATCH_MAX_DURATION": "3s",
        "LOG_LEVEL": "info",
        "KUBE_CLIENT_QPS": "500",
        "KUBE_CLIENT_BURST": "1000",
    }


def _cpu_cores(cpu: str) -> float:
    return float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)


def establish_crds(client: KubeClient, version: str, *, timeout: float = 60.0) -> list[str]:
    """Apply the pinned module's CRDs server-side and watch until each is Established."""
    names = []
    for crd in crds(version):
        client.apply(crd)
        names.append(crd["metadata"]["name"])

    def established(obj: Obj) -> bool:
        return any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in obj.get("status", {}).get("conditions", []) or [])

    client.wait_all("CustomResourceDefinition", names, established, timeout=timeout,
                    api_version="apiextensions.k8s.io/v1", what="Karpenter's CRDs to be Established")
    return names


def mark_node_class_ready(client: KubeClient) -> None:
    """The KWOKNodeClass has no controller of its own in the kwok provider (in a real cloud provider one resolves
    images and subnets, then reports Ready); NodePools only provision from a Ready class, so the harness, which
    owns this simulated cloud, reports it Ready, as upstream's own kwok test set-up does."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    obj = client.get("KWOKNodeClass", NODECLASS_NAME, api_version="karpenter.kwok.sh/v1alpha1")
    obj["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                     "lastTransitionTime": now,
                                     "observedGeneration": obj["metadata"].get("generation", 1)}]}
    client.replace_status(obj)


@dataclass(frozen=True)
class HostStart:
    """How the caller starts one host process (a supervisor with a pidfile and a log that ``down`` stops)."""

    start: Callable[[str, list[str], dict[str, str]], None]
    wait_ready: Callable[[str, Callable[[], bool], float, str], None]
    run_dir: Path
    kubeconfig: Path


def install_host(client: KubeClient, *, pools: tuple[Pool, ...], cluster: str, binary: Path, version: str,
                 host: HostStart, progress: Callable[[str], None], timeout: float = 60.0) -> None:
    """Tier S: CRDs from the module cache → instance types file → Karpenter as a host process → wait healthy →
    node class (Ready) and NodePools."""
    if not autoscaled(pools):
        raise ConfigError("karpenter: no pool has autoscale: nothing for Karpenter to manage")
    establish_crds(client, version, timeout=timeout)
    work = host.run_dir / NAME
    work.mkdir(parents=True, exist_ok=True)
    types_file = work / "instance-types.json"
    types_file.write_text(json.dumps(instance_types(pools), indent=2))
    health = free_port()
    env = {**os.environ, **host_env(kubeconfig=host.kubeconfig, instance_types_file=types_file,
                                    metrics_port=free_port(), health_port=health)}
    host.start(NAME, [str(binary)], env)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    host.wait_ready(NAME, healthy, timeout, "Karpenter's readiness probe")
    objs = manifests(pools, cluster)
    for obj in objs:
        client.apply(obj)
    mark_node_class_ready(client)
    names = [o["metadata"]["name"] for o in objs if o["kind"] == NODEPOOL_API[1]]

    def ready(obj: Obj) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in obj.get("status", {}).get("conditions", []) or [])

    client.wait_all(NODEPOOL_API[1], names, ready, api_version=NODEPOOL_API[0], timeout=timeout,
                    what=f"NodePools {', '.join(names)} to be Ready (Karpenter)")
    progress(f"  karpenter v{version}: NodePools {', '.join(names)} Ready")
