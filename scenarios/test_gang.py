"""Gang scheduling suite (CNCF ``gang_scheduling``): all-or-nothing placement of a group of GPU pods.

Native: Kubernetes 1.37's ``scheduling.k8s.io/v1beta1`` Workload and PodGroup with kube-scheduler's GangScheduling
plugin (profile ``gang``: the ``GenericWorkload`` gate and the API turned on).  A gang of N one-GPU pods on a private
sandbox pool with room for N-1 GPUs stays wholly Pending (no pod bound, ever, while the room is short); one more
node makes room and the scheduler binds the whole gang.  Two gangs that each fit alone but not together, on the
same nodes (each could bind partially: the deadlock gang scheduling exists to prevent), end with one gang bound whole
and the other bound not at all; once the winner goes, the other binds whole.  Every binding is the real scheduler's.

Each check names the platform mutations it must catch (``aiconform selftest``, harness/selftest/mutations.py): the
GangScheduling plugin off.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness.errors import WaitTimeout
from harness.governance import gang
from harness.governance.sandbox import SandboxPool
from harness.kube import KubeClient, is_bound
from harness.testing import ClusterHandle, Evidence, Tenant

GANG_SIZE = 4
RIVAL_SIZE = 3
RIVAL_GPUS = 4
"""Two rival gangs of RIVAL_SIZE one-GPU pods on RIVAL_GPUS one-GPU nodes: each fits alone, both do not, and any
binding of RIVAL_GPUS pods without gang scheduling leaves at least one gang partial."""
HOLD_S = 4.0
"""How long the short gang is watched for a partial binding after the scheduler judged it Unschedulable (it retries
the gang on every node and pod event; a partial bind would show in well under this)."""


def _scheduled_while_short(groups: dict[str, Any], n: int) -> str | None:
    """Why the wait for the short gang's verdict can stop at once: the scheduler said it scheduled the gang."""
    for g in groups.values():
        cond = gang.condition(g, "PodGroupInitiallyScheduled") or {}
        if cond.get("status") == "True":
            return (f"the scheduler judged the short gang ({n} pods, {n - 1} GPUs) scheduled: "
                    f"{cond.get('reason')} {cond.get('message') or ''}").rstrip()
    return None


# exclusive: sandbox nodes are visible to checks that count nodes or GPUs.
@pytest.mark.aiconform(requirement="gang_scheduling", tier="S", capabilities=("native-gang", "simulated-nodes"),
                       exclusive=True,
                       mutations=("gang-plugin-off",))
def test_native_gang_is_bound_all_or_nothing(aiconform_cluster: ClusterHandle, kube: KubeClient, tenant: Tenant,
                                             evidence: Evidence) -> None:
    """N one-GPU pods in one PodGroup (minCount N) on N-1 free GPUs: none is bound; a node more: all N are."""
    n = GANG_SIZE
    with SandboxPool(kube, aiconform_cluster.run_id, gpus_per_node=1, prefix="gang") as pool:
        pool.add(n - 1)
        tenant.create(gang.workload("train", n))
        tenant.create(gang.pod_group("train", n, workload_name="train"))
        for i in range(n):
            member = gang.member_pod("train", i, 1)
            pool.place(member["spec"])
            tenant.create(member)

        # The scheduler's verdict on the short gang (its PodGroup condition), then no partial binding: every pod of
        # the gang is watched for the hold window; any bound pod fails the check.
        t0 = time.monotonic()
        kube.wait_for("PodGroup", namespace=tenant.name, name="train", timeout=60,
                      condition=lambda s: any((gang.condition(g, "PodGroupInitiallyScheduled") or {}).get("reason")
                                              == "Unschedulable" for g in s.values()),
                      failure=lambda s: _scheduled_while_short(s, n),
                      what="the scheduler to judge the short gang Unschedulable")
        with pytest.raises(WaitTimeout):
            kube.wait_for("Pod", namespace=tenant.name, label_selector=f"{gang.GANG_LABEL}=train",
                          condition=lambda s: any(is_bound(p) for p in s.values()), timeout=HOLD_S,
                          what="any member of the short gang to be bound")
        held = gang.gang_state(kube, tenant.name, "train")
        group = kube.get("PodGroup", "train", tenant.name)
        evidence["gang_size"] = n
        evidence["free_gpus_while_short"] = n - 1
        evidence["bound_while_short"] = held.bound
        evidence["held_for_s"] = round(time.monotonic() - t0, 1)
        cond = gang.condition(group, "PodGroupInitiallyScheduled")
        evidence["podgroup_condition_while_short"] = cond and {k: cond.get(k) for k in ("status", "reason", "message")}
        assert held.members == n and held.bound == 0, f"{held.bound} of {n} gang pods bound with room for {n - 1}"

        # Room for the whole gang: one more one-GPU node; the scheduler binds all N.
        t1 = time.monotonic()
        pool.add(1)
        kube.wait_for("Pod", namespace=tenant.name, label_selector=f"{gang.GANG_LABEL}=train",
                      condition=lambda s: len(s) == n and all(is_bound(p) for p in s.values()), timeout=60,
                      what=f"all {n} gang pods to be bound once a node was added")
        whole = gang.gang_state(kube, tenant.name, "train")
        evidence.timing("gang_bound_after_room_s", time.monotonic() - t1)
        evidence["bound_after_room"] = whole.bound
        evidence["nodes_after_room"] = list(whole.nodes)
        group = kube.get("PodGroup", "train", tenant.name)
        cond = gang.condition(group, "PodGroupInitiallyScheduled")
        evidence["podgroup_condition_after_room"] = cond and {k: cond.get(k) for k in ("status", "reason")}
        assert whole.whole and len(whole.nodes) == n, whole



