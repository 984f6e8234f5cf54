"""The serving stack without a cluster: its manifests, the addons' configuration, the load target guard and the
autoscaling phase judge (the stack itself runs in scenarios/test_autoscaling.py and test_observability.py, tier R)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from harness.addons import AddonContext, known_addons, lookup
from harness.config import load_profile
from harness.contract import GPU_RESOURCE, PROMETHEUS_PORT, REAL_NODE_LABEL
from harness.errors import ConfigError
from reference_workloads.serving import autoscale, load, manifests

CTX = AddonContext(image="aiconform.local/x:v1", apiserver_host="172.31.255.1", apiserver_port=6443,
                   node_selector={REAL_NODE_LABEL: "true"}, real_nodes=(("real-0", "172.31.255.1"),),
                   host_metrics={"fake-gpu-plugin": "127.0.0.1:41234"})


def test_model_server_runs_on_the_real_node_with_a_gpu_and_a_cpu_limit() -> None:
    spec = manifests.ModelSpec(version="v2", replicas=2, image="aiconform.local/model-server:v1", cpu="250m")
    dep = manifests.deployment(spec)
    pod = dep["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert pod["nodeSelector"] == {REAL_NODE_LABEL: "true"}
    assert c["resources"]["limits"] == {"cpu": "250m", "memory": "768Mi", GPU_RESOURCE: "1"}
    assert c["imagePullPolicy"] == "Never"
    assert {"name": "MODEL_VERSION", "value": "v2"} in c["env"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/models/minilm/ready"
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    pulled = manifests.deployment(manifests.ModelSpec(image="127.0.0.1:5000/ac/model-server:v1",
                                                      annotations={"aiconform.io/gpu-utilization": "37"}))
    assert pulled["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"  # --image-registry
    assert pulled["spec"]["template"]["metadata"]["annotations"]["aiconform.io/gpu-utilization"] == "37"
    svc = manifests.service(spec)
    assert svc["spec"]["type"] == "NodePort" and svc["metadata"]["name"] == "model-v2"
    with pytest.raises(ValueError, match="v1, v2"):
        manifests.deployment(manifests.ModelSpec(version="v3", image="x"))


def test_hpa_scales_on_per_pod_queue_depth_with_a_short_scale_down_window() -> None:
    hpa = manifests.queue_depth_hpa("model-v1", max_replicas=5, average_queue="3", scale_down_window_s=7)
    assert hpa["apiVersion"] == "autoscaling/v2"
    [metric] = hpa["spec"]["metrics"]
    assert metric == {"type": "Pods", "pods": {"metric": {"name": "aiconform_model_queue_depth"},
                                               "target": {"type": "AverageValue", "averageValue": "3"}}}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 7
    assert hpa["spec"]["maxReplicas"] == 5


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://172.31.255.1:30080", "http://10.244.0.17:8080"])
def test_load_goes_to_harness_addresses(url: str) -> None:
    load.LoadSpec(url, users=4, duration_s=5).validate()


@pytest.mark.parametrize("url", ["http://8.8.8.8:80", "http://10.96.0.10:8080", "http://192.168.1.1",
                                 "http://example.invalid:80", "ftp://127.0.0.1"])
def test_load_refuses_any_other_address(url: str) -> None:
    with pytest.raises(ConfigError):
        load.LoadSpec(url, users=4, duration_s=5).validate()


def test_load_is_bounded() -> None:
    with pytest.raises(ConfigError, match="users"):
        load.LoadSpec("http://127.0.0.1:1", users=load.MAX_USERS + 1).validate()
    with pytest.raises(ConfigError, match="duration"):
        load.LoadSpec("http://127.0.0.1:1", duration_s=load.MAX_DURATION_S + 1).validate()


def test_load_child_refuses_a_bad_target_in_one_line(tmp_path: Path) -> None:
    """The locust child checks the target itself too (it patches the process for gevent: run it as a child)."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "reference_workloads.serving.load", "--url", "http://8.8.8.8:80",
                          "--out", str(tmp_path / "o.json")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("aiconform: load target 8.8.8.8 is outside")
    assert not (tmp_path / "o.json").exists()


