"""Training suite (tier R): distributed data-parallel JAX training under Kubeflow Trainer v2 on JobSet.

- ``robust_controller``: Trainer's CRDs are served, its validating webhook (served with the harness CA's certificate,
  called by the real apiserver) refuses an invalid TrainJob with Trainer's own message, and a TrainJob completes
  although the controller is restarted mid-job;
- ``aiconform.training_resume``: one worker of a running 2-worker TrainJob is killed; the survivor aborts (gloo), the
  JobSet failure policy restarts the whole group, training resumes from the checkpoint on the PersistentVolume (step
  count continues, loss keeps falling) and completes;
- quota and priority: the TrainJob's pods run at the tenant's PriorityClass and count against its GPU quota; a job
  over quota is refused by the apiserver's quota admission, and without a gang scheduler it starts partially.

The operator, JobSet, the scheduler, quota admission, kubelet and containerd decide everything; the harness reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from harness.errors import ApiError, UnsupportedCapability
from harness.kube import KubeClient
from harness.testing import ClusterHandle, Evidence, Tenant
from harness.workloads import GPU, gpu_quota, pod_ready, priority_class, real_node_selector, wait_quota_published
from reference_workloads.training import cluster, logs, manifests

IMAGE = "jax-training"
WORKERS = 2


@dataclass(frozen=True)
class Stack:
    image: str
    """The training image's ref, loaded into the real node's containerd."""
    bringup_s: float


@pytest.fixture(scope="module")
def trainer_stack(aiconform_cluster: ClusterHandle) -> Stack:
    """JobSet and Trainer through the one installer (idempotent), and the training image on the real node."""
    from harness import images
    from harness.providers import cluster_of, ensure_addons
    from harness.providers.base import LoadsImages, require

    if aiconform_cluster.tier != "R":  # module scope: set up before the marker's (function-scope) tier skip
        pytest.skip(f"needs tier R; this cluster is tier {aiconform_cluster.tier}")
    t0 = time.monotonic()
    try:
        ensure_addons(aiconform_cluster, "jobset", "trainer")
    except UnsupportedCapability as err:
        pytest.skip(f"the training stack is installed by the harness on clusters it made only: {err}")
    built = images.build(IMAGE, progress=lambda line: None)
    require(cluster_of(aiconform_cluster), LoadsImages, "loading the training image").load_image(built.archive)
    return Stack(built.ref, time.monotonic() - t0)


@dataclass(frozen=True)
class Workspace:
    tenant: Tenant
    runtime: str
    claim: str
    priority_class: str
    priority: int


@pytest.fixture
def workspace(aiconform_cluster: ClusterHandle, kube: KubeClient, tenant: Tenant,
              trainer_stack: Stack) -> Iterator[Workspace]:
    """A tenant with a PriorityClass, a GPU quota of 2, a checkpoint PVC Bound to a PV the harness creates (hostPath
    under the cluster's run directory on the real node), and a JAX TrainingRuntime using all of them."""
    ns = tenant.name
    pv_name = f"{ns}-ckpt"
    pc_name = f"{ns}-training"
    priority = 1000
    kube.create(priority_class(pc_name, priority, preempt=False))
    tenant.create(gpu_quota("gpu", WORKERS))
    wait_quota_published(kube, ns, "gpu")
    host_dir = aiconform_cluster.kubeconfig.resolve().parent / "training-checkpoints" / ns
    kube.create(manifests.checkpoint_volume(pv_name, path=str(host_dir), claim_namespace=ns, claim="ckpt"))
    claimed = False
    try:
        tenant.create(manifests.checkpoint_claim("ckpt", ns, volume=pv_name))
        claimed = True
        kube.wait_for("PersistentVolumeClaim", namespace=ns, name="ckpt", timeout=30,
                      condition=lambda s: _phase(s) == "Bound",
                      what=f"PVC {ns}/ckpt to be Bound to PV {pv_name}")
        tenant.create(manifests.training_runtime("jax", ns, image=trainer_stack.image, claim="ckpt",
                                                 priority_class=pc_name, node_selector=real_node_selector()))
        cluster.wait_runtime_known(kube, ns, "jax")
        yield Workspace(tenant, "jax", "ckpt", pc_name, priority)
    finally:
        if claimed:
            _wipe_volume(kube, ns, trainer_stack.image)
        kube.delete("PriorityClass", pc_name)
        kube.delete("PersistentVolume", pv_name)


def _wipe_volume(kube: KubeClient, ns: str, image: str) -> None:
    """Empty the checkpoint volume through a pod (the data lives on the node), so no training data outlives the
    check; best effort (the run directory holding it is removed by ``down`` in any case)."""
    for tj in kube.list("TrainJob", ns).get("items", []):
        kube.delete("TrainJob", tj["metadata"]["name"], ns, grace_period=0)
    kube.wait_for("Pod", namespace=ns, label_selector=manifests.JOB_NAME_LABEL, condition=lambda s: not s,
                  timeout=60, what=f"training pods in {ns} to be gone")
    kube.create(manifests.cleanup_pod("wipe-checkpoints", ns, image=image, claim="ckpt",
                                      node_selector=real_node_selector()))
    kube.wait_for("Pod", namespace=ns, name="wipe-checkpoints", timeout=60,
                  condition=lambda s: _phase(s) == "Succeeded",
                  failure=lambda s: "the wipe pod failed" if _phase(s) == "Failed" else None,
                  what=f"the checkpoint volume of {ns} to be emptied")
    kube.delete("Pod", "wipe-checkpoints", ns, grace_period=0)


def _phase(state: dict[str, dict[str, Any]]) -> str:
    """The phase of the one object a by-name watch sees ("" while there is none)."""
    return str(next(iter(state.values()), {}).get("status", {}).get("phase", ""))


def _worker_pods(kube: KubeClient, ns: str, job: str) -> list[str]:
    pods = cluster.pods_of(kube, ns, job)
    return sorted(p["metadata"]["name"] for p in pods if p.get("status", {}).get("phase") in ("Running", "Succeeded"))


@pytest.mark.aiconform(requirement="robust_controller", tier="R", gpus=2,
                       mutations=("job-controller-off",))
def test_trainer_crds_webhook_and_reconcile_across_a_controller_restart(
    kube: KubeClient, workspace: Workspace, trainer_stack: Stack, evidence: Evidence
) -> None:
    """CRDs served; an invalid TrainJob refused by Trainer's validating webhook with its own message; a 2-worker
    TrainJob completes although the controller pod is deleted (and replaced) while it runs."""
    from harness.addons import trainer

    ns = workspace.tenant.name
    served = kube.request("GET", "/apis/trainer.kubeflow.org/v1alpha1")
    kinds = sorted(r["kind"] for r in served.get("resources", []) if "/" not in r["name"])
    evidence["served_kinds"] = kinds
    assert {"TrainJob", "TrainingRuntime", "ClusterTrainingRuntime"} <= set(kinds)

    with pytest.raises(ApiError) as refused:
        workspace.tenant.create(trainer.invalid_trainjob(ns, "no-runtime"))
    evidence["webhook_refusal"] = refused.value.message
    assert f'admission webhook "{trainer.TRAINJOB_VALIDATOR}" denied the request' in refused.value.message
    assert "specified trainingRuntime must be created before the TrainJob is created" in refused.value.message

    workspace.tenant.create(manifests.train_job("restart-ctl", ns, runtime=workspace.runtime, num_nodes=WORKERS,
                                                steps=40, checkpoint_every=10, min_step_seconds=0.3,
                                                gpus_per_node=1, global_batch=64))
    cluster.wait_pods_running(kube, ns, "restart-ctl", WORKERS, timeout=180)
    ctl_before = kube.list("Pod", trainer.NAMESPACE, label_selector="app.kubernetes.io/name=trainer")["items"]
    assert len(ctl_before) == 1
    old = ctl_before[0]["metadata"]["name"]
    t_kill = time.monotonic()
    kube.delete("Pod", old, trainer.NAMESPACE, grace_period=0)
    state = kube.wait_for("Pod", namespace=trainer.NAMESPACE, label_selector="app.kubernetes.io/name=trainer",
                          condition=lambda s: any(p["metadata"]["name"] != old and pod_ready(p) for p in s.values()),
                          timeout=120,
                          what="a new Trainer controller pod to be Ready")
    evidence.timing("controller_back_s", time.monotonic() - t_kill)
    evidence["controller_pods"] = {"deleted": old,
                                   "new": sorted(p["metadata"]["name"] for p in state.values()
                                                 if p["metadata"]["name"] != old)}
    done = cluster.wait_trainjob(kube, ns, "restart-ctl", timeout=240)
    evidence["trainjob_conditions"] = [f"{c['type']}={c['status']}: {c.get('message', '')}"
                                       for c in done["status"]["conditions"]]
    run = cluster.collect(kube, ns, _worker_pods(kube, ns, "restart-ctl")).attempt()
    assert logs.problems(run, WORKERS) == []
    assert run.done == {0: 40, 1: 40}


@pytest.mark.aiconform(requirement="aiconform.training_resume", tier="R", gpus=2)
def test_killed_worker_restarts_the_group_which_resumes_from_the_checkpoint(
    kube: KubeClient, workspace: Workspace, evidence: Evidence
) -> None:
    """Kill one of two workers after a checkpoint; the whole group restarts (JobSet failurePolicy), resumes at the
    checkpoint step with a falling loss, and completes.  Its pods ran at the tenant's priority, within its quota."""
    ns, job, steps = workspace.tenant.name, "resume", 60
    workspace.tenant.create(manifests.train_job(job, ns, runtime=workspace.runtime, num_nodes=WORKERS, steps=steps,
                                                checkpoint_every=5, min_step_seconds=0.4, gpus_per_node=1,
                                                global_batch=64))
    first = cluster.wait_pods_running(kube, ns, job, WORKERS, timeout=180)
    by_rank = {int(p["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index", "0")): p
               for p in first}
    rank0, rank1 = by_rank[0]["metadata"]["name"], by_rank[1]["metadata"]["name"]
    evidence["priority"] = {p["metadata"]["name"]: [p["spec"].get("priorityClassName"), p["spec"].get("priority")]
                            for p in first}
    used = kube.get("ResourceQuota", "gpu", ns)["status"].get("used", {})
    evidence["quota_used_while_running"] = used
    assert all(p["spec"].get("priorityClassName") == workspace.priority_class
               and p["spec"].get("priority") == workspace.priority for p in first)
    assert used.get(f"requests.{GPU}") == str(WORKERS)

    followers = [cluster.LogFollower(kube, ns, p, timeout=400) for p in (rank0, rank1)]
    followers[0].wait(lambda r: r["event"] == "checkpoint" and r["step"] >= 15, timeout=180)
    killed_at = time.time()
    kube.delete("Pod", rank1, ns, grace_period=0)
    done = cluster.wait_trainjob(kube, ns, job, timeout=300)
    before = cluster.RankLogs({f.pod: f.finish(timeout=30) for f in followers})
    att0 = before.attempt()
    ckpt_at_kill = att0.checkpoints[-1]
    last_logged = max(att0.steps)
    after = cluster.collect(kube, ns, _worker_pods(kube, ns, job)).attempt()
    jobset = kube.get("JobSet", job, ns)
    restarts = int(jobset.get("status", {}).get("restarts", 0))
    resumed = sorted(set(after.resumed_from.values()), key=lambda v: -1 if v is None else v)
    first_after = after.steps[0] if after.steps else None
    evidence["checkpoint_step_at_kill"] = ckpt_at_kill
    evidence["last_step_logged_before_restart"] = last_logged
    evidence["resumed_from"] = resumed
    evidence["first_step_after_restart"] = first_after
    evidence["jobset_restarts"] = restarts
    evidence["trainjob_conditions"] = [f"{c['type']}={c['status']}" for c in done["status"]["conditions"]]
    evidence.timing("kill_to_resumed_step_s", after.first_step_time - killed_at)
    evidence.series("loss_curve", {"before the kill": att0.loss_curve(), "after the restart": after.loss_curve()},
                    x="step", y="loss", title="training loss (rank 0) across the kill and restart")
    assert logs.problems(att0, WORKERS) == [] and logs.problems(after, WORKERS) == []
    assert restarts >= 1, "the JobSet was not restarted as a group"
    assert resumed == [ckpt_at_kill], f"ranks resumed from {resumed}, the checkpoint at the kill was {ckpt_at_kill}"
    assert first_after == ckpt_at_kill + 1
    assert after.done == {0: steps, 1: steps}
    assert logs.falling(att0.loss_curve() + after.loss_curve())
    assert after.loss_curve()[0][1] < att0.loss_curve()[0][1]


@pytest.mark.aiconform(requirement="aiconform.quota", tier="R", gpus=2)
def test_trainjob_over_quota_is_refused_and_starts_partially_without_a_gang_scheduler(
    kube: KubeClient, workspace: Workspace, evidence: Evidence
) -> None:
    """Quota 2 GPUs, a TrainJob of 2 workers x 2 GPUs: quota admission admits the first worker and refuses the
    second with its own reason; with no gang scheduler the admitted worker starts alone (recorded, not hidden)."""
    ns, job = workspace.tenant.name, "over-quota"
    workspace.tenant.create(manifests.train_job(job, ns, runtime=workspace.runtime, num_nodes=WORKERS, steps=5,
                                                gpus_per_node=2, global_batch=64))
    state = kube.wait_for("Event", namespace=ns, timeout=120,
                          condition=lambda s: any("exceeded quota" in e.get("message", "") for e in s.values()),
                          what=f"quota admission to refuse a pod of TrainJob {ns}/{job}")
    refusals = sorted({e["message"] for e in state.values() if "exceeded quota" in e.get("message", "")})
    evidence["quota_refusals"] = refusals[:3]
    pods = cluster.pods_of(kube, ns, job)
    evidence["pods_created"] = sorted(p["metadata"]["name"] for p in pods)
    evidence["gang"] = (f"{len(pods)} of {WORKERS} workers created; without a gang scheduler the admitted worker "
                        "is started alone and waits for its peer (JAX initialization timeout) instead of the group "
                        "waiting as one")
    assert any(f"requested: requests.{GPU}=2" in r and f"limited: requests.{GPU}=2" in r for r in refusals)
    assert len(pods) < WORKERS

