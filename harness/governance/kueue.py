"""Kueue queues from plain settings: one cohort of team ClusterQueues sharing a GPU flavor, each team's LocalQueue, and
readers of what Kueue decided (admitted workloads, usage per queue, preemptions).

The small public surface other parts of aiconform use (the simulator's Kueue policy, the Kueue scenarios, the bench):

    cfg = QueueConfig(cohort="org", teams=(TeamQueue("research", "ns-a", gpus=8, borrowing_limit=4), ...),
                      node_labels=pool.node_selector(), tolerations=pool.tolerations())
    apply_queues(client, cfg)            # ResourceFlavor, Cohort, ClusterQueues, LocalQueues; waits until Active
    client.create(job("j1", queue="research", pods=4, gpus_per_pod=1), namespace="ns-a")
    usage = queue_usage(client, cfg)     # ClusterQueue -> GPUs admitted (and borrowed), as Kueue reports it
    remove_queues(client, cfg)

Kueue itself (CRDs, webhooks, the controller) is installed by the addon installer (``harness/addons/kueue.py``); every
admission, borrowing and preemption decision read here is Kueue's.  A queue config its webhook refuses raises
:class:`harness.errors.ConfigError` carrying Kueue's own message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.addons.kueue import BATCH_LABEL
from harness.contract import SIMULATED_TOLERATION
from harness.errors import BadRequest, ConfigError, Conflict, Forbidden, Invalid, KubeError
from harness.kube import KubeClient, is_bound
from harness.workloads import GPU, GPU_TOLERATION, PAUSE_IMAGE

API = "kueue.x-k8s.io/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
OTHER_RESOURCES = {"cpu": "100k", "memory": "1000Ti"}
"""Quota for what GPU pods also request (so only GPUs constrain admission): far above any sandbox."""
PREEMPTION_POLICIES = ("Never", "LowerPriority", "LowerOrNewerEqualPriority", "Any")


@dataclass(frozen=True)
class TeamQueue:
    """One team: a ClusterQueue in the cohort and a LocalQueue of the same name in the team's namespace."""

    name: str
    """ClusterQueue and LocalQueue name (a DNS label)."""
    namespace: str
    """Where the team's LocalQueue lives (its jobs name the queue with the ``kueue.x-k8s.io/queue-name`` label)."""
    gpus: int
    """Nominal GPU quota."""
    borrowing_limit: int | None = None
    """At most this many GPUs borrowed from the cohort beyond nominal; None: no limit (what the cohort has unused)."""
    lending_limit: int | None = None
    """At most this many of its nominal GPUs lent to the cohort; None: all of them."""
    weight: float = 1.0
    """Fair-sharing weight: a higher weight gets a larger share of what the cohort has to lend."""
    reclaim_within_cohort: str = "Any"
    """Preempt borrowers in the cohort to get back nominal quota: Never, LowerPriority or Any."""
    within_cluster_queue: str = "LowerPriority"
    """Preempt the team's own workloads for a more important one: Never, LowerPriority, LowerOrNewerEqualPriority."""


@dataclass(frozen=True)
class QueueConfig:
    """The cohort, its GPU flavor and its teams."""

    cohort: str
    teams: tuple[TeamQueue, ...]
    flavor: str = "gpu"
    """ResourceFlavor name (cluster-scoped: unique per config when several live on one cluster)."""
    resource: str = GPU
    node_labels: dict[str, str] = field(default_factory=dict)
    """The flavor's node labels: Kueue adds them as a nodeSelector to every pod it admits on the flavor."""
    tolerations: tuple[dict[str, str], ...] = ()
    """Tolerations Kueue adds to every pod it admits on the flavor (e.g. a sandbox pool's taint)."""
    queueing_strategy: str = "BestEffortFIFO"
    fair_sharing: bool = True
    """Give every ClusterQueue its fair-sharing weight (the Configuration's ``fairSharing`` turns the algorithm on)."""


# -- manifests ----------------------------------------------------------------------------------------------------


