"""Tier R: the serving stack on one ``local-serving`` cluster (real node, Prometheus, prometheus-adapter, the model
server image): the model server's two versions answer OIP v2 through their NodePorts on GPUs of the real node,
the per-pod queue depth is readable through custom.metrics.k8s.io (the aggregator → prometheus-adapter →
Prometheus → the pod), and the bad inputs end in WorkloadError carrying the component's own log lines.
Needs root (see tests/integration/test_real_node.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from harness.addons import prometheus_adapter
from harness.config import load_profile
from harness.errors import WorkloadError
from harness.kube import KubeClient
from harness.providers.local import LocalCluster
from reference_workloads.serving import deploy_model, infer, metadata, remove_model, wait_answering
from reference_workloads.serving.autoscale import wait_queue_metric
from tests.integration.conftest import running_cluster
from tests.integration.test_real_node import _skip_reason

pytestmark = [pytest.mark.upstream("kube-router", "prometheus", "prometheus-adapter", "traefik"),
              pytest.mark.realnode, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster("sv", tmp_path_factory.mktemp("sv"), load_profile("local-serving")) as c:
        yield c


@pytest.fixture(scope="module")
def namespace(client: KubeClient) -> str:
    name = f"sv-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    client.wait_for("ServiceAccount", namespace=name, name="default", condition=bool, timeout=30)
    return name


def test_both_model_versions_answer_oip_v2_with_their_version_and_gpu(client: KubeClient, namespace: str) -> None:
    eps = {v: deploy_model(client, namespace, v, replicas=1) for v in ("v1", "v2")}
    gpus = {}
    for version, ep in eps.items():
        wait_answering(ep.url)
        answer = infer(ep.url, ["a sentence to embed"])
        assert answer["model_version"] == version and answer["model_name"] == "minilm"
        assert answer["outputs"][0]["shape"] == [1, 384]
        assert metadata(ep.url)["versions"] == [version]
        gpus[version] = answer["parameters"]["gpu"]
        pod = client.get("Pod", ep.pods[0], namespace)
        assert pod["spec"]["nodeName"] == "aiconform-real-0"
    assert all(g.startswith("GPU-") for g in gpus.values()) and gpus["v1"] != gpus["v2"], gpus
    for ep in eps.values():
        remove_model(client, namespace, ep.service)


def test_queue_depth_of_each_pod_is_served_on_custom_metrics(client: KubeClient, namespace: str) -> None:
    ep = deploy_model(client, namespace, "v1", replicas=1, name="metrics-probe")
    wait_answering(ep.url)
    depths = wait_queue_metric(client, namespace, "app.kubernetes.io/instance=metrics-probe", ep.pods[0], timeout=60)
    assert depths[ep.pods[0]] >= 0
    remove_model(client, namespace, ep.service)


def test_a_model_that_fails_to_load_is_an_error_with_its_own_log_line(client: KubeClient, namespace: str) -> None:
    with pytest.raises(WorkloadError) as err:
        deploy_model(client, namespace, "v1", name="broken", env={"AICONFORM_FAIL_LOAD": "weights are corrupt"},
                     timeout=120)
    remove_model(client, namespace, "broken")
    text = str(err.value)
    assert "did not become Ready" in text and "exited 3" in text
    assert "model minilm v1 failed to load: weights are corrupt" in text  # the pod's own log line


def test_an_adapter_that_is_not_available_is_an_error_with_its_condition(client: KubeClient) -> None:
    ns, name = prometheus_adapter.NAMESPACE, prometheus_adapter.NAME
    client.patch("Deployment", name, {"spec": {"replicas": 0}}, namespace=ns)
    try:
        client.wait_for("Pod", namespace=ns, label_selector=f"app.kubernetes.io/name={name}",
                        condition=lambda pods: not pods, timeout=60, what="the adapter's pod to go")
        with pytest.raises(WorkloadError, match=r"APIService v1beta1.custom.metrics.k8s.io to be Available.*last "
                                                r"condition: \w+"):
            prometheus_adapter.wait_available(client, timeout=15)
    finally:
        client.patch("Deployment", name, {"spec": {"replicas": 1}}, namespace=ns)
    prometheus_adapter.wait_available(client, timeout=90)
