"""Kueue suite (CNCF ``gang_scheduling``; ``aiconform.quota``, ``aiconform.preemption``): team queues on a cohort of
GPUs, with the real Kueue controller and webhooks (addon ``kueue``) and the real scheduler.

Each check builds its own world: a private sandbox pool of simulated GPU nodes, one namespace per team, and a cohort
of team ClusterQueues whose GPU flavor points at the pool (Kueue adds the pool's selector and toleration to the pods
it admits).  Checked: nominal quota with borrowing and lending limits; reclaim of lent quota by preemption within the
cohort; fair sharing of what the cohort has to lend; all-or-nothing admission of a gang (a Job of N pods), by quota
and by ``waitForPodsReady``; and a queue config Kueue's webhook refuses, with its message.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from harness.errors import ConfigError
from harness.governance import kueue as kq
from harness.governance.sandbox import SandboxPool
from harness.kube import KubeClient, is_bound
from harness.testing import ClusterHandle, Evidence, Tenant


def _mark(requirement: str) -> pytest.MarkDecorator:
    # destructive: cluster-wide queues and flavors, sandbox nodes
    return pytest.mark.aiconform(requirement=requirement, tier="S", capabilities=("kueue", "simulated-nodes"),
                                 destructive=True)


@dataclass
class World:
    """One check's pool, team namespaces and queues."""

    client: KubeClient
    pool: SandboxPool
    cfg: kq.QueueConfig
    ns: dict[str, str]
    """ClusterQueue (= LocalQueue) name -> the team's namespace."""
    batch: str

    def submit(self, team: str, name: str, *, pods: int = 1, gpus: int = 1) -> None:
        self.client.create(kq.job(name, queue=team, pods=pods, gpus_per_pod=gpus, batch=self.batch),
                           namespace=self.ns[team])

    def settle(self, jobs: int, timeout: float = 30.0) -> list[kq.WorkloadView]:
        return kq.settle(self.client, self.batch, jobs, timeout=timeout)

    def usage(self, views: list[kq.WorkloadView]) -> dict[str, kq.QueueUsage]:
        """From the Workloads Kueue admitted (its ClusterQueue status summaries lag a moment behind)."""
        return kq.admitted_usage(self.cfg, views)


@pytest.fixture
def world(aiconform_cluster: ClusterHandle, kube: KubeClient,
          tenants: Callable[..., Tenant]) -> Iterator[Callable[..., World]]:
    made: list[World] = []

    def make(teams: list[tuple[str, int, int | None, int | None]], *, nodes: int, gpus_per_node: int) -> World:
        """teams: (name, nominal GPUs, borrowing limit, lending limit)."""
        pool = SandboxPool(kube, aiconform_cluster.run_id, gpus_per_node=gpus_per_node, prefix="kq")
        pool.add(nodes)
        ns = {name: tenants(f"kq-{name}").name for name, *_ in teams}
        sfx = pool.id
        cfg = kq.QueueConfig(
            cohort=f"org-{sfx}", flavor=f"gpu-{sfx}", node_labels=pool.node_selector(),
            tolerations=pool.tolerations(),
            teams=tuple(kq.TeamQueue(f"{name}-{sfx}", ns[name], gpus, borrowing_limit=b, lending_limit=lend)
                        for name, gpus, b, lend in teams))
        w = World(kube, pool, cfg, {q.name: q.namespace for q in cfg.teams}, secrets.token_hex(4))
        kq.apply_queues(kube, cfg)
        made.append(w)
        return w

    yield make
    for w in made:
        for ns in w.ns.values():
            kube.delete_collection("Job", ns)
        kq.remove_queues(kube, w.cfg)
        w.pool.remove()


def _q(w: World, team: str) -> str:
    return next(q.name for q in w.cfg.teams if q.name.startswith(team + "-"))


