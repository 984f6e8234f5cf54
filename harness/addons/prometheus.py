"""Prometheus (``github.com/prometheus/prometheus``, pinned in versions.toml, built with only its Kubernetes service
discovery) for the serving stack: scrapes the model servers found by Kubernetes service discovery from inside the
cluster, and the fake GPU plugin's DCGM-named metrics.

Facts that shaped the manifests:
- Debian bookworm's ``prometheus`` package (2.42+ds) lacks Kubernetes service discovery (``promtool check config``:
  "field kubernetes_sd_configs not found"), so the binary is built from the module proxy and packed FROM scratch;
- the fake GPU plugin is a host process on the real node whose metrics listen on ``127.0.0.1`` only (the
  provider passes the address as ``AddonContext.host_metrics``): Prometheus runs with ``hostNetwork`` so it can
  scrape it, and from the host network namespace it reaches pod IPs on the node's bridge too.  Pod attribution
  of the GPU series comes from the plugin itself (``pod``/``namespace``/``container`` labels from the kubelet's
  PodResources API), kept with ``honor_labels``;
- it listens on the real node's own address (never every interface), port ``PORT``: the harness and pods (the
  metrics adapter) reach it there;
- service discovery is in-cluster (service-account token; ``KUBERNETES_SERVICE_HOST`` is the apiserver's own
  address, reached without kube-proxy) and only looks at pods bound to the real node: a simulated node's pod IP is
  never a scrape target.  A pod is scraped when it carries ``prometheus.io/scrape: "true"`` (port/path from
  ``prometheus.io/port``/``prometheus.io/path``), with ``namespace``, ``pod`` and ``node`` target labels;
- the scrape interval is short (``SCRAPE_INTERVAL``) so an HPA pipeline on these series reacts within seconds.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness import images
from harness.addons.base import Addon, AddonContext, Obj, addon_labels, apiserver_env, cluster_rbac, host_network_workload
from harness.contract import PROMETHEUS_PORT
from harness.errors import ConfigError

NAMESPACE = "aiconform-monitoring"
NAME = "prometheus"
PORT = PROMETHEUS_PORT
SCRAPE_INTERVAL = "2s"
BINARY_IN_IMAGE = "/prometheus"


def image(binary: Path | None, version: str) -> images.ScratchImage:
    if binary is None:
        raise ConfigError("prometheus's image needs its pinned binary")
    return images.static_binary_image(NAME, binary, tag=f"v{version}", dest=BINARY_IN_IMAGE)


def listen_address(ctx: AddonContext) -> str:
    ip = ctx.real_nodes[0][1] if ctx.real_nodes and ctx.real_nodes[0][1] else "127.0.0.1"
    return f"{ip}:{PORT}"


def config(ctx: AddonContext) -> dict[str, object]:
    """prometheus.yml: pods on the real nodes that ask to be scraped, plus the host-process exporters."""
    node_names = [name for name, _ip in ctx.real_nodes]
    pods_job: dict[str, object] = {
        "job_name": "kubernetes-pods",
        "kubernetes_sd_configs": [{
            "role": "pod",
            **({"selectors": [{"role": "pod", "field": f"spec.nodeName={node_names[0]}"}]} if len(node_names) == 1 else {}),
        }],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_node_name"], "regex": "|".join(node_names) or "^$",
             "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "regex": "true",
             "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
             "regex": r"(.+);(\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "regex": "(.+)",
             "target_label": "__metrics_path__"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
        ],
    }
    jobs: list[dict[str, object]] = [pods_job]
    for name, address in sorted(ctx.host_metrics.items()):
        jobs.append({"job_name": name, "honor_labels": True,
                     "static_configs": [{"targets": [address],
                                         "labels": {"node": node_names[0] if node_names else ""}}]})
    return {"global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                       "evaluation_interval": "5s"},
            "scrape_configs": jobs}


def manifests(ctx: AddonContext) -> list[Obj]:
    labels = addon_labels(NAME)
    container = {
        "name": NAME,
        "image": ctx.image,
        "imagePullPolicy": "Never",
        "args": [
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/data",
            "--storage.tsdb.retention.time=2h",
            f"--web.listen-address={listen_address(ctx)}",
            "--log.level=info",
        ],
        "env": [
            *apiserver_env(ctx),
        ],
        "readinessProbe": {"httpGet": {"path": "/-/ready", "port": PORT, "host": listen_address(ctx).split(":")[0]},
                           "periodSeconds": 2},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/prometheus"}, {"name": "data", "mountPath": "/data"}],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
    }
    rules = [{"apiGroups": [""], "resources": ["pods", "nodes", "services", "endpoints"],
              "verbs": ["get", "list", "watch"]}]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}},
        *cluster_rbac(NAME, NAMESPACE, rules, role="aiconform-prometheus"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, "namespace": NAMESPACE},
         "data": {"prometheus.yml": yaml.safe_dump(config(ctx), sort_keys=False)}},
        host_network_workload("Deployment", NAME, NAMESPACE, ctx, container, dnsPolicy="ClusterFirstWithHostNet",
                              volumes=[{"name": "config", "configMap": {"name": NAME}},
                                       {"name": "data", "emptyDir": {}}]),
    ]


ADDON = Addon(
    name=NAME,
    binary=NAME,
    image=image,
    manifests=manifests,
    workload=("Deployment", NAMESPACE, NAME),
    facts=("prometheus",),
    needs_real_node=True,
    description="Prometheus scraping model servers (Kubernetes SD) and the fake GPU plugin's DCGM metrics",
)
