"""The kind configuration (``kind.x-k8s.io/v1alpha4`` Cluster) generated from a ``provider: kind`` profile.  Pure:
data in, a dict out; nothing here runs anything.

What it sets and why:
- one control-plane node and one worker per ``kind.workers`` entry, each worker labelled with its pool name,
  ``aiconform.io/real-node`` (traffic-carrying pods go to real nodes) and, when it has GPUs, the label the fake
  GPU DaemonSet selects on.  The GPU labels themselves (``nvidia.com/gpu.*``) are written by the plugin;
- ``disableDefaultCNI``: kindnetd is not served here; the harness writes a ptp + host-local CNI config per node
  and routes between nodes (network.py);
- kubeadm patches: ``imageRepository`` aiconform.local with the etcd and CoreDNS tags of the images built here,
  the kubelet's ``failCgroupV1: false`` (kubelet >= 1.35 refuses cgroup v1 otherwise) and a 3 s node status
  recomputation, extra component flags;
- a containerd patch: ``restrict_oom_score_adj`` (this VM cannot grant CAP_SYS_RESOURCE);
- feature gates and runtime config from ``controlPlane``; the API server on 127.0.0.1 only.
"""

from __future__ import annotations

from typing import Any

import yaml

from harness.config import Profile
from harness.contract import POOL_LABEL, REAL_NODE_LABEL
from harness.images.registry import REGISTRY_HOST
from harness.providers.kind.profile import KindWorker, kind_spec

LABEL_POOL = POOL_LABEL
PLUGIN_NODE_LABEL = "aiconform.io/fake-gpu-plugin"
"""Set by the harness on workers with a GPU spec: the fake GPU DaemonSet's nodeSelector."""
KUBEADM_API = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
NODE_STATUS_UPDATE = "3s"
"""How often the kubelet recomputes its node status (default 10 s; it writes only on a change): a device plugin's
resources appear in allocatable at the next recomputation, so ``up`` waits about half of it for the GPUs."""
CONTAINERD_PATCH = """[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
"""


def worker_node_names(cluster: str, count: int) -> list[str]:
    """The names kind gives the workers of cluster ``cluster``, in profile order."""
    return [f"{cluster}-worker{'' if i == 0 else i + 1}" for i in range(count)]


def control_plane_node_name(cluster: str) -> str:
    return f"{cluster}-control-plane"


def _mounts(worker: KindWorker) -> list[dict[str, Any]]:
    return [{"hostPath": m.host_path, "containerPath": m.container_path, "readOnly": m.read_only}
            for m in worker.extra_mounts]


def worker_labels(worker: KindWorker) -> dict[str, str]:
    labels = {**worker.labels, LABEL_POOL: worker.name, REAL_NODE_LABEL: "true"}
    if worker.gpu is not None:
        labels[PLUGIN_NODE_LABEL] = "true"
    return labels


def _extra_args_patches(profile: Profile) -> list[dict[str, Any]]:
    """JSON 6902 patches appending ``controlPlane.extraArgs`` to kubeadm's per-component extraArgs lists (a merge
    patch would replace the lists kind writes)."""
    sections = {"kube-apiserver": "apiServer", "kube-controller-manager": "controllerManager",
                "kube-scheduler": "scheduler"}
    ops = []
    for component, args in sorted(profile.control_plane.extra_args.items()):
        for flag, value in sorted(args.items()):
            ops.append({"op": "add", "path": f"/{sections[component]}/extraArgs/-",
                        "value": {"name": flag, "value": value}})
    if not ops:
        return []
    return [{"group": "kubeadm.k8s.io", "version": "v1beta4", "kind": "ClusterConfiguration",
             "patch": yaml.safe_dump(ops, sort_keys=False)}]


def kind_config(profile: Profile, *, node_image: str, etcd_tag: str, coredns_tag: str,
                api_server_port: int = 0) -> dict[str, Any]:
    """The kind Cluster config for ``profile`` (its ``kind`` section must be set)."""
    spec = kind_spec(profile)
    if spec is None:
        raise ValueError(f"profile {profile.name!r} has no kind section")
    cp = profile.control_plane
    cluster_patch = {"kind": "ClusterConfiguration", "apiVersion": KUBEADM_API, "imageRepository": REGISTRY_HOST,
                     "etcd": {"local": {"imageTag": etcd_tag}}, "dns": {"imageTag": coredns_tag}}
    kubelet_patch = {"kind": "KubeletConfiguration", "apiVersion": KUBELET_API, "failCgroupV1": False,
                     "nodeStatusUpdateFrequency": NODE_STATUS_UPDATE}
    nodes: list[dict[str, Any]] = [{"role": "control-plane", "image": node_image}]
    for worker in spec.workers:
        node: dict[str, Any] = {"role": "worker", "image": node_image, "labels": worker_labels(worker)}
        if worker.extra_mounts:
            node["extraMounts"] = _mounts(worker)
        if worker.taints:
            node["kubeadmConfigPatches"] = [yaml.safe_dump({  # a list of its own: kind sets no worker taints
                "kind": "JoinConfiguration", "apiVersion": KUBEADM_API,
                "nodeRegistration": {"taints": [t.to_api() for t in worker.taints]}})]
        nodes.append(node)
    config: dict[str, Any] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"ipFamily": "ipv4", "disableDefaultCNI": True, "apiServerAddress": "127.0.0.1",
                       "apiServerPort": api_server_port, "podSubnet": cp.pod_cidr, "serviceSubnet": cp.service_cidr},
        "nodes": nodes,
        "kubeadmConfigPatches": [yaml.safe_dump(cluster_patch), yaml.safe_dump(kubelet_patch)],
        "containerdConfigPatches": [CONTAINERD_PATCH],
    }
    patches6902 = _extra_args_patches(profile)
    if patches6902:
        config["kubeadmConfigPatchesJSON6902"] = patches6902
    if cp.feature_gates:
        config["featureGates"] = dict(cp.feature_gates)
    if cp.runtime_config:
        config["runtimeConfig"] = dict(cp.runtime_config)
    return config
