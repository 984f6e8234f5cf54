"""Property-based suite (Hypothesis) against the real cluster.

Random GPU inventories (simulated nodes of a private sandbox pool: nodes x GPUs, MIG layouts) and random workloads
(GPU requests, priorities, tenants with quotas) are applied to the real apiserver and scheduler; the outcome is then
checked against a small pure model (:class:`GpuModel`):

- no node's bound GPU requests exceed its allocatable;
- a GPU pod left Pending really fits nowhere, given what is bound;
- a quota is never exceeded, and admission says yes exactly when the model does;
- after preemption settles, no lower-priority pod holds GPUs that a pending higher-priority pod could use;
- a stateful machine runs create/delete sequences and checks the first two after every step.

A failure shrinks to a minimal case; the manifests to replay it are printed with it (Hypothesis notes) and the seed
is in the report.  Each sandbox pool is tainted and selected by label, so no other pod lands on it; but its nodes
are visible to every check that reads the node list (slice counts, tainted GPU nodes...), so the properties with a
sandbox are ``exclusive`` and never run beside another check.  The quota property needs no sandbox and is not.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from fake_gpu_plugin.config import InventoryConfig, parse_gpu
from fake_gpu_plugin.inventory import resource_counts
from harness.config import Pool, Taint
from harness.contract import POOL_LABEL
from harness.errors import Forbidden, KubeError, WaitTimeout
from harness.kube import KubeClient, is_bound, unschedulable_message
from harness.nodes import register_nodes, simulated_node
from harness.testing import LABEL_RUN, ClusterHandle, Evidence, create_run_namespace, label_value, release_tenant
from harness.workloads import GPU, gpu_pod, gpu_quota, pod_request, priority_class, wait_quota_published

EXAMPLES = int(os.environ.get("AICONFORM_EXAMPLES", "8"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
SANDBOX_TAINT = "aiconform.io/sandbox"
COUNTS: dict[str, int] = {}


# -- the pure model ------------------------------------------------------------


@dataclass
class GpuModel:
    """What must be true of GPUs, independent of how Kubernetes computes it."""

    allocatable: dict[str, int] = field(default_factory=dict)
    bound: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    """pod → (node, gpus, priority)."""

    def used(self, node: str) -> int:
        return sum(g for n, g, _ in self.bound.values() if n == node)

    def free(self, node: str) -> int:
        return self.allocatable[node] - self.used(node)

    def fits_somewhere(self, gpus: int) -> bool:
        return any(self.free(n) >= gpus for n in self.allocatable)

    def fits_with_preemption(self, gpus: int, priority: int) -> bool:
        """Could a pod of this priority fit if every lower-priority pod on some node were evicted?"""
        for n in self.allocatable:
            lower = sum(g for node, g, p in self.bound.values() if node == n and p < priority)
            if self.free(n) + lower >= gpus:
                return True
        return False

    def overcommitted(self) -> dict[str, tuple[int, int]]:
        return {n: (self.used(n), a) for n, a in self.allocatable.items() if self.used(n) > a}


# -- a sandbox pool on the real cluster ------------------------------------------------------------


class Sandbox:
    """Simulated nodes + a namespace private to one example.  Pods tolerate the sandbox taint and select its pool."""

    def __init__(self, client: KubeClient, run_id: str, gpus: list[InventoryConfig], resource: str = GPU) -> None:
        self.client = client
        self.id = secrets.token_hex(3)
        self.pool = f"prop-{self.id}"
        self.resource = resource
        self.ns = f"prop-{self.id}"
        self.run_id = run_id
        self.priorities: dict[str, int] = {}
        taint = Taint(key=SANDBOX_TAINT, value=self.id, effect="NoSchedule")
        labels = {LABEL_RUN: label_value(run_id)}
        self.node_objects = [
            simulated_node(Pool(name=self.pool, nodes=1, gpu=spec, labels=labels, taints=(taint,)), i, "sandbox")
            for i, spec in enumerate(gpus)
        ]
        self.nodes: dict[str, int] = {
            n["metadata"]["name"]: resource_counts(spec).get(resource, 0)
            for n, spec in zip(self.node_objects, gpus, strict=True)
        }

    def __enter__(self) -> Sandbox:
        note("nodes:\n" + yaml.safe_dump_all(self.node_objects, sort_keys=False))
        create_run_namespace(self.client, self.ns, self.run_id)
        register_nodes(self.client, self.node_objects, timeout=60, workers=8)
        self.client.wait_for("ServiceAccount", namespace=self.ns, name="default", condition=bool, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        release_tenant(self.client, self.ns)
        for name in self.nodes:
            try:
                self.client.delete("Node", name)
            except KubeError:
                pass

    def pod(self, name: str, gpus: int, priority_class_name: str | None = None, priority: int = 0) -> dict[str, Any]:
        p = gpu_pod(name, gpus, resource=self.resource, node_selector={POOL_LABEL: self.pool},
                    priority_class=priority_class_name)
        p["spec"]["tolerations"].append({"key": SANDBOX_TAINT, "operator": "Equal", "value": self.id,
                                         "effect": "NoSchedule"})
        self.priorities[name] = priority
        return p

    def create_pods(self, pods: list[dict[str, Any]]) -> None:
        note("pods:\n" + yaml.safe_dump_all(pods, sort_keys=False))
        for p in pods:
            self.client.create(p, namespace=self.ns)

    def pods(self) -> dict[str, dict[str, Any]]:
        return {p["metadata"]["name"]: p for p in self.client.list("Pod", self.ns)["items"]
                if not p["metadata"].get("deletionTimestamp")}

    def model(self, pods: dict[str, dict[str, Any]] | None = None) -> GpuModel:
        m = GpuModel(allocatable=dict(self.nodes))
        for name, p in (pods if pods is not None else self.pods()).items():
            if is_bound(p):
                m.bound[name] = (p["spec"]["nodeName"], pod_request(p, self.resource), self.priorities.get(name, 0))
        return m

    def settle(self, timeout: float = 10.0, *, preemption: bool = False) -> dict[str, dict[str, Any]]:
        """Watch until each pod is bound or was judged Unschedulable by the scheduler while the model agrees it
        cannot fit (with ``preemption``: not even by evicting lower-priority pods).  At the deadline, returns what
        is there: the invariants then report the pod the scheduler left Pending although it fits."""

        def settled(state: dict[str, dict[str, Any]]) -> bool:
            live = {k.split("/", 1)[1]: v for k, v in state.items() if not v["metadata"].get("deletionTimestamp")}
            if len(live) < len(self.priorities) and not preemption:
                return False
            m = self.model(live)
            for name, p in live.items():
                if is_bound(p):
                    continue
                if not unschedulable_message(p):
                    return False
                want = pod_request(p, self.resource)
                prio = self.priorities.get(name, 0)
                if m.fits_somewhere(want) or (preemption and m.fits_with_preemption(want, prio)):
                    return False
            return True

        try:
            self.client.wait_for("Pod", namespace=self.ns, condition=settled, timeout=timeout,
                                 what=f"pods of {self.ns} to settle")
        except WaitTimeout:
            pass
        return self.pods()


def check_invariants(sb: Sandbox, pods: dict[str, dict[str, Any]], *, preemption: bool = False) -> None:
    m = sb.model(pods)
    assert not m.overcommitted(), f"nodes with more GPUs bound than allocatable: {m.overcommitted()}"
    for name, p in pods.items():
        if is_bound(p):
            continue
        want = pod_request(p, sb.resource)
        assert not m.fits_somewhere(want), (
            f"pod {name} ({want} GPUs) is Pending although node(s) "
            f"{[n for n in m.allocatable if m.free(n) >= want]} have room: "
            f"{unschedulable_message(p) or 'no scheduler verdict yet'}"
        )
        if preemption:
            prio = sb.priorities.get(name, 0)
            assert not m.fits_with_preemption(want, prio), (
                f"pod {name} (priority {prio}, {want} GPUs) is Pending while lower-priority pods hold GPUs it "
                f"could use: {unschedulable_message(p)}"
            )


# -- strategies ------------------------------------------------------------

inventories = st.lists(
    st.sampled_from([1, 2, 4, 8]).map(lambda n: parse_gpu({"model": "H100-SXM5-80GB", "count": n})),
    min_size=1, max_size=3,
)
MIG_RESOURCE = "nvidia.com/mig-1g.10gb"
mig_inventories = st.lists(  # one A100-80GB per node, split into 1..7 slices of 1g.10gb (mixed strategy)
    st.integers(min_value=1, max_value=7).map(
        lambda n: parse_gpu({"model": "A100-SXM4-80GB", "count": 1,
                             "mig": {"strategy": "mixed", "layout": {"1g.10gb": n}}})),
    min_size=1, max_size=2,
)
requests = st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=8)


def _count(key: str) -> None:
    COUNTS[key] = COUNTS.get(key, 0) + 1


# -- properties ------------------------------------------------------------


@pytest.mark.aiconform(requirement="aiconform.property_invariants", tier="S", capabilities=("simulated-nodes",),
                       exclusive=True)
def test_random_inventories_and_requests_respect_capacity(
    aiconform_cluster: ClusterHandle, evidence: Evidence
) -> None:
    """Random inventories x random GPU requests: no node over-allocated, and every Pending pod fits nowhere."""
    t0 = time.monotonic()
    COUNTS.pop("capacity", None)

    @SETTINGS
    @given(inventory=inventories, gpus=requests)
    def prop(inventory: list[InventoryConfig], gpus: list[int]) -> None:
        _count("capacity")
        with Sandbox(aiconform_cluster.client, aiconform_cluster.run_id, inventory) as sb:
            sb.create_pods([sb.pod(f"p{i}", g) for i, g in enumerate(gpus)])
            check_invariants(sb, sb.settle())

    prop()
    _record_rate(evidence, "capacity", t0)


@pytest.mark.aiconform(requirement="aiconform.property_invariants", tier="S", capabilities=("simulated-nodes",),
                       exclusive=True)
def test_random_mig_layouts_respect_slice_capacity(aiconform_cluster: ClusterHandle, evidence: Evidence) -> None:
    """Random MIG slice counts per node (as a mixed-strategy plugin advertises them) and random slice requests:
    the same capacity invariants hold for ``nvidia.com/mig-1g.10gb``."""
    t0 = time.monotonic()
    COUNTS.pop("mig", None)

    @SETTINGS
    @given(inventory=mig_inventories, gpus=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=6))
    def prop(inventory: list[InventoryConfig], gpus: list[int]) -> None:
        _count("mig")
        with Sandbox(aiconform_cluster.client, aiconform_cluster.run_id, inventory, resource=MIG_RESOURCE) as sb:
            sb.create_pods([sb.pod(f"m{i}", g) for i, g in enumerate(gpus)])
            check_invariants(sb, sb.settle())

    prop()
    _record_rate(evidence, "mig", t0)


@pytest.mark.aiconform(requirement="aiconform.quota", tier="S")
def test_quota_is_never_exceeded(aiconform_cluster: ClusterHandle, evidence: Evidence) -> None:
    """Random quotas and random request sequences: the apiserver admits a pod exactly when the model says it
    stays within ``requests.nvidia.com/gpu``, so the quota is never exceeded."""
    client = aiconform_cluster.client
    t0 = time.monotonic()
    COUNTS.pop("quota", None)

    @SETTINGS
    @given(quota=st.integers(min_value=0, max_value=8), gpus=st.lists(st.integers(0, 4), min_size=1, max_size=8))
    def prop(quota: int, gpus: list[int]) -> None:
        _count("quota")
        ns = f"prop-q-{secrets.token_hex(3)}"
        create_run_namespace(client, ns, aiconform_cluster.run_id)
        try:
            client.create(gpu_quota("gpu", quota), namespace=ns)
            wait_quota_published(client, ns, "gpu")
            client.wait_for("ServiceAccount", namespace=ns, name="default", condition=bool, timeout=30)
            used = 0
            for i, g in enumerate(gpus):
                manifest = gpu_pod(f"q{i}", g, node_selector={"aiconform.io/none": "never-scheduled"})
                note(f"quota {quota}, used {used}, creating a pod of {g} GPUs")
                try:
                    client.create(manifest, namespace=ns)
                    admitted = True
                except Forbidden as err:
                    assert "exceeded quota" in err.message, err.message
                    admitted = False
                expected = used + g <= quota
                assert admitted == expected, (
                    f"quota {quota}, {used} used: a {g}-GPU pod was {'admitted' if admitted else 'refused'}")
                used += g if admitted else 0
                assert used <= quota
        finally:
            release_tenant(client, ns)

    prop()
    _record_rate(evidence, "quota", t0)


@pytest.mark.aiconform(requirement="aiconform.preemption", tier="S", capabilities=("simulated-nodes",),
                       destructive=True)  # destructive, so exclusive: sandbox nodes and cluster-wide PriorityClasses
def test_preemption_leaves_no_usable_gpus_to_lower_priority(
    aiconform_cluster: ClusterHandle, evidence: Evidence
) -> None:
    """Random low-priority fill, then a high-priority pod: once preemption settles, if it is still Pending no
    node could host it even by evicting every lower-priority pod."""
    client = aiconform_cluster.client
    suffix = secrets.token_hex(3)
    low, high = f"aic-prop-low-{suffix}", f"aic-prop-high-{suffix}"
    client.create(priority_class(low, 10))
    client.create(priority_class(high, 1000))
    t0 = time.monotonic()
    COUNTS.pop("preemption", None)
    try:
        @SETTINGS
        @given(inventory=inventories, fill=requests, want=st.integers(min_value=1, max_value=8))
        def prop(inventory: list[InventoryConfig], fill: list[int], want: int) -> None:
            _count("preemption")
            with Sandbox(client, aiconform_cluster.run_id, inventory) as sb:
                sb.create_pods([sb.pod(f"low{i}", g, low, 10) for i, g in enumerate(fill)])
                sb.settle()
                sb.create_pods([sb.pod("high", want, high, 1000)])
                pods = sb.settle(preemption=True)
                check_invariants(sb, {k: v for k, v in pods.items() if k == "high"} | {
                    k: v for k, v in pods.items() if is_bound(v)}, preemption=True)

        prop()
    finally:
        client.delete("PriorityClass", low)
        client.delete("PriorityClass", high)
    _record_rate(evidence, "preemption", t0)


class GpuScheduling(RuleBasedStateMachine):
    """Create and delete GPU pods in a sandbox pool; after every step the cluster must agree with the model."""

    cluster: ClusterHandle

    def __init__(self) -> None:
        super().__init__()
        self.sb: Sandbox | None = None
        self.n = 0

    pods = Bundle("pods")

    @initialize(inventory=inventories)
    def make_pool(self, inventory: list[InventoryConfig]) -> None:
        _count("stateful")
        self.sb = Sandbox(self.cluster.client, self.cluster.run_id, inventory).__enter__()

    @rule(target=pods, gpus=st.integers(min_value=1, max_value=8))
    def create(self, gpus: int) -> str:
        assert self.sb is not None
        name = f"s{self.n}"
        self.n += 1
        self.sb.create_pods([self.sb.pod(name, gpus)])
        return name

    @rule(name=consumes(pods))
    def delete(self, name: str) -> None:
        assert self.sb is not None
        note(f"delete pod {name}")
        self.sb.client.delete("Pod", name, self.sb.ns, grace_period=0)
        self.sb.priorities.pop(name, None)

    @invariant()
    def agrees_with_model(self) -> None:
        if self.sb is not None:
            check_invariants(self.sb, self.sb.settle())

    def teardown(self) -> None:
        if self.sb is not None:
            self.sb.__exit__(None, None, None)


@pytest.mark.aiconform(requirement="aiconform.property_invariants", tier="S", capabilities=("simulated-nodes",),
                       exclusive=True)
def test_stateful_create_delete_sequences(aiconform_cluster: ClusterHandle, evidence: Evidence) -> None:
    """A stateful machine of create/delete steps keeps capacity and Pending-means-no-room after every step."""
    t0 = time.monotonic()
    COUNTS.pop("stateful", None)
    GpuScheduling.cluster = aiconform_cluster
    test_case = GpuScheduling.TestCase
    test_case.settings = settings(SETTINGS, max_examples=max(2, EXAMPLES // 2), stateful_step_count=6)
    test_case().runTest()
    _record_rate(evidence, "stateful", t0)


def _record_rate(evidence: Evidence, key: str, t0: float) -> None:
    n = COUNTS.get(key, 0)
    minutes = (time.monotonic() - t0) / 60
    evidence["examples"] = n
    evidence["examples_per_minute"] = round(n / minutes, 1) if minutes > 0 else None
