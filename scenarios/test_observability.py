"""Observability suite: the serving stack's metrics and the accelerators' metrics are in Prometheus, attributed to
the pod and namespace that produced them, read through the Prometheus HTTP API (CNCF ``ai_service_metrics`` and
``accelerator_metrics``, tier R).

Prometheus finds the model server by Kubernetes service discovery; the GPU series come from the fake GPU plugin's
DCGM-named exporter, which learns who holds each GPU from the kubelet's PodResources API.  The model server's answer
names the GPU the device plugin gave it, and the check finds that GPU's series under the same pod.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.contract import UTILIZATION_ANNOTATION, declares_fake_gpus
from harness.kube import KubeClient
from harness.testing import Evidence, Tenant
from reference_workloads.serving import deploy_model, infer, prom, remove_model, wait_answering

SERVING = ("prometheus", "model-server")
REQUESTS = 12
SET_UTILIZATION = 37
"""The utilisation the accelerator check's workload sets on fake GPUs: neither the fake's default (100) nor 0."""


@pytest.fixture
def model_cleanup(kube: KubeClient, tenant: Tenant) -> Iterator[None]:
    """Delete the model server before the tenant goes (its ReplicaSet would replace the pods a sweep deletes)."""
    yield
    remove_model(kube, tenant.name, "model-v1")


def _drive(kube: KubeClient, tenant: Tenant, annotations: dict[str, str] | None = None) -> tuple[str, str, str]:
    """Deploy one model server replica, send REQUESTS inferences; (pod, GPU UUID it reports, Prometheus URL)."""
    ep = deploy_model(kube, tenant.name, "v1", replicas=1, annotations=annotations)
    wait_answering(ep.url)
    answers = [infer(ep.url, [f"request {i}"]) for i in range(REQUESTS)]
    gpu = str(answers[-1]["parameters"]["gpu"])
    return ep.pods[0], gpu, prom.prometheus_url(kube)


@pytest.mark.aiconform(requirement="ai_service_metrics", tier="R", gpus=1, capabilities=SERVING,
                       mutations=("monitoring-left-out",))
@pytest.mark.usefixtures("model_cleanup")
def test_model_server_metrics_are_in_prometheus_per_pod(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """Request count, latency histogram and queue depth of the model server are scraped by Prometheus (found by
    Kubernetes service discovery) and carry the serving pod's name and namespace."""
    pod, _gpu, url = _drive(kube, tenant)
    sel = f'namespace="{tenant.name}",pod="{pod}"'
    counted = prom.wait_query(url, f"sum(aiconform_model_requests_total{{{sel},code=\"200\"}})",
                              lambda r: bool(r) and prom.value(r[0]) >= REQUESTS + 1, timeout=60,
                              what=f"Prometheus to count {REQUESTS + 1} requests of pod {pod}")
    series = prom.query(url, f"aiconform_model_requests_total{{{sel},code=\"200\"}}")
    hist = prom.query(url, f"aiconform_model_request_seconds_count{{{sel}}}")
    queue = prom.query(url, f"aiconform_model_queue_depth{{{sel}}}")
    p99 = prom.query(url, f"histogram_quantile(0.99, sum by (le) (aiconform_model_request_seconds_bucket{{{sel}}}))")
    evidence["requests_counted"] = prom.value(counted[0])
    evidence["latency_histogram_count"] = prom.value(hist[0]) if hist else None
    evidence["p99_s_from_histogram"] = prom.value(p99[0]) if p99 else None
    evidence["queue_depth_series"] = [s["metric"] for s in queue]
    evidence["promql"] = f"sum(aiconform_model_requests_total{{{sel},code=\"200\"}})"
    evidence["request_series"] = [s["metric"] for s in series]
    assert len(series) == 1, (f"pod {pod}'s request counter is {len(series)} series in Prometheus (scraped "
                              f"{len(series)} times: a sum over them counts each request {len(series)} times)")
    assert hist and prom.value(hist[0]) >= REQUESTS, "no latency histogram for the pod"
    assert queue and queue[0]["metric"].get("namespace") == tenant.name and queue[0]["metric"].get("pod") == pod


@pytest.mark.aiconform(requirement="accelerator_metrics", tier="R", gpus=1, capabilities=SERVING,
                       mutations=("monitoring-left-out",))
@pytest.mark.usefixtures("model_cleanup")
def test_gpu_metrics_are_attributed_to_the_pod_holding_the_gpu(kube: KubeClient, tenant: Tenant,
                                                               evidence: Evidence) -> None:
    """The DCGM-named series of the GPU the model server got (the UUID it reports) carry that pod and namespace in
    Prometheus, and on fake GPUs the utilisation the workload set (a pod annotation the fake's exporter reports);
    GPUs nobody holds carry no pod."""
    pod, gpu, url = _drive(kube, tenant, annotations={UTILIZATION_ANNOTATION: str(SET_UTILIZATION)})
    assert gpu.startswith("GPU-"), f"the model server reports no GPU (NVIDIA_VISIBLE_DEVICES={gpu!r})"
    held = prom.wait_query(url, f'DCGM_FI_DEV_GPU_UTIL{{UUID="{gpu}"}}',
                           lambda r: any(s["metric"].get("pod") == pod for s in r), timeout=60,
                           what=f"the series of GPU {gpu} to name pod {pod}")
    mine = [s for s in held if s["metric"].get("pod") == pod]
    others = prom.query(url, f'count(DCGM_FI_DEV_GPU_UTIL{{namespace="{tenant.name}"}})')
    fb = prom.query(url, f'DCGM_FI_DEV_FB_USED{{namespace="{tenant.name}",pod="{pod}"}}')
    evidence["gpu_uuid"] = gpu
    evidence["series"] = mine[0]["metric"]
    evidence["gpu_util"] = prom.value(mine[0])
    evidence["fb_used_mib"] = prom.value(fb[0]) if fb else None
    assert mine[0]["metric"].get("namespace") == tenant.name
    node = kube.get("Node", kube.get("Pod", pod, namespace=tenant.name)["spec"]["nodeName"])
    util = prom.value(mine[0])
    if declares_fake_gpus(node):  # the fake reports what the workload set; a constant (0, 100) would not match
        evidence["gpu_util_set_by_workload"] = SET_UTILIZATION
        assert util == SET_UTILIZATION, (f"GPU {gpu} of pod {pod} reports utilisation {util:g} in Prometheus; the "
                                         f"workload set {SET_UTILIZATION} ({UTILIZATION_ANNOTATION})")
    else:  # real GPUs: whatever inference kept them at, but a utilisation
        assert 0 <= util <= 100, f"GPU {gpu} reports utilisation {util:g}, outside 0-100"
    assert others and prom.value(others[0]) == 1, "another GPU is attributed to this namespace"
    assert fb, "no framebuffer series for the pod"
