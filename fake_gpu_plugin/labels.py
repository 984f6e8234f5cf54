"""The node labels of a GPU spec, as NVIDIA's GPU feature discovery (GFD) writes them for that hardware and config.

Owns the label set of every GPU node aiconform makes: ``fake-gpu-plugin labels`` prints it, the harness applies it
to the real node (tier R) and writes it into every simulated node (tier S), so a ``nodeSelector`` on
``nvidia.com/gpu.product`` means the same at both tiers.  Knows nothing of devices or sockets; the advertised
resources are ``inventory.resource_counts``.

The rules, and where each comes from (NVIDIA/k8s-device-plugin, which hosts GFD; facts taken from its published
docs and its own tests, no code copied):

1. Whole-GPU labels ``nvidia.com/gpu.{product,count,memory,replicas,family,compute.major,compute.minor}``:
   ``product`` is the NVML device name with spaces turned into dashes, ``count`` the number of physical GPUs,
   ``memory`` the memory of one GPU in MiB, ``replicas`` 1 without sharing.  Sources: docs/gpu-feature-discovery/
   README.md ("Generated Labels" table); internal/lm/resource_test.go ``TestGPUResourceLabeler`` "no sharing".
2. Time-slicing: ``nvidia.com/gpu.replicas`` is the replica count and ``count`` stays the physical count.  Without
   ``renameByDefault`` the product gets a ``-SHARED`` suffix; with it (resources renamed to ``<name>.shared``) the
   product is unchanged.  Sources: internal/lm/resource_test.go "shared appends suffix" and "renamed does not
   append suffix"; internal/lm/mig-strategy_test.go ``TestMigStrategyNoneLabels`` "sharing is applied to single
   device"; the GPU Operator's docs "Time-Slicing GPUs in Kubernetes", section "Verifying the Time-Slicing
   Configuration" (renameByDefault=false: "nvidia.com/gpu.count=4", "nvidia.com/gpu.product=Tesla-T4-SHARED",
   "nvidia.com/gpu.replicas=4"; renameByDefault=true: the same with "nvidia.com/gpu.product=Tesla-T4").
3. ``nvidia.com/gpu.sharing-strategy`` is ``time-slicing`` when time-slicing is configured, else ``none``; and
   ``nvidia.com/mps.capable`` is ``false`` unless MPS is the sharing strategy (this fake has no MPS).  Sources:
   README.md "Catalog of Labels" (``nvidia.com/gpu.sharing-strategy``: "The default value, ``none``, indicates no
   sharing. Other values are ``mps`` and ``time-slicing``"); internal/lm/nvml.go's sharing labeler.
4. ``nvidia.com/mig.strategy`` is written only when the strategy is ``single`` or ``mixed``: under ``none`` there
   is no such label.  ``nvidia.com/mig.capable`` says whether any GPU can do MIG.  Sources: internal/lm/
   mig-strategy_test.go (the ``none`` expectations carry no ``mig.strategy``, the ``single`` ones carry
   ``single``); docs/gpu-feature-discovery/README.md MIG tables; README.md "Catalog of Labels" (``mig.capable``).
5. GPUs with MIG enabled are labelled as whole GPUs *without sharing*: ``nvidia.com/gpu.replicas`` is 0 and the
   product has no ``-SHARED``, unless some GPU of the node is not carved, in which case that whole GPU's labels
   (with sharing) win; ``gpu.count`` counts every physical GPU either way.  Sources: internal/lm/
   mig-strategy_test.go ``TestMigStrategyNoneLabels`` "sharing is not applied to single MIG device; replicas is
   zero" and "sharing is applied to MIG device and non-MIG device".
6. MIG ``single``: the ``nvidia.com/gpu.*`` labels describe the MIG devices: ``product`` is
   ``<product>-MIG-<profile>`` (plus ``-SHARED`` under rule 2), ``count`` the number of MIG devices, ``memory`` one
   MIG device's memory, ``replicas`` 1 (or the time-slicing replicas), and ``slices.gi``/``slices.ci``.  Sources:
   docs/gpu-feature-discovery/README.md "MIG 'single' strategy" ("nvidia.com/gpu.product (overridden) ...
   A100-SXM4-40GB-MIG-1g.5gb", "nvidia.com/gpu.count (overridden) Number of MIG devices", "nvidia.com/gpu.memory
   (overridden) Memory of each MIG device"); internal/lm/mig-strategy_test.go ``TestMigStrategySingleLabels``;
   internal/lm/resource_test.go ``TestMigResourceLabeler`` ("...-MIG-1g.300gb-SHARED"); the GPU Operator's docs
   "Multi-Process Service in Kubernetes", "Changes to Node Labels" ("A100-SXM4-40GB-MIG-1g.5gb-SHARED").
7. MIG ``mixed``: one label group per profile, ``nvidia.com/mig-<profile>.{product,count,memory,replicas,slices.gi,
   slices.ci}`` with the same product/replicas rules as 6, and the ``nvidia.com/gpu.*`` labels of rule 5.  Sources:
   docs/gpu-feature-discovery/README.md "MIG 'mixed' strategy"; internal/lm/resource_test.go "mig mixed appends
   shared" and "mig mixed rename does not append".

Not modelled (the fake has no figures for them): the per-MIG-device ``multiprocessors`` and ``engines.*`` labels,
``nvidia.com/gpu.mode``, the CUDA/driver version labels and ``nvidia.com/gfd.timestamp``.  Upstream's unit tests
run on a mock whose MIG-enabled GPU reports compute capability 0.0, which is why their MIG expectations lack
``family``/``compute.*``; a real MIG-enabled GPU reports its capability, so those labels stay here.

On top of GFD's labels: ``nvidia.com/gpu.present=true``, which the GPU Operator puts on every node with an NVIDIA
GPU (selectors commonly use it), and ``aiconform.io/fake-gpu=true``, so the fake is declared on the node itself.
"""

