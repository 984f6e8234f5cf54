"""Pod autoscaling suite: the real HPA controller scales the reference model server on its per-pod queue depth (CNCF
``pod_autoscaling``), under real load from locust (tier R).

The chain is all upstream: the model server's gauge → Prometheus (Kubernetes service discovery) → prometheus-adapter
(custom.metrics.k8s.io, through the aggregator) → kube-controller-manager's HPA controller → the Deployment → the
scheduler and the real kubelet (replicas on the fake GPUs of the real node).  The check asserts all four phases a
user would see, not only the replica count, and draws the timeline in report.html.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.contract import REAL_NODE_LABEL
from harness.errors import NotFound
from harness.kube import KubeClient
from harness.testing import ClusterHandle, Evidence, Tenant
from harness.workloads import GPU
from reference_workloads.serving import autoscale

SERVING = ("prometheus", "custom-metrics", "model-server")


def hpa_sync_period(cluster: ClusterHandle) -> str:
    """The HPA controller's sync period, read from the running kube-controller-manager's command line where this
    machine runs it (measured, not what a profile asked for); else not known."""
    pid = cluster.info.component_pids.get("kube-controller-manager")
    if not pid:
        return "not known (the platform's own kube-controller-manager; upstream default 15s)"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return f"not known (kube-controller-manager pid {pid} is not readable)"
    flag = "--horizontal-pod-autoscaler-sync-period="
    value = next((a.removeprefix(flag) for a in argv if a.startswith(flag)), "")
    return (f"{value} (the running kube-controller-manager's {flag.rstrip('=')})" if value
            else "15s (upstream default: the running kube-controller-manager sets no sync period)")


@pytest.mark.aiconform(requirement="pod_autoscaling", tier="R", gpus=4, capabilities=SERVING, exclusive=True,
                       mutations=("hpa-controller-off",))
def test_hpa_scales_model_server_on_queue_depth(
    aiconform_cluster: ClusterHandle, kube: KubeClient, tenant: Tenant, evidence: Evidence, tmp_path: Path
) -> None:
    """Locust offers a fixed rate one CPU-limited replica cannot serve: queue depth rises above the HPA's target,
    the HPA scales out and the new replicas become Ready on GPUs of the real node, the served rate reaches the
    offered rate and the queue falls back under target; the load stops and, with a short scale-down stabilization
    window, the HPA scales back in within the check."""
    params = autoscale.AutoscaleParams()
    evidence["hpa_sync_period"] = hpa_sync_period(aiconform_cluster)
    evidence["setup"] = {"cpu_limit_per_replica": params.cpu, "offered_rps": params.offered_rps,
                         "queue_target_per_pod": params.average_queue, "replicas": [params.min_replicas,
                                                                                   params.max_replicas],
                         "scale_down_stabilization_s": params.scale_down_window_s}
    tl = autoscale.run(kube, tenant.name, tmp_path, params)
    ph = autoscale.phases(tl)
    charts = autoscale.series(tl)
    evidence.series("timeline_rate", charts["rate"], x="s since load start", y="req/s",
                    title="offered vs served request rate")
    evidence.series("timeline_queue_replicas", charts["queue_replicas"], x="s since load start",
                    y="requests / replicas", title="queue depth per pod (HPA's view) and replicas")
    evidence.series("timeline_p99", charts["p99"], x="s since load start", y="s", title="p99 latency per second")
    evidence["phases_s"] = {"queue_above_target": ph.queue_rose_at, "scaled_out": ph.scaled_out_at,
                            "served_reached_offered": ph.served_reached_at, "queue_under_target": ph.queue_fell_at,
                            "load_stopped": tl.load_stopped_at, "scaled_in": ph.scaled_in_at}
    evidence["peak_ready_replicas"] = ph.peak_ready
    evidence["load"] = {"requests": tl.load.requests, "failures": tl.load.failures, "p99_s": round(tl.load.p99_s, 3)}
    evidence["hpa_events"] = tl.events[-6:]
    if ph.reaction_s is not None:
        evidence.timing("hpa_reaction_s", ph.reaction_s)

    assert ph.queue_rose_at is not None, (
        f"queue depth never rose above the target {params.average_queue} under {params.offered_rps:g} req/s")
    assert ph.scaled_out_at is not None and ph.peak_ready > params.min_replicas, "the HPA never scaled out"
    real_nodes = {n["metadata"]["name"] for n in kube.list("Node", label_selector=f"{REAL_NODE_LABEL}=true")["items"]}
    assert set(tl.pods_seen.values()) <= real_nodes, f"replicas ran off the real nodes: {tl.pods_seen}"
    for name in tl.pods_seen:
        try:
            pod = kube.get("Pod", name, tenant.name)
        except NotFound:  # scaled-in replicas are gone; the ones left are checked
            continue
        assert pod["spec"]["containers"][0]["resources"]["limits"].get(GPU) == "1"
    assert ph.served_reached_at is not None, (
        f"the served rate never reached 90% of the offered {params.offered_rps:g} req/s after scale-out")
    assert ph.queue_fell_at is not None, "queue depth never fell back under target after scale-out"
    assert ph.scaled_in_at is not None, (
        f"no scale-in to {params.min_replicas} replica(s) within {params.scale_in_timeout_s:.0f}s after the load stopped")
