"""GFD-style node labels for an inventory, as NVIDIA's GPU feature discovery would write them.

Owns the label set only (``fake-gpu-plugin labels`` prints it; the harness applies it to the node).  Base labels
come from ``models.gfd_labels``; on top: MIG strategy and per-profile labels, time-slicing replicas and sharing
strategy (with GFD's ``-SHARED`` product suffix when replicas are not renamed), and ``aiconform.io/fake-gpu`` so
the fake is declared on the node itself.
"""

from __future__ import annotations

from collections import Counter

from fake_gpu_plugin.config import InventoryConfig
from fake_gpu_plugin.models import gfd_labels

FAKE_LABEL = "aiconform.io/fake-gpu"


def node_labels(config: InventoryConfig) -> dict[str, str]:
    model = config.gpu_model
    labels = gfd_labels(model, config.count)
    labels["nvidia.com/mig.strategy"] = config.mig.strategy
    if config.mig.strategy == "single":
        profile = model.mig_profile(config.mig.layout[0][0])
        labels |= {
            "nvidia.com/gpu.product": f"{model.gfd_product}-MIG-{profile.name}",
            "nvidia.com/gpu.memory": str(profile.memory_mib),
            "nvidia.com/gpu.count": str(sum(len(per_gpu) for per_gpu in config.mig.layout)),
            "nvidia.com/gpu.slices.gi": str(profile.compute_slices),
            "nvidia.com/gpu.slices.ci": str(profile.compute_slices),
        }
    elif config.mig.strategy == "mixed":
        counts = Counter(name for per_gpu in config.mig.layout for name in per_gpu)
        for name, n in sorted(counts.items()):
            profile = model.mig_profile(name)
            prefix = f"nvidia.com/mig-{name}"
            labels |= {
                f"{prefix}.count": str(n),
                f"{prefix}.memory": str(profile.memory_mib),
                f"{prefix}.product": f"{model.gfd_product}-MIG-{name}",
                f"{prefix}.slices.gi": str(profile.compute_slices),
                f"{prefix}.slices.ci": str(profile.compute_slices),
            }
    slicing = config.time_slicing
    labels["nvidia.com/gpu.replicas"] = str(slicing.replicas)
    labels["nvidia.com/gpu.sharing-strategy"] = "time-slicing" if slicing.enabled else "none"
    if slicing.enabled and not slicing.rename_by_default:
        labels["nvidia.com/gpu.product"] += "-SHARED"
    labels[FAKE_LABEL] = "true"
    return dict(sorted(labels.items()))