def manifests(cfg: QueueConfig) -> list[dict[str, Any]]:
    """The objects of ``cfg`` in apply order: ResourceFlavor, Cohort, ClusterQueues, LocalQueues."""
    flavor: dict[str, Any] = {"apiVersion": API, "kind": "ResourceFlavor", "metadata": {"name": cfg.flavor},
                              "spec": {}}
    if cfg.node_labels:
        flavor["spec"]["nodeLabels"] = dict(cfg.node_labels)
    if cfg.tolerations:
        flavor["spec"]["tolerations"] = [dict(t) for t in cfg.tolerations]
    out = [flavor, {"apiVersion": API, "kind": "Cohort", "metadata": {"name": cfg.cohort}, "spec": {}}]
    out += [cluster_queue(cfg, t) for t in cfg.teams]
    out += [local_queue(t) for t in cfg.teams]
    return out


def cluster_queue(cfg: QueueConfig, team: TeamQueue) -> dict[str, Any]:
    gpu: dict[str, Any] = {"name": cfg.resource, "nominalQuota": str(team.gpus)}
    if team.borrowing_limit is not None:
        gpu["borrowingLimit"] = str(team.borrowing_limit)
    if team.lending_limit is not None:
        gpu["lendingLimit"] = str(team.lending_limit)
    others = [{"name": r, "nominalQuota": q} for r, q in OTHER_RESOURCES.items()]
    spec: dict[str, Any] = {
        "cohortName": cfg.cohort,
        "namespaceSelector": {},
        "queueingStrategy": cfg.queueing_strategy,
        "resourceGroups": [{"coveredResources": [cfg.resource, *OTHER_RESOURCES],
                            "flavors": [{"name": cfg.flavor, "resources": [gpu, *others]}]}],
        "preemption": {"reclaimWithinCohort": team.reclaim_within_cohort,
                       "withinClusterQueue": team.within_cluster_queue},
    }
    if cfg.fair_sharing:
        spec["fairSharing"] = {"weight": _quantity(team.weight)}
    return {"apiVersion": API, "kind": "ClusterQueue", "metadata": {"name": team.name}, "spec": spec}


def local_queue(team: TeamQueue) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "LocalQueue", "metadata": {"name": team.name, "namespace": team.namespace},
            "spec": {"clusterQueue": team.name}}


def _quantity(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{int(round(v * 1000))}m"


def job(name: str, *, queue: str, pods: int, gpus_per_pod: int, priority_class: str | None = None,
        batch: str | None = None, labels: dict[str, str] | None = None,
        seconds: int | None = None) -> dict[str, Any]:
    """A suspended batch/v1 Job of ``pods`` parallel pods of ``gpus_per_pod`` GPUs, queued in ``queue``: Kueue
    admits it as one workload (all its pods or none) and unsuspends it.  ``seconds``: KWOK's pod run time is not
    modelled here; the pods run until deleted.  ``batch`` labels the job, its pods and (through Kueue) its Workload
    (:func:`settle`)."""
    labels = {**(labels or {}), **({BATCH_LABEL: batch} if batch else {})}
    md_labels = {QUEUE_LABEL: queue, **labels}
    if priority_class:
        md_labels[PRIORITY_LABEL] = priority_class
    container: dict[str, Any] = {"name": "main", "image": PAUSE_IMAGE, "imagePullPolicy": "IfNotPresent",
                                 "resources": {"requests": {GPU: str(gpus_per_pod), "cpu": "100m", "memory": "64Mi"},
                                               "limits": {GPU: str(gpus_per_pod)}}}
    if seconds is not None:
        container["command"] = ["sleep", str(seconds)]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": md_labels},
        "spec": {"parallelism": pods, "completions": pods, "suspend": True, "backoffLimit": 0,
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                       "tolerations": [dict(GPU_TOLERATION), dict(SIMULATED_TOLERATION)],
                                       "containers": [container]}}},
    }


def jobset(name: str, *, queue: str, replicas: int, pods_per_job: int, gpus_per_pod: int,
           batch: str | None = None) -> dict[str, Any]:
    """A JobSet of ``replicas`` Jobs of ``pods_per_job`` pods of ``gpus_per_pod`` GPUs, queued in ``queue``: Kueue
    admits the whole JobSet as one workload (one pod set per replicated job) or none of it."""
    inner = job(f"{name}-w", queue=queue, pods=pods_per_job, gpus_per_pod=gpus_per_pod, batch=batch)
    spec = inner["spec"]
    spec.pop("suspend")
    md_labels = {QUEUE_LABEL: queue, **({BATCH_LABEL: batch} if batch else {})}
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
            "metadata": {"name": name, "labels": md_labels},
            "spec": {"suspend": True, "replicatedJobs": [{"name": "workers", "replicas": replicas,
                                                          "template": {"spec": spec}}]}}


