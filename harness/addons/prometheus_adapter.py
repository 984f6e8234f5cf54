"""prometheus-adapter (``sigs.k8s.io/prometheus-adapter``, pinned in versions.toml): serves Prometheus series as
``custom.metrics.k8s.io/v1beta1``, registered with the aggregator, so the real HPA controller can scale on the model
server's per-pod queue depth.

Facts that shaped the manifests:
- an extension apiserver: it authenticates the aggregator's front-proxy identity from the
  ``kube-system/extension-apiserver-authentication`` ConfigMap (RoleBinding to
  ``extension-apiserver-authentication-reader``) and delegates authorization (``system:auth-delegator``);
- it serves TLS with a self-signed certificate it makes at start (``--cert-dir``); the APIService therefore says
  ``insecureSkipTLSVerify`` (the apiserver proxies to the pod's address on the node's bridge, on this machine);
- it runs in the pod network and reads Prometheus at the real node's address (harness/addons/prometheus.py);
- ``--metrics-relist-interval`` is short: the model server's series appear after the adapter starts, and the
  default (10 min) would hide them for that long;
- the metric the HPA reads is ``aiconform_model_queue_depth`` averaged over ``QUEUE_WINDOW`` per pod.

The install is done when its pod is Ready AND the APIService is Available (``available``); otherwise the error
carries the adapter's own log lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness import images
from harness.addons import prometheus
from harness.addons.base import Addon, AddonContext, Obj, addon_labels, apiserver_env
from harness.errors import ConfigError, WaitFailed, WaitTimeout, WorkloadError
from harness.kube import KubeClient

NAMESPACE = prometheus.NAMESPACE
NAME = "prometheus-adapter"
GROUP = "custom.metrics.k8s.io"
VERSION = "v1beta1"
APISERVICE = f"{VERSION}.{GROUP}"
SECURE_PORT = 6443
QUEUE_WINDOW = "10s"
BINARY_IN_IMAGE = "/adapter"
AVAILABLE_TIMEOUT_S = 120.0


def image(binary: Path | None, version: str) -> images.ScratchImage:
    if binary is None:
        raise ConfigError("prometheus-adapter's image needs its pinned binary")
    return images.static_binary_image(NAME, binary, tag=f"v{version}", dest=BINARY_IN_IMAGE)


def adapter_config() -> dict[str, Any]:
    """The adapter's discovery and naming rules: the model server's gauges and counters, per pod."""
    resources = {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}}
    return {"rules": [
        {"seriesQuery": 'aiconform_model_queue_depth{namespace!="",pod!=""}',
         "resources": resources,
         "name": {"matches": "^(.*)$", "as": "${1}"},
         "metricsQuery": f"avg_over_time(<<.Series>>{{<<.LabelMatchers>>}}[{QUEUE_WINDOW}])"},
        {"seriesQuery": 'aiconform_model_requests_total{namespace!="",pod!=""}',
         "resources": resources,
         "name": {"matches": "^(.*)_total$", "as": "${1}_per_second"},
         "metricsQuery": "sum(rate(<<.Series>>{<<.LabelMatchers>>}[20s])) by (<<.GroupBy>>)"},
    ]}


def manifests(ctx: AddonContext) -> list[Obj]:
    labels = addon_labels(NAME)
    container = {
        "name": NAME,
        "image": ctx.image,
        "imagePullPolicy": "Never",
        "args": [
            f"--prometheus-url=http://{prometheus.listen_address(ctx)}/",
            "--metrics-relist-interval=5s",
            "--config=/etc/adapter/config.yaml",
            f"--secure-port={SECURE_PORT}",
            "--cert-dir=/tmp/cert",
            "--v=2",
        ],
        "env": [
            *apiserver_env(ctx),
        ],
        "ports": [{"name": "https", "containerPort": SECURE_PORT}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": SECURE_PORT, "scheme": "HTTPS"},
                           "periodSeconds": 2},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/adapter"}, {"name": "tmp", "mountPath": "/tmp"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": NAME,
                    "nodeSelector": dict(ctx.node_selector),
                    "tolerations": [{"operator": "Exists"}],
                    "terminationGracePeriodSeconds": 5,
                    "enableServiceLinks": False,
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": NAME}}, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    sa = {"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": NAMESPACE}},
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": "aiconform-prometheus-adapter"},
         "rules": [{"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": "aiconform-prometheus-adapter"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "aiconform-prometheus-adapter"}, "subjects": [sa]},
        {"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": "aiconform-prometheus-adapter:auth-delegator"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
         "subjects": [sa]},
        {"apiVersion": rbac, "kind": "RoleBinding",
         "metadata": {"name": "aiconform-prometheus-adapter:auth-reader", "namespace": "kube-system"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "extension-apiserver-authentication-reader"}, "subjects": [sa]},
        # The HPA controller reads custom metrics (kube-controller-manager may use its own identity or per-controller
        # service accounts: both are bound).
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": "aiconform-custom-metrics-reader"},
         "rules": [{"apiGroups": [GROUP], "resources": ["*"], "verbs": ["get", "list"]}]},
        {"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": "aiconform-custom-metrics-reader:hpa"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "aiconform-custom-metrics-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler", "namespace": "kube-system"},
                      {"kind": "User", "name": "system:kube-controller-manager", "apiGroup": "rbac.authorization.k8s.io"}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, "namespace": NAMESPACE},
         "data": {"config.yaml": yaml.safe_dump(adapter_config(), sort_keys=False)}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
         "spec": {"selector": {"app.kubernetes.io/name": NAME},
                  "ports": [{"name": "https", "port": 443, "targetPort": SECURE_PORT}]}},
        deployment,
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
         "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 100, "versionPriority": 100,
                  "insecureSkipTLSVerify": True, "service": {"namespace": NAMESPACE, "name": NAME, "port": 443}}},
    ]


def wait_available(client: KubeClient, timeout: float) -> None:
    """Until the APIService is Available; WorkloadError with its condition and the adapter's log lines."""
    last: dict[str, str] = {}

    def available(state: dict[str, Any]) -> bool:
        for c in state.get(APISERVICE, {}).get("status", {}).get("conditions", []) or []:
            if c.get("type") == "Available":
                last.update(status=c.get("status", ""), reason=c.get("reason", ""), message=c.get("message", ""))
                return bool(c.get("status") == "True")
        return False

    try:
        client.wait_for("APIService", name=APISERVICE, condition=available, timeout=timeout,
                        what=f"APIService {APISERVICE} to be Available", api_version="apiregistration.k8s.io/v1")
    except (WaitTimeout, WaitFailed) as err:
        raise WorkloadError(f"{err}; last condition: {last.get('reason', '?')}: {last.get('message', '')}"
                            + adapter_logs(client)) from err


def adapter_logs(client: KubeClient, lines: int = 15) -> str:
    from harness.workloads import pod_log_tail

    out = []
    for p in client.list("Pod", NAMESPACE, label_selector=f"app.kubernetes.io/name={NAME}").get("items", []):
        name = p["metadata"]["name"]
        out.append(f"\n--- {NAMESPACE}/{name} log:\n" + "\n".join(pod_log_tail(client, NAMESPACE, name, lines=lines)))
    return "".join(out)


ADDON = Addon(
    name=NAME,
    binary=NAME,
    image=image,
    manifests=manifests,
    workload=("Deployment", NAMESPACE, NAME),
    facts=("custom-metrics",),
    needs_real_node=True,
    after_ready=lambda client, ctx: wait_available(client, AVAILABLE_TIMEOUT_S),
    description="custom.metrics.k8s.io from Prometheus (the HPA's per-pod queue depth), registered with the aggregator",
)
