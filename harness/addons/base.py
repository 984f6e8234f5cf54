"""What an addon is: a frozen description the installer acts on.  No I/O here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.images import Image
    from harness.kube import KubeClient

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
    real_nodes: tuple[tuple[str, str], ...] = ()
    """(name, InternalIP) of each real node: where a host-network addon binds, whose pods it may discover."""
    host_metrics: dict[str, str] = field(default_factory=dict)
    """Host-process metrics endpoints of the real node (``fake-gpu-plugin`` → ``127.0.0.1:PORT``), reachable from
    a host-network pod only."""


@dataclass(frozen=True)
class Addon:
    name: str
    """Registry name, used in profiles (``addons: [NAME]``)."""
    binary: str
    """The binary's name in ``versions.toml``; empty when the image brings the program itself (a Debian package),
    then ``image`` gets no binary and ``version``."""
    image: Callable[[Path | None, str], Image]
    """The image definition for the resolved binary and its version (harness.images builds and caches it)."""
    manifests: Callable[[AddonContext], list[Obj]]
    workload: tuple[str, str, str] | None
    """(kind, namespace, name) of the DaemonSet or Deployment whose availability means "installed"; None for an
    image-only addon (loaded into the node for checks to deploy, e.g. the model server)."""
    facts: tuple[str, ...] = ()
    """Cluster facts the addon provides once installed (see harness.providers.base)."""
    needs_real_node: bool = True
    host_undo: Callable[[Path], tuple[UndoCommand, ...]] = lambda binary: ()
    """Commands (given the resolved binary) that undo the host changes the addon's pods make, run at teardown after
    its containers are gone; idempotent, a failure (nothing left to undo) is ignored."""
    host_tools: tuple[tuple[str, str], ...] = ()
    """(executable, Debian package) the host needs for this addon (its undo commands), checked before bring-up."""
    description: str = ""
    version: str = ""
    """The version shown for an addon without a pinned binary (e.g. ``bookworm`` for a Debian package)."""
    available: Callable[[KubeClient, float], None] | None = None
    """A further wait after its pods are Ready (an APIService turning Available), given the client and a deadline
    in seconds; raises an AiconformError that carries the addon's own log lines."""
