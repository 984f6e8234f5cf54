"""Kueue (``sigs.k8s.io/kueue``, pinned in versions.toml) as an addon: the real controller with its real webhooks.

Its manifests are upstream's ``config/default`` kustomization, rendered at install time from the pinned module in the
Go module cache (CRDs with their conversion webhooks, RBAC, the manager Deployment, webhook configurations; never
copied into this repository), changed only where this harness must differ:

- the installer owns the webhook certificate (Secret ``kueue-webhook-server-cert``, caBundles): Kueue's own cert
  rotation is off, and the Configuration (:func:`configuration`) replaces upstream's ConfigMap: ``waitForPodsReady``
  (all-or-nothing admission: a workload whose pods are not all Ready in time is evicted and requeued), fair sharing
  (preemption strategies between the ClusterQueues of a cohort), the ``batch/job`` and JobSet integrations;
- only the webhooks of the integrations turned on are kept: a webhook of an integration that is off would still be
  called, with ``failurePolicy: Fail`` (upstream's pod webhook would then judge every pod of the cluster);
- the visibility API (an aggregated APIService) is left out and its gate off: a tier S apiserver cannot reach an
  APIService backend;
- Kueue reads a metrics certificate from the fixed path ``/etc/kueue/metrics/certs`` when it does not manage
  certificates itself: the pod mounts the serving certificate there too; the image is built here FROM scratch.

Tier S (no node that runs containers): the same binary runs as a host process in a private root directory (a user
and mount namespace, ``unshare --map-root-user --root``) that holds ``/etc/kueue/metrics/certs`` without touching the
host's ``/etc``; it shares the host network, so its webhook on 127.0.0.1 is the apiserver's to call.

Owns Kueue's manifests and its Configuration.  Queues, cohorts and workloads are harness/governance/kueue.py's.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import images, timescale
from harness.addons.base import Addon, AddonContext, HostContext, HostProcess, Obj, WebhookProbe, Webhooks
from harness.errors import ClusterError

NAME = "kueue"
NAMESPACE = "kueue-system"
DEPLOYMENT = "kueue-controller-manager"
CONFIG_MAP = "kueue-manager-config"
CONFIG_KEY = "controller_manager_config.yaml"
WEBHOOK_SERVICE = "kueue-webhook-service"
WEBHOOK_SECRET = "kueue-webhook-server-cert"
CONFIG_API = "config.kueue.x-k8s.io/v1beta2"
METRICS_CERTS = "/etc/kueue/metrics/certs"
POD_CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"
RUN_AS = 65532
FRAMEWORKS = ("batch/job", "jobset.x-k8s.io/jobset")
"""Integrations turned on: plain Jobs and JobSets."""
_FRAMEWORK_RESOURCES = {"batch/job": ("batch", "jobs"), "jobset.x-k8s.io/jobset": ("jobset.x-k8s.io", "jobsets")}
KUEUE_GROUP = "kueue.x-k8s.io"
BATCH_LABEL = "aiconform.io/kueue-batch"
"""A job label Kueue copies onto its Workload (``integrations.labelKeysToCopy``), so a batch of workloads is found
by one label selector."""


@dataclass(frozen=True)
class KueueSettings:
    """What the Kueue Configuration turns on; defaults suit a tier S cluster of simulated nodes."""

    wait_for_pods_ready_s: float = 10
    """``waitForPodsReady.timeout``: an admitted workload whose pods are not all Ready by then is evicted and
    requeued (all-or-nothing admission)."""
    recovery_timeout_s: float | None = None
    """``waitForPodsReady.recoveryTimeout`` (a workload whose pods stop being Ready); None: the timeout."""
    block_admission: bool = False
    """``waitForPodsReady.blockAdmission``: admit the next workload only once the admitted ones have all their pods
    Ready.  Off: admissions go on in parallel and a gang that cannot get all its pods Ready is still evicted at the
    timeout (all or nothing), without serialising every admission behind the slowest gang."""
    requeue_backoff_base_s: int = 5
    requeue_backoff_max_s: int = 60
    requeue_backoff_limit: int | None = None
    """Evictions before a workload is deactivated; None: requeue forever."""
    fair_sharing: tuple[str, ...] = ("LessThanOrEqualToFinalShare", "LessThanInitialShare")
    frameworks: tuple[str, ...] = FRAMEWORKS
    label_keys_to_copy: tuple[str, ...] = (BATCH_LABEL,)
    qps: int = 300
    burst: int = 500
    feature_gates: dict[str, bool] = field(default_factory=lambda: {"VisibilityOnDemand": False})
    """The visibility API is an aggregated APIService, which a tier S apiserver (loopback only) cannot reach."""


def settings_for(time_compression: float | None) -> KueueSettings:
    """The settings of a cluster that plays time compressed: the waitForPodsReady timers are upstream's production
    values divided by ``time_compression``, clamped (harness/timescale.py); None: :class:`KueueSettings`'
    defaults."""
    if time_compression is None:
        return KueueSettings()
    t = {k.removeprefix("waitForPodsReady."): v.value_s for k, v in timescale.kueue_timers(time_compression).items()}
    return KueueSettings(wait_for_pods_ready_s=t["timeout"], recovery_timeout_s=t["recoveryTimeout"],
                         requeue_backoff_base_s=int(t["requeuingStrategy.backoffBaseSeconds"]),
                         requeue_backoff_max_s=int(t["requeuingStrategy.backoffMaxSeconds"]))


def configuration(settings: KueueSettings, *, webhook: dict[str, Any], health: str) -> dict[str, Any]:
    """The Kueue Configuration (``--config``): ``webhook`` is its webhook server block, ``health`` its probe
    address."""
    requeue: dict[str, Any] = {"timestamp": "Eviction", "backoffBaseSeconds": settings.requeue_backoff_base_s,
                               "backoffMaxSeconds": max(settings.requeue_backoff_base_s, settings.requeue_backoff_max_s)}
    if settings.requeue_backoff_limit is not None:
        requeue["backoffLimitCount"] = settings.requeue_backoff_limit
    return {
        "apiVersion": CONFIG_API, "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": health},
        "metrics": {"bindAddress": "0"},
        "webhook": dict(webhook),
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "waitForPodsReady": {"timeout": timescale.duration(settings.wait_for_pods_ready_s),
                             "blockAdmission": settings.block_admission,
                             "recoveryTimeout": timescale.duration(
                                 settings.wait_for_pods_ready_s if settings.recovery_timeout_s is None
                                 else settings.recovery_timeout_s),
                             "requeuingStrategy": requeue},
        "clientConnection": {"qps": settings.qps, "burst": settings.burst},
        "integrations": {"frameworks": list(settings.frameworks),
                         "labelKeysToCopy": list(settings.label_keys_to_copy)},
        "fairSharing": {"preemptionStrategies": list(settings.fair_sharing)},
        "featureGates": dict(settings.feature_gates),
    }


def _hook_kept(hook: Obj, frameworks: tuple[str, ...]) -> bool:
    """Kueue's own objects' webhooks, and those of the integrations turned on."""
    wanted = {_FRAMEWORK_RESOURCES[f] for f in frameworks if f in _FRAMEWORK_RESOURCES}
    for rule in hook.get("rules", []) or []:
        for group in rule.get("apiGroups", []) or []:
            if group == KUEUE_GROUP or any((group, r) in wanted for r in rule.get("resources", []) or []):
                return True
    return False


def adapt(objs: list[Obj], ctx: AddonContext, settings: KueueSettings | None = None) -> list[Obj]:
    """Upstream's rendered ``config/default`` as this harness deploys it (see the module docstring).  Pure."""
    settings = settings or settings_for(ctx.time_compression)
    out = []
    for obj in objs:
        kind, md = obj["kind"], obj.get("metadata", {})
        if kind == "APIService":
            continue
        if kind == "ConfigMap" and md.get("name") == CONFIG_MAP:
            cfg = configuration(settings, webhook={"port": 9443, "certDir": POD_CERT_DIR}, health=":8081")
            obj["data"] = {CONFIG_KEY: yaml.safe_dump(cfg, sort_keys=False)}
        elif kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            obj["webhooks"] = [h for h in obj.get("webhooks", []) or [] if _hook_kept(h, settings.frameworks)]
        elif kind == "Deployment" and md.get("name") == DEPLOYMENT:
            spec = obj["spec"]["template"]["spec"]
            spec["securityContext"] = {**spec.get("securityContext", {}), "runAsUser": RUN_AS, "runAsGroup": RUN_AS}
            spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **ctx.node_selector}
            spec["volumes"] = [*spec.get("volumes", []),
                               {"name": "metrics-cert", "secret": {"secretName": WEBHOOK_SECRET}}]
            for c in spec["containers"]:
                if c["name"] == "manager":
                    c["image"] = ctx.image
                    c["imagePullPolicy"] = "Never"
                    c["resources"] = {"requests": {"cpu": "50m", "memory": "128Mi"}}
                    c["volumeMounts"] = [*c.get("volumeMounts", []),
                                         {"name": "metrics-cert", "mountPath": METRICS_CERTS, "readOnly": True}]
        out.append(obj)
    return out


