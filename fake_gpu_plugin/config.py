"""The GPU spec of a node: which GPUs it has and how they are carved up and shared (``InventoryConfig``).

Owns the one GPU spec type of aiconform and its one parser.  The plugin reads it from a YAML/JSON file
(``load_config``) or a pool dict (``config_from_pool``); the harness parses every profile pool's and the real node's
``gpu:`` mapping with ``parse_gpu``, so simulated (tier S) and real (tier R) nodes are built from the same value.
``to_pool`` writes a spec back as the pool dict the plugin reads (the real node's config file).  Does not build
devices (``inventory``) or labels (``labels``) and knows nothing of gRPC.

The format is the pool dict of an aiconform profile::

    name: gpu-pool            # optional, informational
    nodes: 2                  # optional, read by the harness only (as are cpu, memory, labels, taints, ...)
    gpu:
      model: A100-SXM4-80GB   # a key or alias of fake_gpu_plugin.models.CATALOGUE
      count: 8                # optional, default 1; at most 64
      numaNodes: 2            # optional; default 2 when count >= 2, else 1
      mig:
        strategy: mixed       # none | single | mixed
        layout: ...           # see MigConfig
      sharing:
        timeSlicing:
          replicas: 4
          renameByDefault: false
          failRequestsGreaterThanOne: false
      passthrough: false      # optional: DRA also offers each whole GPU as a VFIO passthrough device

Every error names the bad field by its path, e.g. ``gpu.mig.layout[1]: ...``; ``parse_gpu(..., at="pools[1].gpu")``
roots the path where the caller found the mapping (``pools[1].gpu.count: ...``).
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
MAX_GPUS = 64
"""Most GPUs one node may have (a guard against typos that would build huge inventories)."""
MAX_REPLICAS = 64
"""Most time-slicing replicas per GPU or MIG device."""


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
    """Number of physical GPUs on the node (>= 1; 0 only where a ``parse_gpu`` caller allowed it)."""
    numa_nodes: int = 1
    """GPUs are spread over this many NUMA nodes in contiguous blocks (first half on 0, second half on 1, ...)."""
    mig: MigConfig = field(default_factory=MigConfig)
    time_slicing: TimeSlicing = field(default_factory=TimeSlicing)
    pool: str = ""
    """Name of the profile pool this config came from (informational)."""
    passthrough: bool = False
    """The DRA driver also offers each whole GPU as a ``vfio`` passthrough device (NVIDIA's ``PassthroughSupport``),
    never handed out together with the same GPU as a ``gpu`` device (fake_gpu_plugin.dra_devices); not with
    time-slicing (a passthrough GPU goes to one claim whole).  The device plugin ignores it."""

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
    return parse_gpu(top["gpu"], source=source, pool=name)


def parse_gpu(gpu: Any, *, at: str = "gpu", source: str = "", pool: str = "",
              allow_zero_count: bool = False) -> InventoryConfig:
    """Parse one ``gpu:`` mapping (``{model, count, numaNodes, mig, sharing, passthrough}``), naming bad fields
    under ``at``.

    ``count`` defaults to 1; ``allow_zero_count`` lets a caller accept ``count: 0`` (the harness reads it as "no
    GPUs"); the plugin itself always needs at least one GPU.
    """
    reader = _Reader(source, at)
    data = reader.mapping(gpu, at, {"model", "count", "numaNodes", "mig", "sharing", "passthrough"})
    model = reader.model(data)
    count = reader.positive_int(data.get("count", 1), reader.at("count"), allow_zero=allow_zero_count,
                                maximum=MAX_GPUS)
    numa_default = 2 if count >= 2 else 1
    numa_nodes = reader.positive_int(data.get("numaNodes", numa_default), reader.at("numaNodes"))
    if numa_nodes > max(count, 1):
        raise reader.error(reader.at("numaNodes"), f"{numa_nodes} NUMA nodes for {count} GPUs; at most one per GPU")
    mig = reader.mig(data.get("mig", {}), model, count)
    sharing = reader.mapping(data.get("sharing", {}), reader.at("sharing"), {"timeSlicing"})
    slicing = reader.time_slicing(sharing.get("timeSlicing", {}))
    passthrough = reader.boolean(data.get("passthrough", False), reader.at("passthrough"))
    if passthrough and slicing.enabled:
        raise reader.error(reader.at("passthrough"), "cannot be combined with sharing.timeSlicing (a passthrough GPU "
                           "is handed out whole, to one claim)")
    return InventoryConfig(model=model.key, count=count, numa_nodes=numa_nodes, mig=mig, time_slicing=slicing,
                           pool=pool, passthrough=passthrough)


def to_pool(config: InventoryConfig, *, name: str | None = None) -> dict[str, Any]:
    """The pool dict that ``config_from_pool`` reads back as ``config`` (every field written out, layout per GPU)."""
    gpu: dict[str, Any] = {"model": config.model, "count": config.count, "numaNodes": config.numa_nodes}
    if config.mig.enabled:
        gpu["mig"] = {"strategy": config.mig.strategy, "layout": [list(per_gpu) for per_gpu in config.mig.layout]}
    slicing = config.time_slicing
    gpu["sharing"] = {"timeSlicing": {"replicas": slicing.replicas, "renameByDefault": slicing.rename_by_default,
                                      "failRequestsGreaterThanOne": slicing.fail_requests_greater_than_one}}
    if config.passthrough:
        gpu["passthrough"] = True
    return {"name": config.pool if name is None else name, "nodes": 1, "gpu": gpu}


class _Reader:
    """Typed field access that raises ConfigError with the field's path."""

    def __init__(self, source: str, root: str = "gpu") -> None:
        self.source = source
        self.root = root

    def at(self, suffix: str) -> str:
        """The path of a field under the ``gpu`` mapping being read."""
        return f"{self.root}.{suffix}"

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

    def positive_int(self, value: Any, path: str, *, allow_zero: bool = False, maximum: int | None = None) -> int:
        low = 0 if allow_zero else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.error(path, f"must be an integer >= {low}, got {value!r}")
        if maximum is not None and value > maximum:
            raise self.error(path, f"must be an integer <= {maximum}, got {value!r}")
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
        path = self.at("model")
        if "model" not in gpu:
            raise self.error(path, "missing (a GPU model name)")
        name = gpu["model"]
        if not isinstance(name, str):
            raise self.error(path, f"must be a string, got {name!r}")
        try:
            return lookup(name)
        except KeyError as err:
            raise self.error(path, str(err.args[0])) from None

    def time_slicing(self, value: Any) -> TimeSlicing:
        path = self.at("sharing.timeSlicing")
        data = self.mapping(value, path, {"replicas", "renameByDefault", "failRequestsGreaterThanOne"})
        return TimeSlicing(
            replicas=self.positive_int(data.get("replicas", 1), f"{path}.replicas", maximum=MAX_REPLICAS),
            rename_by_default=self.boolean(data.get("renameByDefault", False), f"{path}.renameByDefault"),
            fail_requests_greater_than_one=self.boolean(
                data.get("failRequestsGreaterThanOne", False), f"{path}.failRequestsGreaterThanOne"),
        )

    def mig(self, value: Any, model: GpuModel, count: int) -> MigConfig:
        path, strategy_path, layout_path = self.at("mig"), self.at("mig.strategy"), self.at("mig.layout")
        data = self.mapping(value, path, {"strategy", "layout"})
        strategy = data.get("strategy", "none")
        if strategy not in MIG_STRATEGIES:
            raise self.error(strategy_path, f"must be one of {', '.join(MIG_STRATEGIES)}, got {strategy!r}")
        raw_layout = data.get("layout")
        if strategy == "none":
            if raw_layout not in (None, [], {}):
                raise self.error(layout_path, f"set, but {strategy_path} is none (use single or mixed)")
            return MigConfig()
        if not model.mig_capable:
            raise self.error(strategy_path, f"{strategy} needs a MIG-capable model; {model.key} is not")
        if raw_layout is None:
            raise self.error(layout_path, f"missing; strategy {strategy} needs a layout, e.g. "
                                          f"{model.mig_profiles[0].name!r}")
        layout = tuple(self._gpu_layout(entry, model, f"{layout_path}{where}")
                       for where, entry in self._per_gpu(raw_layout, count))
        if strategy == "single" and count:
            names = {name for per_gpu in layout for name in per_gpu}
            if len(names) != 1 or any(not per_gpu for per_gpu in layout):
                raise self.error(layout_path, "strategy single needs every GPU carved into one and the same "
                                              f"profile, got {_describe(layout)}")
        return MigConfig(strategy=strategy, layout=layout)

    def _per_gpu(self, raw: Any, count: int) -> list[tuple[str, Any]]:
        """Split a layout into (path suffix, per-GPU entry) pairs, broadcasting a shared entry to every GPU."""
        shared = isinstance(raw, str | Mapping) or (
            isinstance(raw, list) and all(isinstance(item, str) for item in raw) and raw)
        if shared:
            return [("", raw)] * count
        if not isinstance(raw, list):
            raise self.error(self.at("mig.layout"), f"must be a profile name, a mapping or a list, got {raw!r}")
        if len(raw) != count:
            raise self.error(self.at("mig.layout"), f"has {len(raw)} per-GPU entries for {self.at('count')} {count}")
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
