"""What an addon is: a frozen description the installer acts on.  No I/O here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.images import Image
    from harness.kube import KubeClient
    from harness.pki import Pki

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
class HostContext:
    """What an addon that runs as a host process of the cluster (tier S: no node runs containers) gets."""

    client: KubeClient
    server: str
    """The apiserver's URL as host processes reach it."""
    pki: Pki
    """The cluster's PKI: serving certificates signed by the cluster CA (the CA is the webhooks' caBundle)."""
    run_dir: Path
    """The cluster's run directory (removed at teardown)."""
    go: str
    """The Go toolchain (to locate the pinned module in the module cache)."""
    start: Callable[[str, list[str]], None]
    """Start a supervised host process (name, argv); the cluster's teardown stops it."""
    wait_ready: Callable[[str, Callable[[], bool], float, str], None]
    """Poll a probe until true with a deadline (name, probe, timeout, what), failing at once if the process died."""


@dataclass(frozen=True)
class Addon:
    name: str
    """Registry name, used in profiles (``addons: [NAME]``)."""
    binary: str
    """The binary's name in ``versions.toml``."""
    image: Callable[[Path, str], Image] | None = None
    """The image definition for the resolved binary and its version (harness.images builds and caches it)."""
    manifests: Callable[[AddonContext], list[Obj]] = lambda ctx: []
    workload: tuple[str, str, str] = ("", "", "")
    """(kind, namespace, name) of the DaemonSet or Deployment whose availability means "installed"."""
    host: Callable[[HostContext, Path, str], None] | None = None
    """Install as a host process instead of an image and a workload (given the context, the resolved binary and
    its version): for controllers that must run on a cluster with no container-running node (tier S)."""
    facts: tuple[str, ...] = ()
    """Cluster facts the addon provides once installed (see harness.providers.base)."""
    needs_real_node: bool = True
    host_undo: Callable[[Path], tuple[UndoCommand, ...]] = lambda binary: ()
    """Commands (given the resolved binary) that undo the host changes the addon's pods make, run at teardown after
    its containers are gone; idempotent, a failure (nothing left to undo) is ignored."""
    host_tools: tuple[tuple[str, str], ...] = ()
    """(executable, Debian package) the host needs for this addon (its undo commands), checked before bring-up."""
    description: str = ""
