"""JobSet (``sigs.k8s.io/jobset``): the controller manager behind ``jobset.x-k8s.io`` JobSets, with its webhooks.

Shared by training (multi-role jobs) and governance (Kueue admits JobSets): one pin (``[jobset]`` in
versions.toml), one addon.  Its manifests are upstream's ``config/default`` kustomization rendered at install time
from the pinned module in the Go module cache (``kubectl kustomize``; namespace ``jobset-system``, names prefixed
``jobset-``), changed only where this harness must differ:

- the harness owns the webhook certificates: JobSet's own cert rotation (``internalCertManagement``) is turned off;
  the installer writes Secret ``jobset-webhook-server-cert`` (mounted at controller-runtime's default cert dir) and
  the caBundles of its two webhook configurations (pod and JobSet, mutating and validating);
- the image is built here FROM scratch (``/manager``), never pulled; the pod runs as uid 65532 (the image has no
  user, and upstream asks for ``runAsNonRoot``) on the real node;
- its metrics server is off (``--metrics-bind-address=0``): with cert rotation off it would need certificates of
  its own, and nothing here scrapes it yet;
- the CPU request is lowered from 500m to 50m (a 2-core machine shares it with the real node's other pods).

At tier S (no real node) the same binary runs as a host process: its webhook server on 127.0.0.1:PORT with the
installer's certificate, a health endpoint on 127.0.0.1, no leader election, a kubeconfig for its ServiceAccount.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness import images
from harness.addons.base import Addon, AddonContext, HostContext, HostProcess, Obj, WebhookProbe, Webhooks

NAME = "jobset"
NAMESPACE = "jobset-system"
DEPLOYMENT = "jobset-controller-manager"
CONFIG_MAP = "jobset-manager-config"
CONFIG_KEY = "controller_manager_config.yaml"
RUN_AS = 65532


def image(binary: Path, version: str) -> images.ScratchImage:
    return images.static_binary_image(NAME, binary, tag=f"v{version}", dest="/manager")


def _config(**extra: object) -> str:
    cfg: dict[str, object] = {
        "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "leaderElection": {"leaderElect": True},
        "internalCertManagement": {"enable": False},
        **extra,
    }
    return yaml.safe_dump(cfg)


def manifests(ctx: AddonContext) -> list[Obj]:
    objs = ctx.upstream("config/default")
    for obj in objs:
        md = obj.get("metadata", {})
        if obj["kind"] == "ConfigMap" and md.get("name") == CONFIG_MAP:
            obj["data"] = {CONFIG_KEY: _config()}
        elif obj["kind"] == "Deployment" and md.get("name") == DEPLOYMENT:
            spec = obj["spec"]["template"]["spec"]
            spec["securityContext"] = {**spec.get("securityContext", {}), "runAsUser": RUN_AS, "runAsGroup": RUN_AS}
            spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **ctx.node_selector}
            for c in spec["containers"]:
                if c["name"] == "manager":
                    c["image"] = ctx.image
                    c["imagePullPolicy"] = "Never"
                    c["args"] = [*c.get("args", []), "--metrics-bind-address=0"]
                    c["resources"] = {"requests": {"cpu": "50m", "memory": "64Mi"}}
    return objs


def host(h: HostContext) -> HostProcess:
    config = _config(
        leaderElection={"leaderElect": False},
        webhook={"port": h.webhook_port, "host": "127.0.0.1", "certDir": str(h.cert_dir)},
        health={"healthProbeBindAddress": f"127.0.0.1:{h.health_port}"},
        metrics={"bindAddress": "0"},
    )
    return HostProcess(
        argv=(str(h.binary), f"--config={h.workdir / 'config.yaml'}", "--metrics-bind-address=0", "--zap-log-level=2"),
        files=(("config.yaml", config),),
        env=(("KUBECONFIG", str(h.kubeconfig)),),
    )


def _probe() -> Obj:
    """A JobSet that passes the CRD schema but that JobSet's validating webhook denies (its success policy names a
    replicated job it does not have)."""
    pod = {"restartPolicy": "Never", "containers": [{"name": "c", "image": images.BUSYBOX_IMAGE}]}
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": "aiconform-webhook-probe", "namespace": NAMESPACE},
        "spec": {
            "successPolicy": {"operator": "All", "targetReplicatedJobs": ["no-such-job"]},
            "replicatedJobs": [{"name": "workers", "replicas": 1, "template": {"spec": {"template": {"spec": pod}}}}],
        },
    }


ADDON = Addon(
    name=NAME,
    binary="jobset-controller",
    image=image,
    manifests=manifests,
    workload=("Deployment", NAMESPACE, DEPLOYMENT),
    needs_real_node=False,
    webhooks=Webhooks(service="jobset-webhook-service", namespace=NAMESPACE, secret="jobset-webhook-server-cert",
                      probes=(WebhookProbe(_probe(), "vjobset.kb.io"),)),
    host=host,
    description="JobSet controller manager (jobset.x-k8s.io) with its mutating and validating webhooks",
)
