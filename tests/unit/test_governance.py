"""Kueue queue manifests, the Kueue Configuration and webhook configurations the addon derives from the pinned
module, and the property model's invariants (each must catch the violation it names)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.addons import kueue as addon
from harness.bins import BinaryResolver
from harness.contract import GPU_RESOURCE, POOL_LABEL, REAL_NODE_LABEL
from harness.governance import gang
from harness.governance import kueue as kq
from scenarios.test_kueue_properties import TeamSpec, check_invariants
from tests.unit.addon_fixtures import host_context


def _cfg() -> kq.QueueConfig:
    return kq.QueueConfig(cohort="org", flavor="gpu-x", node_labels={POOL_LABEL: "p"},
                          tolerations=({"key": "k", "operator": "Exists", "effect": "NoSchedule"},),
                          teams=(kq.TeamQueue("a", "ns-a", 4, borrowing_limit=2, weight=2),
                                 kq.TeamQueue("b", "ns-b", 4, lending_limit=1, weight=0.5)))


def test_queue_manifests_carry_quota_limits_cohort_and_weights() -> None:
    objs = {(o["kind"], o["metadata"]["name"]): o for o in kq.manifests(_cfg())}
    flavor = objs[("ResourceFlavor", "gpu-x")]["spec"]
    assert flavor["nodeLabels"] == {POOL_LABEL: "p"} and flavor["tolerations"][0]["key"] == "k"
    a = objs[("ClusterQueue", "a")]["spec"]
    b = objs[("ClusterQueue", "b")]["spec"]
    gpu_a = a["resourceGroups"][0]["flavors"][0]["resources"][0]
    gpu_b = b["resourceGroups"][0]["flavors"][0]["resources"][0]
    assert a["cohortName"] == "org" and gpu_a == {"name": GPU_RESOURCE, "nominalQuota": "4", "borrowingLimit": "2"}
    assert gpu_b == {"name": GPU_RESOURCE, "nominalQuota": "4", "lendingLimit": "1"}
    assert a["fairSharing"]["weight"] == "2" and b["fairSharing"]["weight"] == "500m"
    assert objs[("LocalQueue", "a")]["metadata"]["namespace"] == "ns-a"
    assert [o["kind"] for o in kq.manifests(_cfg())][:2] == ["ResourceFlavor", "Cohort"]


def test_job_is_one_suspended_gang_in_its_queue() -> None:
    j = kq.job("j", queue="a", pods=4, gpus_per_pod=2, batch="b1")
    assert j["spec"]["suspend"] is True and j["spec"]["parallelism"] == j["spec"]["completions"] == 4
    assert j["metadata"]["labels"] == {kq.QUEUE_LABEL: "a", kq.RUN_LABEL: "b1"}
    assert j["spec"]["template"]["metadata"]["labels"] == {kq.RUN_LABEL: "b1"}
    wl = {"spec": {"podSets": [{"count": 4, "template": j["spec"]["template"]}]}}
    assert kq.workload_gpus(wl) == 8


def test_native_gang_objects_link_pods_to_their_group() -> None:
    pg = gang.pod_group("g", 3, workload_name="w")
    assert pg["spec"] == {"schedulingPolicy": {"gang": {"minCount": 3}},
                          "workloadRef": {"workloadName": "w", "templateName": gang.TEMPLATE}}
    assert gang.workload("w", 3)["spec"]["podGroupTemplates"][0]["name"] == gang.TEMPLATE
    assert gang.member_pod("g", 0, 1)["spec"]["schedulingGroup"] == {"podGroupName": "g"}


def test_configuration_turns_on_what_the_checks_need() -> None:
    cfg = addon.configuration(addon.KueueSettings(), webhook={"host": "127.0.0.1", "port": 1234}, health=":1")
    assert cfg["waitForPodsReady"]["timeout"] == "10s"
    assert cfg["fairSharing"]["preemptionStrategies"] == ["LessThanOrEqualToFinalShare", "LessThanInitialShare"]
    assert "jobset.x-k8s.io/jobset" in cfg["integrations"]["frameworks"]
    assert cfg["integrations"]["labelKeysToCopy"] == [kq.RUN_LABEL]
    assert cfg["internalCertManagement"] == {"enable": False} and cfg["featureGates"]["VisibilityOnDemand"] is False


@pytest.mark.bins  # kubectl (kustomize), built on first use
def test_upstream_config_default_is_adapted_not_copied() -> None:
    """Upstream's config/default rendered from the pinned module (kubectl kustomize), as the installer does."""
    from harness.addons.base import AddonContext
    from harness.addons.installer import _upstream_renderer

    r = BinaryResolver()
    if not r.go:
        pytest.skip("no Go toolchain to locate the pinned Kueue module")
    ctx = AddonContext(image="aiconform.local/kueue:v0", apiserver_host="127.0.0.1", apiserver_port=6443,
                       node_selector={REAL_NODE_LABEL: "true"}, upstream=_upstream_renderer(r, "kueue"))
    objs = addon.manifests(ctx)
    kinds = {o["kind"] for o in objs}
    assert "APIService" not in kinds and "CustomResourceDefinition" in kinds
    hooks = {h["name"]: h for o in objs if o["kind"].endswith("WebhookConfiguration") for h in o["webhooks"]}
    assert {"vclusterqueue.kb.io", "mjob.kb.io", "vjobset.kb.io", "mworkload.kb.io"} <= set(hooks)
    assert not {"mpod.kb.io", "mdeployment.kb.io", "mrayjob.kb.io"} & set(hooks), "webhooks of integrations left off"
    [dep] = [o for o in objs if o["kind"] == "Deployment"]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == ctx.image and {"name": "metrics-cert", "mountPath": addon.METRICS_CERTS, "readOnly": True} \
        in c["volumeMounts"]
    [cm] = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == addon.CONFIG_MAP]
    assert "waitForPodsReady" in cm["data"][addon.CONFIG_KEY]


