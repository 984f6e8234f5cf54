"""Whose fault it is (the rule in harness.errors): a platform that lacks or breaks what a requirement needs is the
check's ``failed`` verdict naming the part; aiconform's own faults stay ``error``.

The waits that meet a platform fault are driven here with a stub client whose answers each test writes (what a
cluster with that part off answers); the grading of the resulting exceptions through pytest is in
test_pytest_seam.py.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from harness import gateway
from harness.addons.base import WebhookProbe, Webhooks
from harness.addons.installer import AddonFailed, _Install, wait_discovered
from harness.errors import (
    ApiNotServed,
    BinaryError,
    ClusterError,
    CommandError,
    ControllerInactive,
    KubeConfigError,
    KubeUnreachable,
    PlatformFault,
    WaitFailed,
    WaitTimeout,
    WebhookNotCalled,
    WorkloadError,
    api_error_for,
)
from harness.testing.outcome import is_platform_failure
from reference_workloads.serving import autoscale
from reference_workloads.training import cluster as training


class StubClient:
    """Answers only what a test wrote into it; records the dry-run creates."""

    def __init__(self, *, get: dict[str, Any] | None = None, create_raises: Exception | None = None,
                 discovery: dict[str, Any] | None = None) -> None:
        self._get = get or {}
        self._create_raises = create_raises
        self._discovery = discovery or {}
        self.creates = 0

    def wait_for(self, *args: Any, what: str = "", timeout: float = 0.0, **kwargs: Any) -> Any:
        raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last seen: nothing")

    def get(self, kind: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._get

    def list(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"items": []}

    def create(self, obj: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.creates += 1
        if self._create_raises is not None:
            raise self._create_raises
        return obj

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._discovery


PLATFORM_FAULTS = [
    PlatformFault("custom.metrics.k8s.io", "did not serve queue_depth"),
    ControllerInactive("the HorizontalPodAutoscaler controller", "no status"),
    WebhookNotCalled("kube-apiserver admission webhooks", "let the probe through"),
    ApiNotServed("kube-apiserver API discovery", "trainjobs.trainer.kubeflow.org/v1alpha1"),
    gateway.GatewayError("Gateway t/g was not Programmed"),
    WaitTimeout("timed out after 30s waiting for pod p to be bound"),
    AssertionError("3 GPUs bound on a node with 2"),
    api_error_for(403, "Forbidden", "quota exceeded"),
]
OWN_FAULTS = [
    WorkloadError("the model server never became Ready"),
    ClusterError("no real node with an InternalIP"),
    AddonFailed("addon trainer: webhook x did not answer (apiserver: x509: certificate signed by unknown authority)"),
    CommandError(["kubectl", "get"], 1, "boom"),
    BinaryError("kube-apiserver v1.36.1: no release and no go toolchain"),
    KubeConfigError("kubeconfig kc: no current-context"),
    KubeUnreachable("GET https://127.0.0.1:6443/api: Connection refused"),
    api_error_for(500, "InternalError", "failed calling webhook"),
    KeyError("allocatable"),
]


@pytest.mark.parametrize("exc", PLATFORM_FAULTS, ids=lambda e: type(e).__name__)
def test_what_the_platform_lacks_or_breaks_is_a_verdict(exc: BaseException) -> None:
    assert is_platform_failure(exc)


@pytest.mark.parametrize("exc", OWN_FAULTS, ids=lambda e: type(e).__name__)
def test_what_aiconform_breaks_is_not_a_verdict(exc: BaseException) -> None:
    assert not is_platform_failure(exc)


def test_a_platform_fault_names_the_part_first_and_keeps_it_across_processes() -> None:
    fault = ControllerInactive("the HorizontalPodAutoscaler controller", "HPA ns/m has no status")
    assert str(fault) == "the HorizontalPodAutoscaler controller: HPA ns/m has no status"
    back = pickle.loads(pickle.dumps(fault))  # pytest-xdist sends exceptions between processes
    assert type(back) is ControllerInactive and back.part == fault.part and str(back) == str(fault)
    gw = pickle.loads(pickle.dumps(gateway.GatewayError("Gateway t/g was not Programmed")))
    assert str(gw).startswith("the Gateway API implementation (GatewayClass traefik): Gateway t/g")


def test_a_gateway_never_programmed_is_the_gateway_implementations_fault() -> None:
    with pytest.raises(gateway.GatewayError) as err:
        gateway.wait_programmed(StubClient(), "t", "g", timeout=1)  # type: ignore[arg-type]
    assert is_platform_failure(err.value)
    assert err.value.part == "the Gateway API implementation (GatewayClass traefik)"
    assert "Gateway t/g was not Programmed" in str(err.value)


def test_an_hpa_nothing_acts_on_is_the_hpa_controllers_fault() -> None:
    client = StubClient(get={"metadata": {"name": "m"}, "spec": {}})  # no status at all: no controller touched it
    with pytest.raises(ControllerInactive) as err:
        autoscale._wait_metric_served(client, "ns", "m", "app=m", 5)  # type: ignore[arg-type]
    assert err.value.part == "the HorizontalPodAutoscaler controller"
    assert "HPA ns/m has no status 5s after it was created" in str(err.value)


def test_an_hpa_that_cannot_get_its_metric_is_the_custom_metrics_apis_fault() -> None:
    hpa = {"status": {"conditions": [{"type": "ScalingActive", "status": "False", "reason": "FailedGetPodsMetric",
                                      "message": "unable to get metric queue_depth"}]}}
    with pytest.raises(PlatformFault) as err:
        autoscale._wait_metric_served(StubClient(get=hpa), "ns", "m", "app=m", 5)  # type: ignore[arg-type]
    assert type(err.value) is PlatformFault and err.value.part == "custom.metrics.k8s.io"
    assert "ScalingActive=False FailedGetPodsMetric: unable to get metric queue_depth" in str(err.value)


def _install(client: StubClient) -> _Install:
    job = object.__new__(_Install)  # only what _wait_webhooks reads
    job.client, job.webhook_timeout = client, 0.0  # type: ignore[assignment]
    job.addon = type("A", (), {"name": "trainer"})()
    job.controller_log = lambda hctx, lines=5: "(log)"  # type: ignore[method-assign]
    return job


HOOKS = Webhooks(service="trainer-controller-manager", namespace="kubeflow-system", secret="trainer-webhook-cert",
                 probes=(WebhookProbe({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
                                       "metadata": {"name": "probe", "namespace": "default"}},
                                      "validator.trainjob.trainer.kubeflow.org"),))


def test_a_webhook_the_apiserver_never_calls_is_the_apiservers_fault() -> None:
    client = StubClient()  # every dry run goes through: the apiserver never asks the webhook
    with pytest.raises(WebhookNotCalled) as err:
        _install(client)._wait_webhooks(HOOKS, [], None, deadline=0.0)
    assert is_platform_failure(err.value) and err.value.part == "kube-apiserver admission webhooks"
    assert "validator.trainjob.trainer.kubeflow.org" in str(err.value) and client.creates == 1


def test_a_webhook_the_apiserver_cannot_reach_is_this_installs_fault() -> None:
    tls = api_error_for(500, "InternalError", 'failed calling webhook "validator.trainjob.trainer.kubeflow.org": '
                                              "x509: certificate signed by unknown authority")
    with pytest.raises(AddonFailed) as err:
        _install(StubClient(create_raises=tls))._wait_webhooks(HOOKS, [], None, deadline=0.0)
    assert not is_platform_failure(err.value) and "x509" in str(err.value)


def test_a_crd_never_served_in_discovery_is_the_apiservers_fault() -> None:
    crd = {"spec": {"group": "trainer.kubeflow.org", "names": {"plural": "trainjobs"},
                    "versions": [{"name": "v1alpha1", "served": True}]}}
    with pytest.raises(ApiNotServed) as err:
        wait_discovered(StubClient(discovery={"resources": []}), [crd], timeout=0, what="addon trainer's CRDs")  # type: ignore[arg-type]
    assert is_platform_failure(err.value) and "trainjobs.trainer.kubeflow.org/v1alpha1" in str(err.value)


def test_a_training_webhook_that_never_learns_the_runtime_is_the_webhooks_fault() -> None:
    refusal = api_error_for(403, "Forbidden", 'admission webhook "validator.trainjob" denied the request: '
                                              'TrainingRuntime "jax" not found')
    with pytest.raises(PlatformFault) as err:
        training.wait_runtime_known(StubClient(create_raises=refusal), "ns", "jax", timeout=0)  # type: ignore[arg-type]
    assert err.value.part == "Trainer's validating webhook" and "still after 0s" in str(err.value)
    with pytest.raises(type(api_error_for(500, "x", "y"))):  # the apiserver could not call it: not its verdict
        server_error = StubClient(create_raises=api_error_for(500, "InternalError", "x"))
        training.wait_runtime_known(server_error, "ns", "jax", timeout=0)  # type: ignore[arg-type]


class EventsClient(StubClient):
    """A namespace whose only answers are these FailedMount events."""

    def __init__(self, *messages: str) -> None:
        super().__init__()
        self.events = [{"reason": "FailedMount", "message": m, "involvedObject": {"kind": "Pod", "name": "w-0"}}
                       for m in messages]

    def list(self, kind: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"items": self.events if kind == "Event" else []}


NODE_AUTHORIZER_LAG = ('Unable to attach or mount volumes: failed to process volumes=[checkpoints]: error processing '
                       'PVC ns/ckpt: failed to fetch PVC from API server: persistentvolumeclaims "ckpt" is forbidden: '
                       'User "system:node:aiconform-real-0" cannot get resource "persistentvolumeclaims": node: no '
                       "relationship found between node 'aiconform-real-0' and this object")


def test_a_mount_the_kubelet_retries_by_itself_does_not_end_the_training_wait() -> None:
    """The node authorizer's graph can lag a pod's binding: the kubelet's first mount is refused and retried.  The
    wait goes on to its deadline instead of failing the check on that event; a real mount failure still ends it."""
    with pytest.raises(WaitTimeout):
        training.wait_pods_running(EventsClient(NODE_AUTHORIZER_LAG), "ns", "job", 2,  # type: ignore[arg-type]
                                   timeout=0.2)
    with pytest.raises(WaitFailed, match="MountVolume.SetUp failed"):
        training.wait_pods_running(EventsClient(NODE_AUTHORIZER_LAG, "MountVolume.SetUp failed for volume ckpt"),
                                   "ns", "job", 2, timeout=0.2)  # type: ignore[arg-type]
