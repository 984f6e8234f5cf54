"""Typed settings and profiles.

A profile is YAML; :func:`load_profile` turns it into frozen dataclasses or raises ConfigError naming the bad field
(``pools[1].gpu.count: must be an integer >= 0, got -2``).  A ``gpu:`` mapping is parsed by fake_gpu_plugin's
``parse_gpu`` into its ``InventoryConfig``, the one GPU spec type of both tiers.  Owns validation only; nothing here
starts processes or talks to a cluster.

Profiles compose.  ``extends: NAME`` or ``extends: [A, B]`` names the profiles a profile builds on: a shipped
profile's name, or a path (``*.yaml``, or anything with a ``/``) relative to the extending file.  The parents are
merged first, in the order given (B over A), each with its own parents merged in, then the profile itself on top;
the parser then reads the one merged mapping.  The merge rule (docs/profiles.md):

- mappings merge key by key, recursively; a key set to ``null`` removes what was inherited (the field falls back to
  its default);
- a list whose items are all mappings with a ``name`` (``pools``, ``kind.workers``) merges by name: an item with an
  inherited name is merged into that item (in its place), a new name is appended, and ``remove: true`` drops the
  inherited item of that name; an empty list replaces;
- every other list, and every scalar, replaces;
- ``name`` and ``description`` are never inherited.

A cycle (``a -> b -> a``) or a parent that does not exist is one ConfigError line naming the chain.

Which providers exist is the provider registry's to say (harness/providers/), never this module's.  Besides the
generic fields (``pools``, ``realNode``, ``controlPlane``, ``addons``: harness modules other than a provider read them
too), a provider may own one top-level section (``kind:``), which it parses itself through its ``PROFILE_SECTION``
(:class:`ProfileSection`); the :class:`ProviderSpec` that returns states the profile's tier and node count.  The
hook is read lazily, when a profile is parsed, from the entry-point group (harness/providers/entrypoints.py, which
imports nothing of this module).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import yaml

from fake_gpu_plugin.config import InventoryConfig, parse_gpu
from fake_gpu_plugin.errors import ConfigError as GpuConfigError
from harness.bins import PIN_NAMES, pinned_kubernetes
from harness.contract import Tier
from harness.errors import ConfigError

PROFILES_DIR = Path(__file__).with_name("profiles")
DEFAULT_PROFILE = "default"

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_GO_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")
_FEATURE_GATE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_FLAG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_RUNTIME_CONFIG_KEY = re.compile(r"^(api/(all|ga|beta|alpha)|[a-z0-9.-]+/[a-z0-9]+(/[a-z0-9]+)?|v1)$")
CONTROL_PLANE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
SCHEDULER_EXTENSION_POINTS = ("multiPoint", "queueSort", "preEnqueue", "preFilter", "filter", "postFilter",
                              "preScore", "score", "reserve", "permit", "preBind", "bind", "postBind")
_PLUGIN_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


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
class Autoscale:
    """Node autoscaling of a pool: Karpenter (harness/addons/karpenter.py) adds nodes of the pool's exact shape
    (labels, taints, resources) when pods are pending, and removes the ones it added once they are empty."""

    max_nodes: int
    """How many nodes Karpenter may add to the pool (on top of its ``nodes``)."""
    consolidate_after: str = "5s"
    """How long an added node must be empty or underused before Karpenter removes it (a Go duration)."""


@dataclass(frozen=True)
class Pool:
    """A pool of identical simulated (tier S) nodes."""

    name: str
    nodes: int
    gpu: InventoryConfig | None = None
    """The GPUs of each node (fake_gpu_plugin's spec type, shared with the real node's plugin); None: no GPUs."""
    cpu: str = "64"
    memory: str = "512Gi"
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    autoscale: Autoscale | None = None
    """None: a fixed pool; otherwise Karpenter may add up to ``autoscale.max_nodes`` nodes (needs the ``karpenter``
    addon)."""
    dra: bool = False
    """Offer the GPUs through DRA (ResourceSlices the harness publishes, driver ``gpu.nvidia.com``) instead of the
    ``nvidia.com/gpu`` extended resources: one way or the other, never both (no GPU counted twice)."""


@dataclass(frozen=True)
class DraPool:
    """The real node's DRA pool: GPUs of its own, served by the DRA driver beside the device plugin's."""

    gpu: InventoryConfig
    """Its GPUs (the same spec type as every pool); they follow the device-plugin GPUs on the host (indices
    ``N..``), so no GPU is in both pools."""


@dataclass(frozen=True)
class RealNode:
    """One real kubelet node (tier R): kubelet + containerd + runc + CNI, fake GPUs through the device plugin."""

    enabled: bool = False
    name: str = "aiconform-real-0"
    gpu: InventoryConfig | None = None
    """The GPUs the fake plugin serves on this node; None: no GPUs (and no plugin)."""
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    dra: DraPool | None = None
    """The DRA pool (``realNode.dra.gpu``), served by fake_gpu_plugin's DRA driver; None: no DRA driver."""
    extra_args: dict[str, str] = field(default_factory=dict)
    """Extra kubelet flags (``flag-name`` without dashes → value), checked against the pinned kubelet's ``--help``;
    flags the harness sets itself are refused.  Feature gates come from ``controlPlane.featureGates``."""


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
    feature_gates: dict[str, bool] = field(default_factory=dict)
    """Feature gates, given to every component whose pinned binary knows the gate (kube-apiserver,
    kube-controller-manager, kube-scheduler, and the real node's kubelet through its config's ``featureGates``);
    a gate that none of them knows is refused before anything starts (harness/flags.py)."""
    runtime_config: dict[str, str] = field(default_factory=dict)
    """kube-apiserver ``--runtime-config`` entries, e.g. ``{"scheduling.k8s.io/v1beta1": "true"}``."""
    extra_args: dict[str, dict[str, str]] = field(default_factory=dict)
    """Extra flags per control-plane component (``kube-apiserver``, ``kube-controller-manager``,
    ``kube-scheduler``): ``flag-name`` (no dashes) → value, checked against that binary's ``--help``; flags the
    harness sets itself are refused."""
    scheduler_disabled_plugins: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """kube-scheduler plugins turned off in its KubeSchedulerConfiguration, per extension point (``multiPoint``:
    everywhere; ``permit``, ``filter``...: only there), e.g. ``{"permit": ("GangScheduling",)}`` (local provider
    only; kube-scheduler itself refuses a plugin name it does not know)."""
    time_compression: float | None = None
    """Trace seconds this cluster plays per wall second (set by ``aiconform simulate``, not a profile key): the
    controllers' timers (kube-scheduler's pod backoffs, Kueue's waitForPodsReady timeout and requeue backoff) are
    their production values divided by it, clamped to what each accepts (harness/timescale.py).  None: the harness's
    own settings."""


