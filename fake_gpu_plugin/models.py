"""The catalogue of GPU models the fake stack can play: product names, memory, MIG profile tables.

Owns facts about hardware models only.  The GPU spec parser (``config``), the node labels (``labels``) and the
device plugin all read this table, so a model is described once.  Figures follow NVIDIA's published
specifications; MIG placement is modelled by slice counts (7 compute, 8 memory slices), which is the constraint that
decides whether a layout fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MigProfile:
    """One MIG instance profile, e.g. ``1g.10gb``."""

    name: str
    compute_slices: int
    memory_slices: int
    memory_mib: int
    max_instances: int

    @property
    def resource_name(self) -> str:
        """The extended resource the device plugin advertises under the ``mixed`` strategy."""
        return f"nvidia.com/mig-{self.name}"


@dataclass(frozen=True)
class GpuModel:
    """A GPU model as a node's GFD labels and a container's nvidia-smi show it."""

    key: str
    product: str
    memory_mib: int
    family: str
    compute_major: int
    compute_minor: int
    power_watts: int
    mig_profiles: tuple[MigProfile, ...] = field(default=())
    pci_device_id: int | None = None
    """The PCI device id (vendor NVIDIA, 0x10de) of the model, as ``lspci -n`` shows it; None where not known."""

    @property
    def mig_capable(self) -> bool:
        return bool(self.mig_profiles)

    def mig_profile(self, name: str) -> MigProfile:
        for prof in self.mig_profiles:
            if prof.name == name:
                return prof
        known = ", ".join(p.name for p in self.mig_profiles) or "none (not MIG-capable)"
        raise KeyError(f"model {self.key} has no MIG profile {name!r}; known: {known}")

    @property
    def gfd_product(self) -> str:
        """``nvidia.com/gpu.product`` as GPU feature discovery writes it (spaces become dashes)."""
        return self.product.replace(" ", "-")


def _mig(total_gb: int, table: list[tuple[str, int, int, int]]) -> tuple[MigProfile, ...]:
    per_slice = total_gb * 1024 // 8
    return tuple(MigProfile(name, g, m, m * per_slice, n) for name, g, m, n in table)


_MIG_80 = [("1g.10gb", 1, 1, 7), ("1g.20gb", 1, 2, 4), ("2g.20gb", 2, 2, 3), ("3g.40gb", 3, 4, 2),
           ("4g.40gb", 4, 4, 1), ("7g.80gb", 7, 8, 1)]
_MIG_40 = [("1g.5gb", 1, 1, 7), ("1g.10gb", 1, 2, 4), ("2g.10gb", 2, 2, 3), ("3g.20gb", 3, 4, 2),
           ("4g.20gb", 4, 4, 1), ("7g.40gb", 7, 8, 1)]
_MIG_141 = [("1g.18gb", 1, 1, 7), ("1g.35gb", 1, 2, 4), ("2g.35gb", 2, 2, 3), ("3g.71gb", 3, 4, 2),
            ("4g.71gb", 4, 4, 1), ("7g.141gb", 7, 8, 1)]

CATALOGUE: dict[str, GpuModel] = {
    m.key: m
    for m in (
        GpuModel("A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB", 40960, "ampere", 8, 0, 400, _mig(40, _MIG_40),
                 pci_device_id=0x20b0),
        GpuModel("A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", 81920, "ampere", 8, 0, 400, _mig(80, _MIG_80),
                 pci_device_id=0x20b2),
        GpuModel("H100-SXM5-80GB", "NVIDIA H100 80GB HBM3", 81559, "hopper", 9, 0, 700, _mig(80, _MIG_80),
                 pci_device_id=0x2330),
        GpuModel("H200-SXM5-141GB", "NVIDIA H200", 143771, "hopper", 9, 0, 700, _mig(141, _MIG_141),
                 pci_device_id=0x2335),
        GpuModel("L40S", "NVIDIA L40S", 46068, "ada-lovelace", 8, 9, 350, pci_device_id=0x26b9),
        GpuModel("T4", "Tesla T4", 15360, "turing", 7, 5, 70, pci_device_id=0x1eb8),
    )
}

ALIASES: dict[str, str] = {
    "A100-40GB": "A100-SXM4-40GB",
    "A100-80GB": "A100-SXM4-80GB",
    "H100-80GB": "H100-SXM5-80GB",
    "H100": "H100-SXM5-80GB",
    "H200": "H200-SXM5-141GB",
}


def known_models() -> list[str]:
    return sorted(CATALOGUE)


def lookup(name: str) -> GpuModel:
    """The model called ``name`` (or one of its aliases); KeyError listing the known ones otherwise."""
    key = ALIASES.get(name, name)
    try:
        return CATALOGUE[key]
    except KeyError:
        raise KeyError(f"unknown GPU model {name!r}; known: {', '.join(known_models())}") from None
