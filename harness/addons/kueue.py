"""Kueue (``sigs.k8s.io/kueue``, pinned in versions.toml) as an addon: the real controller with its real webhooks.

Everything upstream ships is read at install time from the pinned module in the Go module cache (never copied into
this repository): the CRDs (``config/components/crd/bases``, with the conversion webhook of the CRDs upstream's
kustomization patches), the manager's ClusterRole (``config/components/rbac/role.yaml``) and the webhook
configurations (``config/components/webhook/manifests.yaml``).  The harness changes only what a deployment changes:
names get Kueue's ``kueue-`` prefix, webhooks call the controller at the address the harness serves it on with a
serving certificate from the cluster CA (``caBundle``), and only the webhooks of the integrations turned on are kept
(a webhook of an integration that is off would still be called, with ``failurePolicy: Fail``).

The Kueue Configuration (:func:`configuration`) turns on what the governance checks need: ``waitForPodsReady``
(all-or-nothing admission: a workload whose pods do not all become Ready in time is evicted and requeued), fair
sharing (preemption strategies between ClusterQueues of a cohort) and the ``batch/job`` and JobSet integrations.

Tier S (no node that runs containers): the controller runs as a host process in a private root directory (a user and
mount namespace, ``unshare --map-root-user --root``), because Kueue reads its metrics certificate from the fixed path
``/etc/kueue/metrics/certs`` when it does not manage certificates itself; the private root holds that path without
touching the host's ``/etc``.  It talks to the apiserver as the ServiceAccount ``kueue-system/kueue-controller-manager``
(a client certificate with that user name), so upstream's RBAC is what it runs under.

Owns Kueue's manifests and its Configuration.  Queues, cohorts and workloads are harness/governance/kueue.py's.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import proc
from harness.addons.base import Addon, HostContext
from harness.errors import ApiError, ClusterError, CommandError, Invalid
from harness.kube import KubeClient
from harness.providers.common import free_port, write_kubeconfig

COMPONENT = "kueue"
"""The host process's name in the cluster's supervisor (pidfile, log)."""
NAMESPACE = "kueue-system"
PREFIX = "kueue-"
SERVICE_ACCOUNT = "kueue-controller-manager"
USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
CONFIG_API = "config.kueue.x-k8s.io/v1beta2"
CRD_DIR = "config/components/crd/bases"
CONVERTED_CRDS = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
"""CRDs whose conversion webhook upstream's config/components/crd/kustomization.yaml turns on."""
FRAMEWORKS = ("batch/job", "jobset.x-k8s.io/jobset")
"""Integrations turned on: plain Jobs and JobSets."""
_FRAMEWORK_GROUPS = {"batch/job": ("batch", "jobs"), "jobset.x-k8s.io/jobset": ("jobset.x-k8s.io", "jobsets")}
KUEUE_GROUP = "kueue.x-k8s.io"
BATCH_LABEL = "aiconform.io/kueue-batch"
"""A job label Kueue copies onto its Workload (``integrations.labelKeysToCopy``), so a batch of workloads is found
by one label selector."""
EXCLUDED_NAMESPACES = ("kube-system", NAMESPACE)
"""Namespaces upstream's kustomization keeps out of the job and pod webhooks."""


@dataclass(frozen=True)
class KueueSettings:
    """What the Kueue Configuration turns on; defaults suit a tier S cluster of simulated nodes."""

    wait_for_pods_ready_s: int = 10
    """``waitForPodsReady.timeout``: an admitted workload whose pods are not all Ready by then is evicted and
    requeued (all-or-nothing admission)."""
    block_admission: bool = False
    """``waitForPodsReady.blockAdmission``: admit the next workload only once the admitted ones have all their pods
    Ready.  Off: admissions go on in parallel and a gang that cannot get all its pods Ready is still evicted at the
    timeout (all or nothing), without serialising every admission behind the slowest gang."""
    requeue_backoff_base_s: int = 5
    requeue_backoff_limit: int | None = None
    """Evictions before a workload is deactivated; None: requeue forever."""
    fair_sharing: tuple[str, ...] = ("LessThanOrEqualToFinalShare", "LessThanInitialShare")
    frameworks: tuple[str, ...] = FRAMEWORKS
    label_keys_to_copy: tuple[str, ...] = (BATCH_LABEL,)
    qps: int = 300
    burst: int = 500
    feature_gates: dict[str, bool] = field(default_factory=lambda: {"VisibilityOnDemand": False})
    """The visibility API is an aggregated APIService, which a tier S apiserver (loopback only) cannot reach."""


def module_dir(go: str, version: str) -> Path:
    """The pinned module's directory in the Go module cache (downloaded through the module proxy if missing)."""
    try:
        res = proc.run([go, "mod", "download", "-json", f"sigs.k8s.io/kueue@v{version}"], timeout=600)
    except CommandError as err:
        raise ClusterError(f"cannot fetch sigs.k8s.io/kueue v{version} from the Go module proxy: {err}") from err
    return Path(json.loads(res.stdout)["Dir"])


