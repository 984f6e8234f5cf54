"""What an addon is: a frozen description the installer acts on.  No I/O here.

An addon that serves admission or conversion webhooks declares :class:`Webhooks` (the Service and Secret its
manifests name, and probes the apiserver must send through them); the installer owns everything else: the serving
certificate from the cluster CA, the caBundle of every Validating/MutatingWebhookConfiguration and CRD conversion
webhook in the manifests, the wait until the webhooks answer, and the undo.  An addon that can run without a real
node declares :attr:`Addon.host`: at tier S the installer runs its binary as a host process instead of its
workload (and points the webhook configurations at ``https://127.0.0.1:PORT``).
"""

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
    """The image tag the installer loaded into the node's containerd ("" in host mode: no image is built)."""
    apiserver_host: str
    apiserver_port: int
    """Where a host-network pod reaches the apiserver (the cluster's own server address)."""
    node_selector: dict[str, str] = field(default_factory=dict)
    """Selects the real nodes (traffic-carrying and host-touching workloads never land on simulated nodes)."""
    mode: str = "pod"
    """``pod``: the workload runs on the real node (tier R); ``host``: the binary runs as a host process (tier S)."""
    upstream: Callable[[str], list[Obj]] = lambda path: []
    """Renders a kustomization directory (or reads a YAML file) of the addon's pinned Go module, found in the Go
    module cache at install time (``kubectl kustomize``); upstream YAML is never copied into the repository."""


@dataclass(frozen=True)
class HostContext:
    """What a host process of an addon is given (tier S)."""

    binary: Path
    """The resolved pinned binary."""
    kubeconfig: Path
    """A kubeconfig of its own: a client certificate for its ServiceAccount's user name, so the RBAC of its
    manifests applies unchanged."""
    workdir: Path
    """A directory of its own under the cluster's run directory (config files go here)."""
    cert_dir: Path
    """Holds ``tls.crt``/``tls.key`` (its webhook serving certificate) and ``ca.crt``."""
    webhook_port: int
    """The free port on 127.0.0.1 its webhook server must listen on (the webhook configurations point there)."""
    health_port: int
    """A free port on 127.0.0.1 for its health endpoint, if it has one."""


@dataclass(frozen=True)
class HostProcess:
    argv: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()
    """(name under the workdir, content) written before it starts."""
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WebhookProbe:
    """An object the installer creates with a server-side dry run until the apiserver's call to the addon's webhook
    answers: the webhook must deny it (so the answer is the controller's, not a skipped webhook's)."""

    obj: Obj
    webhook: str
    """The ``webhooks[].name`` expected to deny it (``admission webhook "NAME" denied the request``)."""


@dataclass(frozen=True)
class Webhooks:
    """How an addon serves webhooks (admission, CRD conversion) or an aggregated API (APIService) over TLS from its
    Service; the configurations and APIServices themselves are ordinary objects of its manifests.  An APIService
    backed by the Service gets the caBundle too and is awaited until Available (tier R only)."""

    service: str
    namespace: str
    """The Service the webhook configurations name (its ``<svc>.<ns>.svc`` names go into the certificate)."""
    secret: str
    """The ``kubernetes.io/tls`` Secret the workload mounts as its serving certificate (the installer writes it;
    an object of that name in the manifests is replaced)."""
    probes: tuple[WebhookProbe, ...] = ()
    """Sent through the webhooks after rollout; every one must be answered before the addon counts as installed."""


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
    description: str = ""
    webhooks: Webhooks | None = None
    host: Callable[[HostContext], HostProcess] | None = None
    """How to run the binary as a host process at tier S (no real node); None: the addon needs a real node."""