# exclusive: sandbox nodes are visible to checks that count nodes or GPUs.
@pytest.mark.aiconform(requirement="gang_scheduling", tier="S", capabilities=("native-gang", "simulated-nodes"),
                       exclusive=True, mutations=("gang-plugin-off",))
def test_two_competing_gangs_one_binds_whole_the_other_none(aiconform_cluster: ClusterHandle, kube: KubeClient,
                                                             tenant: Tenant, evidence: Evidence) -> None:
    """Two gangs of 3 one-GPU pods, created interleaved, on 4 one-GPU nodes: one gang is bound whole and the other
    not at all (never a pod of each); once the winner is deleted, the other is bound whole."""
    n, gpus = RIVAL_SIZE, RIVAL_GPUS
    gangs = ("alpha", "beta")
    selector = f"{gang.GANG_LABEL} in ({','.join(gangs)})"
    with SandboxPool(kube, aiconform_cluster.run_id, gpus_per_node=1, prefix="rival") as pool:
        pool.add(gpus)
        for g in gangs:
            tenant.create(gang.workload(g, n))
            tenant.create(gang.pod_group(g, n, workload_name=g))
        for i in range(n):  # interleaved, so neither gang is complete in the queue before the other starts
            for g in gangs:
                member = gang.member_pod(g, i, 1)
                pool.place(member["spec"])
                tenant.create(member)

        def states() -> dict[str, gang.GangState]:
            return {g: gang.gang_state(kube, tenant.name, g) for g in gangs}

        def by_gang(pods: dict[str, Any]) -> dict[str, int]:
            bound = {g: 0 for g in gangs}
            for p in pods.values():
                if is_bound(p):
                    bound[p["metadata"]["labels"][gang.GANG_LABEL]] += 1
            return bound

        # The scheduler's verdict: as many pods bound as one gang has (a whole gang, or a partial mix).
        t0 = time.monotonic()
        kube.wait_for("Pod", namespace=tenant.name, label_selector=selector, timeout=60,
                      condition=lambda s: sum(by_gang(s).values()) >= n,
                      what=f"{n} pods of the two rival gangs to be bound")
        evidence.timing("first_gang_bound_s", time.monotonic() - t0)
        # Then no partial gang, for the hold window: a pod of each gang bound is the deadlock gang scheduling
        # prevents.
        try:
            kube.wait_for("Pod", namespace=tenant.name, label_selector=selector, timeout=HOLD_S,
                          condition=lambda s: any(0 < b < n for b in by_gang(s).values()),
                          what="a rival gang to be bound partially")
        except WaitTimeout:
            pass
        held = states()
        evidence["gang_size"] = n
        evidence["free_gpus"] = gpus
        evidence["bound_per_gang"] = {g: st.bound for g, st in held.items()}
        evidence["nodes_per_gang"] = {g: list(st.nodes) for g, st in held.items()}
        winners = [g for g, st in held.items() if st.whole]
        partial = {g: f"{st.bound} of {st.members}" for g, st in held.items() if st.partial}
        assert not partial, (f"rival gangs bound partially on {gpus} GPUs: "
                             + ", ".join(f"{g} {b} pods bound" for g, b in sorted(partial.items())))
        assert len(winners) == 1, f"expected exactly one gang bound whole, got {winners or 'none'}: {held}"
        winner = winners[0]
        loser = next(g for g in gangs if g != winner)
        assert held[loser].bound == 0, held

        # The winner goes: its GPUs free up and the scheduler binds the other gang whole.
        t1 = time.monotonic()
        for i in range(n):
            kube.delete("Pod", f"{winner}-{i}", tenant.name, grace_period=0)
        kube.wait_for("Pod", namespace=tenant.name, label_selector=f"{gang.GANG_LABEL}={loser}", timeout=60,
                      condition=lambda s: len(s) == n and all(is_bound(p) for p in s.values()),
                      what=f"all {n} pods of gang {loser} to be bound once gang {winner} was deleted")
        evidence.timing("other_gang_bound_after_winner_deleted_s", time.monotonic() - t1)
        evidence["winner"] = winner
        evidence["other_gang_nodes"] = list(gang.gang_state(kube, tenant.name, loser).nodes)
