"""The devices one node advertises, built from an ``InventoryConfig`` and the node's name.

Owns identities (stable UUIDs, NUMA placement, minor numbers), the mapping of devices onto extended resource names
(MIG strategies, time-slicing replicas, ``.shared`` renaming), the resource counts a node of a spec advertises
(``resource_counts``, also what simulated nodes carry) and the health of each advertised device.  Pure data: no
gRPC, no files.  Real GPUs (``nvml_backend``) bring their own identities and go through the same
``assemble_inventory``; ``Inventory.hardware`` says which (``fake`` or ``nvml``).

Identity rules (stable for a node name, so a restarted plugin advertises the same ids):
- GPU ``i`` of node ``n``: ``GPU-`` + a UUID-shaped hex string derived from sha256("n/gpu/i");
- MIG device in slot ``s`` of GPU ``i``: ``MIG-`` + the same shape from sha256("n/gpu/i/mig/s/<profile>");
- time-slicing replica ``r`` of a unit: ``<unit uuid>::<r>``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fake_gpu_plugin.config import InventoryConfig
from fake_gpu_plugin.models import GpuModel, MigProfile
from fake_gpu_plugin.names import GPU_RESOURCE as GPU_RESOURCE

HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
FAKE_HARDWARE = "fake"


def stable_uuid(prefix: str, seed: str) -> str:
    """``<prefix>-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`` derived deterministically from ``seed``."""
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"{prefix}-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@dataclass(frozen=True)
class PhysicalGpu:
    """One physical GPU: ``/dev/nvidia<minor>`` on the host, index ``index`` in nvidia-smi on the host."""

    index: int
    uuid: str
    numa_node: int
    model: GpuModel
    dev_minor: int | None = None
    """Minor number of the host's ``/dev/nvidia<minor>`` when it differs from ``index`` (real GPUs: NVML's)."""
    pci_bus_id: str = ""
    """PCI bus id (real GPUs only)."""

    @property
    def minor(self) -> int:
        return self.index if self.dev_minor is None else self.dev_minor

    @property
    def memory_mib(self) -> int:
        return self.model.memory_mib


@dataclass(frozen=True)
class MigDevice:
    """One MIG device (GPU instance + compute instance) carved out of ``parent``."""

    uuid: str
    parent: PhysicalGpu
    slot: int
    profile: MigProfile
    device_nodes: tuple[str, ...] = ()
    """Host device nodes under the device root that this MIG device needs besides its parent's (real GPUs: the
    ``nvidia-caps/nvidia-cap<N>`` of its GPU and compute instance)."""

    @property
    def numa_node(self) -> int:
        return self.parent.numa_node

    @property
    def memory_mib(self) -> int:
        return self.profile.memory_mib


Unit = PhysicalGpu | MigDevice
"""What a container sees as one device: a whole GPU or a MIG device."""


def parent_gpu(unit: Unit) -> PhysicalGpu:
    return unit.parent if isinstance(unit, MigDevice) else unit


@dataclass(frozen=True)
class AdvertisedDevice:
    """One device id as the kubelet sees it under one resource name."""

    id: str
    resource: str
    unit: Unit
    replica: int | None = None
    """Time-slicing replica number, None without time-slicing."""

    @property
    def numa_node(self) -> int:
        return self.unit.numa_node

    @property
    def gpu(self) -> PhysicalGpu:
        return parent_gpu(self.unit)

    def is_healthy(self, unhealthy: frozenset[str]) -> bool:
        """Unhealthy when its id, its unit or its unit's parent GPU is marked unhealthy."""
        if not unhealthy:
            return True
        return not ({self.id, self.unit.uuid, self.gpu.uuid} & unhealthy)


@dataclass(frozen=True)
class Inventory:
    """Everything one node advertises, grouped by resource name (in a stable order)."""

    node_name: str
    config: InventoryConfig
    gpus: tuple[PhysicalGpu, ...]
    mig_devices: tuple[MigDevice, ...]
    resources: Mapping[str, tuple[AdvertisedDevice, ...]] = field(compare=False)
    fingerprint: str
    """Changes whenever anything a container could observe changes (model, ids, node)."""
    _by_id: Mapping[str, AdvertisedDevice] = field(compare=False, repr=False)
    hardware: str = FAKE_HARDWARE
    """``fake`` (this package plays the GPUs) or ``nvml`` (the machine's real GPUs, see ``nvml_backend``)."""

    @property
    def fake(self) -> bool:
        return self.hardware == FAKE_HARDWARE

    @property
    def resource_names(self) -> list[str]:
        return list(self.resources)

    def device(self, device_id: str) -> AdvertisedDevice | None:
        return self._by_id.get(device_id)

    def units(self) -> list[Unit]:
        """Every unit a container can be given: MIG devices where a GPU is carved, whole GPUs otherwise."""
        carved = {m.parent.index for m in self.mig_devices}
        out: list[Unit] = []
        for gpu in self.gpus:
            if gpu.index in carved:
                out += [m for m in self.mig_devices if m.parent.index == gpu.index]
            else:
                out.append(gpu)
        return out

    def known_uuids(self) -> set[str]:
        return {g.uuid for g in self.gpus} | {m.uuid for m in self.mig_devices}


