"""The nvml backend: the machine's REAL GPUs, MIG devices and health, fed into the same device-plugin code path.

Owns the two things that differ from the fake: where the inventory comes from (NVML's answers instead of a config
file) and a second health source (NVML Xid events instead of only the control file).  Everything else is shared:
``inventory.assemble_inventory`` maps the devices onto resource names, ``allocate``/``preferred``/``service``/
``plugin`` serve the kubelet exactly as for the fake, ``plugin.HealthSource`` merges the Xid verdicts with the control
file at the same supervisor tick.

Interface (all the CLI uses)::

    backend = NvmlBackend.open()                       # NvmlError: one line, when NVML cannot be used
    inventory = backend.inventory(node_name, NvmlSettings(mig_strategy="mixed"))
    health = backend.health_source(inventory)          # a plugin.HealthSource
    FakeGpuPlugin(inventory, settings, health_source=health) ...
    backend.close()

NVML is reached through the ``pynvml`` module of nvidia-ml-py, imported lazily (the fake never needs it) and passed
around as a plain object, so unit tests hand in ``testing.RecordedNvml``, which replays answers recorded on a real
machine by ``record_nvml`` (the same calls, listed once in ``GPU_CALLS``/``MIG_CALLS``).

What is read: device count; per GPU its UUID, name (-> a ``models.CATALOGUE`` model where the product name is known,
else a model built from NVML's own figures), memory, PCI bus id, minor number, NUMA node (NVML, else sysfs, else 0),
compute capability, default power limit, MIG mode and MIG devices (UUID, profile from the device name, memory, GPU and
compute instance ids).  A MIG device's ``/dev/nvidia-caps/nvidia-cap<N>`` nodes come from
``/proc/driver/nvidia-caps/mig-minors``.

Health follows NVIDIA's k8s-device-plugin (internal/rm/health.go): register Xid critical error, double- and
single-bit ECC events on every GPU, wait in a loop; only Xid critical errors count, minus the ignored Xids; an event
carrying a GPU/compute instance id marks that MIG device, otherwise the whole GPU (and with it its MIG devices and
replicas); a failed registration or a failed wait marks the GPU(s) unhealthy.  Unhealthy is sticky until restart, as
there.  ``DP_DISABLE_HEALTHCHECKS``/``DP_ENABLE_HEALTHCHECKS`` are honoured with the same meaning.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fake_gpu_plugin.config import MIG_STRATEGIES, InventoryConfig, MigConfig, TimeSlicing, config_from_pool
from fake_gpu_plugin.errors import ConfigError, NvmlError, PluginError
from fake_gpu_plugin.inventory import Inventory, MigDevice, PhysicalGpu, assemble_inventory
from fake_gpu_plugin.models import CATALOGUE, GpuModel, MigProfile

log = logging.getLogger(__name__)

HARDWARE = "nvml"
MIB = 1024 * 1024
NO_INSTANCE = 0xFFFFFFFF
"""GPU/compute instance id of an event that is not about one MIG device."""

# Xids NVIDIA's device plugin ignores by default: application errors, the GPU stays healthy.  Source:
# NVIDIA/k8s-device-plugin, internal/rm/health.go, getDisabledHealthCheckXids ("ignoredXids": 13 Graphics Engine
# Exception, 31 GPU memory page fault, 43 GPU stopped processing, 45 Preemptive cleanup, 68 Video processor
# exception, 109 Context Switch Timeout Error), with DP_DISABLE_HEALTHCHECKS ("all"/"xids" or a list of Xids to
# ignore as well) and DP_ENABLE_HEALTHCHECKS (Xids that count even so; "all": every Xid counts).
DEFAULT_IGNORED_XIDS = frozenset({13, 31, 43, 45, 68, 109})
DISABLE_ENV = "DP_DISABLE_HEALTHCHECKS"
ENABLE_ENV = "DP_ENABLE_HEALTHCHECKS"

# The NVML calls this module makes per GPU and per MIG device (and that record_nvml records).
GPU_CALLS = ("nvmlDeviceGetUUID", "nvmlDeviceGetName", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetPciInfo",
             "nvmlDeviceGetMinorNumber", "nvmlDeviceGetNumaNodeId", "nvmlDeviceGetCudaComputeCapability",
             "nvmlDeviceGetPowerManagementDefaultLimit", "nvmlDeviceGetMigMode", "nvmlDeviceGetMaxMigDeviceCount",
             "nvmlDeviceGetSupportedEventTypes")
MIG_CALLS = ("nvmlDeviceGetUUID", "nvmlDeviceGetName", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetGpuInstanceId",
             "nvmlDeviceGetComputeInstanceId", "nvmlDeviceGetAttributes")
SYSTEM_CALLS = ("nvmlSystemGetDriverVersion", "nvmlSystemGetNVMLVersion", "nvmlSystemGetCudaDriverVersion",
                "nvmlDeviceGetCount")

_FAMILIES = {7: "volta", 8: "ampere", 9: "hopper", 10: "blackwell", 12: "blackwell"}
_MIG_NAME = re.compile(r"\bMIG\s+(\S+)$")


# ---- facts -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigFacts:
    """One MIG device as NVML reports it."""

    slot: int
    uuid: str
    profile: str
    memory_mib: int
    gpu_instance_id: int
    compute_instance_id: int
    gpu_slices: int


@dataclass(frozen=True)
class GpuFacts:
    """One physical GPU as NVML reports it."""

    index: int
    uuid: str
    name: str
    memory_mib: int
    pci_bus_id: str
    minor: int
    numa_node: int
    compute_capability: tuple[int, int] | None
    power_watts: int | None
    mig_enabled: bool
    mig_devices: tuple[MigFacts, ...]


@dataclass(frozen=True)
class NvmlSettings:
    """What the operator chooses on real GPUs (the hardware says the rest): MIG strategy and time-slicing."""

    mig_strategy: str = "none"
    """``none`` (whole GPUs, NVIDIA's default), ``single`` or ``mixed``; as in NVIDIA's device plugin."""
    time_slicing: TimeSlicing = TimeSlicing()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_error(nvml: Any, err: BaseException, *names: str) -> bool:
    return isinstance(err, nvml.NVMLError) and getattr(err, "value", None) in {getattr(nvml, n, None) for n in names}


def sysfs_bus_id(nvml_bus_id: str) -> str:
    """NVML's ``00000000:3B:00.0`` as sysfs spells it (``0000:3b:00.0``)."""
    domain, sep, rest = nvml_bus_id.partition(":")
    if not sep:
        return nvml_bus_id.lower()
    return f"{int(domain, 16):04x}:{rest.lower()}"


def read_gpus(nvml: Any, *, host_root: Path = Path("/")) -> tuple[GpuFacts, ...]:
    """Every GPU NVML sees, with its MIG devices.  NvmlError when NVML cannot answer what a device plugin needs."""
    try:
        count = int(nvml.nvmlDeviceGetCount())
    except nvml.NVMLError as err:
        raise NvmlError(f"NVML cannot count the GPUs: {err}") from err
    gpus = []
    for index in range(count):
        try:
            gpus.append(_read_gpu(nvml, index, host_root))
        except nvml.NVMLError as err:
            raise NvmlError(f"NVML cannot describe GPU {index}: {err}") from err
    return tuple(gpus)


def _read_gpu(nvml: Any, index: int, host_root: Path) -> GpuFacts:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    bus_id = _text(nvml.nvmlDeviceGetPciInfo(handle).busId)
    try:
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
        capability: tuple[int, int] | None = (int(major), int(minor))
    except nvml.NVMLError:
        capability = None
    try:
        power: int | None = int(nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle)) // 1000
    except nvml.NVMLError:
        power = None
    mig_enabled = False
    migs: list[MigFacts] = []
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
        mig_enabled = current == nvml.NVML_DEVICE_MIG_ENABLE
    except nvml.NVMLError as err:
        if not _is_error(nvml, err, "NVML_ERROR_NOT_SUPPORTED"):
            raise
    if mig_enabled:
        for slot in range(int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nvml.NVMLError as err:
                if _is_error(nvml, err, "NVML_ERROR_NOT_FOUND", "NVML_ERROR_INVALID_ARGUMENT"):
                    continue
                raise
            migs.append(_read_mig(nvml, mig, slot))
    return GpuFacts(
        index=index, uuid=_text(nvml.nvmlDeviceGetUUID(handle)), name=_text(nvml.nvmlDeviceGetName(handle)),
        memory_mib=int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // MIB, pci_bus_id=bus_id,
        minor=int(nvml.nvmlDeviceGetMinorNumber(handle)), numa_node=_numa_node(nvml, handle, bus_id, host_root),
        compute_capability=capability, power_watts=power, mig_enabled=mig_enabled, mig_devices=tuple(migs))


def _read_mig(nvml: Any, handle: Any, slot: int) -> MigFacts:
    found = _MIG_NAME.search(_text(nvml.nvmlDeviceGetName(handle)))
    try:
        attrs = nvml.nvmlDeviceGetAttributes(handle)
        memory_mib, gpu_slices = int(attrs.memorySizeMB), int(attrs.gpuInstanceSliceCount)
    except nvml.NVMLError:
        memory_mib, gpu_slices = 0, 0
    if not memory_mib:
        memory_mib = int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // MIB
    if not gpu_slices and found and (digits := re.match(r"(?:\d+c\.)?(\d+)g\.", found.group(1))):
        gpu_slices = int(digits.group(1))
    # NVML names a MIG device "<product> MIG <profile>"; the fallback spells the profile the same way.
    profile = found.group(1) if found else f"{gpu_slices}g.{math.ceil(memory_mib / 1024)}gb"
    return MigFacts(slot=slot, uuid=_text(nvml.nvmlDeviceGetUUID(handle)), profile=profile, memory_mib=memory_mib,
                    gpu_instance_id=int(nvml.nvmlDeviceGetGpuInstanceId(handle)),
                    compute_instance_id=int(nvml.nvmlDeviceGetComputeInstanceId(handle)), gpu_slices=gpu_slices)


def _numa_node(nvml: Any, handle: Any, bus_id: str, host_root: Path) -> int:
    try:
        node = int(nvml.nvmlDeviceGetNumaNodeId(handle))
        if node >= 0:
            return node
    except (nvml.NVMLError, AttributeError):
        pass  # older drivers and bindings: sysfs knows
    try:
        node = int((host_root / "sys/bus/pci/devices" / sysfs_bus_id(bus_id) / "numa_node").read_text().strip())
    except (OSError, ValueError):
        return 0
    return max(node, 0)


# ---- inventory ---------------------------------------------------------------------------------------------------


def gpu_model(facts: GpuFacts) -> GpuModel:
    """The catalogue model with NVML's product name (figures from NVML), else one built from NVML's answers."""
    for model in CATALOGUE.values():
        if model.product.lower() == facts.name.lower():
            known = model
            break
    else:
        major, minor = facts.compute_capability or (0, 0)
        known = GpuModel(key=facts.name.replace(" ", "-"), product=facts.name, memory_mib=facts.memory_mib,
                         family=_FAMILIES.get(major, "unknown"), compute_major=major, compute_minor=minor,
                         power_watts=facts.power_watts or 0)
    return replace(known, memory_mib=facts.memory_mib, power_watts=facts.power_watts or known.power_watts)


def mig_profile(model: GpuModel, mig: MigFacts, gpu_memory_mib: int) -> MigProfile:
    """The model's profile of that name with NVML's memory figure, else one built from NVML's answers."""
    for profile in model.mig_profiles:
        if profile.name == mig.profile:
            return replace(profile, memory_mib=mig.memory_mib)
    memory_slices = max(1, round(mig.memory_mib * 8 / max(gpu_memory_mib, 1)))
    return MigProfile(mig.profile, mig.gpu_slices, memory_slices, mig.memory_mib, max_instances=0)


def parse_mig_minors(text: str) -> dict[str, int]:
    """``/proc/driver/nvidia-caps/mig-minors``: ``gpu0/gi1/access 12`` lines -> {"gpu0/gi1/access": 12}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def mig_cap_nodes(gpu: GpuFacts, mig: MigFacts, minors: Mapping[str, int]) -> tuple[str, ...]:
    """The ``nvidia-caps/nvidia-cap<N>`` nodes (relative to /dev) that give a container this GPU/compute instance."""
    gi = f"gpu{gpu.minor}/gi{mig.gpu_instance_id}"
    keys = (f"{gi}/access", f"{gi}/ci{mig.compute_instance_id}/access")
    return tuple(f"nvidia-caps/nvidia-cap{minors[k]}" for k in keys if k in minors)


def build_nvml_inventory(gpus: Sequence[GpuFacts], node_name: str, settings: NvmlSettings, *,
                         mig_minors: Mapping[str, int] | None = None,
                         node_exists: Callable[[str], bool] = lambda name: True) -> Inventory:
    """The inventory of these real GPUs under ``settings`` (MIG strategy, time-slicing), as NVIDIA's plugin would
    advertise them: ``none`` whole GPUs; ``single`` every GPU's MIG devices as ``nvidia.com/gpu``; ``mixed``
    ``nvidia.com/mig-<profile>`` for MIG GPUs and ``nvidia.com/gpu`` for the rest.  ``node_exists`` says whether a
    device node (relative to /dev) is there; MIG capability nodes that are not are left out (with a warning)."""
    if not gpus:
        raise NvmlError("NVML sees no GPU on this machine")
    if settings.mig_strategy not in MIG_STRATEGIES:
        raise ConfigError("gpu.mig.strategy", f"must be one of {', '.join(MIG_STRATEGIES)}, "
                                              f"got {settings.mig_strategy!r}")
    strategy = _effective_strategy(gpus, settings.mig_strategy)
    physical: list[PhysicalGpu] = []
    migs: list[MigDevice] = []
    unadvertised: set[int] = set()
    layout: list[tuple[str, ...]] = []
    for facts in gpus:
        model = gpu_model(facts)
        gpu = PhysicalGpu(index=facts.index, uuid=facts.uuid, numa_node=facts.numa_node, model=model,
                          dev_minor=facts.minor, pci_bus_id=facts.pci_bus_id)
        physical.append(gpu)
        carved = facts.mig_devices if strategy != "none" and facts.mig_enabled else ()
        if strategy == "mixed" and facts.mig_enabled and not carved:
            log.warning("GPU %d (%s) is in MIG mode with no MIG devices: not advertised", facts.index, facts.uuid)
            unadvertised.add(facts.index)
        for mig in carved:
            nodes = mig_cap_nodes(facts, mig, mig_minors or {})
            present = tuple(n for n in nodes if node_exists(n))
            if len(present) < 2:
                log.warning("MIG device %s: capability device nodes not found (have %s); a container may not be "
                            "able to use it", mig.uuid, list(present) or "none")
            migs.append(MigDevice(uuid=mig.uuid, parent=gpu, slot=mig.slot,
                                  profile=mig_profile(model, mig, facts.memory_mib), device_nodes=present))
        layout.append(tuple(m.profile for m in carved))
    numa = len({g.numa_node for g in physical})
    config = InventoryConfig(model=physical[0].model.key, count=len(physical), numa_nodes=numa,
                             mig=MigConfig(strategy, tuple(layout)) if strategy != "none" else MigConfig(),
                             time_slicing=settings.time_slicing, pool=HARDWARE)
    fingerprint = _fingerprint(node_name, config, physical, migs)
    return assemble_inventory(node_name, config, tuple(physical), tuple(migs), fingerprint=fingerprint,
                              hardware=HARDWARE, unadvertised=frozenset(unadvertised))


def _effective_strategy(gpus: Sequence[GpuFacts], strategy: str) -> str:
    if strategy != "single":
        return strategy
    mig_gpus = [g for g in gpus if g.mig_enabled]
    if not mig_gpus:
        log.warning("MIG strategy single, but no GPU is in MIG mode: advertising whole GPUs (strategy none)")
        return "none"
    if len(mig_gpus) != len(gpus):
        off = ", ".join(str(g.index) for g in gpus if not g.mig_enabled)
        raise NvmlError(f"MIG strategy single needs every GPU in MIG mode; GPU(s) {off} are not (use mixed)")
    profiles = {m.profile for g in gpus for m in g.mig_devices}
    if len(profiles) != 1 or any(not g.mig_devices for g in gpus):
        raise NvmlError("MIG strategy single needs every GPU carved into one and the same profile, found "
                        f"{', '.join(sorted(profiles)) or 'no MIG devices'} (use mixed)")
    return strategy


def _fingerprint(node: str, config: InventoryConfig, gpus: Sequence[PhysicalGpu], migs: Sequence[MigDevice]) -> str:
    seed = repr((node, config, [(g.uuid, g.minor) for g in gpus], [(m.uuid, m.profile.name) for m in migs]))
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def settings_from_file(path: Path) -> NvmlSettings:
    """The nvml backend's part of a config file: ``gpu.mig.strategy`` and ``gpu.sharing`` only (the hardware says
    model, count, NUMA and MIG layout; naming them is an error).  ConfigError naming the field otherwise."""
    import yaml

    source = str(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError("", "config file not found", source=source) from None
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError("", f"unreadable config: {str(err).splitlines()[0]}", source=source) from err
    gpu = data.get("gpu", {}) if isinstance(data, dict) else None
    if not isinstance(gpu, dict):
        raise ConfigError("gpu", "must be a mapping", source=source)
    for key in ("model", "count", "numaNodes"):
        if key in gpu:
            raise ConfigError(f"gpu.{key}", "set, but the nvml backend reads it from the hardware; remove it",
                              source=source)
    mig = gpu.get("mig", {}) or {}
    if not isinstance(mig, dict) or set(mig) - {"strategy"}:
        raise ConfigError("gpu.mig", "only strategy can be set with the nvml backend (the layout is the "
                                     "hardware's: nvidia-smi mig)", source=source)
    strategy = mig.get("strategy", "none")
    if strategy not in MIG_STRATEGIES:
        raise ConfigError("gpu.mig.strategy", f"must be one of {', '.join(MIG_STRATEGIES)}, got {strategy!r}",
                          source=source)
    # One parser for sharing: validate it as part of a minimal pool (its errors name gpu.sharing... fields).
    parsed = config_from_pool({"gpu": {"model": "H100", "count": 1, "sharing": gpu.get("sharing", {})}},
                              source=source)
    return NvmlSettings(mig_strategy=strategy, time_slicing=parsed.time_slicing)


# ---- health ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class XidFilter:
    """Which Xids leave a GPU healthy (NVIDIA's device plugin semantics, see the module docstring)."""

    ignored: frozenset[int] = DEFAULT_IGNORED_XIDS
    ignore_all: bool = False
    counted: frozenset[int] = frozenset()
    """Explicitly enabled: count even if ignored."""
    count_all: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> XidFilter:
        def parse(value: str) -> tuple[bool, frozenset[int]]:
            items = [v.strip() for v in value.lower().split(",") if v.strip()]
            if any(v in ("all", "xids") for v in items):
                return True, frozenset()
            return False, frozenset(int(v) for v in items if v.isdigit())

        ignore_all, ignored = parse(env.get(DISABLE_ENV, ""))
        count_all, counted = parse(env.get(ENABLE_ENV, ""))
        return cls(ignored=ignored | DEFAULT_IGNORED_XIDS, ignore_all=ignore_all, counted=counted, count_all=count_all)

    @property
    def off(self) -> bool:
        """No Xid can count: the health watcher is not started."""
        return self.ignore_all and not self.counted and not self.count_all

    def ignores(self, xid: int) -> bool:
        if self.count_all or xid in self.counted:
            return False
        return self.ignore_all or xid in self.ignored


class NvmlHealth:
    """A ``plugin.HealthSource``: a thread waiting on an NVML event set; Xid critical errors mark devices unhealthy."""

    def __init__(self, nvml: Any, gpus: Sequence[GpuFacts], known: frozenset[str], *, xids: XidFilter,
                 wait_ms: int = 500) -> None:
        self.nvml = nvml
        self.gpus = tuple(gpus)
        self.known = known
        """UUIDs the inventory advertises: an event on a MIG device that is not advertised marks its GPU."""
        self.xids = xids
        self.wait_ms = wait_ms
        self.events_seen = 0
        self._unhealthy: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._event_set: Any = None

    def unhealthy(self) -> frozenset[str]:
        with self._lock:
            return self._unhealthy

    def start(self) -> None:
        nvml = self.nvml
        if self.xids.off:
            log.info("NVML health checks disabled (%s)", DISABLE_ENV)
            return
        try:
            self._event_set = nvml.nvmlEventSetCreate()
        except nvml.NVMLError as err:
            raise NvmlError(f"NVML cannot create an event set: {err}") from err
        wanted = nvml.nvmlEventTypeXidCriticalError | nvml.nvmlEventTypeDoubleBitEccError | \
            nvml.nvmlEventTypeSingleBitEccError
        for gpu in self.gpus:
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(gpu.index)
                supported = int(nvml.nvmlDeviceGetSupportedEventTypes(handle))
                nvml.nvmlDeviceRegisterEvents(handle, wanted & supported, self._event_set)
            except nvml.NVMLError as err:
                # As NVIDIA's plugin: a GPU whose events cannot be watched is reported unhealthy.
                log.warning("GPU %d (%s): cannot register NVML events (%s); marking it unhealthy", gpu.index,
                            gpu.uuid, err)
                self._mark({gpu.uuid})
        log.info("NVML health: watching %d GPU(s); ignoring Xids %s%s", len(self.gpus),
                 sorted(self.xids.ignored), " (and all others)" if self.xids.ignore_all else "")
        self._thread = threading.Thread(target=self._watch, name="nvml-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.wait_ms / 1000 + 5)
            self._thread = None
        if self._event_set is not None:
            try:
                self.nvml.nvmlEventSetFree(self._event_set)
            except self.nvml.NVMLError as err:
                log.debug("nvmlEventSetFree: %s", err)
            self._event_set = None

    def _watch(self) -> None:
        nvml = self.nvml
        while not self._stop.is_set():
            try:
                event = nvml.nvmlEventSetWait(self._event_set, self.wait_ms)
            except nvml.NVMLError as err:
                if _is_error(nvml, err, "NVML_ERROR_TIMEOUT"):
                    continue
                log.warning("NVML event wait failed (%s); marking every GPU unhealthy", err)
                self._mark({g.uuid for g in self.gpus})
                self._stop.wait(1.0)
                continue
            self.events_seen += 1
            try:
                self.handle_event(event)
            except PluginError as err:
                log.warning("%s", err)

    def handle_event(self, event: Any) -> str | None:
        """Apply one NVML event; returns the UUID it marked unhealthy, None when it changes nothing."""
        nvml = self.nvml
        xid = int(event.eventData)
        if int(event.eventType) != nvml.nvmlEventTypeXidCriticalError:
            log.info("NVML event type 0x%x (data %d) is not an Xid critical error; ignored", event.eventType, xid)
            return None
        if self.xids.ignores(xid):
            log.info("Xid %d ignored (an application error; the GPU stays healthy)", xid)
            return None
        try:
            parent = _text(nvml.nvmlDeviceGetUUID(event.device))
        except nvml.NVMLError as err:
            log.warning("Xid %d on a device NVML cannot name (%s); marking every GPU unhealthy", xid, err)
            self._mark({g.uuid for g in self.gpus})
            return None
        gpu = next((g for g in self.gpus if g.uuid == parent), None)
        if gpu is None:
            log.info("Xid %d on %s, which this plugin does not advertise; ignored", xid, parent)
            return None
        target = gpu.uuid
        gi, ci = int(event.gpuInstanceId), int(event.computeInstanceId)
        if gpu.mig_devices and gi != NO_INSTANCE and ci != NO_INSTANCE:
            mig = next((m for m in gpu.mig_devices if (m.gpu_instance_id, m.compute_instance_id) == (gi, ci)), None)
            if mig is None:
                log.info("Xid %d on %s gi=%d ci=%d, no such MIG device; ignored", xid, parent, gi, ci)
                return None
            if mig.uuid in self.known:
                target = mig.uuid
        log.warning("Xid %d (critical) on %s: marking %s unhealthy", xid, parent, target)
        self._mark({target})
        return target

    def _mark(self, uuids: set[str]) -> None:
        with self._lock:
            self._unhealthy = self._unhealthy | uuids


# ---- the backend -------------------------------------------------------------------------------------------------


def load_nvml(module: str = "pynvml") -> Any:
    """Import nvidia-ml-py's ``pynvml`` and initialise NVML; NvmlError with one clear line otherwise."""
    try:
        nvml = importlib.import_module(module)
    except ImportError as err:
        raise NvmlError(f"the nvml backend needs nvidia-ml-py (pip install 'aiconform[nvml]'): {err}") from err
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        raise NvmlError(f"cannot load NVML ({err}): is the NVIDIA driver installed and libnvidia-ml.so.1 "
                        "on the library path?") from err
    return nvml


class NvmlBackend:
    """NVML opened once: the GPUs it reports, the inventory built from them, their health source."""

    def __init__(self, nvml: Any, *, host_root: Path = Path("/"), dev_root: Path = Path("/dev"),
                 env: Mapping[str, str] | None = None) -> None:
        self.nvml = nvml
        self.host_root = host_root
        self.dev_root = dev_root
        self.env = os.environ if env is None else env
        self.gpus = read_gpus(nvml, host_root=host_root)
        log.info("NVML: %d GPU(s): %s", len(self.gpus),
                 "; ".join(f"{g.index}: {g.name} {g.uuid} MIG {'on' if g.mig_enabled else 'off'}" for g in self.gpus))

    @classmethod
    def open(cls, *, dev_root: Path = Path("/dev")) -> NvmlBackend:
        nvml = load_nvml()
        try:
            return cls(nvml, dev_root=dev_root)
        except BaseException:
            nvml.nvmlShutdown()
            raise

    def mig_minors(self) -> dict[str, int]:
        try:
            return parse_mig_minors((self.host_root / "proc/driver/nvidia-caps/mig-minors").read_text())
        except OSError:
            return {}

    def inventory(self, node_name: str, settings: NvmlSettings) -> Inventory:
        return build_nvml_inventory(self.gpus, node_name, settings, mig_minors=self.mig_minors(),
                                    node_exists=lambda name: os.path.lexists(self.dev_root / name))

    def health_source(self, inventory: Inventory) -> NvmlHealth:
        return NvmlHealth(self.nvml, self.gpus, frozenset(inventory.known_uuids()), xids=XidFilter.from_env(self.env))

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError as err:
            log.debug("nvmlShutdown: %s", err)


# ---- recording (for fixtures and bug reports) --------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    fields = getattr(value, "_fields_", None)
    if fields is not None:  # a ctypes structure of pynvml
        return {name: _jsonable(getattr(value, name)) for name, *_ in fields}
    if isinstance(value, SimpleNamespace):  # a replayed one (testing.RecordedNvml)
        return {name: _jsonable(v) for name, v in vars(value).items()}
    return repr(value)


def _ask(nvml: Any, call: str, *args: Any) -> dict[str, Any]:
    """One NVML answer as ``{"value": ...}`` or ``{"error": code, "message": ...}``."""
    fn = getattr(nvml, call, None)
    if fn is None:
        return {"error": getattr(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", 13), "message": f"{call} not in pynvml"}
    try:
        return {"value": _jsonable(fn(*args))}
    except nvml.NVMLError as err:
        return {"error": getattr(err, "value", None), "message": str(err)}


def record_nvml(nvml: Any, *, host_root: Path = Path("/"), event_wait_ms: int = 200) -> dict[str, Any]:
    """NVML's answers to every call this module makes, as JSON-able data (``testing.RecordedNvml`` replays it).

    Reads only: nothing on the GPU changes (an event set is created, registered, waited on and freed)."""
    out: dict[str, Any] = {"format": 1, "pynvml": getattr(nvml, "__version__", None) or _pynvml_version(),
                           "system": {call: _ask(nvml, call) for call in SYSTEM_CALLS}, "devices": [], "host": {}}
    count = out["system"]["nvmlDeviceGetCount"].get("value") or 0
    handles = []
    for index in range(count):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        handles.append(handle)
        device: dict[str, Any] = {call: _ask(nvml, call, handle) for call in GPU_CALLS}
        slots = []
        max_migs = device["nvmlDeviceGetMaxMigDeviceCount"].get("value") or 0
        mig_on = (device["nvmlDeviceGetMigMode"].get("value") or [0])[0] == getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1)
        for slot in range(max_migs if mig_on else 0):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nvml.NVMLError as err:
                slots.append({"slot": slot, "error": getattr(err, "value", None), "message": str(err)})
                continue
            slots.append({"slot": slot, **{call: _ask(nvml, call, mig) for call in MIG_CALLS}})
        device["mig_devices"] = slots
        out["devices"].append(device)
    host = out["host"]
    for device in out["devices"]:
        bus = (device["nvmlDeviceGetPciInfo"].get("value") or {}).get("busId")
        if bus:
            path = host_root / "sys/bus/pci/devices" / sysfs_bus_id(bus) / "numa_node"
            host[str(path.relative_to(host_root))] = path.read_text() if path.exists() else None
    minors = host_root / "proc/driver/nvidia-caps/mig-minors"
    # The driver lists every possible GPU (32 x 15 GPU instances x 8 compute instances); keep this machine's GPUs.
    gpus = {f"gpu{d['nvmlDeviceGetMinorNumber'].get('value')}" for d in out["devices"]}
    host["proc/driver/nvidia-caps/mig-minors"] = "".join(
        line for line in minors.read_text().splitlines(keepends=True)
        if not line.startswith("gpu") or line.split("/")[0] in gpus) if minors.exists() else None
    out["dev"] = sorted(str(p.relative_to(host_root / "dev")) for p in (host_root / "dev").glob("nvidia*"))
    out["events"] = _record_events(nvml, handles, event_wait_ms)
    return out


def _record_events(nvml: Any, handles: Sequence[Any], wait_ms: int) -> dict[str, Any]:
    created = _ask(nvml, "nvmlEventSetCreate")
    if "error" in created:
        return {"nvmlEventSetCreate": created}
    event_set = nvml.nvmlEventSetCreate()
    wanted = nvml.nvmlEventTypeXidCriticalError | nvml.nvmlEventTypeDoubleBitEccError | \
        nvml.nvmlEventTypeSingleBitEccError
    register = []
    for handle in handles:
        supported = _ask(nvml, "nvmlDeviceGetSupportedEventTypes", handle).get("value") or 0
        register.append(_ask(nvml, "nvmlDeviceRegisterEvents", handle, wanted & supported, event_set))
    waited = _ask(nvml, "nvmlEventSetWait", event_set, wait_ms)
    freed = _ask(nvml, "nvmlEventSetFree", event_set)
    return {"mask": wanted, "nvmlDeviceRegisterEvents": register, "nvmlEventSetWait": waited, "nvmlEventSetFree": freed}


def _pynvml_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("nvidia-ml-py")
    except Exception:  # noqa: BLE001 - informational only
        return None
