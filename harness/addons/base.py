"""What an addon is: a frozen description the installer acts on, and the manifest pieces addon modules share
(labels, in-cluster API env, ServiceAccount + ClusterRole + binding, the host-network workload on the real nodes).
No I/O here.

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
    from harness.config import Pool
    from harness.images import Image
    from harness.kube import KubeClient

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
    cluster: str = ""
    """The cluster's name (labels that name it, e.g. on nodes an autoscaler adds)."""
    pools: tuple[Pool, ...] = ()
    """The profile's simulated node pools (an autoscaler's node shapes come from them)."""
    real_nodes: tuple[tuple[str, str], ...] = ()
    """(name, InternalIP) of each real node: where a host-network addon binds, whose pods it may discover."""
    host_metrics: dict[str, str] = field(default_factory=dict)
    """Host-process metrics endpoints of the real node (``fake-gpu-plugin`` → ``127.0.0.1:PORT``), reachable from
    a host-network pod only."""
    time_compression: float | None = None
    """The profile's ``controlPlane.time_compression``: a controller's timers are its production values divided by
    it (harness/timescale.py); None: the addon's own settings."""


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
    pools: tuple[Pool, ...] = ()
    """The profile's simulated node pools (as :attr:`AddonContext.pools`)."""
    time_compression: float | None = None
    """As :attr:`AddonContext.time_compression`."""


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
    """The binary's name in ``versions.toml``; empty for an addon that brings no pinned binary (an image of this
    repository), which then shows ``version``."""
    image: Callable[[Path, str], Image] | None
    """The image definition for the resolved binary and its version (harness.images builds and caches it); an addon
    without a pinned binary gets an empty ``Path()`` and ignores it.  None: the addon brings no image (manifests
    only, with ``workload=None`` and ``needs_real_node=False``: it runs on any cluster a provider made)."""
    manifests: Callable[[AddonContext], list[Obj]]
    workload: tuple[str, str, str] | None
    """(kind, namespace, name) of the DaemonSet or Deployment whose availability means "installed"; None for an
    image-only addon (loaded into the real node for checks to deploy, e.g. the model server) or a manifests-only one
    (its objects applied, nothing to run)."""
    facts: tuple[str, ...] = ()
    """Cluster facts the addon provides once installed (harness/facts.py)."""
    needs_real_node: bool = True
    host_undo: Callable[[Path], tuple[UndoCommand, ...]] = lambda binary: ()
    """Commands (given the resolved binary) that undo the host changes the addon's pods make, run at teardown after
    its containers are gone; idempotent, a failure (nothing left to undo) is ignored."""
    host_tools: tuple[tuple[str, str], ...] = ()
    """(executable, Debian package) the host needs for this addon (its undo commands), checked before bring-up."""
    upstream_group: str = ""
    """The versions.toml group whose pinned module ``AddonContext.upstream`` reads (default: the binary's own), for an
    addon whose CRDs live in another module (Traefik: the Gateway API CRDs of ``sigs.k8s.io/gateway-api``)."""
    gateway_class: str = ""
    """A GatewayClass (in the manifests) the addon's controller must mark Accepted before the addon counts as
    installed."""
    description: str = ""
    webhooks: Webhooks | None = None
    host: Callable[[HostContext], HostProcess] | None = None
    """How to run the binary as a host process at tier S (no real node); None: the addon needs a real node."""
    version: str = ""
    """The version shown for an addon without a pinned binary."""
    after_ready: Callable[[KubeClient, AddonContext], None] | None = None
    """Once the controller runs (and its webhooks answer): objects that need it running, and their own wait
    (Karpenter's NodePools, Ready only once Karpenter has judged their node class)."""


# -- manifest pieces the addon modules share (pure) -------------------------------------------------------------------


def addon_labels(name: str) -> dict[str, str]:
    """The labels every object of an addon carries."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "aiconform"}


def apiserver_env(ctx: AddonContext) -> list[Obj]:
    """In-cluster API config for a host-network pod: the apiserver's own address (a host-network pod cannot rely on
    the ``kubernetes`` Service's ClusterIP being routed for it)."""
    return [{"name": "KUBERNETES_SERVICE_HOST", "value": ctx.apiserver_host},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(ctx.apiserver_port)}]


def cluster_rbac(account: str, namespace: str, rules: list[Obj], *, role: str = "") -> list[Obj]:
    """A ServiceAccount and a ClusterRole (``role``, default the account's name) with ``rules`` bound to it."""
    role = role or account
    rbac = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace}},
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": {"name": role}, "rules": rules},
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role},
         "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]},
    ]


def host_network_workload(kind: str, name: str, namespace: str, ctx: AddonContext, container: Obj,
                          **pod_spec: Any) -> Obj:
    """A DaemonSet, or a one-replica Deployment replaced by Recreate (its host ports must be free before the new pod
    binds them), of ``container`` on the host network of the real nodes (``ctx.node_selector``), tolerating every
    taint, running as the ServiceAccount ``name``; ``pod_spec`` adds fields (volumes, dnsPolicy)."""
    labels = addon_labels(name)
    spec: Obj = {"selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "hostNetwork": True,
                     "serviceAccountName": name,
                     "nodeSelector": dict(ctx.node_selector),
                     "tolerations": [{"operator": "Exists"}],
                     "terminationGracePeriodSeconds": 5,
                     "containers": [container],
                     **pod_spec,
                 }}}
    if kind == "Deployment":
        spec = {"replicas": 1, "strategy": {"type": "Recreate"}, **spec}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace,
                                                                "labels": labels}, "spec": spec}
