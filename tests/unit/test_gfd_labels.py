"""Golden GPU-feature-discovery label sets: what a GPU node must carry for MIG none/single/mixed and time-slicing
with and without ``renameByDefault``, checked at both tiers (the plugin's ``labels`` and a simulated node).

The expected sets are written out by hand from NVIDIA's published expectations, not computed: the rules and their
sources are listed in ``fake_gpu_plugin/labels.py``.  Where upstream shows a concrete example the case reproduces
it: the GFD README's MIG ``single`` table (8 x A100-SXM4-40GB as 56 x 1g.5gb of 5120 MB), the GPU Operator's
time-slicing page (4 x T4 with 4 replicas: ``gpu.count=4``, ``Tesla-T4-SHARED``, ``gpu.replicas=4``, 16
``nvidia.com/gpu``; renamed: ``Tesla-T4`` and 16 ``nvidia.com/gpu.shared``) and its MPS page
(``A100-SXM4-40GB-MIG-1g.5gb-SHARED``).  Because simulated nodes and the plugin now share one labelling function,
comparing them cannot catch a wrong label; these sets can.
"""

from __future__ import annotations

from typing import Any

import pytest

from fake_gpu_plugin.config import config_from_pool
from fake_gpu_plugin.inventory import build_inventory
from fake_gpu_plugin.labels import node_labels
from harness.config import parse_profile
from harness.nodes import simulated_node

A100_80 = {"nvidia.com/gpu.family": "ampere", "nvidia.com/gpu.compute.major": "8",
           "nvidia.com/gpu.compute.minor": "0", "nvidia.com/mig.capable": "true", "nvidia.com/mps.capable": "false",
           "nvidia.com/gpu.present": "true"}
A100_40 = A100_80
T4 = {"nvidia.com/gpu.family": "turing", "nvidia.com/gpu.compute.major": "7", "nvidia.com/gpu.compute.minor": "5",
      "nvidia.com/mig.capable": "false", "nvidia.com/mps.capable": "false", "nvidia.com/gpu.present": "true",
      "nvidia.com/gpu.memory": "15360"}


def _mig(resource: str, product: str, count: int, memory: int, slices: int, replicas: int = 1) -> dict[str, str]:
    return {f"{resource}.product": product, f"{resource}.count": str(count), f"{resource}.memory": str(memory),
            f"{resource}.replicas": str(replicas), f"{resource}.slices.gi": str(slices),
            f"{resource}.slices.ci": str(slices)}