@_mark("aiconform.quota")
def test_nominal_quota_borrowing_and_lending_limits(world: Callable[..., World], evidence: Evidence) -> None:
    """Team a (nominal 4, may borrow 3) floods the cohort; team b (nominal 4) lends at most 2: a gets exactly 6 GPUs
    (its 4 + the 2 b may lend), the rest of its jobs wait with Kueue's reason, and no queue exceeds its limits."""
    w = world([("a", 4, 3, None), ("b", 4, None, 2)], nodes=4, gpus_per_node=2)
    a = _q(w, "a")
    for i in range(8):
        w.submit(a, f"a{i}")
    views = w.settle(8)
    usage = w.usage(views)
    admitted = [v for v in views if v.admitted_to]
    pending = [v for v in views if not v.admitted_to]
    evidence["usage"] = {k: vars(u) for k, u in usage.items()}
    evidence["pending_reason"] = pending[0].message if pending else None
    assert usage[a].total == 6 and usage[a].borrowed == 2, usage[a]
    assert len(admitted) == 6 and all(v.bound == v.pods == 1 for v in admitted), admitted
    assert all(v.pods == 0 for v in pending), "a pending job has pods"
    assert pending and "insufficient" in pending[0].message, pending


@_mark("aiconform.preemption")
def test_lender_reclaims_its_quota_by_preemption_in_the_cohort(world: Callable[..., World], evidence: Evidence) -> None:
    """Team a borrows all of idle team b's quota; when b submits, Kueue preempts a's borrowed workloads and admits
    b's within its nominal quota."""
    w = world([("a", 2, None, None), ("b", 2, None, None)], nodes=2, gpus_per_node=2)
    a, b = _q(w, "a"), _q(w, "b")
    for i in range(4):
        w.submit(a, f"a{i}")
    before = w.settle(4)
    assert sum(1 for v in before if v.admitted_to) == 4, before
    t0 = time.monotonic()
    for i in range(2):
        w.submit(b, f"b{i}")
    w.client.wait_for("Workload", namespace=w.ns[b], api_version=kq.API, timeout=60,
                      condition=lambda s: len(s) == 2 and all(kq.is_admitted(x) for x in s.values()),
                      what="team b's workloads to be admitted by reclaiming its quota")
    evidence.timing("reclaim_s", time.monotonic() - t0)
    after = w.settle(6)
    preempted = [v for v in after if v.namespace == w.ns[a] and not v.admitted_to]
    usage = w.usage(after)
    evidence["usage_after"] = {k: vars(u) for k, u in usage.items()}
    evidence["preempted"] = [{"job": v.job, "message": v.message} for v in preempted]
    assert usage[b].total == 2 and usage[a].total == 2 and usage[a].borrowed == 0, usage
    assert len(preempted) == 2 and all(v.pods == 0 for v in preempted), preempted


@_mark("aiconform.quota")
def test_fair_sharing_splits_what_the_cohort_lends(world: Callable[..., World], evidence: Evidence) -> None:
    """Teams a and b (nominal 1 each, equal weights) both want 6 GPUs; idle team c lends its 4.  However the
    submissions interleave, fair sharing leaves a and b with equal shares (3 GPUs each)."""
    w = world([("a", 1, None, None), ("b", 1, None, None), ("c", 4, None, None)], nodes=3, gpus_per_node=2)
    a, b = _q(w, "a"), _q(w, "b")
    for i in range(6):
        w.submit(a, f"a{i}")
    w.settle(6)
    for i in range(6):
        w.submit(b, f"b{i}")
    # Fair-sharing preemption goes in rounds: watch b's admitted workloads until it holds its share (3 GPUs).
    w.client.wait_for("Workload", namespace=w.ns[b], api_version=kq.API, timeout=90,
                      condition=lambda s: sum(1 for x in s.values() if kq.is_admitted(x)) >= 3,
                      what=f"team b ({b}) to reach its fair share of 3 GPUs")
    views = w.settle(12)
    usage = w.usage(views)
    evidence["usage"] = {k: vars(u) for k, u in usage.items()}
    assert usage[a].total == 3 and usage[b].total == 3, usage