def build_inventory(config: InventoryConfig, node_name: str, *, first_index: int = 0) -> Inventory:
    """The devices of node ``node_name`` under ``config``.  ``first_index``: the host index (and minor) of the first
    GPU, so that a second pool on the same node (the DRA pool beside the device plugin's) has GPUs of its own:
    other indices, other ``/dev/nvidia<N>``, other UUIDs."""
    model = config.gpu_model
    gpus = tuple(
        PhysicalGpu(index=first_index + i, uuid=stable_uuid("GPU", f"{node_name}/gpu/{first_index + i}"),
                    numa_node=i * config.numa_nodes // config.count, model=model)
        for i in range(config.count)
    )
    migs: list[MigDevice] = []
    if config.mig.enabled:
        for gpu, names in zip(gpus, config.mig.layout, strict=True):
            for slot, name in enumerate(names):
                migs.append(MigDevice(uuid=stable_uuid("MIG", f"{node_name}/gpu/{gpu.index}/mig/{slot}/{name}"),
                                      parent=gpu, slot=slot, profile=model.mig_profile(name)))
    fingerprint = hashlib.sha256(repr((node_name, config, first_index) if first_index else (node_name, config))
                                 .encode()).hexdigest()[:16]
    return assemble_inventory(node_name, config, gpus, tuple(migs), fingerprint=fingerprint)


def assemble_inventory(node_name: str, config: InventoryConfig, gpus: tuple[PhysicalGpu, ...],
                       migs: tuple[MigDevice, ...], *, fingerprint: str, hardware: str = FAKE_HARDWARE,
                       unadvertised: frozenset[int] = frozenset()) -> Inventory:
    """Map devices onto resource names (MIG strategy of ``config``, time-slicing replicas, ``.shared`` names).

    The one place that decides what is advertised, for fake and real GPUs alike.  A GPU with MIG devices is
    advertised through them; a GPU whose index is in ``unadvertised`` (MIG on, no instances) not at all.
    """
    resources: dict[str, list[AdvertisedDevice]] = {}
    carved = {m.parent.index for m in migs}
    units: list[tuple[str, Unit]] = []
    for gpu in gpus:
        if gpu.index in unadvertised:
            continue
        if gpu.index not in carved:
            units.append((GPU_RESOURCE, gpu))
            continue
        for mig in (m for m in migs if m.parent.index == gpu.index):
            base = GPU_RESOURCE if config.mig.strategy == "single" else mig.profile.resource_name
            units.append((base, mig))
    slicing = config.time_slicing
    for base, unit in units:
        name = f"{base}.shared" if slicing.enabled and slicing.rename_by_default else base
        if slicing.enabled:
            devices = [AdvertisedDevice(f"{unit.uuid}::{r}", name, unit, r) for r in range(slicing.replicas)]
        else:
            devices = [AdvertisedDevice(unit.uuid, name, unit)]
        resources.setdefault(name, []).extend(devices)
    frozen = {name: tuple(devs) for name, devs in sorted(resources.items())}
    by_id = {d.id: d for devs in frozen.values() for d in devs}
    return Inventory(node_name=node_name, config=config, gpus=gpus, mig_devices=migs, resources=frozen,
                     fingerprint=fingerprint, _by_id=by_id, hardware=hardware)


def resource_counts(config: InventoryConfig) -> dict[str, int]:
    """What a node with this spec advertises: extended resource name -> device count (its capacity, all healthy).

    Counted from the very inventory the plugin serves (``build_inventory``), so a simulated node's capacity and
    the real plugin's ListAndWatch cannot drift apart.  Device ids depend on the node name, counts do not, so the
    answer is remembered per spec (thousands of simulated nodes share a handful of specs).
    """
    return dict(_resource_counts(config))


@functools.lru_cache(maxsize=256)
def _resource_counts(config: InventoryConfig) -> tuple[tuple[str, int], ...]:
    return tuple((name, len(devices)) for name, devices in build_inventory(config, "capacity").resources.items())


def health_map(devices: Iterable[AdvertisedDevice], unhealthy: frozenset[str]) -> dict[str, str]:
    """Device id -> ``Healthy``/``Unhealthy``."""
    return {d.id: HEALTHY if d.is_healthy(unhealthy) else UNHEALTHY for d in devices}
