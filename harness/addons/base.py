"""What an addon is: a frozen description the installer acts on.  No I/O here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.images import Image

Obj = dict[str, Any]
UndoCommand = tuple[str, ...]
"""An argv to run on the host at teardown (e.g. removing an nftables table an addon's pod created)."""


@dataclass(frozen=True)
class AddonContext:
    """What manifests may depend on: the cluster as the installer sees it."""

    image: str
    """The image tag the installer loaded into the node's containerd."""
    apiserver_host: str
    apiserver_port: int
    """Where a host-network pod reaches the apiserver (the cluster's own server address)."""
    node_selector: dict[str, str] = field(default_factory=dict)
    """Selects the real nodes (traffic-carrying and host-touching workloads never land on simulated nodes)."""


@dataclass(frozen=True)
class Addon:
    name: str
    """Registry name, used in profiles (``addons: [NAME]``)."""
    binary: str
    """The binary's name in ``versions.toml``."""
    image: Callable[[Path, str], Image]
    """The image definition for the resolved binary and its version (harness.images builds and caches it)."""
    manifests: Callable[[AddonContext], list[Obj]]
    workload: tuple[str, str, str]
    """(kind, namespace, name) of the DaemonSet or Deployment whose availability means "installed"."""
    facts: tuple[str, ...] = ()
    """Cluster facts the addon provides once installed (see harness.providers.base)."""
    needs_real_node: bool = True
    host_undo: Callable[[Path], tuple[UndoCommand, ...]] = lambda binary: ()
    """Commands (given the resolved binary) that undo the host changes the addon's pods make, run at teardown after
    its containers are gone; idempotent, a failure (nothing left to undo) is ignored."""
    host_tools: tuple[tuple[str, str], ...] = ()
    """(executable, Debian package) the host needs for this addon (its undo commands), checked before bring-up."""
    crd_group: str = ""
    """The versions.toml group of the pinned module whose CRDs the addon needs (read from the Go module cache at
    install time, never copied into the repository); empty: none."""
    crds: Callable[[Path], list[Obj]] = lambda module_dir: []
    """The CustomResourceDefinitions in that module's directory; applied and Established before the manifests."""
    accepted_class: str = ""
    """A GatewayClass the addon's controller must mark Accepted before the addon counts as installed."""
    description: str = ""