@_mark("gang_scheduling")
def test_gang_is_admitted_all_or_nothing(world: Callable[..., World], kube: KubeClient, evidence: Evidence) -> None:
    """A 4-pod Job is one workload: on a 3-GPU queue no pod of it is created; so is a JobSet (a 4-pod one gets no pod,
    a 3-pod one runs whole); on a 4-GPU queue whose pool has room for 3 pods, Kueue admits the Job, and when its
    pods are not all Ready in time (waitForPodsReady) it evicts the whole gang (no pod left) and requeues it; once a
    node is added the gang runs whole."""
    w = world([("small", 3, 0, None), ("big", 4, 0, None)], nodes=3, gpus_per_node=1)
    small, big = _q(w, "small"), _q(w, "big")
    w.submit(small, "gang-q", pods=4)
    held = w.settle(1, timeout=20)
    evidence["over_quota"] = [{"pods": v.pods, "message": v.message} for v in held]
    assert len(held) == 1 and held[0].admitted_to is None and held[0].pods == 0, held

    # A JobSet is one workload too: 2 Jobs x 2 pods on the 3-GPU queue get no pod; 3 Jobs x 1 pod run whole.
    ns_small = w.ns[small]
    kube.create(kq.jobset("js-over", queue=small, replicas=2, pods_per_job=2, gpus_per_pod=1), namespace=ns_small)
    kube.create(kq.jobset("js-fits", queue=small, replicas=3, pods_per_job=1, gpus_per_pod=1), namespace=ns_small)
    fits = kube.wait_for("Pod", namespace=ns_small, label_selector="jobset.sigs.k8s.io/jobset-name", timeout=90,
                         condition=lambda s: sum(1 for p in s.values() if is_bound(p)) == 3,
                         what="the 3-pod JobSet's pods to be bound")
    names = {p["metadata"]["labels"]["jobset.sigs.k8s.io/jobset-name"] for p in fits.values()}
    over = kube.get("Workload", _workload_of(kube, ns_small, "js-over"), ns_small, api_version=kq.API)
    evidence["jobset_over_quota"] = kq.verdict_message(over)
    assert names == {"js-fits"} and not kq.is_admitted(over), (names, kq.verdict_message(over))
    kube.delete("JobSet", "js-fits", ns_small, propagation="Foreground")
    kube.wait_for("Pod", namespace=ns_small, condition=lambda s: not s, timeout=60,
                  what="the finished JobSet's pods to be gone")

    t0 = time.monotonic()
    w.submit(big, "gang-r", pods=4)
    ns = w.ns[big]
    evicted = kube.wait_for("Workload", namespace=ns, api_version=kq.API, timeout=90,
                            condition=lambda s: any(kq.is_evicted(x) or kq.is_preempted(x) for x in s.values()),
                            what="Kueue to evict the gang whose pods are not all Ready (waitForPodsReady)")
    wl = next(iter(evicted.values()))
    reason = next((c for c in wl["status"]["conditions"] if c["type"] == "Evicted"), {})
    evidence["eviction"] = {"reason": reason.get("reason"), "message": reason.get("message")}
    evidence.timing("evicted_after_s", time.monotonic() - t0)
    assert reason.get("reason") == "PodsReadyTimeout", reason
    kube.wait_for("Pod", namespace=ns, condition=lambda s: not s, timeout=60,
                  what="the evicted gang's pods to be gone (suspended job)")

    w.pool.add(1)
    t1 = time.monotonic()
    kube.wait_for("Pod", namespace=ns, timeout=120,
                  condition=lambda s: len(s) == 4 and all(is_bound(p) for p in s.values()),
                  what="the requeued gang to run whole once there is room")
    evidence.timing("whole_after_room_s", time.monotonic() - t1)


def _workload_of(kube: KubeClient, namespace: str, owner: str) -> str:
    found = kube.wait_for("Workload", namespace=namespace, api_version=kq.API, timeout=30,
                          condition=lambda s: any(kq.owner_name(x) == owner for x in s.values()),
                          what=f"Kueue's Workload of {owner}")
    return next(x["metadata"]["name"] for x in found.values() if kq.owner_name(x) == owner)


@_mark("aiconform.quota")
def test_queue_config_refused_by_kueue_webhook_names_kueue_reason(world: Callable[..., World],
                                                                  evidence: Evidence) -> None:
    """A ClusterQueue lending more than its nominal quota is refused by Kueue's validating webhook; the error the
    harness raises carries Kueue's message verbatim, on one line."""
    w = world([("ok", 2, None, None)], nodes=1, gpus_per_node=1)
    bad = kq.QueueConfig(cohort=f"bad-{w.pool.id}", flavor=f"bad-{w.pool.id}",
                         teams=(kq.TeamQueue(f"bad-{w.pool.id}", w.ns[_q(w, "ok")], 2, lending_limit=3),))
    try:
        with pytest.raises(ConfigError) as err:
            kq.apply_queues(w.client, bad)
    finally:
        kq.remove_queues(w.client, bad)
    message = str(err.value)
    evidence["message"] = message
    assert 'admission webhook "vclusterqueue.kb.io" denied the request' in message, message
    assert "lendingLimit" in message and "\n" not in message, message
