"""The provider interface: one small protocol every backend implements, and optional abilities as separate protocols.

Two kinds of capability are kept apart:

- **Abilities** are things a *provider* can do to a cluster it made (add nodes, install addons, load an image,
  restart a node, upgrade the control plane).  Each is a protocol below; a provider has exactly the abilities whose methods it
  implements, and :func:`abilities_of` derives the list from ``isinstance`` checks, so there is no second list to
  keep in step.  Asking a provider for an ability it lacks raises UnsupportedCapability (:func:`require`); an
  ability that cannot apply to one particular cluster (loading an image where no real node runs) raises it too,
  with the reason, never a silent no-op.
- **Cluster facts** (harness/facts.py) are what a *cluster* offers to the checks (an enforcing NetworkPolicy
  implementation, a gang scheduler, DRA).  A provider declares them for the clusters it makes
  (``ProviderInfo.facts``); on an existing cluster ``aiconform run`` detects them from what the API serves
  (harness/detect.py) and a user may declare them instead (``aiconform run --capability``).

Providers are found through the registry (registry.py), never imported by name outside it.  Owns types only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from harness.config import Profile
from harness.errors import UnsupportedCapability

Progress = Callable[[str], None]


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ProviderOptions:
    """What the caller hands a provider besides the cluster name (entry points are called as
    ``factory(name, options)``)."""

    root: Path | None = None
    """State root holding one run directory per cluster; None: ``$AICONFORM_STATE_DIR`` or ~/.local/state/aiconform."""
    kubeconfig: Path | None = None
    """The kubeconfig of a cluster the provider did not make (provider ``existing``)."""
    facts: frozenset[str] = frozenset()
    """Cluster facts the user declared (``--capability``); validated against harness/facts.py by the caller."""
    run_id: str = ""
    """The run this provider serves (``aiconform run``), for providers that clean up by run label."""
    progress: Progress = stderr_progress
    """Where status lines go (stderr by default)."""


@dataclass(frozen=True)
class ProviderInfo:
    """A running cluster as the report and the checks see it.  Build it with :func:`provider_info`."""

    provider: str
    name: str
    tier: str
    """S (simulated nodes), R (a real kubelet with fake GPUs), or G (real GPUs)."""
    abilities: frozenset[str]
    """What the provider can do to this cluster (derived from the ability protocols it implements)."""
    facts: frozenset[str] = frozenset()
    """What the cluster offers the checks (harness/facts.py), e.g. ``simulated-nodes``, ``networkpolicy``."""
    kubernetes_version: str = ""
    profile: str = ""
    kubeconfig: str = ""
    fake: str = ""
    """What is simulated, in words, for the report."""


@dataclass(frozen=True)
class ClusterStatus:
    """What ``aiconform status`` prints."""

    name: str
    provider: str
    healthy: bool
    kubeconfig: str
    profile: str = ""
    tier: str = ""
    kubernetes_version: str = ""
    server: str = ""
    components: dict[str, int | None] = field(default_factory=dict)
    """Component → pid (None: not running), in start order."""
    notes: dict[str, str] = field(default_factory=dict)
    """Provider-specific lines for ``aiconform status`` (label → text), e.g. kind's ``engine``: which Docker."""


@runtime_checkable
class ClusterProvider(Protocol):
    """One cluster named ``name`` of one backend.  A registry entry point returns one of these."""

    name: str

    def create(self, profile: Profile) -> Path:
        """Bring the cluster up (idempotent for the same profile); returns the kubeconfig path.  On failure or
        Ctrl-C, what was started is undone before the exception leaves."""
        ...

    def delete(self) -> bool:
        """Tear down what this provider made; returns False when there was nothing to remove."""
        ...

    def is_up(self) -> bool:
        """True while the cluster exists and its API answers."""
        ...

    def kubeconfig(self) -> Path: ...

    def status(self) -> ClusterStatus:
        """ClusterNotFound when there is no such cluster."""
        ...

    def collect_logs(self, dest: Path) -> list[Path]: ...

    def info(self) -> ProviderInfo: ...


# -- abilities: one protocol (one method) each; the method name is the ability's name ------------------------------


@runtime_checkable
class AddsNodes(Protocol):
    def add_nodes(self, pool: str, count: int) -> list[str]:
        """Add ``count`` nodes to the profile's pool ``pool``; returns their names once they are Ready."""
        ...


@runtime_checkable
class RestartsNodes(Protocol):
    def restart_node(self, node: str) -> None:
        """Restart the node's kubelet (pods keep running); returns once it is healthy again."""
        ...


@runtime_checkable
class LoadsImages(Protocol):
    def load_image(self, archive: Path) -> None:
        """Import an OCI/docker image archive into the container runtime of the cluster's real nodes."""
        ...


@runtime_checkable
class UpgradesControlPlane(Protocol):
    def upgrade_control_plane(self, version: str) -> None:
        """Restart the control plane on another Kubernetes version, keeping etcd's data."""
        ...


@runtime_checkable
class InstallsAddons(Protocol):
    def ensure_addons(self, names: Sequence[str]) -> list[str]:
        """Install the addons ``names`` (harness.addons registry) that this running cluster lacks, through the one
        installer and the provider's addon site; returns the cluster facts they add (idempotent)."""
        ...


ABILITY_PROTOCOLS: tuple[type, ...] = (AddsNodes, InstallsAddons, LoadsImages, RestartsNodes, UpgradesControlPlane)


def ability_name(protocol: type) -> str:
    """An ability's name is the name of its protocol's one method (``add_nodes``)."""
    methods = [n for n, v in vars(protocol).items() if not n.startswith("_") and callable(v)]
    if len(methods) != 1:
        raise TypeError(f"ability protocol {protocol.__name__} must declare exactly one method, has {methods}")
    return methods[0]


def abilities_of(provider: object) -> frozenset[str]:
    """The abilities ``provider`` implements, by ``isinstance`` against the protocols (the one source)."""
    return frozenset(ability_name(p) for p in ABILITY_PROTOCOLS if isinstance(provider, p))


def provider_info(of: object, /, *, provider: str, name: str, tier: str, facts: frozenset[str] = frozenset(),
                  kubernetes_version: str = "", profile: str = "", kubeconfig: str = "", fake: str = "") -> ProviderInfo:
    """ProviderInfo for the provider object ``of``, its abilities derived from what it implements, never typed in."""
    return ProviderInfo(provider=provider, name=name, tier=tier, abilities=abilities_of(of), facts=facts,
                        kubernetes_version=kubernetes_version, profile=profile, kubeconfig=kubeconfig, fake=fake)


def unsupported(provider: object, capability: type, what: str, provider_name: str = "") -> UnsupportedCapability:
    """The error for an ability ``provider`` lacks.  A provider may say why it lacks one in a ``why_not`` mapping
    (ability name → reason), e.g. kind's "no control-plane upgrade path"."""
    reasons = getattr(provider, "why_not", None)
    reason = reasons.get(ability_name(capability)) if isinstance(reasons, dict) else None
    return UnsupportedCapability(provider_name or type(provider).__name__, f"{what}: {reason}" if reason else what)


P = TypeVar("P")


def require(provider: object, capability: type[P], what: str) -> P:
    """``provider`` as ``capability`` or UnsupportedCapability naming ``what``."""
    if isinstance(provider, capability):
        return provider
    raise unsupported(provider, capability, what)
