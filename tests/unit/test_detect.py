"""Fact detection decides each fact from what the API serves: every detector on recorded API answers (discovery,
objects and their conditions, dry-run answers, the pod proxy), with present and absent cases and the evidence a
user reads in the report.  No cluster; the live view (ClusterApi) is checked through an injected transport."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from harness.addons import known_addons
from harness.contract import PROMETHEUS_PORT, REAL_NODE_LABEL, SIMULATED_TAINT
from harness.detect import (
    DECLARED,
    DETECTED,
    DETECTORS,
    ClusterApi,
    Evidence,
    declared_by_provider,
    detect_from,
    merge,
    runnable_node,
)
from harness.errors import ApiError, Forbidden
from harness.facts import FACTS
from harness.images import image_ref
from harness.kube import KubeClient, KubeConfig
from tests.unit.fake_transport import FakeTransport, ok, status

Obj = dict[str, Any]


def cond(ctype: str, value: str, message: str = "") -> Obj:
    return {"type": ctype, "status": value, "message": message}


def node(name: str, *, ready: bool = True, kwok: bool = False, gpus: int = 0, labels: dict[str, str] | None = None,
         images: list[str] | None = None, taints: list[Obj] | None = None) -> Obj:
    md: Obj = {"name": name, "labels": labels or {}}
    if kwok:
        md["annotations"] = {"kwok.x-k8s.io/node": "fake"}
    return {"metadata": md, "spec": {"taints": taints or []},
            "status": {"conditions": [cond("Ready", "True" if ready else "False")],
                       "allocatable": {"nvidia.com/gpu": str(gpus)} if gpus else {},
                       "nodeInfo": {"kubeletVersion": "v1.37.0"},
                       "images": [{"names": [i]} for i in images or []]}}


class Recorded:
    """Recorded API answers: served kinds per group, objects per (kind, apiVersion), a dry-run answerer and pod-proxy
    answers.  Anything not recorded is not served / absent."""

    def __init__(self, served: dict[tuple[str, str], list[str]] | None = None,
                 objects: dict[tuple[str, str], list[Obj]] | None = None,
                 dry_run: Callable[[Obj], tuple[Obj | None, str]] | None = None,
                 proxy: dict[str, str | ApiError] | None = None) -> None:
        self.served = served or {}
        self.objects = objects or {}
        self.dry_runs: list[Obj] = []
        self._dry_run = dry_run or (lambda obj: (copy.deepcopy(obj), ""))
        self.proxy = proxy or {}

    def versions(self, group: str, kind: str) -> list[str]:
        return self.served.get((group, kind), [])

    def list(self, kind: str, api_version: str, *, label_selector: str | None = None) -> list[Obj]:
        items = self.objects.get((kind, api_version), [])
        if label_selector:
            key, _, value = label_selector.partition("=")
            items = [o for o in items if (o["metadata"].get("labels") or {}).get(key) == value]
        return items

    def get(self, kind: str, api_version: str, name: str, namespace: str | None = None) -> Obj | None:
        return next((o for o in self.objects.get((kind, api_version), [])
                     if o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace), None)

    def dry_run_create(self, obj: Obj) -> tuple[Obj | None, str]:
        self.dry_runs.append(obj)
        return self._dry_run(obj)

    def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        answer = self.proxy.get(f"{namespace}/{pod}:{port}{path}", ApiError(503, "ServiceUnavailable", "no endpoint"))
        if isinstance(answer, ApiError):
            raise answer
        return answer


def detect(api: Recorded, fact: str) -> Evidence:
    return detect_from(api)[fact]


# -- the list of detectors --------------------------------------------------------------------------------------------


def test_every_fact_has_one_detector_and_an_empty_cluster_has_none_of_them() -> None:
    assert set(DETECTORS) == set(FACTS)
    found = detect_from(Recorded())
    assert list(found) == list(FACTS)
    assert not [f for f, e in found.items() if e.present]
    assert all(e.source == DETECTED and e.detail for e in found.values())


def test_every_fact_an_addon_declares_is_a_known_fact() -> None:
    declared = {f for a in known_addons().values() for f in a.facts}
    assert declared <= set(FACTS), declared - set(FACTS)


def test_a_refused_read_is_that_facts_evidence_not_a_crash() -> None:
    class Refusing(Recorded):
        def list(self, kind: str, api_version: str, *, label_selector: str | None = None) -> list[Obj]:
            if kind == "APIService":
                raise Forbidden(403, "Forbidden", 'apiservices is forbidden: User "ci" cannot list')
            return super().list(kind, api_version, label_selector=label_selector)

    found = detect_from(Refusing())
    assert not found["custom-metrics"].present
    assert "refused a read" in found["custom-metrics"].detail and "forbidden" in found["custom-metrics"].detail


# -- custom metrics, Gateway API ----------------------------------------------------------------------------------------

APISVC = ("APIService", "apiregistration.k8s.io/v1")


def apiservice(available: str, message: str = "") -> Obj:
    return {"metadata": {"name": "v1beta1.custom.metrics.k8s.io"},
            "spec": {"group": "custom.metrics.k8s.io", "service": {"namespace": "mon", "name": "adapter"}},
            "status": {"conditions": [cond("Available", available, message)]}}


def test_custom_metrics_needs_its_apiservice_available() -> None:
    yes = detect(Recorded(objects={APISVC: [apiservice("True")]}), "custom-metrics")
    assert yes.present and yes.detail == ("APIService v1beta1.custom.metrics.k8s.io Available=True "
                                          "(Service mon/adapter)")
    no = detect(Recorded(objects={APISVC: [apiservice("False", "FailedDiscoveryCheck: 503")]}), "custom-metrics")
    assert not no.present and "Available=False: FailedDiscoveryCheck" in no.detail
    other = {"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {"group": "metrics.k8s.io"},
             "status": {"conditions": [cond("Available", "True")]}}
    assert not detect(Recorded(objects={APISVC: [other]}), "custom-metrics").present


GW = ("gateway.networking.k8s.io", "GatewayClass")


def gateway_class(name: str, accepted: str) -> Obj:
    return {"metadata": {"name": name}, "spec": {"controllerName": f"example.io/{name}"},
            "status": {"conditions": [cond("Accepted", accepted)]}}


def test_gateway_api_needs_the_checks_gateway_class_accepted() -> None:
    served = {GW: ["gateway.networking.k8s.io/v1"]}
    objs = {("GatewayClass", "gateway.networking.k8s.io/v1"): [gateway_class("traefik", "True")]}
    yes = detect(Recorded(served, objs), "gateway-api")
    assert yes.present and "GatewayClass traefik Accepted=True (controller example.io/traefik" in yes.detail
    objs = {("GatewayClass", "gateway.networking.k8s.io/v1"): [gateway_class("traefik", "False"),
                                                               gateway_class("envoy", "True")]}
    no = detect(Recorded(served, objs), "gateway-api")
    assert not no.present and "envoy" in no.detail and "'traefik', which is not" in no.detail
    assert "serves no GatewayClass" in detect(Recorded(), "gateway-api").detail


# -- Kueue, Trainer, gang scheduling -------------------------------------------------------------------------------------

KUEUE = {("kueue.x-k8s.io", "ClusterQueue"): ["kueue.x-k8s.io/v1beta2", "kueue.x-k8s.io/v1beta1"]}


def denied_by(webhook: str) -> Callable[[Obj], tuple[Obj | None, str]]:
    return lambda obj: (None, f'admission webhook "{webhook}" denied the request: spec.resourceGroups: invalid')


def test_kueue_is_its_crds_and_a_webhook_that_answers_a_dry_run() -> None:
    api = Recorded(KUEUE, dry_run=denied_by("vclusterqueue.kb.io"))
    yes = detect(api, "kueue")
    assert yes.present and "webhook vclusterqueue.kb.io answered a server-side dry-run ClusterQueue" in yes.detail
    assert api.dry_runs[0]["apiVersion"] == "kueue.x-k8s.io/v1beta2"  # the version the server prefers
    # CRDs without a webhook: the refused-only-by-Kueue ClusterQueue goes through
    unhooked = detect(Recorded(KUEUE), "kueue")
    assert not unhooked.present and "the webhook is not configured" in unhooked.detail
    down = detect(Recorded(KUEUE, dry_run=lambda o: (None, 'failed calling webhook "vclusterqueue.kb.io": '
                                                           "connection refused")), "kueue")
    assert not down.present and "connection refused" in down.detail
    assert "serves no ClusterQueue" in detect(Recorded(), "kueue").detail


def test_trainer_is_its_crds_its_webhook_and_jobset() -> None:
    from harness.addons.trainer import TRAINJOB_VALIDATOR

    served = {("trainer.kubeflow.org", "TrainJob"): ["trainer.kubeflow.org/v1alpha1"],
              ("jobset.x-k8s.io", "JobSet"): ["jobset.x-k8s.io/v1alpha2"]}
    api = Recorded(served, dry_run=denied_by(TRAINJOB_VALIDATOR))
    assert detect(api, "trainer").present
    assert api.dry_runs[0]["metadata"]["namespace"] == "default"
    no_jobset = Recorded({k: v for k, v in served.items() if k[0] != "jobset.x-k8s.io"},
                         dry_run=denied_by(TRAINJOB_VALIDATOR))
    assert "serves no JobSet" in detect(no_jobset, "trainer").detail


GANG = {("scheduling.k8s.io", "Workload"): ["scheduling.k8s.io/v1beta1"],
        ("scheduling.k8s.io", "PodGroup"): ["scheduling.k8s.io/v1beta1"]}


def test_native_gang_needs_workload_and_podgroup_served_and_gang_scheduling_follows_it_or_kueue() -> None:
    native = detect_from(Recorded(GANG))
    assert native["native-gang"].present and "serves Workload and PodGroup" in native["native-gang"].detail
    assert native["gang-scheduling"].present and native["gang-scheduling"].detail.startswith("native-gang:")
    half = detect_from(Recorded({k: v for k, v in GANG.items() if k[1] == "Workload"}))
    assert not half["native-gang"].present and "does not serve PodGroup" in half["native-gang"].detail
    kueue_only = detect_from(Recorded(KUEUE, dry_run=denied_by("vclusterqueue.kb.io")))
    assert kueue_only["gang-scheduling"].present and kueue_only["gang-scheduling"].detail.startswith("kueue:")
    assert not half["gang-scheduling"].present


# -- DRA ----------------------------------------------------------------------------------------------------------------

DRA = "resource.k8s.io/v1"
DRA_SERVED = {("resource.k8s.io", "ResourceSlice"): [DRA]}


def dra_api(*slices: Obj, dry_run: Callable[[Obj], tuple[Obj | None, str]] | None = None,
            taint_rule: bool = False) -> Recorded:
    served = dict(DRA_SERVED)
    if taint_rule:
        served[("resource.k8s.io", "DeviceTaintRule")] = [DRA]
    return Recorded(served, {("DeviceClass", DRA): [{"metadata": {"name": "gpu.nvidia.com"}}],
                             ("ResourceSlice", DRA): list(slices)}, dry_run=dry_run)


def rslice(name: str, **spec: Any) -> Obj:
    return {"metadata": {"name": name}, "spec": {"driver": "gpu.nvidia.com", "nodeName": "n0", **spec}}


def test_dra_needs_the_gpu_device_class_and_published_devices() -> None:
    yes = detect(dra_api(rslice("s0", devices=[{"name": "gpu-0"}, {"name": "gpu-1"}])), "dra")
    assert yes.present and "1 ResourceSlices of driver gpu.nvidia.com publish 2 devices on 1 nodes" in yes.detail
    assert "no ResourceSlice of driver gpu.nvidia.com publishes a device" in detect(dra_api(), "dra").detail
    assert "serves no resource.k8s.io/v1" in detect(Recorded(), "dra").detail


def test_dra_features_from_published_slices() -> None:
    api = dra_api(rslice("counters", sharedCounters=[{"name": "gpu-0"}]),
                  rslice("devs", devices=[{"name": "t4", "allowMultipleAllocations": True},
                                          {"name": "bad", "taints": [{"key": "k", "effect": "NoSchedule"}]}]))
    found = detect_from(api)
    for fact in ("dra-partitionable-devices", "dra-consumable-capacity", "dra-device-taints"):
        assert found[fact].present and "ResourceSlices publish" in found[fact].detail, fact
    assert not api.dry_runs  # a published slice is evidence enough


def test_dra_features_from_a_dry_run_when_no_slice_uses_them() -> None:
    plain = rslice("devs", devices=[{"name": "gpu-0"}])
    kept = dra_api(plain, taint_rule=True)  # the recorded apiserver keeps every field: every gate on
    found = detect_from(kept)
    assert all(found[f].present for f in ("dra-partitionable-devices", "dra-consumable-capacity", "dra-device-taints"))
    assert "dry-run ResourceSlice kept devices[].taints" in found["dra-device-taints"].detail
    assert "serves DeviceTaintRule" in found["dra-device-taints"].detail
    assert all(o["spec"]["driver"] == "detect.aiconform.io" for o in kept.dry_runs)

    def drop_gated(obj: Obj) -> tuple[Obj | None, str]:  # gates off: the apiserver drops their fields
        out = copy.deepcopy(obj)
        out["spec"].pop("sharedCounters", None)
        for d in out["spec"].get("devices") or []:
            d.pop("taints", None)
            d.pop("allowMultipleAllocations", None)
        return out, ""

    dropped = detect_from(dra_api(plain, dry_run=drop_gated))
    assert not dropped["dra-device-taints"].present
    assert "dropped devices[].taints" in dropped["dra-device-taints"].detail and "DRADeviceTaints off" in \
        dropped["dra-device-taints"].detail
    assert not dropped["dra-partitionable-devices"].present and not dropped["dra-consumable-capacity"].present


# -- nodes: KWOK, device plugin, model server image ----------------------------------------------------------------------

NODES = ("Node", "v1")


def test_simulated_nodes_need_a_ready_kwok_node() -> None:
    yes = detect(Recorded(objects={NODES: [node("a100-0", kwok=True), node("real")]}), "simulated-nodes")
    assert yes.present and "1 of 1 nodes annotated kwok.x-k8s.io/node=fake are Ready" in yes.detail
    stale = detect(Recorded(objects={NODES: [node("a100-0", kwok=True, ready=False)]}), "simulated-nodes")
    assert not stale.present and "none Ready" in stale.detail


def test_simulated_nodes_say_whether_they_carry_their_taint() -> None:
    """aiconform's simulated nodes carry SIMULATED_TAINT; a foreign KWOK node may not, and the evidence says so."""
    ours = node("a100-0", kwok=True, taints=[dict(SIMULATED_TAINT)])
    both = detect(Recorded(objects={NODES: [ours, node("foreign-0", kwok=True)]}), "simulated-nodes")
    assert both.present and "1 of 2 carry the taint kwok.x-k8s.io/node=fake:NoSchedule" in both.detail
    assert "may land on the others" in both.detail
    tainted = detect(Recorded(objects={NODES: [ours]}), "simulated-nodes")
    assert tainted.present and "1 of 1 carry the taint" in tainted.detail and "others" not in tainted.detail
    declared = declared_by_provider(frozenset({"simulated-nodes"}), "local", "conformance")["simulated-nodes"]
    assert declared.present and "carry the taint kwok.x-k8s.io/node=fake:NoSchedule" in declared.detail


