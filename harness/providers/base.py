"""The provider protocol.  Optional abilities are separate protocols; asking a provider for one it lacks raises
UnsupportedCapability, never a silent no-op."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from harness.config import Profile
from harness.errors import UnsupportedCapability


@dataclass(frozen=True)
class ProviderInfo:
    provider: str
    name: str
    tier: str
    """S (simulated nodes), R (a real kubelet with fake GPUs), or G (real GPUs)."""
    kubernetes_version: str = ""
    capabilities: frozenset[str] = field(default_factory=frozenset)
    """e.g. ``networkpolicy`` (the CNI enforces NetworkPolicy), ``real-node``, ``add-nodes``."""
    profile: str = ""
    kubeconfig: str = ""
    fake: str = ""
    """What is simulated, in words, for the report."""


@runtime_checkable
class ClusterProvider(Protocol):
    name: str

    def create(self, profile: Profile) -> Path:
        """Bring the cluster up (idempotent for the same profile); returns the kubeconfig path."""
        ...

    def delete(self) -> bool:
        """Tear everything down; returns False when there was nothing to remove."""
        ...

    def kubeconfig(self) -> Path: ...

    def collect_logs(self, dest: Path) -> list[Path]: ...

    def info(self) -> ProviderInfo: ...


@runtime_checkable
class AddsNodes(Protocol):
    def add_nodes(self, pool: str, count: int) -> list[str]: ...


@runtime_checkable
class RestartsNodes(Protocol):
    def restart_node(self, node: str) -> None: ...


@runtime_checkable
class LoadsImages(Protocol):
    def load_image(self, archive: Path) -> None: ...


@runtime_checkable
class UpgradesControlPlane(Protocol):
    def upgrade_control_plane(self, version: str) -> None: ...


P = TypeVar("P")


def require(provider: object, capability: type[P], what: str) -> P:
    """``provider`` as ``capability`` or UnsupportedCapability naming ``what``."""
    if isinstance(provider, capability):
        return provider
    raise UnsupportedCapability(type(provider).__name__, what)
