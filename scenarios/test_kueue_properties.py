"""Property-based check (Hypothesis) of Kueue's quota decisions against a small pure model.

Random cohorts (2-3 team ClusterQueues: random nominal GPU quota, optional borrowing and lending limits, reclaim of
lent quota by preemption) x random workloads (Jobs of 1-3 one-GPU pods, in random teams) go to the real Kueue; once
it has a verdict on every workload, these invariants (named in the failure message and the evidence) must hold:

- ``usage_within_limits``: a ClusterQueue's admitted GPUs never exceed its nominal quota plus its borrowing limit,
  and the cohort's admitted GPUs never exceed the sum of the nominal quotas less what lending limits keep back;
- ``gang_whole_or_nothing``: an admitted workload has every pod created and bound, a workload not admitted has none
  (no gang with some pods bound and the others held back);
- ``no_starved_nominal``: no team has a pending workload that fits in its own unused nominal quota while another
  team is borrowing (with ``reclaimWithinCohort: Any`` Kueue must preempt the borrower).

Examples are few and bounded (``AICONFORM_KUEUE_EXAMPLES``, default 3): each one is a real cohort on the cluster.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from harness.errors import KubeError
from harness.governance import kueue as kq
from harness.governance.sandbox import SandboxPool
from harness.kube import KubeClient
from harness.testing import ClusterHandle, Evidence, Tenant

EXAMPLES = int(os.environ.get("AICONFORM_KUEUE_EXAMPLES", "3"))
MAX_NOMINAL = 4
MAX_TEAMS = 3
INVARIANTS = {
    "usage_within_limits": "admitted GPUs <= nominal + borrowing limit per queue; cohort usage <= what it may lend",
    "gang_whole_or_nothing": "an admitted workload has all its pods bound; a workload not admitted has none",
    "no_starved_nominal": "no pending workload fits in its team's unused nominal quota while another team borrows",
}


@dataclass(frozen=True)
class TeamSpec:
    nominal: int
    borrowing_limit: int | None
    lending_limit: int | None


teams_st = st.lists(
    st.integers(1, MAX_NOMINAL).flatmap(lambda n: st.builds(
        TeamSpec, st.just(n), st.none() | st.integers(0, 3), st.none() | st.integers(0, n))),
    min_size=2, max_size=MAX_TEAMS)
jobs_st = st.lists(st.tuples(st.integers(0, MAX_TEAMS - 1), st.integers(1, 3)), min_size=1, max_size=8)


def check_invariants(cfg: kq.QueueConfig, specs: list[TeamSpec], views: list[kq.WorkloadView]) -> dict[str, int]:
    """The model: what must be true of Kueue's decisions, whatever they were.  Returns per-invariant counts of what
    was checked; raises AssertionError naming the invariant broken."""
    by_ns = {t.namespace: (t, s) for t, s in zip(cfg.teams, specs, strict=True)}
    usage = {t.name: 0 for t in cfg.teams}
    for v in views:
        if v.admitted_to:
            usage[v.admitted_to] += v.gpus
    checked = dict.fromkeys(INVARIANTS, 0)
    for t, s in zip(cfg.teams, specs, strict=True):
        checked["usage_within_limits"] += 1
        if s.borrowing_limit is not None:
            assert usage[t.name] <= s.nominal + s.borrowing_limit, (
                f"usage_within_limits: {t.name} admitted {usage[t.name]} GPUs > nominal {s.nominal} + borrowing "
                f"limit {s.borrowing_limit}")
    lend = [s.nominal if s.lending_limit is None else s.lending_limit for s in specs]
    for i, (t, s) in enumerate(zip(cfg.teams, specs, strict=True)):  # own nominal + what the others may lend
        reach = s.nominal + sum(lend) - lend[i]
        assert usage[t.name] <= reach, (
            f"usage_within_limits: {t.name} admitted {usage[t.name]} GPUs > its nominal {s.nominal} + what the "
            f"other queues may lend ({reach - s.nominal})")
    assert sum(usage.values()) <= sum(s.nominal for s in specs), (
        f"usage_within_limits: the cohort admitted {sum(usage.values())} GPUs > its {sum(s.nominal for s in specs)}")
    for v in views:
        checked["gang_whole_or_nothing"] += 1
        if v.admitted_to:
            assert v.pods == v.bound == v.gpus, (
                f"gang_whole_or_nothing: {v.namespace}/{v.job} admitted with {v.bound} of {v.gpus} pods bound "
                f"({v.pods} created)")
        else:
            assert v.pods == 0, f"gang_whole_or_nothing: {v.namespace}/{v.job} not admitted but has {v.pods} pods"
    borrowing = {t.name: usage[t.name] - s.nominal for t, s in zip(cfg.teams, specs, strict=True)
                 if usage[t.name] > s.nominal}
    for v in views:
        if v.admitted_to:
            continue
        team, s = by_ns[v.namespace]
        checked["no_starved_nominal"] += 1
        others = {k: b for k, b in borrowing.items() if k != team.name}
        assert not (usage[team.name] + v.gpus <= s.nominal and others), (
            f"no_starved_nominal: {v.namespace}/{v.job} ({v.gpus} GPUs) waits although {team.name} uses "
            f"{usage[team.name]} of its nominal {s.nominal}, while {others} borrow; Kueue says: {v.message}")
    return checked


@pytest.mark.aiconform(requirement="aiconform.property_invariants", tier="S",
                       capabilities=("kueue", "simulated-nodes"), destructive=True)
def test_kueue_admission_respects_quota_model(aiconform_cluster: ClusterHandle, kube: KubeClient,
                                              tenants: Callable[..., Tenant], evidence: Evidence) -> None:
    """Random cohorts x random gangs: Kueue's admissions satisfy every named invariant."""
    namespaces = [tenants(f"kqp{i}").name for i in range(MAX_TEAMS)]
    totals = dict.fromkeys(INVARIANTS, 0)
    examples: list[dict[str, object]] = []
    t0 = time.monotonic()
    with SandboxPool(kube, aiconform_cluster.run_id, gpus_per_node=4, prefix="kqp") as pool:
        pool.add(MAX_TEAMS * MAX_NOMINAL // 4)  # room for every GPU any cohort can admit

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
        @given(specs=teams_st, jobs=jobs_st)
        def prop(specs: list[TeamSpec], jobs: list[tuple[int, int]]) -> None:
            sfx = secrets.token_hex(3)
            cfg = kq.QueueConfig(
                cohort=f"p-{sfx}", flavor=f"p-{sfx}", node_labels=pool.node_selector(),
                tolerations=pool.tolerations(),
                teams=tuple(kq.TeamQueue(f"p{i}-{sfx}", namespaces[i], s.nominal, borrowing_limit=s.borrowing_limit,
                                         lending_limit=s.lending_limit) for i, s in enumerate(specs)))
            jobs = [(team % len(specs), pods) for team, pods in jobs]
            note(f"queues: {cfg.teams}\njobs (team, one-GPU pods): {jobs}")
            kq.apply_queues(kube, cfg)
            try:
                for j, (team, pods) in enumerate(jobs):
                    kube.create(kq.job(f"j{j}-{sfx}", queue=cfg.teams[team].name, pods=pods, gpus_per_pod=1,
                                       batch=sfx), namespace=namespaces[team])
                views = kq.settle(kube, sfx, len(jobs), timeout=20)
                note(f"Kueue: {[(v.job, v.admitted_to, v.bound, v.message) for v in views]}")
                checked = check_invariants(cfg, specs, views)
                for k, n in checked.items():
                    totals[k] += n
                examples.append({"teams": [vars(s) for s in specs], "jobs": jobs,
                                 "admitted": sum(1 for v in views if v.admitted_to)})
            finally:
                for ns in namespaces[:len(specs)]:
                    try:
                        kube.delete_collection("Job", ns, label_selector=f"{kq.RUN_LABEL}={sfx}")
                        kube.delete_collection("Pod", ns, label_selector=f"{kq.RUN_LABEL}={sfx}", grace_period=0)
                    except KubeError:
                        pass
                kq.remove_queues(kube, cfg)

        prop()
    evidence["invariants"] = {k: {"meaning": INVARIANTS[k], "checked": totals[k]} for k in INVARIANTS}
    evidence["examples"] = examples
    evidence.timing("property_s", time.monotonic() - t0)