class ProviderSpec(Protocol):
    """What a provider made of its part of a profile (:meth:`ProfileSection.parse`): it states the tier and the node
    count of the cluster the profile describes."""

    def tier(self, profile: Profile) -> str:
        """S (simulated nodes), R (a real kubelet with fake GPUs) or G (real GPUs)."""
        ...

    def node_count(self, profile: Profile) -> int: ...


@dataclass(frozen=True)
class GenericSpec:
    """The spec of a provider that owns no section: the cluster is what the generic fields say, the simulated nodes
    of ``pools`` plus the real node when ``realNode.enabled`` (tier R then, else S).  Also the spec of a profile
    whose provider is not registered (opening it then fails, naming the registered ones)."""

    def tier(self, profile: Profile) -> str:
        return "R" if profile.real_node.enabled else "S"

    def node_count(self, profile: Profile) -> int:
        return sum(p.nodes for p in profile.pools) + (1 if profile.real_node.enabled else 0)


@dataclass(frozen=True)
class Profile:
    """A parsed profile.  Build it with :func:`parse_profile` or :func:`load_profile`: constructed by hand it gets
    :class:`GenericSpec`, whatever its provider."""

    name: str
    provider: str = "local"
    pools: tuple[Pool, ...] = ()
    control_plane: ControlPlane = field(default_factory=ControlPlane)
    real_node: RealNode = field(default_factory=RealNode)
    addons: tuple[str, ...] = ()
    """Pinned upstream controllers installed after bring-up (harness.addons), e.g. ``kube-router`` (NetworkPolicy enforcement)."""
    provider_spec: ProviderSpec = field(default_factory=GenericSpec)
    """What the provider parsed from its own section (the kind provider's ``KindSpec``), a frozen dataclass."""
    source: str = ""
    """Where the profile came from (file path), for messages."""

    @property
    def has_real_node(self) -> bool:
        """Whether the cluster this profile makes has a node with a real kubelet and container runtime (the local
        provider's ``realNode``, every kind node, an existing cluster's nodes): the one answer to "can pods really run
        here", from the tier the provider states."""
        return Tier(self.tier).rank >= Tier.R.rank

    @property
    def tier(self) -> str:
        return self.provider_spec.tier(self)

    def node_count(self) -> int:
        return self.provider_spec.node_count(self)