def _view(job: str, ns: str, gpus: int, cq: str | None, pods: int, bound: int) -> kq.WorkloadView:
    return kq.WorkloadView(job, ns, {"na": "a", "nb": "b"}.get(ns, ""), gpus, cq, pods, bound, "", False)


def _pair(nominal_a: int = 2, nominal_b: int = 2, borrow_a: int | None = None) -> tuple[kq.QueueConfig, list[TeamSpec]]:
    cfg = kq.QueueConfig(cohort="c", teams=(kq.TeamQueue("a", "na", nominal_a, borrowing_limit=borrow_a),
                                            kq.TeamQueue("b", "nb", nominal_b)))
    return cfg, [TeamSpec(nominal_a, borrow_a, None), TeamSpec(nominal_b, None, None)]


def test_model_accepts_a_correct_outcome() -> None:
    cfg, specs = _pair()
    views = [_view("j0", "na", 3, "a", 3, 3), _view("j1", "nb", 1, "b", 1, 1), _view("j2", "na", 1, None, 0, 0)]
    assert check_invariants(cfg, specs, views)["gang_whole_or_nothing"] == 3


@pytest.mark.parametrize(("views", "borrow", "invariant"), [
    ([_view("j0", "na", 3, "a", 3, 3)], 0, "usage_within_limits"),
    ([_view("j0", "na", 5, "a", 5, 5)], None, "usage_within_limits"),
    ([_view("j0", "na", 2, "a", 2, 1)], None, "gang_whole_or_nothing"),
    ([_view("j0", "na", 2, None, 1, 1)], None, "gang_whole_or_nothing"),
    ([_view("j0", "na", 4, "a", 4, 4), _view("j1", "nb", 1, None, 0, 0)], None, "no_starved_nominal"),
])
def test_model_names_the_broken_invariant(views: list[kq.WorkloadView], borrow: int | None, invariant: str) -> None:
    cfg, specs = _pair(borrow_a=borrow)
    with pytest.raises(AssertionError, match=invariant):
        check_invariants(cfg, specs, views)


def test_queue_config_from_yaml_and_its_bad_fields() -> None:
    from harness.errors import ConfigError

    cfg = kq.parse_queue_config({"cohort": "org", "teams": [
        {"name": "a", "namespace": "na", "gpus": 8, "borrowingLimit": 4, "weight": 2},
        {"name": "b", "namespace": "nb", "gpus": 8, "lendingLimit": 2, "reclaimWithinCohort": "LowerPriority"}]})
    assert cfg.teams[0] == kq.TeamQueue("a", "na", 8, borrowing_limit=4, weight=2.0)
    assert cfg.teams[1].lending_limit == 2 and cfg.teams[1].reclaim_within_cohort == "LowerPriority"
    for bad, msg in [({"teams": []}, "queues.cohort: must be a non-empty name"),
                     ({"cohort": "o", "teams": [{"name": "a", "namespace": "n", "gpus": -1}]},
                      "queues.teams[0].gpus: must be an integer >= 0, got -1"),
                     ({"cohort": "o", "teams": [{"name": "a", "namespace": "n", "gpus": 1, "gpu": 2}]},
                      "queues.teams[0].gpu: unknown field"),
                     ({"cohort": "o", "teams": [{"name": "a", "namespace": "n", "gpus": 1,
                                                 "reclaimWithinCohort": "Sometimes"}]},
                      "queues.teams[0].reclaimWithinCohort: must be one of")]:
        with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
            kq.parse_queue_config(bad)


def test_host_process_runs_kueue_in_a_private_root(tmp_path: Path) -> None:
    """Tier S: Kueue chrooted into a root under its workdir that holds the binary, kubeconfig, serving pair and the
    metrics pair at the fixed path Kueue reads; the supervised executable is `unshare` (absolute, as the pidfile
    records it), forked so Kueue stays in its process group."""
    h = host_context(tmp_path, webhook_port=1234, health_port=5678)
    spec = addon.host(h)
    root = tmp_path / "wd" / "root"
    assert Path(spec.argv[0]).is_absolute() and spec.argv[1:3] == ("--fork", "--map-root-user")
    assert f"--root={root}" in spec.argv and "/kueue" in spec.argv
    assert (root / "kueue").read_text() == "binary" and (root / "kubeconfig").read_text() == "kubeconfig"
    assert (root / addon.METRICS_CERTS.lstrip("/") / "tls.key").read_text() == "tls.key"
    assert (root / "certs" / "tls.crt").read_text() == "tls.crt"
    [(name, text)] = spec.files
    cfg = yaml.safe_load(text)
    assert name == "root/config.yaml" and cfg["webhook"] == {"host": "127.0.0.1", "port": 1234, "certDir": "/certs"}
    assert cfg["health"]["healthProbeBindAddress"] == "127.0.0.1:5678" and dict(spec.env) == {"KUBECONFIG": "/kubeconfig"}
