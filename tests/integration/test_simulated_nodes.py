"""Simulated GPU nodes of the default profile, as the real apiserver stores them and KWOK keeps them Ready."""

from __future__ import annotations

from harness.contract import GPU_RESOURCE
from harness.kube import KubeClient
from harness.nodes import node_ready
from harness.providers.local import LocalCluster


def test_default_profile_nodes_carry_gpus_labels_and_taints(local_cluster: LocalCluster) -> None:
    client = KubeClient.from_kubeconfig(local_cluster.kubeconfig())
    nodes = {n["metadata"]["name"]: n for n in client.list("Node")["items"]}
    assert all(node_ready(n) for n in nodes.values())
    a100 = nodes["a100-0"]
    assert a100["status"]["allocatable"][GPU_RESOURCE] == "8"
    labels = a100["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert labels["nvidia.com/gpu.memory"] == "81920"
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["team"] == "research"
    assert {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"} in a100["spec"]["taints"]
    mig = nodes["a100-mig-0"]["status"]["allocatable"]
    assert mig["nvidia.com/mig-3g.40gb"] == "2" and mig["nvidia.com/mig-1g.10gb"] == "4"
    assert GPU_RESOURCE not in mig
    shared = nodes["t4-shared-0"]
    assert shared["status"]["allocatable"][GPU_RESOURCE] == "8"  # 2 GPUs x 4 replicas
    assert shared["metadata"]["labels"]["nvidia.com/gpu.replicas"] == "4"
    assert GPU_RESOURCE not in nodes["cpu-0"]["status"]["allocatable"]
