"""A deliberately weakened gang check, for tests/integration/test_selftest.py: the native gang check with its main
assertion deleted (no pod of a short gang may be bound).  It only checks that the gang is bound whole once there is
room, which a scheduler without gang scheduling does too, so ``aiconform selftest`` must grade the mutation it names
missed.  Not a shipped check: the file name keeps pytest from collecting it, and it lives outside tests/integration, whose
conftest would hand it that session's own cluster; selftest is pointed at it with --suite.
"""

from __future__ import annotations

import pytest

from harness.governance import gang
from harness.governance.sandbox import SandboxPool
from harness.kube import KubeClient, is_bound
from harness.testing import ClusterHandle, Tenant


@pytest.mark.aiconform(requirement="gang_scheduling", tier="S", capabilities=("native-gang", "simulated-nodes"),
                       exclusive=True, mutations=("gang-plugin-off",))
def test_weak_gang_is_bound_once_there_is_room(aiconform_cluster: ClusterHandle, kube: KubeClient,
                                               tenant: Tenant) -> None:
    n = 3
    with SandboxPool(kube, aiconform_cluster.run_id, gpus_per_node=1, prefix="weak") as pool:
        pool.add(n - 1)
        tenant.create(gang.workload("weak", n))
        tenant.create(gang.pod_group("weak", n, workload_name="weak"))
        for i in range(n):
            member = gang.member_pod("weak", i, 1)
            pool.place(member["spec"])
            tenant.create(member)
        # (deleted here: "no member of the short gang is bound while the room is short")
        pool.add(1)
        kube.wait_for("Pod", namespace=tenant.name, label_selector=f"{gang.GANG_LABEL}=weak",
                      condition=lambda s: len(s) == n and all(is_bound(p) for p in s.values()), timeout=60,
                      what=f"all {n} gang pods to be bound once a node was added")
