"""Gang scheduling suite (CNCF ``gang_scheduling``): all-or-nothing placement of a group of GPU pods.

Native: Kubernetes 1.37's ``scheduling.k8s.io/v1beta1`` Workload and PodGroup with kube-scheduler's GangScheduling
plugin (profile ``gang``: the ``GenericWorkload`` gate and the API turned on).  A gang of N one-GPU pods on a private
sandbox pool with room for N-1 GPUs stays wholly Pending (no pod bound, ever, while the room is short); one more
node makes room and the scheduler binds the whole gang.  Every binding is the real scheduler's.
"""

from __future__ import annotations

import time

import pytest

from harness.errors import WaitTimeout
from harness.governance import gang
from harness.governance.sandbox import SandboxPool
from harness.kube import KubeClient, is_bound
from harness.testing import ClusterHandle, Evidence, Tenant

GANG_SIZE = 4
HOLD_S = 4.0
"""How long the short gang is watched for a partial binding after the scheduler judged it Unschedulable (it retries
the gang on every node and pod event; a partial bind would show in well under this)."""


# exclusive: sandbox nodes are visible to checks that count nodes or GPUs.
@pytest.mark.aiconform(requirement="gang_scheduling", tier="S", capabilities=("native-gang", "simulated-nodes"),
                       exclusive=True,
                       mutations=("gang-plugin-off", "gang-permit-off"))
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