def test_device_plugin_needs_a_real_kubelet_advertising_gpus() -> None:
    real = node("gpu-0", gpus=8, labels={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
    yes = detect(Recorded(objects={NODES: [real]}), "device-plugin")
    assert yes.present and "gpu-0 (8 nvidia.com/gpu, NVIDIA-H100-80GB-HBM3, kubelet v1.37.0)" in yes.detail
    only_simulated = Recorded(objects={NODES: [node("sim", kwok=True, gpus=8), node("down", gpus=8, ready=False)]})
    assert not detect(only_simulated, "device-plugin").present


def test_model_server_needs_its_image_on_a_real_node() -> None:
    ref = image_ref("model-server")
    yes = detect(Recorded(objects={NODES: [node("real", images=[ref, "pause"])]}), "model-server")
    assert yes.present and ref in yes.detail and "real" in yes.detail
    assert not detect(Recorded(objects={NODES: [node("real", images=["pause"])]}), "model-server").present


# -- Prometheus, node autoscaling -----------------------------------------------------------------------------------------

PODS = ("Pod", "v1")


def prom_pod(ready: str = "True") -> Obj:
    return {"metadata": {"name": "prometheus-0", "namespace": "mon", "labels": {"app.kubernetes.io/name": "prometheus"}},
            "spec": {"nodeName": "real", "hostNetwork": True}, "status": {"conditions": [cond("Ready", ready)]}}


def test_prometheus_must_answer_through_the_pod_proxy() -> None:
    api = Recorded(objects={PODS: [prom_pod()]},
                   proxy={f"mon/prometheus-0:{PROMETHEUS_PORT}/-/ready": "Prometheus Server is Ready.\n"})
    yes = detect(api, "prometheus")
    assert yes.present and "pod mon/prometheus-0 on node real, hostNetwork answered /-/ready" in yes.detail
    silent = detect(Recorded(objects={PODS: [prom_pod()]}), "prometheus")
    assert not silent.present and f"did not answer /-/ready on port {PROMETHEUS_PORT}: no endpoint" in silent.detail
    assert "(1 not Ready)" in detect(Recorded(objects={PODS: [prom_pod("False")]}), "prometheus").detail


def test_node_autoscaling_by_a_ready_nodepool_or_cluster_autoscalers_status() -> None:
    served = {("karpenter.sh", "NodePool"): ["karpenter.sh/v1"]}
    pool = {"metadata": {"name": "a100-1g"}, "status": {"conditions": [cond("Ready", "True")]}}
    yes = detect(Recorded(served, {("NodePool", "karpenter.sh/v1"): [pool]}), "node-autoscaling")
    assert yes.present and yes.detail == "Karpenter marks NodePool(s) a100-1g Ready (karpenter.sh/v1)"
    unready = {"metadata": {"name": "a100-1g"}, "status": {}}
    no = detect(Recorded(served, {("NodePool", "karpenter.sh/v1"): [unready]}), "node-autoscaling")
    assert not no.present and "no NodePool is Ready (a100-1g)" in no.detail
    ca = {"metadata": {"name": "cluster-autoscaler-status", "namespace": "kube-system"},
          "data": {"status": "time: 2026-12-07\nautoscalerStatus: Running\nclusterWide:\n  health:\n"}}
    by_ca = detect(Recorded(objects={("ConfigMap", "v1"): [ca]}), "node-autoscaling")
    assert by_ca.present and "autoscalerStatus: Running" in by_ca.detail


def test_networkpolicy_is_never_detected_without_the_probe() -> None:
    found = detect(Recorded(objects={NODES: [node("real")]}), "networkpolicy")
    assert not found.present and found.detail.startswith("not probed")


# -- declarations, provider facts ----------------------------------------------------------------------------------------


def test_a_declaration_wins_and_keeps_what_detection_said() -> None:
    detected = detect_from(Recorded(GANG))
    merged = merge(detected, frozenset({"networkpolicy", "native-gang"}))
    assert merged["networkpolicy"] == Evidence(True, merged["networkpolicy"].detail, DECLARED)
    assert merged["networkpolicy"].detail.startswith("declared with --capability networkpolicy; detection: absent")
    assert merged["native-gang"].source == DECLARED and "detection: present" in merged["native-gang"].detail
    assert merged["kueue"] == detected["kueue"]


def test_a_built_cluster_lists_every_fact_as_its_provider_declared_it() -> None:
    facts = declared_by_provider(frozenset({"kueue"}), "local", "gang")
    assert list(facts) == list(FACTS)
    assert facts["kueue"].present and facts["kueue"].detail == "declared by provider local (profile gang)"
    assert not facts["dra"].present and facts["dra"].source == "provider"


# -- the NetworkPolicy probe's node --------------------------------------------------------------------------------------


def test_the_probe_picks_a_node_that_runs_pods() -> None:
    gpu_taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    cp_taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    assert runnable_node([node("sim", kwok=True), node("down", ready=False), node("cp", taints=[cp_taint])]) is None
    assert runnable_node([node("b"), node("a", taints=[gpu_taint])]) == "a"
    assert runnable_node([node("a"), node("z", labels={REAL_NODE_LABEL: "true"})]) == "z"


# -- the live view over HTTP -----------------------------------------------------------------------------------------------


def test_cluster_api_reads_discovery_per_group_and_returns_dry_run_refusals() -> None:
    def res(plural: str, kind: str) -> Obj:
        return {"resource": plural, "responseKind": {"kind": kind}, "scope": "Cluster"}

    groups = {"kind": "APIGroupDiscoveryList", "items": [
        {"metadata": {"name": "kueue.x-k8s.io"}, "versions": [
            {"version": "v1beta2", "resources": [res("workloads", "Workload"), res("clusterqueues", "ClusterQueue")]},
            {"version": "v1beta1", "resources": [res("clusterqueues", "ClusterQueue")]}]},
        {"metadata": {"name": "scheduling.k8s.io"}, "versions": [
            {"version": "v1beta1", "resources": [res("workloads", "Workload")]}]}]}
    t = FakeTransport()
    t.routes[("GET", "/api")] = ok({"kind": "APIGroupDiscoveryList", "items": []})
    t.routes[("GET", "/apis")] = ok(groups)
    t.routes[("POST", "/apis/kueue.x-k8s.io/v1beta2/clusterqueues")] = status(
        400, "BadRequest", 'admission webhook "vclusterqueue.kb.io" denied the request: nope')
    api = ClusterApi(KubeClient(KubeConfig(server="https://127.0.0.1:6443", token="t"), transport=t))
    assert api.versions("scheduling.k8s.io", "Workload") == ["scheduling.k8s.io/v1beta1"]
    assert api.versions("kueue.x-k8s.io", "ClusterQueue") == ["kueue.x-k8s.io/v1beta2", "kueue.x-k8s.io/v1beta1"]
    assert api.versions("", "Workload") == []
    stored, refusal = api.dry_run_create({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
                                          "metadata": {"name": "q"}})
    assert stored is None and refusal.startswith('admission webhook "vclusterqueue.kb.io" denied')
    post = [c for c in t.calls if c.method == "POST"][0]
    assert "dryRun=All" in post.path and json.loads(post.body or b"{}")["kind"] == "ClusterQueue"