def manifests(ctx: AddonContext) -> list[Obj]:
    return adapt(ctx.upstream("config/default"), ctx)


def image(binary: Path, version: str) -> images.ScratchImage:
    return images.static_binary_image(NAME, binary, tag=f"v{version}", dest="/manager")


# -- tier S: a host process in a private root ----------------------------------------------------------------------


def host(h: HostContext, settings: KueueSettings | None = None) -> HostProcess:
    """Lay out the private root under the addon's workdir (the binary hard-linked, or copied across filesystems; the
    kubeconfig; the serving pair in the webhook cert dir and at the metrics path) and start Kueue chrooted there."""
    settings = settings or settings_for(h.time_compression)
    unshare = shutil.which("unshare")
    if unshare is None:
        raise ClusterError("running Kueue at tier S needs `unshare` (util-linux) on PATH")
    root = h.workdir / "root"
    for d in ("certs", METRICS_CERTS.lstrip("/"), "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    dest = root / "kueue"
    dest.unlink(missing_ok=True)
    try:
        os.link(h.binary, dest)
    except OSError:
        shutil.copy2(h.binary, dest)
    shutil.copyfile(h.kubeconfig, root / "kubeconfig")
    for d in ("certs", METRICS_CERTS.lstrip("/")):
        for f in ("tls.crt", "tls.key"):
            shutil.copyfile(h.cert_dir / f, root / d / f)
    cfg = configuration(settings, webhook={"host": "127.0.0.1", "port": h.webhook_port, "certDir": "/certs"},
                        health=f"127.0.0.1:{h.health_port}")
    return HostProcess(
        # --fork: the supervised pid stays `unshare` (the executable its pidfile records; an exec'd Kueue would not
        # match it and would outlive the cluster), and Kueue stays in its process group, which the stop signals.
        argv=(unshare, "--fork", "--map-root-user", "--mount", f"--root={root}", "/kueue", "--config=/config.yaml",
              "--zap-log-level=2"),
        files=(("root/config.yaml", yaml.safe_dump(cfg, sort_keys=False)),),
        env=(("KUBECONFIG", "/kubeconfig"),),
    )


REFUSED_PROBE: Obj = {
    "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
    "metadata": {"name": "aiconform-webhook-probe"},
    "spec": {"cohortName": "aiconform-probe", "resourceGroups": [{"coveredResources": ["cpu"], "flavors": [
        {"name": "probe", "resources": [{"name": "cpu", "nominalQuota": "1", "lendingLimit": "2"}]}]}]},
}
"""A ClusterQueue only Kueue's validating webhook refuses (a lending limit above the nominal quota)."""


ADDON = Addon(
    name=NAME,
    binary="kueue",
    image=image,
    manifests=manifests,
    workload=("Deployment", NAMESPACE, DEPLOYMENT),
    facts=("kueue", "gang-scheduling"),
    needs_real_node=False,
    webhooks=Webhooks(service=WEBHOOK_SERVICE, namespace=NAMESPACE, secret=WEBHOOK_SECRET,
                      probes=(WebhookProbe(REFUSED_PROBE, "vclusterqueue.kb.io"),)),
    host=host,
    description="Kueue: ClusterQueues, cohorts, fair sharing, preemption, all-or-nothing admission (waitForPodsReady)",
)