def _load_all(path: Path) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as err:
        raise ClusterError(f"cannot read {path}: {err}") from err


def crds(mod: Path, *, webhook_url: str, ca_bundle: str) -> list[dict[str, Any]]:
    """Every CRD upstream ships, with the conversion webhook where upstream turns it on."""
    out = []
    for f in sorted((mod / CRD_DIR).glob("*.yaml")):
        for crd in _load_all(f):
            if crd["spec"]["names"]["plural"] in CONVERTED_CRDS:
                crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
                    "clientConfig": {"url": f"{webhook_url}/convert", "caBundle": ca_bundle},
                    "conversionReviewVersions": ["v1"]}}
            out.append(crd)
    if not out:
        raise ClusterError(f"no CRDs under {mod / CRD_DIR}")
    return out


def rbac(mod: Path) -> list[dict[str, Any]]:
    """The manager's ClusterRole (upstream's ``manager-role``) bound to Kueue's ServiceAccount."""
    roles = [d for d in _load_all(mod / "config/components/rbac/role.yaml") if d["kind"] == "ClusterRole"]
    if len(roles) != 1:
        raise ClusterError("config/components/rbac/role.yaml: expected one ClusterRole")
    role = roles[0]
    role["metadata"] = {"name": PREFIX + role["metadata"]["name"]}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}},
        role,
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": PREFIX + "manager-rolebinding"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]},
    ]


def _kept(hook: dict[str, Any], frameworks: tuple[str, ...]) -> bool:
    wanted = {_FRAMEWORK_GROUPS[f] for f in frameworks if f in _FRAMEWORK_GROUPS}
    for rule in hook.get("rules", []):
        for group in rule.get("apiGroups", []):
            if group == KUEUE_GROUP:
                return True
            if any((group, r) in wanted for r in rule.get("resources", [])):
                return True
    return False


def webhook_configurations(mod: Path, *, webhook_url: str, ca_bundle: str,
                           frameworks: tuple[str, ...] = FRAMEWORKS) -> list[dict[str, Any]]:
    """Upstream's mutating and validating webhook configurations, calling ``webhook_url`` + each webhook's path."""
    out = []
    for cfg in _load_all(mod / "config/components/webhook/manifests.yaml"):
        cfg["metadata"] = {"name": PREFIX + cfg["metadata"]["name"]}
        hooks = []
        for hook in cfg["webhooks"]:
            if not _kept(hook, frameworks):
                continue
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": webhook_url + path, "caBundle": ca_bundle}
            if not any(KUEUE_GROUP in r.get("apiGroups", []) for r in hook.get("rules", [])):
                hook["namespaceSelector"] = {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(EXCLUDED_NAMESPACES)}]}
            hook["timeoutSeconds"] = 10
            hooks.append(hook)
        cfg["webhooks"] = hooks
        out.append(cfg)
    return out


def configuration(settings: KueueSettings, *, webhook_port: int, health_port: int, cert_dir: str) -> dict[str, Any]:
    """The Kueue Configuration file (``--config``) for a controller on 127.0.0.1."""
    requeue: dict[str, Any] = {"timestamp": "Eviction", "backoffBaseSeconds": settings.requeue_backoff_base_s,
                               "backoffMaxSeconds": max(settings.requeue_backoff_base_s, 60)}
    if settings.requeue_backoff_limit is not None:
        requeue["backoffLimitCount"] = settings.requeue_backoff_limit
    return {
        "apiVersion": CONFIG_API, "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": cert_dir},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "waitForPodsReady": {"timeout": f"{settings.wait_for_pods_ready_s}s",
                             "blockAdmission": settings.block_admission,
                             "recoveryTimeout": f"{settings.wait_for_pods_ready_s}s",
                             "requeuingStrategy": requeue},
        "clientConnection": {"qps": settings.qps, "burst": settings.burst},
        "integrations": {"frameworks": list(settings.frameworks),
                         "labelKeysToCopy": list(settings.label_keys_to_copy)},
        "fairSharing": {"preemptionStrategies": list(settings.fair_sharing)},
        "featureGates": dict(settings.feature_gates),
    }


# -- the private root of the host process (tier S) -----------------------------------------------------------------


