"""The simulator's Kueue policy: one ClusterQueue per team in one cohort, its nominal GPU quota the team's
entitlement of the cluster, borrowing of what others leave unused, fair sharing, reclaim within the cohort and
priority preemption within a team's queue; every job is a suspended Job in its team's LocalQueue, admitted whole by
Kueue (all-or-nothing with waitForPodsReady).

Queue objects and their wait come from harness.governance.kueue (the one Kueue queue API); Kueue itself is the
``kueue`` addon, installed by the one installer on each replay's cluster.  Every admission, borrowing and preemption
is Kueue's; the replay reads back what happened.
"""

from __future__ import annotations

from harness.contract import POOL_LABEL, SIMULATED_TOLERATION
from harness.governance.kueue import QUEUE_LABEL, QueueConfig, TeamQueue, apply_queues
from harness.kube import KubeClient
from harness.simulate.policies import Obj, Policy, priority_classes, register
from harness.simulate.trace import Trace, TraceJob
from harness.workloads import GPU_TOLERATION

COHORT = "sim"


def nominal_quotas(entitlements: dict[str, float], gpus: int) -> dict[str, int]:
    """Each team's share of ``gpus`` in whole GPUs, the rounding remainder to the largest shares, summing to
    ``gpus``."""
    raw = {t: share * gpus for t, share in entitlements.items()}
    out = {t: int(v) for t, v in raw.items()}
    for t in sorted(raw, key=lambda t: (-(raw[t] - out[t]), t))[: gpus - sum(out.values())]:
        out[t] += 1
    return out


def queue_config(trace: Trace, gpus: int) -> QueueConfig:
    teams = tuple(TeamQueue(name=t, namespace=t, gpus=n, reclaim_within_cohort="Any",
                            within_cluster_queue="LowerPriority")
                  for t, n in sorted(nominal_quotas(trace.entitlements, gpus).items()))
    return QueueConfig(cohort=COHORT, teams=teams, flavor="sim-gpu", node_labels={POOL_LABEL: "sim"},
                       tolerations=(dict(GPU_TOLERATION), dict(SIMULATED_TOLERATION)),
                       fair_sharing=True)


def _setup(client: KubeClient, trace: Trace, gpus: int) -> None:
    for pc in priority_classes():
        client.apply(pc)
    apply_queues(client, queue_config(trace, gpus))


def _queue(job: Obj, tj: TraceJob) -> Obj:
    job["metadata"]["labels"][QUEUE_LABEL] = tj.team
    job["spec"]["suspend"] = True
    return job


register(Policy(
    "kueue",
    "Kueue: a ClusterQueue per team (nominal quota = its entitlement) in one cohort with borrowing, fair sharing, "
    "reclaim within the cohort and priority preemption in a queue; each job admitted whole (waitForPodsReady)",
    addons=("kueue",), priorities=True, setup=_setup, decorate=_queue))
