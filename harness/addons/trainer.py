"""Kubeflow Trainer v2 (``github.com/kubeflow/trainer/v2``): the operator behind TrainJob, TrainingRuntime and
ClusterTrainingRuntime, which turns each TrainJob into a JobSet (install the ``jobset`` addon first).

Its manifests are upstream's ``manifests/base`` kustomizations (crds, rbac, webhook, manager) rendered at install
time from the pinned module in the Go module cache, never copied into this repository; upstream's overlay is not
used because it also installs a JobSet of its own (the harness has one JobSet pin).  Changed only where this harness
must differ:

- namespace ``kubeflow-system`` (what upstream's overlay sets) on the namespaced objects and in the webhooks'
  service references;
- the harness owns the webhook certificates: Trainer's own cert-controller (``certManagement``) is turned off and the
  installer writes Secret ``kubeflow-trainer-webhook-cert`` (mounted at controller-runtime's default cert dir) and
  the caBundles of ``validator.trainer.kubeflow.org`` and ``defaulter.trainer.kubeflow.org``;
- one replica without leader election, so a restarted controller reconciles at once (no lease to wait out);
- the image is built here FROM scratch (``/manager``), runs as uid 65532 on the real node; metrics off (they would
  need certificates of their own; nothing scrapes them); CPU request lowered to 50m (2-core machine).

No host-process mode: v2.3.0 reads its serving certificate only from the fixed path
``/tmp/k8s-webhook-server/serving-certs`` (no ``certDir`` setting), so it runs as a pod on the real node (tier R).

Facts the training workload relies on (v2.3.0 source): the JAX ML policy (``mlPolicy.jax``) sets
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` (the Job completion index) and
``JAX_COORDINATOR_ADDRESS=<trainjob>-node-0-0.<trainjob>:29500`` on the container named ``node`` of the replicated
job labelled ``trainer.kubeflow.org/trainjob-ancestor-step: trainer``; the TrainJob validator denies a TrainJob whose
TrainingRuntime does not exist ("specified trainingRuntime must be created before the TrainJob is created").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness import images
from harness.addons.base import Addon, AddonContext, Obj, WebhookProbe, Webhooks

NAME = "trainer"
NAMESPACE = "kubeflow-system"
DEPLOYMENT = "kubeflow-trainer-controller-manager"
SERVICE = "kubeflow-trainer-controller-manager"
WEBHOOK_SECRET = "kubeflow-trainer-webhook-cert"
CONFIG_MAP = "kubeflow-trainer-config"
CONFIG_KEY = "controller_manager_config.yaml"
VALIDATING_WEBHOOK = "validator.trainer.kubeflow.org"
TRAINJOB_VALIDATOR = "validator.trainjob.trainer.kubeflow.org"
RUN_AS = 65532
_CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                   "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}


def image(binary: Path, version: str) -> images.ScratchImage:
    return images.static_binary_image("trainer-controller-manager", binary, tag=f"v{version}", dest="/manager")


def _config(upstream_text: str) -> str:
    cfg: dict[str, Any] = yaml.safe_load(upstream_text) or {}
    cfg["leaderElection"] = {**(cfg.get("leaderElection") or {}), "leaderElect": False}
    cfg["metrics"] = {"bindAddress": "0"}
    cfg["certManagement"] = {**(cfg.get("certManagement") or {}), "enable": False}
    return yaml.safe_dump(cfg, sort_keys=False)


def adapt(objs: list[Obj], ctx: AddonContext) -> list[Obj]:
    """Upstream's rendered base objects, changed as the module docstring says (in place; returns them)."""
    for obj in objs:
        md = obj.setdefault("metadata", {})
        if obj["kind"] not in _CLUSTER_SCOPED:
            md["namespace"] = NAMESPACE
        for subject in obj.get("subjects", []) or []:
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = NAMESPACE
        for hook in obj.get("webhooks", []) or []:
            svc = hook.get("clientConfig", {}).get("service")
            if svc is not None:
                svc["namespace"] = NAMESPACE
        if obj["kind"] == "ConfigMap" and md.get("name") == CONFIG_MAP:
            obj["data"] = {CONFIG_KEY: _config(obj.get("data", {}).get(CONFIG_KEY, ""))}
        elif obj["kind"] == "Deployment" and md.get("name") == DEPLOYMENT:
            spec = obj["spec"]["template"]["spec"]
            spec["securityContext"] = {**spec.get("securityContext", {}), "runAsUser": RUN_AS, "runAsGroup": RUN_AS}
            spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **ctx.node_selector}
            spec["tolerations"] = [{"operator": "Exists"}]
            for c in spec["containers"]:
                if c["name"] == "manager":
                    c["image"] = ctx.image
                    c["imagePullPolicy"] = "Never"
                    c["resources"] = {"requests": {"cpu": "50m", "memory": "64Mi"}}
                    for probe in ("readinessProbe", "livenessProbe"):
                        if probe in c:  # upstream waits 10-15 s before the first probe; Ready sooner here
                            c[probe] = {**c[probe], "initialDelaySeconds": 1, "periodSeconds": 2}
    return objs


def manifests(ctx: AddonContext) -> list[Obj]:
    ns: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    objs: list[Obj] = []
    for part in ("crds", "rbac", "webhook", "manager"):
        objs += ctx.upstream(f"manifests/base/{part}")
    return [ns, *adapt(objs, ctx)]


def invalid_trainjob(namespace: str, name: str = "aiconform-webhook-probe") -> Obj:
    """A TrainJob that passes the CRD schema but that Trainer's validating webhook denies: its TrainingRuntime does
    not exist."""
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"runtimeRef": {"name": "aiconform-no-such-runtime", "apiGroup": "trainer.kubeflow.org",
                                "kind": "TrainingRuntime"}},
    }


ADDON = Addon(
    name=NAME,
    binary="trainer-controller-manager",
    image=image,
    manifests=manifests,
    workload=("Deployment", NAMESPACE, DEPLOYMENT),
    facts=("trainer",),
    needs_real_node=True,
    webhooks=Webhooks(service=SERVICE, namespace=NAMESPACE, secret=WEBHOOK_SECRET,
                      probes=(WebhookProbe(invalid_trainjob(NAMESPACE), TRAINJOB_VALIDATOR),)),
    description="Kubeflow Trainer v2 (TrainJob, TrainingRuntime, ClusterTrainingRuntime) with its validating and "
                "defaulting webhooks; needs the jobset addon",
)
