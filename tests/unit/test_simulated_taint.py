"""Simulated nodes carry a NoSchedule taint of their own (``contract.SIMULATED_TAINT``), so a pod nobody meant for
them (a third-party suite's, with no nodeSelector) is never bound to a node that runs nothing; every pod aiconform
means for them tolerates it.  Detection still knows simulated nodes with or without the taint."""

from __future__ import annotations

from typing import Any

import pytest

from harness.addons import karpenter
from harness.config import load_profile, shipped_profiles
from harness.contract import SIMULATED_LABEL, SIMULATED_TAINT, SIMULATED_TOLERATION, is_simulated
from harness.detect import KWOK_ANNOTATION, simulated
from harness.dra import claim_pod
from harness.governance import kueue as kq
from harness.governance.sandbox import SandboxPool
from harness.nodes import SIM_ANNOTATION, simulated_node
from harness.simulate.kueue_policy import queue_config
from harness.simulate.policies import POLICIES, JobContext, job_objects
from harness.simulate.replay import ReplaySettings, simulation_profile
from harness.simulate.trace import Trace, TraceJob
from harness.workloads import gpu_pod, pod, untolerated_taints

Obj = dict[str, Any]


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    """Kubernetes' matching rule (core/v1 ``Toleration.ToleratesTaint``), for the assertions only."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("operator", "Equal") == "Equal" \
                and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def test_the_taint_is_kwoks_own_convention_and_its_toleration_matches_it_alone() -> None:
    assert dict(SIMULATED_TAINT) == {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
    assert (SIMULATED_TAINT["key"], SIMULATED_TAINT["value"]) == SIM_ANNOTATION == KWOK_ANNOTATION
    assert tolerates([dict(SIMULATED_TOLERATION)], dict(SIMULATED_TAINT))
    assert not tolerates([dict(SIMULATED_TOLERATION)], {**SIMULATED_TAINT, "value": "other"})
    with pytest.raises(TypeError):
        SIMULATED_TAINT["value"] = "changed"  # type: ignore[index]


@pytest.mark.parametrize("name", [p for p in shipped_profiles() if load_profile(p).pools])
def test_every_simulated_node_of_a_shipped_profile_carries_the_taint(name: str) -> None:
    profile = load_profile(name)
    for pool in profile.pools:
        node = simulated_node(pool, 0, "c1")
        assert dict(SIMULATED_TAINT) in node["spec"]["taints"], (name, pool.name)
        assert [t for t in node["spec"]["taints"] if t != SIMULATED_TAINT] == [t.to_api() for t in pool.taints]


def test_nodes_karpenter_adds_sandbox_nodes_and_replay_nodes_carry_the_taint() -> None:
    for np in karpenter.node_pools(load_profile("autoscale").pools, "c1"):
        assert dict(SIMULATED_TAINT) in np["spec"]["template"]["spec"]["taints"], np["metadata"]["name"]
    sandbox = SandboxPool(client=None, run_id="r1")  # type: ignore[arg-type]  # builds manifests only
    assert dict(SIMULATED_TAINT) in simulated_node(sandbox._pool(), 0, "sandbox")["spec"]["taints"]
    for policy in POLICIES.values():
        for pool in simulation_profile(policy, ReplaySettings()).pools:
            assert dict(SIMULATED_TAINT) in simulated_node(pool, 0, "sim")["spec"]["taints"]


def _pod_specs() -> dict[str, Obj]:
    """The pod specs of every builder aiconform means for simulated nodes."""
    sandbox = SandboxPool(client=None, run_id="r1")  # type: ignore[arg-type]  # builds manifests only
    trace = Trace(jobs=(TraceJob(name="j", team="a", gpus=2, duration_s=10, priority="normal", arrival_s=0),),
                  entitlements={"a": 1.0})
    specs = {
        "pod": pod("p")["spec"],
        "pod without GPU toleration": pod("p", tolerate_gpu=False)["spec"],
        "gpu_pod": gpu_pod("g", 1)["spec"],
        "sandbox place": sandbox.place(gpu_pod("s", 1)["spec"]),
        "sandbox place (bare spec)": sandbox.place({"containers": []}),
        "kueue job": kq.job("j", queue="q", pods=1, gpus_per_pod=1)["spec"]["template"]["spec"],
        "kueue flavor": {"tolerations": kq.manifests(queue_config(trace, 8))[0]["spec"]["tolerations"]},
        "sandbox flavor": {"tolerations": list(sandbox.tolerations())},
        "dra claim_pod": claim_pod("c", claims={}, containers=[("main", [], "")], image="i")["spec"],
    }
    for name, policy in POLICIES.items():
        job = job_objects(policy, trace.jobs[0], JobContext(namespace="a", compression=1.0))[-1]
        specs[f"simulate {name}"] = job["spec"]["template"]["spec"]
    return specs


@pytest.mark.parametrize("builder", list(_pod_specs()))
def test_every_pod_builder_for_simulated_nodes_tolerates_the_taint(builder: str) -> None:
    spec = _pod_specs()[builder]
    assert tolerates(spec.get("tolerations") or [], dict(SIMULATED_TAINT)), spec.get("tolerations")


def test_a_gpu_pool_taint_still_keeps_a_pod_without_the_gpu_toleration_off() -> None:
    gpu_taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert not tolerates(pod("p", tolerate_gpu=False)["spec"]["tolerations"], gpu_taint)
    assert tolerates(pod("p")["spec"]["tolerations"], gpu_taint)
    node = {"spec": {"taints": [dict(SIMULATED_TAINT), gpu_taint]}}
    assert untolerated_taints(node) == [gpu_taint]
    assert untolerated_taints({"spec": {"taints": [dict(SIMULATED_TAINT)]}}) == []


def test_simulated_nodes_are_known_with_or_without_the_taint() -> None:
    ours = simulated_node(load_profile("default").pools[0], 0, "c1")
    foreign_kwok = {"metadata": {"name": "k", "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]}}, "spec": {}}
    real = {"metadata": {"name": "r", "labels": {}}, "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}}
    assert is_simulated(ours) and simulated(ours)
    assert simulated(foreign_kwok) and not is_simulated(foreign_kwok)  # no aiconform label: detection's annotation
    assert not is_simulated(real) and not simulated(real)
    assert ours["metadata"]["labels"][SIMULATED_LABEL] == "true"