# -- apply / remove -------------------------------------------------------------------------------------------------


def apply_queues(client: KubeClient, cfg: QueueConfig, *, timeout: float = 60.0) -> None:
    """Create (server-side apply) the config's objects and watch until Kueue reports every ClusterQueue Active.
    A config Kueue's webhook refuses raises ConfigError naming the object, with Kueue's message verbatim on one
    line (``aiconform: ClusterQueue NAME: admission webhook "vclusterqueue.kb.io" denied the request: ...``)."""
    for obj in manifests(cfg):
        try:
            if obj.get("spec") == {}:  # server-side apply drops an empty spec, which Kueue's schema requires
                try:
                    client.create(obj)
                except Conflict:
                    pass
            else:
                client.apply(obj, field_manager="aiconform-kueue")
        except (Invalid, Forbidden, BadRequest) as err:  # Kueue's webhook (or the CRD schema) refused it
            raise ConfigError(f"{obj['kind']} {obj['metadata']['name']}: {' '.join(err.message.split())}") from err
    names = {t.name for t in cfg.teams}
    client.wait_all("ClusterQueue", names, lambda cq: _condition_true(cq, "Active"), timeout=timeout,
                    what=f"ClusterQueues {', '.join(sorted(names))} to be Active", api_version=API)


def remove_queues(client: KubeClient, cfg: QueueConfig) -> None:
    """Delete the config's objects (LocalQueues first); what is already gone is fine."""
    for obj in reversed(manifests(cfg)):
        md = obj["metadata"]
        try:
            client.delete(obj["kind"], md["name"], md.get("namespace"), api_version=API)
        except KubeError:
            pass


# -- reading what Kueue decided ---------------------------------------------------------------------------------------


def _condition_true(obj: dict[str, Any], ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in obj.get("status", {}).get("conditions", []) or [])


def is_admitted(wl: dict[str, Any]) -> bool:
    return _condition_true(wl, "Admitted")


def is_evicted(wl: dict[str, Any]) -> bool:
    return _condition_true(wl, "Evicted")


def is_preempted(wl: dict[str, Any]) -> bool:
    return _condition_true(wl, "Preempted")


def workload_gpus(wl: dict[str, Any], resource: str = GPU) -> int:
    """GPUs the workload asks for in all (count x per-pod request, over its pod sets)."""
    total = 0
    for ps in wl.get("spec", {}).get("podSets", []) or []:
        per_pod = 0
        for c in ps.get("template", {}).get("spec", {}).get("containers", []) or []:
            res = c.get("resources", {})
            per_pod += int((res.get("requests") or res.get("limits") or {}).get(resource, 0) or 0)
        total += per_pod * int(ps.get("count", 1))
    return total


def admitted_queue(wl: dict[str, Any]) -> str | None:
    adm = wl.get("status", {}).get("admission") or {}
    return adm.get("clusterQueue") if is_admitted(wl) else None