class ProfileSection(Protocol):
    """A provider's hook into profile parsing, published as ``PROFILE_SECTION`` in the module that holds its registry
    entry point's factory."""

    @property
    def key(self) -> str:
        """The top-level profile key the provider owns (``kind``); empty when it owns none."""
        ...

    @property
    def holds(self) -> str:
        """What that section describes, for messages (``kind nodes``)."""
        ...

    def parse(self, fields: Fields, profile: Mapping[str, Any]) -> ProviderSpec:
        """The provider's spec from the whole profile mapping (its section is ``profile[key]``; other fields it may
        refuse); ConfigError naming the field.  ``fields`` parses the shapes every section shares."""
        ...


# -- DRA ---------------------------------------------------------------------------------------------------------

DRA_V1_MINOR = 34
"""resource.k8s.io/v1 (DRA v1) is served from Kubernetes 1.34 on."""


def dra_configs(pools: tuple[Pool, ...], real: RealNode) -> list[tuple[str, InventoryConfig]]:
    """Every GPU spec offered through DRA, with the profile field it came from."""
    out = [(f"pools[{i}]", p.gpu) for i, p in enumerate(pools) if p.dra and p.gpu is not None]
    if real.enabled and real.dra is not None:
        out.append(("realNode.dra", real.dra.gpu))
    return out


def check_dra(pools: tuple[Pool, ...], real: RealNode, cp: ControlPlane) -> None:
    """A profile with DRA pools: the pinned version serves DRA v1, and every DRA feature a pool uses has its
    feature gate on in ``controlPlane.featureGates`` (harness/flags.py then checks the binaries know it)."""
    from fake_gpu_plugin.dra_devices import FEATURE_GATES, features_used

    for i, p in enumerate(pools):
        if p.dra and p.gpu is None:
            raise ConfigError(f"pools[{i}].dra: the pool has no GPUs to offer through DRA")
        if p.gpu is not None and p.gpu.passthrough and not p.dra:
            raise ConfigError(f"pools[{i}].gpu.passthrough: VFIO passthrough devices are offered through DRA only; "
                              f"set pools[{i}].dra: true")
    if real.gpu is not None and real.gpu.passthrough:
        raise ConfigError("realNode.gpu.passthrough: VFIO passthrough devices are offered through DRA only; "
                          "set it in realNode.dra.gpu")
    used = dra_configs(pools, real)
    if not used:
        return
    version = cp.kubernetes_version
    if version and int(version.split(".")[1]) < DRA_V1_MINOR:
        raise ConfigError(f"{used[0][0]}: DRA needs resource.k8s.io/v1, served from Kubernetes 1.{DRA_V1_MINOR}; "
                          f"controlPlane.kubernetesVersion is {version}")
    for where, gpu in used:
        for feature in features_used(gpu):
            gate = FEATURE_GATES[feature]
            if cp.feature_gates.get(gate) is not True:
                state = "off" if gate in cp.feature_gates else "not set"
                raise ConfigError(f"{where}: its GPUs use DRA {feature}, which needs feature gate {gate}; "
                                  f"controlPlane.featureGates.{gate} is {state} (set it to true)")


