"""Every node that offers GPUs says which GPU it has: the label schedulers and users select on.

Uses the official ``kubernetes`` client (fixture ``core_v1``), configured by aiconform for the cluster under test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api

    from harness.testing import Evidence

GPU = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"


# A custom requirement id: results.json and the report group checks by it.
@pytest.mark.aiconform(requirement="myplatform.gpu_node_labels", tier="S", gpus=1)
def test_every_gpu_node_says_which_gpu_it_has(core_v1: CoreV1Api, evidence: Evidence) -> None:
    nodes = core_v1.list_node().items
    gpu_nodes = [n for n in nodes if int((n.status.allocatable or {}).get(GPU, "0")) > 0]
    evidence["gpu_nodes"] = len(gpu_nodes)
    evidence["products"] = sorted({(n.metadata.labels or {}).get(PRODUCT_LABEL, "?") for n in gpu_nodes})
    unlabelled = [n.metadata.name for n in gpu_nodes if PRODUCT_LABEL not in (n.metadata.labels or {})]
    assert not unlabelled, f"GPU nodes without {PRODUCT_LABEL} (is GPU feature discovery running?): {unlabelled}"
