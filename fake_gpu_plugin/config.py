"""The inventory config: which GPUs one node has and how they are carved up and shared.

Owns parsing and validating the config (from a YAML/JSON file or from a harness profile's pool dict, one parser for
both, so there is one source of truth).  Does not build devices (``inventory``) and knows nothing of gRPC.

The format is the pool dict of an aiconform profile::

    name: gpu-pool            # optional, informational
    nodes: 2                  # optional, read by the harness only (as are cpu, memory, labels, taints, ...)
    gpu:
      model: A100-SXM4-80GB   # a key or alias of fake_gpu_plugin.models.CATALOGUE
      count: 8
      numaNodes: 2            # optional; default 2 when count >= 2, else 1
      mig:
        strategy: mixed       # none | single | mixed
        layout: ...           # see MigConfig
      sharing:
        timeSlicing:
          replicas: 4
          renameByDefault: false
          failRequestsGreaterThanOne: false

Every error names the bad field by its path, e.g. ``gpu.mig.layout[1]: ...``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_gpu_plugin.errors import ConfigError
from fake_gpu_plugin.models import GpuModel, MigProfile, lookup

MIG_STRATEGIES = ("none", "single", "mixed")
COMPUTE_SLICES = 7
MEMORY_SLICES = 8


@dataclass(frozen=True)
class TimeSlicing:
    """Time-slicing as NVIDIA's device plugin configures it (``sharing.timeSlicing``)."""

    replicas: int = 1
    """Each GPU (or MIG device) is advertised this many times; 1 means no sharing."""
    rename_by_default: bool = False
    """Advertise shared resources as ``<name>.shared`` (``nvidia.com/gpu.shared``)."""
    fail_requests_greater_than_one: bool = False
    """Fail an Allocate of more than one replica instead of handing out several replicas."""

    @property
    def enabled(self) -> bool:
        return self.replicas > 1


@dataclass(frozen=True)
class MigConfig:
    """MIG partitioning.

    ``layout`` holds, per GPU, the MIG profile names it is carved into (an empty tuple: MIG off on that GPU, it is
    advertised whole).  Accepted input forms, all normalised to one tuple per GPU:

    - a profile name (``"1g.10gb"``): every GPU gets as many instances of it as fit;
    - a mapping ``{profile: count}`` or a list of names: every GPU gets that;
    - a list with one entry per GPU, each a mapping or a list of names.
    """

    strategy: str = "none"
    """``none`` (whole GPUs), ``single`` (one profile everywhere, advertised as ``nvidia.com/gpu``) or ``mixed``
    (one ``nvidia.com/mig-<profile>`` resource per profile)."""
    layout: tuple[tuple[str, ...], ...] = ()
    """Per GPU, the profile names of its MIG devices, in slot order."""

    @property
    def enabled(self) -> bool:
        return self.strategy != "none"


@dataclass(frozen=True)
class InventoryConfig:
    """The GPUs of one node of a pool."""

    model: str
    """Canonical catalogue key of the GPU model."""
    count: int
    """Number of physical GPUs on the node."""
    numa_nodes: int = 1
    """GPUs are spread over this many NUMA nodes in contiguous blocks (first half on 0, second half on 1, ...)."""
    mig: MigConfig = field(default_factory=MigConfig)
    time_slicing: TimeSlicing = field(default_factory=TimeSlicing)
    pool: str = ""
    """Name of the profile pool this config came from (informational)."""

    @property
    def gpu_model(self) -> GpuModel:
        return lookup(self.model)


# ---------------------------------------------------------------------------------------------------------------
# parsing


def load_config(path: str | Path) -> InventoryConfig:
    """Read and validate a config file (YAML or JSON); ConfigError naming the file and the bad field otherwise."""
    import yaml

    source = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError("", "config file not found", source=source) from None
    except OSError as err:
        raise ConfigError("", f"cannot read config file: {err.strerror}", source=source) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError("", f"not valid YAML/JSON: {str(err).splitlines()[0]}", source=source) from err
    return config_from_pool(data, source=source)