# (case id, the pool's gpu mapping, every nvidia.com/ label the node must carry, its GPU capacity)
CASES: list[tuple[str, dict[str, Any], dict[str, str], dict[str, int]]] = [
    ("mig-none", {"model": "A100-SXM4-80GB", "count": 8}, A100_80 | {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.memory": "81920", "nvidia.com/gpu.replicas": "1", "nvidia.com/gpu.sharing-strategy": "none",
    }, {"nvidia.com/gpu": 8}),
    ("time-slicing", {"model": "T4", "count": 4, "sharing": {"timeSlicing": {"replicas": 4}}}, T4 | {
        "nvidia.com/gpu.product": "Tesla-T4-SHARED", "nvidia.com/gpu.count": "4", "nvidia.com/gpu.replicas": "4",
        "nvidia.com/gpu.sharing-strategy": "time-slicing",
    }, {"nvidia.com/gpu": 16}),
    ("time-slicing-renamed", {"model": "T4", "count": 4,
                              "sharing": {"timeSlicing": {"replicas": 4, "renameByDefault": True}}}, T4 | {
        "nvidia.com/gpu.product": "Tesla-T4", "nvidia.com/gpu.count": "4", "nvidia.com/gpu.replicas": "4",
        "nvidia.com/gpu.sharing-strategy": "time-slicing",
    }, {"nvidia.com/gpu.shared": 16}),
    ("mig-single", {"model": "A100-SXM4-40GB", "count": 8, "mig": {"strategy": "single", "layout": "1g.5gb"}},
     A100_40 | {"nvidia.com/mig.strategy": "single", "nvidia.com/gpu.sharing-strategy": "none"}
     | _mig("nvidia.com/gpu", "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", 56, 5120, 1),
     {"nvidia.com/gpu": 56}),
    ("mig-single-time-slicing", {"model": "A100-SXM4-40GB", "count": 1,
                                 "mig": {"strategy": "single", "layout": {"1g.5gb": 7}},
                                 "sharing": {"timeSlicing": {"replicas": 2}}},
     A100_40 | {"nvidia.com/mig.strategy": "single", "nvidia.com/gpu.sharing-strategy": "time-slicing"}
     | _mig("nvidia.com/gpu", "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb-SHARED", 7, 5120, 1, replicas=2),
     {"nvidia.com/gpu": 14}),
    ("mig-mixed", {"model": "A100-SXM4-80GB", "count": 2,
                   "mig": {"strategy": "mixed", "layout": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}}},
     A100_80 | {"nvidia.com/mig.strategy": "mixed", "nvidia.com/gpu.sharing-strategy": "none",
                # every GPU is carved: the whole-GPU labels carry no sharing, replicas 0 (rule 5)
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.count": "2",
                "nvidia.com/gpu.memory": "81920", "nvidia.com/gpu.replicas": "0"}
     | _mig("nvidia.com/mig-3g.40gb", "NVIDIA-A100-SXM4-80GB-MIG-3g.40gb", 2, 40960, 3)
     | _mig("nvidia.com/mig-2g.20gb", "NVIDIA-A100-SXM4-80GB-MIG-2g.20gb", 2, 20480, 2)
     | _mig("nvidia.com/mig-1g.10gb", "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", 4, 10240, 1),
     {"nvidia.com/mig-3g.40gb": 2, "nvidia.com/mig-2g.20gb": 2, "nvidia.com/mig-1g.10gb": 4}),
    ("mig-mixed-one-whole-gpu-time-slicing", {"model": "A100-SXM4-80GB", "count": 2,
                                              "mig": {"strategy": "mixed", "layout": [["3g.40gb", "3g.40gb"], []]},
                                              "sharing": {"timeSlicing": {"replicas": 2}}},
     A100_80 | {"nvidia.com/mig.strategy": "mixed", "nvidia.com/gpu.sharing-strategy": "time-slicing",
                # one GPU is whole, so its (shared) labels win; count is still both physical GPUs (rule 5)
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB-SHARED", "nvidia.com/gpu.count": "2",
                "nvidia.com/gpu.memory": "81920", "nvidia.com/gpu.replicas": "2"}
     | _mig("nvidia.com/mig-3g.40gb", "NVIDIA-A100-SXM4-80GB-MIG-3g.40gb-SHARED", 2, 40960, 3, replicas=2),
     {"nvidia.com/gpu": 2, "nvidia.com/mig-3g.40gb": 4}),
    ("mig-mixed-renamed", {"model": "A100-SXM4-80GB", "count": 1,
                           "mig": {"strategy": "mixed", "layout": {"3g.40gb": 2}},
                           "sharing": {"timeSlicing": {"replicas": 3, "renameByDefault": True}}},
     A100_80 | {"nvidia.com/mig.strategy": "mixed", "nvidia.com/gpu.sharing-strategy": "time-slicing",
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.count": "1",
                "nvidia.com/gpu.memory": "81920", "nvidia.com/gpu.replicas": "0"}
     | _mig("nvidia.com/mig-3g.40gb", "NVIDIA-A100-SXM4-80GB-MIG-3g.40gb", 2, 40960, 3, replicas=3),
     {"nvidia.com/mig-3g.40gb.shared": 6}),
]
IDS = [case[0] for case in CASES]


def _nvidia(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k.startswith("nvidia.com/")}


@pytest.mark.parametrize(("case", "gpu", "labels", "capacity"), CASES, ids=IDS)
def test_plugin_labels_are_gfds(case: str, gpu: dict[str, Any], labels: dict[str, str],
                                capacity: dict[str, int]) -> None:
    """Tier R: what ``fake-gpu-plugin labels`` prints and what the plugin serves for this config."""
    config = config_from_pool({"name": case, "gpu": gpu})
    assert _nvidia(node_labels(config)) == labels
    served = build_inventory(config, "node-0").resources
    assert {name: len(devices) for name, devices in served.items()} == capacity


@pytest.mark.parametrize(("case", "gpu", "labels", "capacity"), CASES, ids=IDS)
def test_simulated_node_labels_are_gfds(case: str, gpu: dict[str, Any], labels: dict[str, str],
                                        capacity: dict[str, int]) -> None:
    """Tier S: the Node object a profile pool with this GPU spec becomes."""
    pool = parse_profile({"pools": [{"name": case, "nodes": 1, "gpu": gpu}]}).pools[0]
    node = simulated_node(pool, 0, "golden")
    assert _nvidia(node["metadata"]["labels"]) == labels
    status = node["status"]
    assert {k: int(v) for k, v in status["capacity"].items() if k.startswith("nvidia.com/")} == capacity
    assert status["allocatable"] == status["capacity"]