from __future__ import annotations

from collections import Counter

from fake_gpu_plugin.config import InventoryConfig
from fake_gpu_plugin.models import GpuModel, MigProfile
from fake_gpu_plugin.names import FAKE_GPU_LABEL

FAKE_LABEL = FAKE_GPU_LABEL
GPU_PREFIX = "nvidia.com/gpu"


def node_labels(config: InventoryConfig) -> dict[str, str]:
    """Every label a node with this GPU spec carries (sorted by key)."""
    model = config.gpu_model
    slicing = config.time_slicing
    any_whole = not config.mig.enabled or any(not per_gpu for per_gpu in config.mig.layout)
    labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/mig.capable": _bool(model.mig_capable),
        "nvidia.com/mps.capable": "false",
        "nvidia.com/gpu.sharing-strategy": "time-slicing" if slicing.enabled else "none",
        f"{GPU_PREFIX}.family": model.family,
        f"{GPU_PREFIX}.compute.major": str(model.compute_major),
        f"{GPU_PREFIX}.compute.minor": str(model.compute_minor),
        f"{GPU_PREFIX}.memory": str(model.memory_mib),
        f"{GPU_PREFIX}.count": str(config.count),
        # rules 1, 2 and 5: sharing shows on the whole-GPU labels only if some GPU is advertised whole
        f"{GPU_PREFIX}.product": _product(config, model.gfd_product, shared=any_whole),
        f"{GPU_PREFIX}.replicas": str(slicing.replicas) if any_whole else "0",
        FAKE_LABEL: "true",
    }
    if config.mig.enabled:
        labels["nvidia.com/mig.strategy"] = config.mig.strategy
        counts = Counter(name for per_gpu in config.mig.layout for name in per_gpu)
        for name, n in counts.items():
            prefix = GPU_PREFIX if config.mig.strategy == "single" else f"nvidia.com/mig-{name}"
            labels |= _mig_labels(config, model, model.mig_profile(name), n, prefix)
    return dict(sorted(labels.items()))


def _mig_labels(config: InventoryConfig, model: GpuModel, profile: MigProfile, count: int,
                prefix: str) -> dict[str, str]:
    """Rules 6 and 7: the labels of ``count`` MIG devices of one profile, advertised as the resource ``prefix``."""
    return {
        f"{prefix}.product": _product(config, f"{model.gfd_product}-MIG-{profile.name}", shared=True),
        f"{prefix}.count": str(count),
        f"{prefix}.memory": str(profile.memory_mib),
        f"{prefix}.replicas": str(config.time_slicing.replicas),
        f"{prefix}.slices.gi": str(profile.compute_slices),
        f"{prefix}.slices.ci": str(profile.compute_slices),
    }


def _product(config: InventoryConfig, product: str, *, shared: bool) -> str:
    """Rule 2: ``-SHARED`` when the resource is time-sliced and not renamed to ``<name>.shared``."""
    slicing = config.time_slicing
    return f"{product}-SHARED" if shared and slicing.enabled and not slicing.rename_by_default else product


def _bool(value: bool) -> str:
    return "true" if value else "false"