# -- loading -------------------------------------------------------------------------------------------------------


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def resolve_profile_path(name_or_file: str | None, relative_to: Path | None = None) -> Path:
    """A shipped profile's name or a path to a YAML file (relative to ``relative_to`` when given)."""
    ref = name_or_file or DEFAULT_PROFILE
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or "/" in ref:
        if relative_to is not None:
            path = relative_to / path
        if not path.is_file():
            raise ConfigError(f"profile file {path if relative_to is not None else ref} does not exist")
        return path
    shipped = PROFILES_DIR / f"{ref}.yaml"
    if not shipped.is_file():
        raise ConfigError(f"unknown profile {ref!r}; shipped profiles: {', '.join(shipped_profiles())} (or give a path)")
    return shipped


def with_kubernetes(profile: Profile, version: str | None) -> Profile:
    """``profile`` on another Kubernetes version (``--kubernetes``: a version, ``default`` or ``previous``); None
    keeps the profile's own."""
    if not version:
        return profile
    v = pinned_kubernetes(version)
    if not re.fullmatch(r"1\.\d+\.\d+", v):
        raise ConfigError(f"--kubernetes: must look like 1.X.Y (or default, previous), got {version!r}")
    return dataclasses.replace(profile, control_plane=dataclasses.replace(profile.control_plane, kubernetes_version=v))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from err
    except OSError as err:
        raise ConfigError(f"cannot read profile {path}: {err.strerror}") from err


def load_profile(name_or_file: str | None = None) -> Profile:
    path = resolve_profile_path(name_or_file)
    return parse_profile(_read_yaml(path), name=path.stem, source=str(path))


def profile_data(name_or_file: str | None = None) -> Any:
    """A profile's YAML with everything it extends merged in: the mapping the parser reads."""
    path = resolve_profile_path(name_or_file)
    try:
        return _compose(_read_yaml(path), path.parent, ((path.resolve(), path.stem),))[0]
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def parse_profile(data: Any, *, name: str = "inline", source: str = "") -> Profile:
    """The profile in ``data`` (a mapping as YAML gives it); ``extends`` paths are relative to ``source``'s folder
    (the working directory for an inline profile)."""
    where = source or name
    try:
        here = Path(source).parent if source else None
        data, parents = _compose(data, here, ((Path(source).resolve() if source else None, name),))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    if parents:
        where = f"{where} (extends {', '.join(parents)})"
    try:
        return _Parser().profile(data, name, source)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


# -- composing (extends) -------------------------------------------------------------------------------------------

EXTENDS = "extends"
REMOVE = "remove"
NOT_INHERITED = ("name", "description")

_Chain = tuple[tuple[Path | None, str], ...]
"""The profiles being composed, outermost first: (resolved file or None for inline data, name as written)."""


def _compose(data: Any, here: Path | None, chain: _Chain) -> tuple[Any, list[str]]:
    """``data`` with every profile it extends merged in under it, and the names it extends (as written)."""
    if not isinstance(data, dict) or EXTENDS not in data:
        return data, []
    own = dict(data)
    refs = own.pop(EXTENDS)
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r for r in refs):
        raise ConfigError(f"{EXTENDS}: must be a profile name or path, or a list of them, got {refs!r}")
    merged: dict[str, Any] = {}
    for ref in refs:
        names = " -> ".join([*(n for _, n in chain), ref])
        try:
            path = resolve_profile_path(ref, here).resolve()
        except ConfigError as err:
            raise ConfigError(f"{EXTENDS}: {names}: {err}") from None
        if any(path == seen for seen, _ in chain):
            raise ConfigError(f"{EXTENDS}: cycle {names}")
        parent, _ = _compose(_read_yaml(path), path.parent, (*chain, (path, ref)))
        if not isinstance(parent, dict):
            raise ConfigError(f"{EXTENDS}: {names}: {path} must be a mapping, got {type(parent).__name__}")
        merged = _merge(merged, {k: v for k, v in parent.items() if k not in NOT_INHERITED}, "")
    return _merge(merged, own, ""), refs


def _named(items: list[Any]) -> bool:
    return all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items)


def _merge(base: Any, top: Any, at: str) -> Any:
    """``top`` merged over ``base`` by the rule in the module docstring."""
    if isinstance(top, dict):
        out = dict(base) if isinstance(base, dict) else {}
        for k, v in top.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merge(out.get(k), v, f"{at}.{k}" if at else str(k))
        return out
    if isinstance(top, list) and top and _named(top):
        return _merge_named(base if isinstance(base, list) and _named(base) else [], top, at)
    return top