def config_from_pool(pool: Any, *, source: str = "") -> InventoryConfig:
    """Build the config from a profile pool dict ``{name, nodes, gpu: {...}}`` (the format of a config file)."""
    reader = _Reader(source)
    if not isinstance(pool, Mapping):
        raise reader.error("", f"must be a mapping, got {type(pool).__name__}")
    top = pool  # pool-level keys other than these (cpu, labels, taints, ...) are the harness's to validate
    name = reader.optional_str(top, "name", "")
    if "nodes" in top:
        reader.positive_int(top["nodes"], "nodes", allow_zero=True)
    if "gpu" not in top:
        raise reader.error("gpu", "missing (a mapping with at least model and count)")
    gpu = reader.mapping(top["gpu"], "gpu", {"model", "count", "numaNodes", "mig", "sharing"})
    model = reader.model(gpu)
    if "count" not in gpu:
        raise reader.error("gpu.count", "missing (number of GPUs per node)")
    count = reader.positive_int(gpu["count"], "gpu.count")
    numa_default = 2 if count >= 2 else 1
    numa_nodes = reader.positive_int(gpu.get("numaNodes", numa_default), "gpu.numaNodes")
    if numa_nodes > count:
        raise reader.error("gpu.numaNodes", f"{numa_nodes} NUMA nodes for {count} GPUs; at most one per GPU")
    mig = reader.mig(gpu.get("mig", {}), model, count)
    sharing = reader.mapping(gpu.get("sharing", {}), "gpu.sharing", {"timeSlicing"})
    slicing = reader.time_slicing(sharing.get("timeSlicing", {}))
    return InventoryConfig(model=model.key, count=count, numa_nodes=numa_nodes, mig=mig, time_slicing=slicing,
                           pool=name)