def test_prometheus_scrapes_only_real_node_pods_and_the_plugin_with_its_pod_labels() -> None:
    objs = lookup("prometheus").manifests(CTX)
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    cfg = yaml.safe_load(cm["data"]["prometheus.yml"])
    pods, plugin = cfg["scrape_configs"]
    assert pods["kubernetes_sd_configs"][0]["selectors"] == [{"role": "pod", "field": "spec.nodeName=real-0"}]
    keep = pods["relabel_configs"][0]
    assert keep["source_labels"] == ["__meta_kubernetes_pod_node_name"] and keep["regex"] == "real-0"
    assert plugin["honor_labels"] is True and plugin["static_configs"][0]["targets"] == ["127.0.0.1:41234"]
    dep = next(o for o in objs if o["kind"] == "Deployment")
    spec = dep["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert f"--web.listen-address=172.31.255.1:{PROMETHEUS_PORT}" in spec["containers"][0]["args"]  # never every interface
    assert ipaddress.ip_address("172.31.255.1") in load.allowed_networks()[1]


def test_adapter_registers_custom_metrics_and_relists_quickly() -> None:
    objs = lookup("prometheus-adapter").manifests(CTX)
    api = next(o for o in objs if o["kind"] == "APIService")
    assert api["metadata"]["name"] == "v1beta1.custom.metrics.k8s.io"
    assert api["spec"]["service"] == {"namespace": "aiconform-monitoring", "name": "prometheus-adapter", "port": 443}
    args = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--prometheus-url=http://172.31.255.1:{PROMETHEUS_PORT}/" in args and "--metrics-relist-interval=5s" in args
    rules = yaml.safe_load(next(o for o in objs if o["kind"] == "ConfigMap")["data"]["config.yaml"])["rules"]
    assert rules[0]["seriesQuery"].startswith("aiconform_model_queue_depth")
    assert lookup("prometheus-adapter").after_ready is not None  # waits until the APIService is Available


def test_serving_addons_are_registered_and_the_serving_profile_sets_a_short_hpa_sync() -> None:
    assert {"prometheus", "prometheus-adapter", "model-server"} <= set(known_addons())
    assert lookup("model-server").workload is None and lookup("model-server").manifests(CTX) == []
    assert lookup("model-server").binary == ""  # an image of this repository, no pinned binary
    profile = load_profile("local-serving")
    assert profile.addons == ("kube-router", "prometheus", "prometheus-adapter", "model-server", "traefik")
    assert profile.control_plane.extra_args["kube-controller-manager"] == {"horizontal-pod-autoscaler-sync-period": "5s"}


def test_an_unschedulable_model_pod_fails_its_wait_at_once_with_the_scheduler_message() -> None:
    from harness.workloads import pod_failure

    pod = {"metadata": {"name": "m"}, "status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes: Insufficient cpu"}]}}
    assert pod_failure(pod) == "pod m is unschedulable: 0/3 nodes: Insufficient cpu"
    assert pod_failure({"metadata": {"name": "m"}, "status": {"phase": "Pending"}}) is None


def test_quantities_from_the_custom_metrics_api() -> None:
    assert autoscale.parse_quantity("1500m") == pytest.approx(1.5)
    assert autoscale.parse_quantity("3") == 3.0
    assert autoscale.parse_quantity("2k") == 2000.0


def _timeline(ready: list[int], queue: list[float], served: list[float], stop: float) -> autoscale.Timeline:
    params = autoscale.AutoscaleParams(users=10, rate_per_user=1.0, average_queue=2.0)
    samples = [autoscale.Sample(float(t), r, r, q) for t, (r, q) in enumerate(zip(ready, queue, strict=True))]
    lr = load.LoadResult(requests=1, failures=0, rps=1.0, p50_s=0.1, p95_s=0.1, p99_s=0.1, duration_s=stop,
                         timeline=[{"t": float(t), "sent": 10.0, "served": s, "failed": 0.0, "p99_s": 0.1}
                                   for t, s in enumerate(served)], errors={}, started=0.0)
    ep = object.__new__(autoscale.ModelEndpoint)
    return autoscale.Timeline(params, ep, samples, lr, stop, 0.0, {}, [])


def test_phases_are_read_from_the_timeline_in_order() -> None:
    ready = [1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 1]
    queue = [0.5, 5, 8, 9, 4, 1.0, 0.5, 0.5, 0.5, 0.0, 0.0]
    served = [4, 4, 4, 4, 6, 10, 10, 10, 10]
    ph = autoscale.phases(_timeline(ready, queue, served, stop=9.0))
    assert (ph.queue_rose_at, ph.scaled_out_at, ph.served_reached_at, ph.queue_fell_at, ph.scaled_in_at) == \
        (1.0, 4.0, 5.0, 5.0, 10.0)
    assert ph.reaction_s == 3.0 and ph.peak_ready == 3


def test_a_run_that_never_scales_has_no_later_phases() -> None:
    ph = autoscale.phases(_timeline([1] * 6, [9.0] * 6, [4.0] * 6, stop=6.0))
    assert ph.queue_rose_at == 0.0
    assert (ph.scaled_out_at, ph.served_reached_at, ph.queue_fell_at, ph.reaction_s) == (None, None, None, None)