@dataclass(frozen=True)
class HostRoot:
    """Files of the controller's private root directory, as paths inside it."""

    root: Path
    binary: str = "/kueue"
    config: str = "/config.yaml"
    kubeconfig: str = "/kubeconfig"
    cert_dir: str = "/certs"
    metrics_cert_dir: str = "/etc/kueue/metrics/certs"

    def host(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")


def prepare_root(root: HostRoot, *, binary: Path, config: dict[str, Any], kubeconfig: Path, serving_cert: Path,
                 serving_key: Path) -> None:
    """Lay out the private root: the binary (hard link, or a copy across filesystems), the Configuration, the
    kubeconfig, the webhook serving pair (also as the metrics pair Kueue insists on reading)."""
    root.root.mkdir(parents=True, exist_ok=True)
    dest = root.host(root.binary)
    dest.unlink(missing_ok=True)
    try:
        os.link(binary, dest)
    except OSError:
        shutil.copy2(binary, dest)
    root.host(root.config).write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy2(kubeconfig, root.host(root.kubeconfig))
    for d in (root.cert_dir, root.metrics_cert_dir):
        root.host(d).mkdir(parents=True, exist_ok=True)
        shutil.copy2(serving_cert, root.host(d) / "tls.crt")
        shutil.copy2(serving_key, root.host(d) / "tls.key")
    root.host("/tmp").mkdir(exist_ok=True)


def host_argv(root: HostRoot, unshare: str = "unshare") -> list[str]:
    """The controller started in its private root: a new user namespace (the caller mapped to root there) and mount
    namespace, chrooted into ``root``; the host network, so the webhook port on 127.0.0.1 is the apiserver's to call."""
    return [unshare, "--map-root-user", "--mount", f"--root={root.root}", root.binary,
            f"--config={root.config}", f"--kubeconfig={root.kubeconfig}", "--zap-log-level=2"]


# -- install ----------------------------------------------------------------------------------------------------------


def _established(crd: dict[str, Any]) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in crd.get("status", {}).get("conditions", []) or [])


REFUSED_PROBE = {
    "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
    "metadata": {"name": "aiconform-webhook-probe"},
    "spec": {"cohortName": "aiconform-probe", "resourceGroups": [{"coveredResources": ["cpu"], "flavors": [
        {"name": "probe", "resources": [{"name": "cpu", "nominalQuota": "1", "lendingLimit": "2"}]}]}]},
}
"""A ClusterQueue only Kueue's validating webhook refuses (a lending limit above the nominal quota): a server-side
dry run of it proves the apiserver reaches the webhook and the webhook answers."""


def webhook_answers(client: KubeClient) -> str | None:
    """Kueue's refusal of :data:`REFUSED_PROBE` (its message), or None while the webhook does not answer yet."""
    try:
        client.create(REFUSED_PROBE, dry_run=True)
    except Invalid as err:
        return err.message if "vclusterqueue.kb.io" in err.message else None
    except ApiError:
        return None
    raise ClusterError("Kueue's webhook admitted a ClusterQueue whose lendingLimit exceeds its nominalQuota")


def install_host(ctx: HostContext, binary: Path, version: str, settings: KueueSettings | None = None,
                 *, timeout: float = 120.0) -> None:
    """CRDs, RBAC, the controller as a host process in its private root, then its webhook configurations; returns
    once the controller is healthy and its webhook answers the apiserver."""
    settings = settings or KueueSettings()
    client = ctx.client
    mod = module_dir(ctx.go, version)
    home = ctx.run_dir / "kueue"
    home.mkdir(parents=True, exist_ok=True)
    serving = ctx.pki.issue("kueue-webhook", "kueue-webhook", server=True, ips=("127.0.0.1",))
    ident = ctx.pki.issue("kueue-controller", USER, client=True)
    kubeconfig = home / "kubeconfig"
    write_kubeconfig(kubeconfig, ctx.server, ctx.pki.ca.cert, ident.cert, ident.key, "kueue")
    ca_bundle = base64.b64encode(ctx.pki.ca.cert.read_bytes()).decode()
    webhook_port, health_port = free_port(), free_port()
    url = f"https://127.0.0.1:{webhook_port}"

    for obj in rbac(mod):
        client.apply(obj)
    defs = crds(mod, webhook_url=url, ca_bundle=ca_bundle)
    for obj in defs:
        client.apply(obj)
    client.wait_all("CustomResourceDefinition", [d["metadata"]["name"] for d in defs], _established,
                    timeout=60, what="Kueue's CRDs to be Established")

    root = HostRoot(home / "root")
    config = configuration(settings, webhook_port=webhook_port, health_port=health_port, cert_dir=root.cert_dir)
    prepare_root(root, binary=binary, config=config, kubeconfig=kubeconfig, serving_cert=serving.cert,
                 serving_key=serving.key)
    ctx.start(COMPONENT, host_argv(root))

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    ctx.wait_ready(COMPONENT, healthy, timeout, "Kueue's readiness endpoint")
    for obj in webhook_configurations(mod, webhook_url=url, ca_bundle=ca_bundle, frameworks=settings.frameworks):
        client.apply(obj)
    ctx.wait_ready(COMPONENT, lambda: webhook_answers(client) is not None, timeout,
                   "Kueue's webhook to answer the apiserver")


ADDON = Addon(
    name="kueue",
    binary="kueue",
    host=install_host,
    facts=("kueue", "gang-scheduling"),
    needs_real_node=False,
    description="Kueue: ClusterQueues, cohorts, fair sharing, preemption, all-or-nothing admission (waitForPodsReady)",
)