def workloads(client: KubeClient, namespaces: Iterable[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ns in namespaces:
        out += client.list("Workload", ns, api_version=API)["items"]
    return out


def owner_name(wl: dict[str, Any]) -> str:
    """The name of the job that owns a Workload (Kueue names workloads ``job-<name>-<hash>``)."""
    refs = wl["metadata"].get("ownerReferences") or []
    return str(refs[0]["name"]) if refs else str(wl["metadata"]["name"])


@dataclass(frozen=True)
class QueueUsage:
    """What one ClusterQueue holds, as Kueue's status reports it."""

    total: int
    """GPUs of admitted workloads (``flavorsUsage``)."""
    borrowed: int
    admitted: int
    pending: int


def admitted_usage(cfg: QueueConfig, views: Iterable[WorkloadView]) -> dict[str, QueueUsage]:
    """Per ClusterQueue, GPUs of the workloads Kueue admitted to it, from the Workloads themselves (the
    ClusterQueue's own status is a summary Kueue updates a moment later); ``borrowed`` is what exceeds nominal."""
    views = list(views)
    out: dict[str, QueueUsage] = {}
    for team in cfg.teams:
        mine = [v for v in views if v.admitted_to == team.name]
        total = sum(v.gpus for v in mine)
        pending = sum(1 for v in views if v.admitted_to is None and v.namespace == team.namespace
                      and v.queue == team.name)
        out[team.name] = QueueUsage(total, max(0, total - team.gpus), len(mine), pending)
    return out


def queue_usage(client: KubeClient, cfg: QueueConfig) -> dict[str, QueueUsage]:
    """What each ClusterQueue's status reports (a summary Kueue updates shortly after its decisions)."""
    out: dict[str, QueueUsage] = {}
    for team in cfg.teams:
        st = client.get("ClusterQueue", team.name, api_version=API).get("status", {})
        total = borrowed = 0
        for fl in st.get("flavorsUsage", []) or []:
            for r in fl.get("resources", []) or []:
                if r.get("name") == cfg.resource:
                    total += int(r.get("total", 0) or 0)
                    borrowed += int(r.get("borrowed", 0) or 0)
        out[team.name] = QueueUsage(total, borrowed, int(st.get("admittedWorkloads", 0)),
                                    int(st.get("pendingWorkloads", 0)))
    return out


# -- settling: waiting for Kueue's verdict on every workload ------------------------------------------------------------

RUN_LABEL = BATCH_LABEL
"""Label on the jobs (and their pods) of one batch of submissions, so one watch sees all of them; Kueue copies it
onto their Workloads."""


def has_verdict(wl: dict[str, Any]) -> bool:
    """Kueue has decided about the workload: admitted, or judged (QuotaReserved False with its reason)."""
    if is_admitted(wl):
        return not (is_evicted(wl) or is_preempted(wl))  # evicted but still holding quota: not decided yet
    for c in wl.get("status", {}).get("conditions", []) or []:
        if c.get("type") == "QuotaReserved" and c.get("status") == "False" and c.get("message"):
            return "preemption" not in str(c["message"]).lower()  # "Pending the preemption of N workload(s)"
    return False


def verdict_message(wl: dict[str, Any]) -> str:
    for c in wl.get("status", {}).get("conditions", []) or []:
        if c.get("type") in ("QuotaReserved", "Evicted", "Preempted") and c.get("message"):
            return str(c["message"])
    return ""


@dataclass(frozen=True)
class WorkloadView:
    """One job's workload as Kueue left it, with its pods as the scheduler left them."""

    job: str
    namespace: str
    queue: str
    """The LocalQueue the job was submitted to."""
    gpus: int
    admitted_to: str | None
    pods: int
    bound: int
    message: str
    preempted: bool


def settle(client: KubeClient, batch: str, jobs: int, *, timeout: float = 30.0,
           stable_s: float = 2.0) -> list[WorkloadView]:
    """Poll until Kueue has a verdict on each of the batch's ``jobs`` workloads and the pods agree with the
    verdicts *as they stand at that read* (an admitted job's pods all bound, a pending job's pods all gone), and
    that agreement holds for ``stable_s`` (a preemption is a sequence: the victim's eviction, its pods' deletion, the
    preemptor's admission, its pods' binding; a read in between agrees with a state that is about to change).  At
    the deadline, returns what is there: the caller's invariants then say what is wrong."""
    deadline = time.monotonic() + timeout
    agreed_since: float | None = None
    while True:
        wls = [w for w in client.list("Workload", api_version=API)["items"] if _batch_of(w) == batch]
        pods = client.list("Pod", label_selector=f"{RUN_LABEL}={batch}")["items"]
        views = _views(wls, pods)
        now = time.monotonic()
        if _agree(wls, pods, jobs):
            agreed_since = now if agreed_since is None else agreed_since
            if now - agreed_since >= stable_s:
                return views
        else:
            agreed_since = None
        if now >= deadline:
            return views
        time.sleep(0.5)


def _agree(wls: list[dict[str, Any]], pods: list[dict[str, Any]], jobs: int) -> bool:
    """Every one of ``jobs`` workloads has a verdict, and each job has exactly the pods its verdict wants, all
    bound and none terminating."""
    if len(wls) < jobs or not all(has_verdict(w) for w in wls):
        return False
    if any(p["metadata"].get("deletionTimestamp") for p in pods):
        return False
    per: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in pods:
        per.setdefault((p["metadata"]["namespace"], _job_of(p)), []).append(p)
    want = {(w["metadata"]["namespace"], owner_name(w)): _pods_wanted(w) for w in wls}
    if set(per) - set(want):
        return False
    return all(len(per.get(k, [])) == n and all(is_bound(p) for p in per.get(k, [])) for k, n in want.items())


def _views(wls: list[dict[str, Any]], pods: list[dict[str, Any]]) -> list[WorkloadView]:
    out = []
    for w in wls:
        ns, job_name = w["metadata"]["namespace"], owner_name(w)
        mine = [p for p in pods if p["metadata"]["namespace"] == ns and _job_of(p) == job_name]
        out.append(WorkloadView(job_name, ns, str(w.get("spec", {}).get("queueName", "")), workload_gpus(w),
                                admitted_queue(w), len(mine),
                                sum(1 for p in mine if is_bound(p)), verdict_message(w),
                                is_preempted(w) or is_evicted(w)))
    return sorted(out, key=lambda v: (v.namespace, v.job))


def _job_of(pod: dict[str, Any]) -> str:
    return str(pod["metadata"].get("labels", {}).get("batch.kubernetes.io/job-name", ""))


def _pods_wanted(wl: dict[str, Any]) -> int:
    if not is_admitted(wl):
        return 0
    return sum(int(ps.get("count", 1)) for ps in wl.get("spec", {}).get("podSets", []) or [])


def _batch_of(wl: dict[str, Any]) -> str:
    return str((wl["metadata"].get("labels") or {}).get(RUN_LABEL, ""))


# -- a queue config from YAML (the simulator's --policy kueue, a user's file) ------------------------------------------


def parse_queue_config(data: Any, *, where: str = "queues") -> QueueConfig:
    """``{cohort: NAME, flavor: NAME, teams: [{name, namespace, gpus, borrowingLimit?, lendingLimit?, weight?,
    reclaimWithinCohort?, withinClusterQueue?}]}`` as a QueueConfig; ConfigError naming the bad field.  What only
    Kueue can judge (its webhook) is left to Kueue: :func:`apply_queues` raises its message."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = sorted(set(data) - {"cohort", "flavor", "teams", "queueingStrategy", "fairSharing"})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown field")
    cohort = data.get("cohort")
    if not isinstance(cohort, str) or not cohort:
        raise ConfigError(f"{where}.cohort: must be a non-empty name")
    teams_raw = data.get("teams")
    if not isinstance(teams_raw, list) or not teams_raw:
        raise ConfigError(f"{where}.teams: must be a non-empty list")
    teams = []
    keys = {"name", "namespace", "gpus", "borrowingLimit", "lendingLimit", "weight", "reclaimWithinCohort",
            "withinClusterQueue"}
    for i, t in enumerate(teams_raw):
        at = f"{where}.teams[{i}]"
        if not isinstance(t, dict):
            raise ConfigError(f"{at}: must be a mapping")
        bad = sorted(set(t) - keys)
        if bad:
            raise ConfigError(f"{at}.{bad[0]}: unknown field")
        for k in ("name", "namespace"):
            if not isinstance(t.get(k), str) or not t[k]:
                raise ConfigError(f"{at}.{k}: must be a non-empty name")
        ints: dict[str, int | None] = {}
        for k in ("gpus", "borrowingLimit", "lendingLimit"):
            v = t.get(k)
            if v is None and k != "gpus":
                ints[k] = None
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"{at}.{k}: must be an integer >= 0, got {v!r}")
            ints[k] = v
        weight = t.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            raise ConfigError(f"{at}.weight: must be a number >= 0, got {weight!r}")
        for k, default in (("reclaimWithinCohort", "Any"), ("withinClusterQueue", "LowerPriority")):
            if t.get(k, default) not in PREEMPTION_POLICIES:
                raise ConfigError(f"{at}.{k}: must be one of {', '.join(PREEMPTION_POLICIES)}, got {t.get(k)!r}")
        gpus = ints["gpus"]
        assert gpus is not None
        teams.append(TeamQueue(t["name"], t["namespace"], gpus, borrowing_limit=ints["borrowingLimit"],
                               lending_limit=ints["lendingLimit"], weight=float(weight),
                               reclaim_within_cohort=t.get("reclaimWithinCohort", "Any"),
                               within_cluster_queue=t.get("withinClusterQueue", "LowerPriority")))
    return QueueConfig(cohort=cohort, teams=tuple(teams), flavor=str(data.get("flavor", "gpu")),
                       queueing_strategy=str(data.get("queueingStrategy", "BestEffortFIFO")),
                       fair_sharing=bool(data.get("fairSharing", True)))