class _Reader:
    """Typed field access that raises ConfigError with the field's path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(path or "(top level)", message, source=self.source)

    def mapping(self, value: Any, path: str, known: set[str]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(path, f"must be a mapping, got {type(value).__name__}")
        for key in value:
            if key not in known:
                where = f"{path}.{key}" if path else str(key)
                raise self.error(where, f"unknown field; known: {', '.join(sorted(known))}")
        return value

    def positive_int(self, value: Any, path: str, *, allow_zero: bool = False) -> int:
        low = 0 if allow_zero else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.error(path, f"must be an integer >= {low}, got {value!r}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, got {value!r}")
        return value

    def optional_str(self, data: Mapping[str, Any], key: str, default: str) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {value!r}")
        return value

    def model(self, gpu: Mapping[str, Any]) -> GpuModel:
        if "model" not in gpu:
            raise self.error("gpu.model", "missing (a GPU model name)")
        name = gpu["model"]
        if not isinstance(name, str):
            raise self.error("gpu.model", f"must be a string, got {name!r}")
        try:
            return lookup(name)
        except KeyError as err:
            raise self.error("gpu.model", str(err.args[0])) from None

    def time_slicing(self, value: Any) -> TimeSlicing:
        path = "gpu.sharing.timeSlicing"
        data = self.mapping(value, path, {"replicas", "renameByDefault", "failRequestsGreaterThanOne"})
        return TimeSlicing(
            replicas=self.positive_int(data.get("replicas", 1), f"{path}.replicas"),
            rename_by_default=self.boolean(data.get("renameByDefault", False), f"{path}.renameByDefault"),
            fail_requests_greater_than_one=self.boolean(
                data.get("failRequestsGreaterThanOne", False), f"{path}.failRequestsGreaterThanOne"),
        )

    def mig(self, value: Any, model: GpuModel, count: int) -> MigConfig:
        data = self.mapping(value, "gpu.mig", {"strategy", "layout"})
        strategy = data.get("strategy", "none")
        if strategy not in MIG_STRATEGIES:
            raise self.error("gpu.mig.strategy", f"must be one of {', '.join(MIG_STRATEGIES)}, got {strategy!r}")
        raw_layout = data.get("layout")
        if strategy == "none":
            if raw_layout not in (None, [], {}):
                raise self.error("gpu.mig.layout", "set, but gpu.mig.strategy is none (use single or mixed)")
            return MigConfig()
        if not model.mig_capable:
            raise self.error("gpu.mig.strategy", f"{strategy} needs a MIG-capable model; {model.key} is not")
        if raw_layout is None:
            raise self.error("gpu.mig.layout", f"missing; strategy {strategy} needs a layout, e.g. "
                                               f"{model.mig_profiles[0].name!r}")
        layout = tuple(self._gpu_layout(entry, model, f"gpu.mig.layout{where}")
                       for where, entry in self._per_gpu(raw_layout, count))
        if strategy == "single":
            names = {name for per_gpu in layout for name in per_gpu}
            if len(names) != 1 or any(not per_gpu for per_gpu in layout):
                raise self.error("gpu.mig.layout", "strategy single needs every GPU carved into one and the same "
                                                   f"profile, got {_describe(layout)}")
        return MigConfig(strategy=strategy, layout=layout)

    def _per_gpu(self, raw: Any, count: int) -> list[tuple[str, Any]]:
        """Split a layout into (path suffix, per-GPU entry) pairs, broadcasting a shared entry to every GPU."""
        shared = isinstance(raw, str | Mapping) or (
            isinstance(raw, list) and all(isinstance(item, str) for item in raw) and raw)
        if shared:
            return [("", raw)] * count
        if not isinstance(raw, list):
            raise self.error("gpu.mig.layout", f"must be a profile name, a mapping or a list, got {raw!r}")
        if len(raw) != count:
            raise self.error("gpu.mig.layout", f"has {len(raw)} per-GPU entries for gpu.count {count}")
        return [(f"[{i}]", item) for i, item in enumerate(raw)]

    def _gpu_layout(self, entry: Any, model: GpuModel, path: str) -> tuple[str, ...]:
        profiles: list[MigProfile] = []
        if isinstance(entry, str):
            prof = self._profile(model, entry, path)
            fits = min(prof.max_instances, COMPUTE_SLICES // prof.compute_slices, MEMORY_SLICES // prof.memory_slices)
            profiles = [prof] * fits
        elif isinstance(entry, Mapping):
            for name, n in entry.items():
                prof = self._profile(model, name, f"{path}.{name}")
                profiles += [prof] * self.positive_int(n, f"{path}.{name}", allow_zero=True)
        elif isinstance(entry, list):
            for i, name in enumerate(entry):
                profiles.append(self._profile(model, name, f"{path}[{i}]"))
        else:
            raise self.error(path, f"must be a profile name, a mapping or a list of names, got {entry!r}")
        self._check_fits(profiles, model, path)
        return tuple(p.name for p in profiles)

    def _profile(self, model: GpuModel, name: Any, path: str) -> MigProfile:
        if not isinstance(name, str):
            raise self.error(path, f"must be a MIG profile name, got {name!r}")
        try:
            return model.mig_profile(name)
        except KeyError as err:
            raise self.error(path, str(err.args[0])) from None

    def _check_fits(self, profiles: Sequence[MigProfile], model: GpuModel, path: str) -> None:
        for prof in {p.name: p for p in profiles}.values():
            n = sum(1 for p in profiles if p.name == prof.name)
            if n > prof.max_instances:
                raise self.error(path, f"{n} x {prof.name} on one {model.key}; at most {prof.max_instances}")
        compute = sum(p.compute_slices for p in profiles)
        memory = sum(p.memory_slices for p in profiles)
        what = " + ".join(p.name for p in profiles)
        if compute > COMPUTE_SLICES:
            raise self.error(path, f"{what} needs {compute} compute slices; a GPU has {COMPUTE_SLICES}")
        if memory > MEMORY_SLICES:
            raise self.error(path, f"{what} needs {memory} memory slices; a GPU has {MEMORY_SLICES}")


def _describe(layout: tuple[tuple[str, ...], ...]) -> str:
    return "; ".join(f"GPU {i}: {', '.join(names) or 'MIG off'}" for i, names in enumerate(layout))
