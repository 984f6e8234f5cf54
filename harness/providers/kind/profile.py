"""The ``kind:`` section of a ``provider: kind`` profile: its types, its parser and what it says of the cluster
(tier R; one control-plane node plus one node per worker).  harness/config.py calls the parser through the provider
registry (``PROFILE_SECTION``, handed on by this package's ``__init__``); the rest of the kind provider reads the
parsed section with :func:`kind_spec`.  Owns validation only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fake_gpu_plugin.config import InventoryConfig
from harness.config import Fields, Profile, ProfileSection, Taint
from harness.errors import ConfigError

LOCAL_ONLY = ("pools", "realNode")
"""Top-level fields of the local provider that a kind profile refuses (its nodes go under ``kind.workers``)."""
LOCAL_ONLY_CONTROL_PLANE = ("liftLimits", "apiserverPort", "schedulerDisabledPlugins")
"""``controlPlane`` fields only the local provider's own processes honour."""


@dataclass(frozen=True)
class Mount:
    """A host path mounted into a kind node container (kind's ``extraMounts``)."""

    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class KindWorker:
    """One kind worker node (a container of the harness-built node image) and the GPUs its fake plugin plays."""

    name: str
    """Short name of the worker in the profile; the node carries it as ``aiconform.io/pool``."""
    gpu: InventoryConfig | None = None
    """The GPUs this worker's plugin advertises (its own spec: models, MIG and time-slicing may differ per worker)."""
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    extra_mounts: tuple[Mount, ...] = ()


@dataclass(frozen=True)
class KindSpec:
    """The ``kind:`` section of a ``provider: kind`` profile (the profile's ``provider_spec``)."""

    workers: tuple[KindWorker, ...] = ()
    node_image: str = ""
    """A node image of the user's own (pulled by kind if missing: untested here); empty: the offline image the
    harness builds (``aiconform node-image build``)."""

    def tier(self, profile: Profile) -> str:
        return "R"  # every kind node runs a real kubelet and containerd; the GPUs are the fake plugin's

    def node_count(self, profile: Profile) -> int:
        return 1 + len(self.workers)


def kind_spec(profile: Profile) -> KindSpec | None:
    """The kind section of ``profile``; None for a profile of another provider."""
    spec = profile.provider_spec
    return spec if isinstance(spec, KindSpec) else None


class KindSection:
    """The kind provider's hook into profile parsing (config.ProfileSection)."""

    key = "kind"
    holds = "kind nodes"

    def parse(self, fields: Fields, profile: Mapping[str, Any]) -> KindSpec:
        """The ``kind:`` section; ConfigError when the profile carries a local-only field."""
        local_only = [k for k in LOCAL_ONLY if profile.get(k)]
        cp = profile.get("controlPlane") or {}
        local_only += [f"controlPlane.{k}" for k in LOCAL_ONLY_CONTROL_PLANE if isinstance(cp, dict) and k in cp]
        if local_only:
            raise ConfigError(f"{local_only[0]}: a local-provider field in a 'provider: kind' profile; kind nodes and "
                              "their GPUs go under kind.workers")
        at = self.key
        d = fields.mapping(profile.get(at) or {}, at)
        fields.known(d, at, {"workers", "nodeImage"})
        raw = d.get("workers", [])
        if not isinstance(raw, list):
            raise ConfigError(f"{at}.workers: must be a list")
        workers = tuple(self.worker(fields, w, f"{at}.workers[{i}]") for i, w in enumerate(raw))
        seen: set[str] = set()
        for i, w in enumerate(workers):
            if w.name in seen:
                raise ConfigError(f"{at}.workers[{i}].name: duplicate worker name {w.name!r}")
            seen.add(w.name)
        return KindSpec(workers=workers, node_image=fields.string(d.get("nodeImage", ""), f"{at}.nodeImage"))

    @staticmethod
    def worker(fields: Fields, data: Any, at: str) -> KindWorker:
        d = fields.mapping(data, at)
        fields.known(d, at, {"name", "gpu", "labels", "taints", "extraMounts"})
        name = fields.item_name(d, at)
        raw_mounts = d.get("extraMounts", []) or []
        if not isinstance(raw_mounts, list):
            raise ConfigError(f"{at}.extraMounts: must be a list")
        mounts = []
        for i, m in enumerate(raw_mounts):
            where = f"{at}.extraMounts[{i}]"
            md = fields.mapping(m, where)
            fields.known(md, where, {"hostPath", "containerPath", "readOnly"})
            host = fields.string(md.get("hostPath"), f"{where}.hostPath", required=True)
            inside = fields.string(md.get("containerPath"), f"{where}.containerPath", required=True)
            for key, path in (("hostPath", host), ("containerPath", inside)):
                if not path.startswith("/"):
                    raise ConfigError(f"{where}.{key}: must be an absolute path, got {path!r}")
            mounts.append(Mount(host, inside, fields.boolean(md.get("readOnly", False), f"{where}.readOnly")))
        return KindWorker(
            name=name,
            gpu=fields.gpu(d["gpu"], f"{at}.gpu", name) if d.get("gpu") is not None else None,
            labels=fields.labels(d.get("labels", {}), f"{at}.labels"),
            taints=fields.taints(d.get("taints", []), f"{at}.taints"),
            extra_mounts=tuple(mounts),
        )


PROFILE_SECTION: ProfileSection = KindSection()
