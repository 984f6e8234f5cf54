"""What a node's GPUs look like through Dynamic Resource Allocation: ResourceSlices, DeviceClasses, device names.

Owns the DRA face of an ``Inventory`` (the same inventory and GPU spec the device plugin serves): the
``resource.k8s.io/v1`` ResourceSlice objects of one node's pool, the DeviceClasses that select them, and the
mapping back from an allocated device name to its unit.  Pure data: no gRPC, no files, no API calls.  The real
node's DRA driver (``dra_plugin``) publishes these slices; the harness publishes the very same ones for simulated
(KWOK) nodes, so the scheduler's allocator sees one format at both tiers.

The slices of one pool (pool name = node name, ``nodeName`` set):
- every unit (a whole GPU, or a MIG device where the spec carves one) is a device named ``gpu-<i>`` or
  ``gpu-<i>-mig-<slot>-<profile>`` (dots turned into dashes), with attributes under the driver's domain
  (``device.attributes["gpu.nvidia.com"]``): ``type`` (``gpu``/``mig``), ``uuid``, ``productName``, ``index``,
  ``minor``, ``architecture``, ``numaNode``, and as ``version`` values (semver, so CEL compares them with
  ``semver(...)``) ``cudaComputeCapability``, ``driverVersion`` and ``cudaDriverVersion``; MIG devices add
  ``profile``, ``parentUUID``, ``parentIndex``; capacity ``memory`` (a quantity, ``device.capacity[...]``).  The
  PCI placement goes under Kubernetes' standard domain (``device.attributes["resource.kubernetes.io"]``), as
  NVIDIA's DRA driver publishes it: ``pciBusID`` (extended BDF, ``0000:10:00.0``) and ``pcieRoot`` (``pci0000:00``).
  A fake GPU's bus id is derived from its place: domain = its NUMA node, bus = 0x10 + its index; its root complex is
  its NUMA node's (GPUs of one NUMA node share a ``pcieRoot``).  A real GPU (nvml backend) publishes NVML's bus id
  and no ``pcieRoot`` (that needs the host's sysfs, which this module never reads);
- MIG as *partitionable devices* (DRAPartitionableDevices): a carved GPU is published whole *and* as its MIG
  devices; each consumes counters (``memory-slices``/``compute-slices``) of that GPU's counter set, so the
  allocator hands out either the whole GPU or partitions of it, never both.  The counter sets go in a slice of
  their own (the API allows devices or counters in one slice, not both);
- time-slicing (``sharing.timeSlicing.replicas`` > 1) as *consumable capacity* (DRAConsumableCapacity): the device
  has ``allowMultipleAllocations`` and a ``shares`` capacity of ``replicas`` (each allocation takes 1 by default) and
  ``memory`` (each takes ``memory / replicas`` by default), so at most ``replicas`` claims share it;
- VFIO passthrough (``passthrough: true`` in the GPU spec, NVIDIA's ``PassthroughSupport``): every GPU is also
  published as ``gpu-vfio-<index>``, ``type`` ``vfio`` (DeviceClass ``vfio.gpu.nvidia.com``), with the GPU's
  ``uuid``, ``productName``, PCI and NUMA attributes, NVIDIA's PCI ``vendorID``/``deviceID``, ``iommuFDEnabled``
  false and capacity ``addressableMemory``.  The GPU and its vfio device each consume the whole of the GPU's
  counter set (the one MIG uses), so the scheduler's allocator never hands out both at once.  (NVIDIA's driver
  instead withdraws the sibling from its slice once one is prepared; counters let the real scheduler do the
  exclusion before any node acts.)  A fake of the interface only: nothing is bound to vfio-pci;
- an unhealthy unit carries the device taint ``gpu.nvidia.com/unhealthy=true:NoSchedule`` (DRADeviceTaints): the
  scheduler does not allocate it unless a request tolerates that taint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fake_gpu_plugin.config import COMPUTE_SLICES, MEMORY_SLICES, InventoryConfig
from fake_gpu_plugin.inventory import Inventory, MigDevice, PhysicalGpu, Unit, parent_gpu
from fake_gpu_plugin.names import DRA_DRIVER, FAKE_CUDA_DRIVER_VERSION, FAKE_DRIVER_VERSION
from fake_gpu_plugin.nvml_backend import sysfs_bus_id

DRIVER = DRA_DRIVER
"""The DRA driver name (fake_gpu_plugin.names), also the attribute domain and the name of the whole-GPU DeviceClass."""
MIG_CLASS = "mig.nvidia.com"
"""The DeviceClass of every MIG device (NVIDIA's own name); one more per profile: ``<profile>.mig.nvidia.com``."""
VFIO_CLASS = "vfio.gpu.nvidia.com"
"""The DeviceClass of every VFIO passthrough device (NVIDIA's own name)."""
VFIO_TYPE = "vfio"
NVIDIA_PCI_VENDOR = "0x10de"
API_VERSION = "resource.k8s.io/v1"
STANDARD_DOMAIN = "resource.kubernetes.io"
"""The domain of Kubernetes' standard device attributes (``pciBusID``, ``pcieRoot``), shared by every driver."""
PCI_BUS_ID = f"{STANDARD_DOMAIN}/pciBusID"
PCIE_ROOT = f"{STANDARD_DOMAIN}/pcieRoot"
UNHEALTHY_TAINT = {"key": f"{DRIVER}/unhealthy", "value": "true", "effect": "NoSchedule"}
SHARES = "shares"
MAX_DEVICES_PER_SLICE = 64
"""The API's limit for a slice whose devices use taints or counters (128 otherwise; 64 keeps one rule)."""

FEATURE_GATES = {
    "partitionable": "DRAPartitionableDevices",
    "consumable-capacity": "DRAConsumableCapacity",
    "device-taints": "DRADeviceTaints",
}
"""Feature → the Kubernetes feature gate it needs (kube-apiserver, kube-scheduler, kubelet)."""


@dataclass(frozen=True)
class PublishedDevice:
    """One DRA device of the pool and the unit behind it."""

    name: str
    unit: Unit
    passthrough: bool = False
    """The VFIO passthrough face of the (whole) GPU ``unit``."""
    whole_counters: bool = False
    """Consumes the whole of its GPU's counter set (a carved GPU published whole, or a GPU or vfio device of a
    passthrough spec): nothing else of that GPU can be allocated beside it."""


def features_used(config: InventoryConfig) -> list[str]:
    """The DRA features a pool with this spec publishes (keys of ``FEATURE_GATES``); taints are always used (a
    device may turn unhealthy)."""
    out = []
    if (config.mig.enabled and any(config.mig.layout)) or config.passthrough:
        out.append("partitionable")
    if config.time_slicing.enabled:
        out.append("consumable-capacity")
    out.append("device-taints")
    return out


def device_name(unit: Unit) -> str:
    if isinstance(unit, MigDevice):
        return f"gpu-{unit.parent.index}-mig-{unit.slot}-{unit.profile.name.replace('.', '-')}"
    return f"gpu-{unit.index}"


def vfio_device_name(gpu: PhysicalGpu) -> str:
    return f"gpu-vfio-{gpu.index}"


def devices(inventory: Inventory) -> list[PublishedDevice]:
    """Every device of the pool, in a stable order: per GPU the whole GPU, its MIG devices, its vfio device."""
    out: list[PublishedDevice] = []
    passthrough = inventory.config.passthrough
    for gpu in inventory.gpus:
        migs = [m for m in inventory.mig_devices if m.parent.index == gpu.index]
        out.append(PublishedDevice(device_name(gpu), gpu, whole_counters=bool(migs) or passthrough))
        out += [PublishedDevice(device_name(m), m) for m in migs]
        if passthrough:
            out.append(PublishedDevice(vfio_device_name(gpu), gpu, passthrough=True, whole_counters=True))
    return out


def device_index(inventory: Inventory) -> dict[str, PublishedDevice]:
    return {d.name: d for d in devices(inventory)}


def counter_set_name(gpu: PhysicalGpu) -> str:
    return f"gpu-{gpu.index}-slices"


def _quantity_mib(mib: int) -> str:
    return f"{mib}Mi"


def semver(version: str) -> str:
    """A dotted version as the strict semver a ``version`` attribute must hold, as NVIDIA's driver normalizes it:
    missing parts are 0, leading zeros dropped (``12.4`` → ``12.4.0``, ``535.104.05`` → ``535.104.5``)."""
    parts = [str(int(p)) for p in version.strip().split(".")[:3]]
    return ".".join(parts + ["0"] * (3 - len(parts)))


def pci_bus_id(gpu: PhysicalGpu) -> str:
    """The GPU's PCI address in extended BDF (``0000:10:00.0``): NVML's for a real GPU, else derived (module doc)."""
    if gpu.pci_bus_id:
        return sysfs_bus_id(gpu.pci_bus_id)
    return f"{gpu.numa_node:04x}:{(0x10 + gpu.index) % 0x100:02x}:00.0"


def pcie_root(gpu: PhysicalGpu) -> str | None:
    """The GPU's PCIe root complex (``pci<domain>:<bus>``); None for a real GPU (module doc)."""
    return None if gpu.pci_bus_id else f"pci{gpu.numa_node:04x}:00"


def _pci_attributes(gpu: PhysicalGpu) -> dict[str, dict[str, Any]]:
    """The GPU's place on the PCI bus, under Kubernetes' standard domain: ``pciBusID`` and, where known,
    ``pcieRoot``."""
    attrs = {PCI_BUS_ID: {"string": pci_bus_id(gpu)}}
    root = pcie_root(gpu)
    if root:
        attrs[PCIE_ROOT] = {"string": root}
    return attrs


def _attributes(unit: Unit) -> dict[str, dict[str, Any]]:
    gpu = parent_gpu(unit)
    model = gpu.model
    attrs: dict[str, dict[str, Any]] = {
        "type": {"string": "mig" if isinstance(unit, MigDevice) else "gpu"},
        "uuid": {"string": unit.uuid},
        "productName": {"string": model.product},
        "brand": {"string": "Nvidia"},
        "architecture": {"string": model.family},
        "cudaComputeCapability": {"version": semver(f"{model.compute_major}.{model.compute_minor}")},
        "driverVersion": {"version": semver(FAKE_DRIVER_VERSION)},
        "cudaDriverVersion": {"version": semver(FAKE_CUDA_DRIVER_VERSION)},
        "index": {"int": gpu.index},
        "minor": {"int": gpu.minor},
        "numaNode": {"int": unit.numa_node},
        **_pci_attributes(gpu),
    }
    if isinstance(unit, MigDevice):
        attrs |= {"profile": {"string": unit.profile.name}, "parentUUID": {"string": gpu.uuid},
                  "parentIndex": {"int": gpu.index}}
    return attrs


def _vfio_attributes(gpu: PhysicalGpu) -> dict[str, dict[str, Any]]:
    """What NVIDIA's driver publishes for a GPU bound to vfio-pci (its ``gpu`` attributes mostly come from NVML,
    which a vfio-bound GPU no longer answers); the PCI ids are the model's."""
    attrs: dict[str, dict[str, Any]] = {
        "type": {"string": VFIO_TYPE},
        "uuid": {"string": gpu.uuid},
        "productName": {"string": gpu.model.product},
        "vendorID": {"string": NVIDIA_PCI_VENDOR},
        "iommuFDEnabled": {"bool": False},
        "index": {"int": gpu.index},
        "numaNode": {"int": gpu.numa_node},
        **_pci_attributes(gpu),
    }
    if gpu.model.pci_device_id is not None:
        attrs["deviceID"] = {"string": f"0x{gpu.model.pci_device_id:04x}"}
    return attrs


def _all_slices() -> dict[str, dict[str, str]]:
    """Every memory and compute slice of one GPU: its counter set's size, and what the whole GPU consumes of it."""
    return {"memory-slices": {"value": str(MEMORY_SLICES)}, "compute-slices": {"value": str(COMPUTE_SLICES)}}


def _whole_counters(gpu: PhysicalGpu) -> list[dict[str, Any]]:
    return [{"counterSet": counter_set_name(gpu), "counters": _all_slices()}]


def _device(dev: PublishedDevice, config: InventoryConfig, unhealthy: bool) -> dict[str, Any]:
    unit = dev.unit
    if dev.passthrough:
        assert isinstance(unit, PhysicalGpu)
        vfio: dict[str, Any] = {"name": dev.name, "attributes": _vfio_attributes(unit),
                                "capacity": {"addressableMemory": {"value": _quantity_mib(unit.memory_mib)}},
                                "consumesCounters": _whole_counters(unit)}
        if unhealthy:
            vfio["taints"] = [dict(UNHEALTHY_TAINT)]
        return vfio
    out: dict[str, Any] = {"name": dev.name, "attributes": _attributes(unit)}
    memory: dict[str, Any] = {"value": _quantity_mib(unit.memory_mib)}
    capacity: dict[str, Any] = {"memory": memory}
    slicing = config.time_slicing
    if slicing.enabled:
        out["allowMultipleAllocations"] = True
        memory["requestPolicy"] = {"default": _quantity_mib(unit.memory_mib // slicing.replicas),
                                   "validRange": {"min": "1Mi"}}
        capacity[SHARES] = {"value": str(slicing.replicas),
                            "requestPolicy": {"default": "1", "validRange": {"min": "1", "step": "1"}}}
    out["capacity"] = capacity
    gpu = parent_gpu(unit)
    if dev.whole_counters:
        out["consumesCounters"] = _whole_counters(gpu)
    elif isinstance(unit, MigDevice):
        out["consumesCounters"] = [{"counterSet": counter_set_name(gpu), "counters": {
            "memory-slices": {"value": str(unit.profile.memory_slices)},
            "compute-slices": {"value": str(unit.profile.compute_slices)}}}]
    if unhealthy:
        out["taints"] = [dict(UNHEALTHY_TAINT)]
    return out


def slice_name(node: str, part: str) -> str:
    return f"{node}-{DRIVER}-{part}"


def resource_slices(inventory: Inventory, *, unhealthy: frozenset[str] = frozenset(), generation: int = 1,
                    labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The ResourceSlice objects of the node's pool (pool name = node name, ``nodeName`` set).

    ``unhealthy``: GPU/MIG UUIDs held unhealthy (a GPU's taint covers its MIG devices); ``generation``: the pool
    generation (bump it on every change, so the scheduler drops slices of an older one).
    """
    node = inventory.node_name
    published = devices(inventory)
    counted = [g for g in inventory.gpus if any(d.whole_counters and d.unit is g for d in published)]
    bodies = [_device(d, inventory.config, bool({d.unit.uuid, parent_gpu(d.unit).uuid} & unhealthy))
              for d in published]
    chunks = [bodies[i:i + MAX_DEVICES_PER_SLICE] for i in range(0, len(bodies), MAX_DEVICES_PER_SLICE)] or [[]]
    specs: list[tuple[str, dict[str, Any]]] = []
    if counted:
        specs.append(("counters", {"sharedCounters": [
            {"name": counter_set_name(g), "counters": _all_slices()} for g in counted]}))
    specs += [(f"devices-{i}", {"devices": chunk}) for i, chunk in enumerate(chunks)]
    out = []
    for part, body in specs:
        spec = {"driver": DRIVER, "nodeName": node,
                "pool": {"name": node, "generation": generation, "resourceSliceCount": len(specs)}, **body}
        meta: dict[str, Any] = {"name": slice_name(node, part)}
        if labels:
            meta["labels"] = dict(labels)
        out.append({"apiVersion": API_VERSION, "kind": "ResourceSlice", "metadata": meta, "spec": spec})
    return out


def _class(name: str, expression: str, labels: Mapping[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": API_VERSION, "kind": "DeviceClass", "metadata": meta,
            "spec": {"selectors": [{"cel": {"expression": expression}}]}}


def device_classes(configs: Iterable[InventoryConfig], *,
                   labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """``gpu.nvidia.com`` (whole GPUs), ``mig.nvidia.com`` (every MIG device), ``vfio.gpu.nvidia.com`` (every VFIO
    passthrough device) and ``<profile>.mig.nvidia.com`` per MIG profile any of ``configs`` carves (NVIDIA's driver
    ships the first three whatever it publishes)."""
    attr = f'device.attributes["{DRIVER}"]'
    base = f'device.driver == "{DRIVER}"'
    out = [_class(DRIVER, f'{base} && {attr}.type == "gpu"', labels),
           _class(MIG_CLASS, f'{base} && {attr}.type == "mig"', labels),
           _class(VFIO_CLASS, f'{base} && {attr}.type == "{VFIO_TYPE}"', labels)]
    profiles = sorted({name for c in configs if c.mig.enabled for per_gpu in c.mig.layout for name in per_gpu})
    out += [_class(f"{p}.{MIG_CLASS}", f'{base} && {attr}.type == "mig" && {attr}.profile == "{p}"', labels)
            for p in profiles]
    return out


def gpu_devices_of_slices(slices: Iterable[Mapping[str, Any]]) -> int:
    """Whole GPUs offered through DRA by these slices (what tier detection and GPU totals count)."""
    total = 0
    for s in slices:
        spec = s.get("spec", {})
        if spec.get("driver") != DRIVER:
            continue
        for dev in spec.get("devices") or []:
            if (dev.get("attributes", {}).get("type") or {}).get("string") == "gpu":
                total += 1
    return total
