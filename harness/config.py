"""Typed settings and profiles.

A profile is YAML; :func:`load_profile` turns it into frozen dataclasses or raises ConfigError naming the bad field
(``pools[1].gpu.count: must be >= 0, got -2``).  Owns validation only; nothing here starts processes or talks to a
cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fake_gpu_plugin import models
from harness.errors import ConfigError

PROFILES_DIR = Path(__file__).with_name("profiles")
DEFAULT_PROFILE = "default"

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MIG_STRATEGIES = ("none", "single", "mixed")


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""

    def to_api(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class TimeSlicing:
    """NVIDIA-style time-slicing: each GPU is advertised ``replicas`` times."""

    replicas: int = 1
    rename_by_default: bool = False
    """Advertise the replicas as ``nvidia.com/gpu.shared`` instead of ``nvidia.com/gpu``."""
    fail_requests_greater_than_one: bool = False


@dataclass(frozen=True)
class Mig:
    strategy: str = "none"
    """``none``, ``single`` (every GPU split by one profile, advertised as nvidia.com/gpu) or ``mixed``."""
    layout: tuple[tuple[str, int], ...] = ()
    """Per-GPU MIG instances as (profile, count), e.g. (("3g.40gb", 1), ("1g.10gb", 4))."""


@dataclass(frozen=True)
class GpuSpec:
    model: str
    """Catalogue key (see fake_gpu_plugin.models); aliases are normalised to the key."""
    count: int
    mig: Mig = field(default_factory=Mig)
    time_slicing: TimeSlicing = field(default_factory=TimeSlicing)

    def extended_resources(self) -> dict[str, int]:
        """What one node of this pool advertises, as the device plugin would: resource name → count."""
        if self.count == 0:
            return {}
        model = models.lookup(self.model)
        if self.mig.strategy == "mixed":
            res: dict[str, int] = {}
            for prof_name, n in self.mig.layout:
                prof = model.mig_profile(prof_name)
                res[prof.resource_name] = res.get(prof.resource_name, 0) + n * self.count
            return res
        per_gpu = sum(n for _, n in self.mig.layout) if self.mig.strategy == "single" else 1
        total = self.count * per_gpu * self.time_slicing.replicas
        name = "nvidia.com/gpu.shared" if self.time_slicing.rename_by_default else "nvidia.com/gpu"
        return {name: total}


@dataclass(frozen=True)
class Pool:
    """A pool of identical simulated (tier S) nodes."""

    name: str
    nodes: int
    gpu: GpuSpec | None = None
    cpu: str = "64"
    memory: str = "512Gi"
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()


@dataclass(frozen=True)
class RealNode:
    """One real kubelet node (tier R): kubelet + containerd + runc + CNI, fake GPUs through the device plugin."""

    enabled: bool = False
    name: str = "aiconform-real-0"
    gpu: GpuSpec | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()


@dataclass(frozen=True)
class ControlPlane:
    kubernetes_version: str = ""
    """Empty means the default pinned in versions.toml."""
    apiserver_port: int = 0
    """0 picks a free port."""
    lift_limits: bool = True
    """Lift client QPS and apiserver inflight limits (the scale setting of PLATFORM-NOTES)."""
    service_cidr: str = "10.96.0.0/16"
    pod_cidr: str = "10.128.0.0/12"
    """Pod addresses KWOK hands out on simulated nodes (fake, never routed)."""


@dataclass(frozen=True)
class Profile:
    name: str
    provider: str = "local"
    pools: tuple[Pool, ...] = ()
    control_plane: ControlPlane = field(default_factory=ControlPlane)
    real_node: RealNode = field(default_factory=RealNode)
    source: str = ""
    """Where the profile came from (file path), for messages."""

    @property
    def tier(self) -> str:
        if self.provider == "existing":
            return "G"
        return "R" if self.real_node.enabled else "S"

    def node_count(self) -> int:
        return sum(p.nodes for p in self.pools) + (1 if self.real_node.enabled else 0)


# -- loading -------------------------------------------------------------------------------------------------------


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def resolve_profile_path(name_or_file: str | None) -> Path:
    """A shipped profile's name or a path to a YAML file."""
    ref = name_or_file or DEFAULT_PROFILE
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or "/" in ref:
        if not path.is_file():
            raise ConfigError(f"profile file {ref} does not exist")
        return path
    shipped = PROFILES_DIR / f"{ref}.yaml"
    if not shipped.is_file():
        raise ConfigError(f"unknown profile {ref!r}; shipped profiles: {', '.join(shipped_profiles())} (or give a path)")
    return shipped