def _merge_named(base: list[dict[str, Any]], top: list[dict[str, Any]], at: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any] | None] = list(base)
    index = {item["name"]: i for i, item in enumerate(base)}
    seen: set[str] = set()
    for j, item in enumerate(top):
        name, where = item["name"], f"{at}[{j}]"
        if name in seen:
            raise ConfigError(f"{where}.name: duplicate name {name!r}")
        seen.add(name)
        fields = dict(item)
        remove = fields.pop(REMOVE, False)
        if not isinstance(remove, bool):
            raise ConfigError(f"{where}.{REMOVE}: must be true or false, got {remove!r}")
        if remove:
            if name not in index:
                raise ConfigError(f"{where}.{REMOVE}: nothing inherited is named {name!r}")
            out[index.pop(name)] = None
        elif name in index:
            out[index[name]] = _merge(out[index[name]], fields, where)
        else:
            index[name] = len(out)
            out.append(_merge({}, fields, where))
    return [i for i in out if i is not None]


# -- parsing -------------------------------------------------------------------------------------------------------

PROFILE_FIELDS = frozenset({"name", "description", EXTENDS, "provider", "pools", "controlPlane", "realNode", "addons"})
"""The top-level fields of every profile; a provider's own section comes on top (:class:`ProfileSection`)."""


