"""API discovery: kind -> resource path from the server's own discovery documents (CRDs included), cached, and
refreshed when a kind is missing.

Owns the kind index; it fetches through a function the client hands it, never through a transport of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ApiError, NotFound

_DISCOVERY_ACCEPT = ", ".join((
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
    "application/json",
))


@dataclass(frozen=True)
class ResourceInfo:
    """Where a kind lives: ``/api/v1/pods`` or ``/apis/<group>/<version>/<plural>``, namespaced or not."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def base(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        p = self.base
        if self.namespaced and namespace:
            p += f"/namespaces/{namespace}"
        p += f"/{self.plural}"
        if name:
            p += f"/{name}"
        return p


@dataclass
class _Index:
    by_gvk: dict[tuple[str, str], ResourceInfo] = field(default_factory=dict)
    by_kind: dict[str, list[ResourceInfo]] = field(default_factory=dict)
    """kind → its resources in preference order: the core group first, then groups in the server's order, each
    group's preferred version first (kubectl's order)."""

    def add(self, info: ResourceInfo) -> None:
        if (info.api_version, info.kind) not in self.by_gvk:
            self.by_gvk[(info.api_version, info.kind)] = info
            self.by_kind.setdefault(info.kind, []).append(info)


class Discovery:
    """The server's API discovery, cached.  One aggregated-discovery request each for ``/api`` and ``/apis``
    (Kubernetes ≥ 1.26), or the per-group documents on older servers.  A kind that is not in the cache makes it
    reload once (a CRD created since), then :class:`~harness.errors.NotFound`."""

    def __init__(self, get: Callable[[str, str], Any]) -> None:
        """``get(path, accept)`` returns the decoded JSON answer (the client's own request function)."""
        self._get = get
        self._lock = threading.Lock()
        self._index: _Index | None = None
        self._generation = 0
        self.loads = 0
        """How many times discovery was (re)loaded."""

    def lookup(self, kind: str, api_version: str | None = None) -> ResourceInfo:
        """The resource of ``kind`` in ``api_version`` (default: the preferred one, core group first)."""
        index, generation = self._index, self._generation
        if index is None:
            index, generation = self._reload(-1)
        found = _find(index, kind, api_version)
        if found is None:
            found = _find(self._reload(generation)[0], kind, api_version)
        if found is None:
            found = self._from_crds(kind, api_version)
        if found is None:
            where = f" in {api_version}" if api_version else " in any API group"
            raise NotFound(404, "NotFound", f"the server has no kind {kind}{where} (API discovery)")
        return found

    def served_versions(self, kind: str, group: str) -> list[str]:
        """Every ``group/version`` of ``group`` (``""``: the core group) that serves ``kind``, preferred first; []
        when none does.  Reads the cached discovery (loaded once if not yet)."""
        index = self._index or self._reload(-1)[0]
        return [i.api_version for i in index.by_kind.get(kind, [])
                if (i.api_version.rpartition("/")[0] if "/" in i.api_version else "") == group]

    def _from_crds(self, kind: str, api_version: str | None) -> ResourceInfo | None:
        """A kind of an Established CRD that discovery does not list yet.  The apiserver publishes a new CRD in
        discovery asynchronously: right after Established, 4 of 30 lookups missed it on this machine.  The CRD
        itself says where its objects live, so read it (needs read access to CRDs; without it: not found)."""
        try:
            crds = self._get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/json")
        except ApiError:
            return None
        for crd in crds.get("items") or []:
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            established = any(c.get("type") == "Established" and c.get("status") == "True"
                              for c in (crd.get("status") or {}).get("conditions") or [])
            if names.get("kind") != kind or not established:
                continue
            served = [v for v in spec.get("versions") or [] if v.get("served")]
            if api_version:
                served = [v for v in served if f"{spec.get('group')}/{v.get('name')}" == api_version]
            else:
                served.sort(key=lambda v: not v.get("storage"))  # the storage version first
            if served:
                info = ResourceInfo(f"{spec['group']}/{served[0]['name']}", kind, str(names.get("plural")),
                                    spec.get("scope") == "Namespaced")
                with self._lock:
                    if self._index is not None:
                        self._index.add(info)
                return info
        return None

    def invalidate(self) -> None:
        """Forget what was discovered; the next lookup reloads."""
        with self._lock:
            self._index = None

    def _reload(self, seen_generation: int) -> tuple[_Index, int]:
        with self._lock:
            if self._index is not None and self._generation != seen_generation:
                return self._index, self._generation  # another thread reloaded since we looked
            index = _Index()
            self._load_core(index)
            self._load_groups(index)
            self.loads += 1
            self._generation += 1
            self._index = index
            return index, self._generation

    def _load_core(self, index: _Index) -> None:
        doc = self._get("/api", _DISCOVERY_ACCEPT)
        if doc.get("kind") == "APIGroupDiscoveryList":
            _add_aggregated(index, doc)
            return
        for version in doc.get("versions") or ["v1"]:
            _add_legacy(index, str(version), self._get(f"/api/{version}", "application/json"))

    def _load_groups(self, index: _Index) -> None:
        doc = self._get("/apis", _DISCOVERY_ACCEPT)
        if doc.get("kind") == "APIGroupDiscoveryList":
            _add_aggregated(index, doc)
            return
        for group in doc.get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("groupVersion")
            versions = [v.get("groupVersion") for v in group.get("versions") or [] if v.get("groupVersion")]
            for gv in sorted(versions, key=lambda v: v != preferred):
                try:
                    _add_legacy(index, gv, self._get(f"/apis/{gv}", "application/json"))
                except ApiError:
                    continue  # an aggregated API that is down (503) hides only its own kinds


def _find(index: _Index, kind: str, api_version: str | None) -> ResourceInfo | None:
    if api_version:
        return index.by_gvk.get((api_version, kind))
    found = index.by_kind.get(kind)
    return found[0] if found else None


def _add_aggregated(index: _Index, doc: Mapping[str, Any]) -> None:
    for group in doc.get("items") or []:
        name = (group.get("metadata") or {}).get("name") or ""
        for version in group.get("versions") or []:  # the server lists the preferred version first
            gv = f"{name}/{version['version']}" if name else str(version["version"])
            for res in version.get("resources") or []:
                kind = (res.get("responseKind") or {}).get("kind")
                if kind and res.get("resource"):
                    index.add(ResourceInfo(gv, kind, res["resource"], res.get("scope") == "Namespaced"))


def _add_legacy(index: _Index, gv: str, doc: Mapping[str, Any]) -> None:
    for res in doc.get("resources") or []:
        name = res.get("name", "")
        if res.get("kind") and name and "/" not in name:
            index.add(ResourceInfo(gv, res["kind"], name, bool(res.get("namespaced"))))