def load_profile(name_or_file: str | None = None) -> Profile:
    path = resolve_profile_path(name_or_file)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from err
    except OSError as err:
        raise ConfigError(f"cannot read profile {path}: {err.strerror}") from err
    return parse_profile(data, name=path.stem, source=str(path))


def parse_profile(data: Any, *, name: str = "inline", source: str = "") -> Profile:
    where = source or name
    try:
        return _Parser().profile(data, name, source)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


class _Parser:
    def profile(self, data: Any, name: str, source: str) -> Profile:
        d = self._map(data, "profile")
        self._known(d, "", {"name", "provider", "pools", "controlPlane", "realNode", "description"})
        provider = self._str(d.get("provider", "local"), "provider")
        if not _DNS1123.match(provider):  # which names exist is the provider registry's to say (harness/providers)
            raise ConfigError(f"provider: must be a provider name (lowercase letters, digits, '-'), got {provider!r}")
        raw_pools = d.get("pools", [])
        if not isinstance(raw_pools, list):
            raise ConfigError("pools: must be a list")
        pools = tuple(self.pool(p, f"pools[{i}]") for i, p in enumerate(raw_pools))
        seen: set[str] = set()
        for i, p in enumerate(pools):
            if p.name in seen:
                raise ConfigError(f"pools[{i}].name: duplicate pool name {p.name!r}")
            seen.add(p.name)
        cp = self.control_plane(d.get("controlPlane", {}) or {}, "controlPlane")
        real = self.real_node(d.get("realNode", {}) or {}, "realNode")
        pname = self._str(d.get("name", name), "name")
        return Profile(name=pname, provider=provider, pools=pools, control_plane=cp, real_node=real, source=source)

    def pool(self, data: Any, at: str) -> Pool:
        d = self._map(data, at)
        self._known(d, at, {"name", "nodes", "gpu", "cpu", "memory", "pods", "labels", "taints"})
        name = self._str(d.get("name"), f"{at}.name", required=True)
        if not _DNS1123.match(name) or len(name) > 40:
            raise ConfigError(f"{at}.name: must be a DNS-1123 label of at most 40 characters, got {name!r}")
        nodes = self._int(d.get("nodes", 1), f"{at}.nodes", minimum=0, maximum=20000)
        gpu = self.gpu(d["gpu"], f"{at}.gpu") if d.get("gpu") is not None else None
        cpu = self._quantity(d.get("cpu", "64"), f"{at}.cpu")
        memory = self._quantity(d.get("memory", "512Gi"), f"{at}.memory")
        pods = self._int(d.get("pods", 110), f"{at}.pods", minimum=1, maximum=100000)
        return Pool(
            name=name,
            nodes=nodes,
            gpu=gpu,
            cpu=cpu,
            memory=memory,
            pods=pods,
            labels=self.labels(d.get("labels", {}), f"{at}.labels"),
            taints=self.taints(d.get("taints", []), f"{at}.taints"),
        )

    def gpu(self, data: Any, at: str) -> GpuSpec:
        d = self._map(data, at)
        self._known(d, at, {"model", "count", "mig", "sharing"})
        model_name = self._str(d.get("model"), f"{at}.model", required=True)
        try:
            model = models.lookup(model_name)
        except KeyError as err:
            raise ConfigError(f"{at}.model: {err.args[0]}") from None
        count = self._int(d.get("count", 1), f"{at}.count", minimum=0, maximum=64)
        mig = self.mig(d.get("mig", {}) or {}, f"{at}.mig", model)
        ts = self.sharing(d.get("sharing", {}) or {}, f"{at}.sharing")
        if mig.strategy != "none" and ts.replicas > 1:
            raise ConfigError(f"{at}: MIG and time-slicing together are not supported by this fake")
        return GpuSpec(model=model.key, count=count, mig=mig, time_slicing=ts)

    def mig(self, data: Any, at: str, model: models.GpuModel) -> Mig:
        d = self._map(data, at)
        self._known(d, at, {"strategy", "layout"})
        strategy = self._str(d.get("strategy", "none"), f"{at}.strategy")
        if strategy not in MIG_STRATEGIES:
            raise ConfigError(f"{at}.strategy: must be one of {', '.join(MIG_STRATEGIES)}, got {strategy!r}")
        raw = d.get("layout", {}) or {}
        if strategy == "none":
            if raw:
                raise ConfigError(f"{at}.layout: a layout needs strategy single or mixed")
            return Mig()
        if not model.mig_capable:
            raise ConfigError(f"{at}.strategy: model {model.key} is not MIG-capable")
        layout_map = self._map(raw, f"{at}.layout")
        if not layout_map:
            raise ConfigError(f"{at}.layout: strategy {strategy} needs a layout, e.g. {{'1g.10gb': 7}}")
        layout: list[tuple[str, int]] = []
        compute = memory = 0
        for prof_name, n_raw in layout_map.items():
            try:
                prof = model.mig_profile(str(prof_name))
            except KeyError as err:
                raise ConfigError(f"{at}.layout.{prof_name}: {err.args[0]}") from None
            n = self._int(n_raw, f"{at}.layout.{prof_name}", minimum=1, maximum=prof.max_instances)
            compute += prof.compute_slices * n
            memory += prof.memory_slices * n
            layout.append((prof.name, n))
        if compute > 7 or memory > 8:
            raise ConfigError(
                f"{at}.layout: does not fit one {model.key} (uses {compute}/7 compute and {memory}/8 memory slices)"
            )
        if strategy == "single" and len(layout) != 1:
            raise ConfigError(f"{at}.layout: strategy single takes exactly one profile, got {len(layout)}")
        return Mig(strategy=strategy, layout=tuple(layout))

    def sharing(self, data: Any, at: str) -> TimeSlicing:
        d = self._map(data, at)
        self._known(d, at, {"timeSlicing"})
        ts = self._map(d.get("timeSlicing", {}) or {}, f"{at}.timeSlicing")
        self._known(ts, f"{at}.timeSlicing", {"replicas", "renameByDefault", "failRequestsGreaterThanOne"})
        return TimeSlicing(
            replicas=self._int(ts.get("replicas", 1), f"{at}.timeSlicing.replicas", minimum=1, maximum=64),
            rename_by_default=self._bool(ts.get("renameByDefault", False), f"{at}.timeSlicing.renameByDefault"),
            fail_requests_greater_than_one=self._bool(
                ts.get("failRequestsGreaterThanOne", False), f"{at}.timeSlicing.failRequestsGreaterThanOne"
            ),
        )

    def control_plane(self, data: Any, at: str) -> ControlPlane:
        d = self._map(data, at)
        self._known(d, at, {"kubernetesVersion", "apiserverPort", "liftLimits", "serviceCIDR", "podCIDR"})
        version = str(d.get("kubernetesVersion", "") or "").lstrip("v")
        if version and not re.fullmatch(r"1\.\d+\.\d+", version):
            raise ConfigError(f"{at}.kubernetesVersion: must look like 1.X.Y, got {version!r}")
        port = self._int(d.get("apiserverPort", 0), f"{at}.apiserverPort", minimum=0, maximum=65535)
        if 0 < port < 1024:
            raise ConfigError(f"{at}.apiserverPort: choose a port >= 1024 (or 0 for a free one), got {port}")
        return ControlPlane(
            kubernetes_version=version,
            apiserver_port=port,
            lift_limits=self._bool(d.get("liftLimits", True), f"{at}.liftLimits"),
            service_cidr=self._str(d.get("serviceCIDR", "10.96.0.0/16"), f"{at}.serviceCIDR"),
            pod_cidr=self._str(d.get("podCIDR", "10.128.0.0/12"), f"{at}.podCIDR"),
        )

    def real_node(self, data: Any, at: str) -> RealNode:
        d = self._map(data, at)
        self._known(d, at, {"enabled", "name", "gpu", "labels", "taints"})
        name = self._str(d.get("name", "aiconform-real-0"), f"{at}.name")
        if not _DNS1123.match(name):
            raise ConfigError(f"{at}.name: must be a DNS-1123 label, got {name!r}")
        return RealNode(
            enabled=self._bool(d.get("enabled", False), f"{at}.enabled"),
            name=name,
            gpu=self.gpu(d["gpu"], f"{at}.gpu") if d.get("gpu") is not None else None,
            labels=self.labels(d.get("labels", {}), f"{at}.labels"),
            taints=self.taints(d.get("taints", []), f"{at}.taints"),
        )

    def labels(self, data: Any, at: str) -> dict[str, str]:
        d = self._map(data or {}, at)
        out: dict[str, str] = {}
        for k, v in d.items():
            key = str(k)
            val = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
            if not _LABEL_KEY.match(key):
                raise ConfigError(f"{at}: invalid label key {key!r}")
            if not _LABEL_VALUE.match(val) or len(val) > 63:
                raise ConfigError(f"{at}.{key}: invalid label value {val!r}")
            out[key] = val
        return out

    def taints(self, data: Any, at: str) -> tuple[Taint, ...]:
        if not isinstance(data, list):
            raise ConfigError(f"{at}: must be a list")
        out = []
        for i, t in enumerate(data):
            d = self._map(t, f"{at}[{i}]")
            self._known(d, f"{at}[{i}]", {"key", "value", "effect"})
            key = self._str(d.get("key"), f"{at}[{i}].key", required=True)
            if not _LABEL_KEY.match(key):
                raise ConfigError(f"{at}[{i}].key: invalid taint key {key!r}")
            effect = self._str(d.get("effect", "NoSchedule"), f"{at}[{i}].effect")
            if effect not in TAINT_EFFECTS:
                raise ConfigError(f"{at}[{i}].effect: must be one of {', '.join(TAINT_EFFECTS)}, got {effect!r}")
            value = "" if d.get("value") is None else str(d.get("value"))
            if not _LABEL_VALUE.match(value):
                raise ConfigError(f"{at}[{i}].value: invalid taint value {value!r}")
            out.append(Taint(key=key, value=value, effect=effect))
        return tuple(out)

    # -- primitives --

    @staticmethod
    def _map(data: Any, at: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ConfigError(f"{at}: must be a mapping, got {type(data).__name__}")
        return data

    @staticmethod
    def _known(d: dict[str, Any], at: str, allowed: set[str]) -> None:
        for k in d:
            if k not in allowed:
                prefix = f"{at}." if at else ""
                raise ConfigError(f"{prefix}{k}: unknown field (allowed: {', '.join(sorted(allowed))})")

    @staticmethod
    def _str(v: Any, at: str, *, required: bool = False) -> str:
        if v is None:
            if required:
                raise ConfigError(f"{at}: required")
            return ""
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ConfigError(f"{at}: must be a string, got {type(v).__name__}")
        return str(v)

    @staticmethod
    def _int(v: Any, at: str, *, minimum: int, maximum: int) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{at}: must be an integer, got {v!r}")
        if v < minimum:
            raise ConfigError(f"{at}: must be >= {minimum}, got {v}")
        if v > maximum:
            raise ConfigError(f"{at}: must be <= {maximum}, got {v}")
        return v

    @staticmethod
    def _bool(v: Any, at: str) -> bool:
        if not isinstance(v, bool):
            raise ConfigError(f"{at}: must be true or false, got {v!r}")
        return v

    @staticmethod
    def _quantity(v: Any, at: str) -> str:
        s = str(v)
        if isinstance(v, bool) or not _QUANTITY.match(s):
            raise ConfigError(f"{at}: not a Kubernetes quantity: {v!r}")
        return s