class Fields:
    """The field parsers every part of a profile shares, a provider's section included: each takes the value and
    its path (``pools[0].labels``) and returns the typed value or raises ConfigError naming that path."""

    def item_name(self, d: dict[str, Any], at: str) -> str:
        """The required ``name`` of a list item (a pool, a kind worker): a DNS-1123 label of at most 40 characters."""
        name = self.string(d.get("name"), f"{at}.name", required=True)
        if not _DNS1123.match(name) or len(name) > 40:
            raise ConfigError(f"{at}.name: must be a DNS-1123 label of at most 40 characters, got {name!r}")
        return name

    def gpu(self, data: Any, at: str, owner: str) -> InventoryConfig | None:
        """A ``gpu:`` mapping, parsed by fake_gpu_plugin's parser (the one GPU spec parser); count 0 means no GPUs."""
        try:
            spec = parse_gpu(data, at=at, pool=owner, allow_zero_count=True)
        except GpuConfigError as err:
            raise ConfigError(str(err)) from None
        return spec if spec.count > 0 else None

    def labels(self, data: Any, at: str) -> dict[str, str]:
        d = self.mapping(data or {}, at)
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
            d = self.mapping(t, f"{at}[{i}]")
            self.known(d, f"{at}[{i}]", {"key", "value", "effect"})
            key = self.string(d.get("key"), f"{at}[{i}].key", required=True)
            if not _LABEL_KEY.match(key):
                raise ConfigError(f"{at}[{i}].key: invalid taint key {key!r}")
            effect = self.string(d.get("effect", "NoSchedule"), f"{at}[{i}].effect")
            if effect not in TAINT_EFFECTS:
                raise ConfigError(f"{at}[{i}].effect: must be one of {', '.join(TAINT_EFFECTS)}, got {effect!r}")
            value = "" if d.get("value") is None else str(d.get("value"))
            if not _LABEL_VALUE.match(value):
                raise ConfigError(f"{at}[{i}].value: invalid taint value {value!r}")
            out.append(Taint(key=key, value=value, effect=effect))
        return tuple(out)

    def flags(self, data: Any, at: str) -> dict[str, str]:
        """Component flags: ``name`` (no leading dashes) → value; booleans become ``true``/``false``."""
        out: dict[str, str] = {}
        for k, v in self.mapping(data or {}, at).items():
            key = str(k)
            if not _FLAG_NAME.match(key):
                raise ConfigError(f"{at}.{key}: not a flag name (write it without dashes, e.g. v or event-ttl)")
            if isinstance(v, dict | list) or v is None:
                raise ConfigError(f"{at}.{key}: must be a string, number or boolean")
            out[key] = str(v).lower() if isinstance(v, bool) else str(v)
        return out

    @staticmethod
    def mapping(data: Any, at: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ConfigError(f"{at}: must be a mapping, got {type(data).__name__}")
        return data

    @staticmethod
    def known(d: dict[str, Any], at: str, allowed: set[str]) -> None:
        for k in d:
            if k not in allowed:
                prefix = f"{at}." if at else ""
                raise ConfigError(f"{prefix}{k}: unknown field (allowed: {', '.join(sorted(allowed))})")

    @staticmethod
    def string(v: Any, at: str, *, required: bool = False) -> str:
        if v is None:
            if required:
                raise ConfigError(f"{at}: required")
            return ""
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ConfigError(f"{at}: must be a string, got {type(v).__name__}")
        return str(v)

    @staticmethod
    def integer(v: Any, at: str, *, minimum: int, maximum: int) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{at}: must be an integer, got {v!r}")
        if v < minimum:
            raise ConfigError(f"{at}: must be >= {minimum}, got {v}")
        if v > maximum:
            raise ConfigError(f"{at}: must be <= {maximum}, got {v}")
        return v

    @staticmethod
    def boolean(v: Any, at: str) -> bool:
        if not isinstance(v, bool):
            raise ConfigError(f"{at}: must be true or false, got {v!r}")
        return v

    @staticmethod
    def quantity(v: Any, at: str) -> str:
        s = str(v)
        if isinstance(v, bool) or not _QUANTITY.match(s):
            raise ConfigError(f"{at}: not a Kubernetes quantity: {v!r}")
        return s


class _Parser(Fields):
    """The generic fields of a profile; a provider's own section is its ProfileSection's to parse."""

    def profile(self, data: Any, name: str, source: str) -> Profile:
        d = self.mapping(data, "profile")
        provider = self.string(d.get("provider", "local"), "provider")
        if not _DNS1123.match(provider):  # which names exist is the provider registry's to say (harness/providers)
            raise ConfigError(f"provider: must be a provider name (lowercase letters, digits, '-'), got {provider!r}")
        section = _section_of(provider)
        allowed = set(PROFILE_FIELDS) | ({section.key} if section is not None and section.key else set())
        for key in d:
            owner = _owner_of(key) if key not in allowed else None
            if owner is not None:
                raise ConfigError(f"{key}: only a 'provider: {owner[0]}' profile has {owner[1].holds} "
                                  f"(this one is {provider!r})")
        self.known(d, "", allowed)
        spec = section.parse(self, d) if section is not None else GenericSpec()
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
        pname = self.string(d.get("name", name), "name")
        addons = self.addons(d.get("addons", []) or [], "addons")
        for i, p in enumerate(pools):
            if p.autoscale is not None and "karpenter" not in addons:
                raise ConfigError(f"pools[{i}].autoscale: node autoscaling needs the karpenter addon "
                                  "(addons: [karpenter])")
        check_dra(pools, real, cp)
        return Profile(name=pname, provider=provider, pools=pools, control_plane=cp, real_node=real, addons=addons,
                       provider_spec=spec, source=source)

    def addons(self, data: Any, at: str) -> tuple[str, ...]:
        """The names, in order, once each; whether each is a known addon the cluster can run is the addon
        registry's to say (``harness.addons.check_profile``, run by the provider before bring-up)."""
        if not isinstance(data, list):
            raise ConfigError(f"{at}: must be a list of addon names")
        out: list[str] = []
        for i, raw in enumerate(data):
            name = self.string(raw, f"{at}[{i}]", required=True)
            if name not in out:
                out.append(name)
        return tuple(out)

    def pool(self, data: Any, at: str) -> Pool:
        d = self.mapping(data, at)
        self.known(d, at, {"name", "nodes", "gpu", "cpu", "memory", "pods", "labels", "taints", "autoscale", "dra"})
        name = self.item_name(d, at)
        nodes = self.integer(d.get("nodes", 1), f"{at}.nodes", minimum=0, maximum=20000)
        gpu = self.gpu(d["gpu"], f"{at}.gpu", name) if d.get("gpu") is not None else None
        cpu = self.quantity(d.get("cpu", "64"), f"{at}.cpu")
        memory = self.quantity(d.get("memory", "512Gi"), f"{at}.memory")
        pods = self.integer(d.get("pods", 110), f"{at}.pods", minimum=1, maximum=100000)
        return Pool(
            name=name,
            nodes=nodes,
            gpu=gpu,
            cpu=cpu,
            memory=memory,
            pods=pods,
            labels=self.labels(d.get("labels", {}), f"{at}.labels"),
            taints=self.taints(d.get("taints", []), f"{at}.taints"),
            autoscale=self.autoscale(d["autoscale"], f"{at}.autoscale") if d.get("autoscale") is not None else None,
            dra=self.boolean(d.get("dra", False), f"{at}.dra"),
        )

    def autoscale(self, data: Any, at: str) -> Autoscale:
        d = self.mapping(data, at)
        self.known(d, at, {"maxNodes", "consolidateAfter"})
        after = self.string(d.get("consolidateAfter", "5s"), f"{at}.consolidateAfter")
        if not _GO_DURATION.match(after):
            raise ConfigError(f"{at}.consolidateAfter: must be a duration such as 5s, 2m or 1h30m, got {after!r}")
        return Autoscale(max_nodes=self.integer(d.get("maxNodes"), f"{at}.maxNodes", minimum=1, maximum=1000),
                         consolidate_after=after)

    def control_plane(self, data: Any, at: str) -> ControlPlane:
        d = self.mapping(data, at)
        self.known(d, at, {"kubernetesVersion", "apiserverPort", "liftLimits", "serviceCIDR", "podCIDR",
                           "featureGates", "runtimeConfig", "extraArgs", "schedulerDisabledPlugins"})
        version = str(d.get("kubernetesVersion", "") or "").lstrip("v")
        if version in PIN_NAMES:  # the version versions.toml pins under that name
            version = pinned_kubernetes(version)
        if version and not re.fullmatch(r"1\.\d+\.\d+", version):
            raise ConfigError(f"{at}.kubernetesVersion: must look like 1.X.Y (or default, previous), got {version!r}")
        port = self.integer(d.get("apiserverPort", 0), f"{at}.apiserverPort", minimum=0, maximum=65535)
        if 0 < port < 1024:
            raise ConfigError(f"{at}.apiserverPort: choose a port >= 1024 (or 0 for a free one), got {port}")
        return ControlPlane(
            kubernetes_version=version,
            apiserver_port=port,
            lift_limits=self.boolean(d.get("liftLimits", True), f"{at}.liftLimits"),
            service_cidr=self.string(d.get("serviceCIDR", "10.96.0.0/16"), f"{at}.serviceCIDR"),
            pod_cidr=self.string(d.get("podCIDR", "10.128.0.0/12"), f"{at}.podCIDR"),
            feature_gates=self.feature_gates(d.get("featureGates", {}), f"{at}.featureGates"),
            runtime_config=self.runtime_config(d.get("runtimeConfig", {}), f"{at}.runtimeConfig"),
            extra_args={
                comp: self.flags(args, f"{at}.extraArgs.{comp}")
                for comp, args in self.mapping(d.get("extraArgs", {}) or {}, f"{at}.extraArgs").items()
                if self._component(comp, f"{at}.extraArgs", CONTROL_PLANE_COMPONENTS)
            },
            scheduler_disabled_plugins=self.disabled_plugins(d.get("schedulerDisabledPlugins", {}),
                                                             f"{at}.schedulerDisabledPlugins"),
        )

    def disabled_plugins(self, data: Any, at: str) -> dict[str, tuple[str, ...]]:
        """Extension point → plugin names (``{permit: [GangScheduling]}``)."""
        out: dict[str, tuple[str, ...]] = {}
        for point, names in self.mapping(data or {}, at).items():
            if point not in SCHEDULER_EXTENSION_POINTS:
                raise ConfigError(f"{at}.{point}: not a kube-scheduler extension point "
                                  f"(one of {', '.join(SCHEDULER_EXTENSION_POINTS)})")
            if not isinstance(names, list) or not names:
                raise ConfigError(f"{at}.{point}: must be a non-empty list of plugin names")
            for i, name in enumerate(names):
                if not isinstance(name, str) or not _PLUGIN_NAME.match(name):
                    raise ConfigError(f"{at}.{point}[{i}]: not a plugin name (CamelCase, e.g. GangScheduling), "
                                      f"got {name!r}")
            out[str(point)] = tuple(dict.fromkeys(names))
        return out

    def real_node(self, data: Any, at: str) -> RealNode:
        d = self.mapping(data, at)
        self.known(d, at, {"enabled", "name", "gpu", "labels", "taints", "extraArgs", "dra"})
        name = self.string(d.get("name", "aiconform-real-0"), f"{at}.name")
        if not _DNS1123.match(name):
            raise ConfigError(f"{at}.name: must be a DNS-1123 label, got {name!r}")
        return RealNode(
            enabled=self.boolean(d.get("enabled", False), f"{at}.enabled"),
            name=name,
            gpu=self.gpu(d["gpu"], f"{at}.gpu", name) if d.get("gpu") is not None else None,
            labels=self.labels(d.get("labels", {}), f"{at}.labels"),
            taints=self.taints(d.get("taints", []), f"{at}.taints"),
            dra=self.dra_pool(d.get("dra"), f"{at}.dra", name),
            extra_args=self.flags(d.get("extraArgs", {}), f"{at}.extraArgs"),
        )

    def dra_pool(self, data: Any, at: str, node: str) -> DraPool | None:
        if data is None:
            return None
        d = self.mapping(data, at)
        self.known(d, at, {"enabled", "gpu"})
        if not self.boolean(d.get("enabled", True), f"{at}.enabled"):
            return None
        if d.get("gpu") is None:
            raise ConfigError(f"{at}.gpu: required (the DRA pool's GPUs, e.g. {{model: A100-SXM4-80GB, count: 2}})")
        gpu = self.gpu(d["gpu"], f"{at}.gpu", f"{node}-dra")
        return DraPool(gpu=gpu) if gpu is not None else None

    def feature_gates(self, data: Any, at: str) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for k, v in self.mapping(data or {}, at).items():
            if not _FEATURE_GATE.match(str(k)):
                raise ConfigError(f"{at}.{k}: not a feature gate name (CamelCase, e.g. GenericWorkload)")
            out[str(k)] = self.boolean(v, f"{at}.{k}")
        return out

    def runtime_config(self, data: Any, at: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in self.mapping(data or {}, at).items():
            key = str(k)
            if not _RUNTIME_CONFIG_KEY.match(key):
                raise ConfigError(f"{at}.{key}: not an API group/version (e.g. scheduling.k8s.io/v1beta1, api/all)")
            out[key] = str(v).lower() if isinstance(v, bool) else self.string(v, f"{at}.{key}", required=True)
            if "," in out[key]:
                raise ConfigError(f"{at}.{key}: a value may not contain ','")
        return out

    @staticmethod
    def _component(name: Any, at: str, allowed: tuple[str, ...]) -> bool:
        if name not in allowed:
            raise ConfigError(f"{at}.{name}: unknown component (allowed: {', '.join(allowed)})")
        return True


SECTION_ATTRIBUTE = "PROFILE_SECTION"
"""What a provider's module publishes as its :class:`ProfileSection` (beside its registry entry point's factory)."""


def _as_section(provider: str, value: object) -> ProfileSection | None:
    if value is None:
        return None
    if not isinstance(getattr(value, "key", None), str) or not callable(getattr(value, "parse", None)):
        raise ConfigError(f"provider {provider!r}: its {SECTION_ATTRIBUTE} is not a profile section (a key and a parse "
                          "method, harness.config.ProfileSection)")
    return cast(ProfileSection, value)


def _section_of(provider: str) -> ProfileSection | None:
    """The provider's profile hook, read from the entry-point group (harness/providers/entrypoints.py, which imports
    nothing of this module)."""
    from harness.providers.entrypoints import published

    return _as_section(provider, published(provider, SECTION_ATTRIBUTE))


def _owner_of(key: str) -> tuple[str, ProfileSection] | None:
    """The registered provider whose own section is the top-level ``key``, and that section.  A provider whose
    section is malformed owns nothing here (a profile for it says why)."""
    from harness.providers.entrypoints import published_by_all

    for provider, value in published_by_all(SECTION_ATTRIBUTE):
        try:
            section = _as_section(provider, value)
        except ConfigError:
            continue
        if section is not None and section.key == key:
            return provider, section
    return None
