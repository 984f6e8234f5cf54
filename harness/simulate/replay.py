"""Replays a trace under one policy on a fresh local tier S cluster and records what the cluster did.

Owns the replay: the cluster (a pool of simulated 8-GPU nodes, the policy's gates and addons), the paced
submission of each job's real objects at its arrival time (compressed), and a recorder that follows every
simulated pod through the API's watch (bound, running, finished, stopped early and why).  KWOK plays running time
(its ``aiconform-pod-complete`` stage ends a pod after the job's compressed duration); the scheduler, the Job
controller, preemption and admission are the real ones.  Nothing here decides a placement.

Times are taken when the API's watch delivered each change (monotonic, ms precision), because the objects' own
timestamps have whole-second precision, which is minutes of trace time at high compression.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_gpu_plugin.config import parse_gpu
from harness.config import ControlPlane, Pool, Profile, Taint
from harness.contract import GPU_RESOURCE
from harness.errors import AiconformError, ApiError, ClusterError
from harness.kube import KubeClient, KubeConfig
from harness.simulate.policies import LABEL_JOB, LABEL_SIM, LABEL_TEAM, JobContext, Policy, job_objects
from harness.simulate.trace import GPUS_PER_NODE, Trace, TraceJob

Progress = Callable[[str], None]
GPU_MODEL = "A100-SXM4-80GB"


@dataclass(frozen=True)
class ReplaySettings:
    nodes: int = 16
    """Simulated nodes of 8 GPUs each."""
    compression: float = 300.0
    """Trace seconds played per wall second (declared in the report); the controllers' timers are divided by it too
    (the profile's ``time_compression``, harness/timescale.py)."""
    deadline_s: float = 0.0
    """Wall seconds to wait for every job to finish after the last arrival; 0: 3 × the compressed span + 60 s."""
    root: Path | None = None
    """State root of the replay's clusters (default: aiconform's)."""

    @property
    def total_gpus(self) -> int:
        return self.nodes * GPUS_PER_NODE


@dataclass
class PodRecord:
    """One pod as the API showed it: times in wall seconds since the replay started."""

    name: str
    job: str
    team: str
    gpus: int
    created: float
    bound: float | None = None
    running: float | None = None
    succeeded: float | None = None
    stopped: float | None = None
    """Deleted or failed before it succeeded (preempted, evicted)."""
    stop_reason: str = ""
    node: str = ""


@dataclass(frozen=True)
class Observation:
    """What the cluster did with one trace under one policy."""

    policy: str
    compression: float
    total_gpus: int
    nodes: int
    submitted: dict[str, float]
    """Job → wall time the API accepted its Job."""
    pods: tuple[PodRecord, ...]
    preemption_events: dict[str, int]
    """Namespace (team) → Events with reason Preempted (the scheduler's or the admission controller's)."""
    end: float
    """Wall seconds from the first arrival until every job finished or the deadline passed."""
    finished: bool
    kubernetes: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def simulation_profile(policy: Policy, settings: ReplaySettings) -> Profile:
    gpu = parse_gpu({"model": GPU_MODEL, "count": GPUS_PER_NODE}, at="gpu", pool="sim")
    pool = Pool(name="sim", nodes=settings.nodes, gpu=gpu, cpu="96", memory="1Ti",
                taints=(Taint(key=GPU_RESOURCE, value="present", effect="NoSchedule"),))
    cp = ControlPlane(feature_gates=dict(policy.feature_gates), runtime_config=dict(policy.runtime_config),
                      time_compression=settings.compression)
    return Profile(name=f"simulate-{policy.name}", pools=(pool,), control_plane=cp, addons=policy.addons,
                   source="aiconform simulate")


@contextmanager
def simulation_cluster(policy: Policy, settings: ReplaySettings, progress: Progress) -> Iterator[KubeClient]:
    from harness.providers import provider_for
    from harness.providers.base import ProviderOptions

    profile = simulation_profile(policy, settings)
    cluster = provider_for(profile, f"sim-{policy.name}-{secrets.token_hex(2)}",
                           ProviderOptions(root=settings.root, progress=progress))
    try:
        client = KubeClient(KubeConfig.from_file(cluster.create(profile)))
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.delete()


def replay(policy: Policy, trace: Trace, settings: ReplaySettings, *, progress: Progress) -> Observation:
    """Bring up a cluster for ``policy``, replay ``trace`` on it, tear it down; what the API showed."""
    with simulation_cluster(policy, settings, progress) as client:
        return replay_on(client, policy, trace, settings, progress=progress)


def replay_on(client: KubeClient, policy: Policy, trace: Trace, settings: ReplaySettings, *,
              progress: Progress) -> Observation:
    for team in trace.teams:
        client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team, "labels": {LABEL_SIM: "true"}}})
    client.wait_all("ServiceAccount", [f"{t}/default" for t in trace.teams], lambda _o: True,
                    timeout=60, what="the teams' default service accounts")
    policy.setup(client, trace, settings.total_gpus)
    recorder = Recorder(client.config, {j.name: j.pods for j in trace.jobs})
    recorder.start()
    try:
        recorder.synced.wait(30)
        t0 = time.monotonic()
        recorder.t0 = t0
        submitted = _submit(client, policy, trace, settings, t0, recorder, progress)
        span = max(j.arrival_s for j in trace.jobs) / settings.compression
        deadline = settings.deadline_s or 3 * (span + max(j.duration_s for j in trace.jobs) / settings.compression) + 60
        finished = recorder.all_done.wait(timeout=max(1.0, t0 + span + deadline - time.monotonic()))
        end = time.monotonic() - t0
        if recorder.error is not None:
            raise ClusterError(f"simulate {policy.name}: following the pods failed: {recorder.error}")
    finally:
        recorder.stop.set()
    events = _preemption_events(client, trace.teams)
    done = sum(1 for j in trace.jobs if recorder.job_done(j.name))
    pods = recorder.snapshot()
    notes: tuple[str, ...] = () if finished else (unfinished(trace, pods, recorder.job_done),)
    progress(f"simulate {policy.name}: {done}/{len(trace.jobs)} jobs finished in {end:.1f}s wall"
             + "".join(f" (deadline passed; {n})" for n in notes))
    return Observation(policy=policy.name, compression=settings.compression, total_gpus=settings.total_gpus,
                       nodes=settings.nodes, submitted=submitted, pods=tuple(pods),
                       preemption_events=events, end=end, finished=finished, kubernetes=client.server_version(),
                       notes=notes)


def unfinished(trace: Trace, pods: list[PodRecord], done: Callable[[str], bool]) -> str:
    """What the jobs not finished at the deadline were waiting on, from the pods the API showed: no live pod (not
    admitted or not yet created), pods not bound (the scheduler), or pods running."""
    live: dict[str, list[PodRecord]] = {}
    for p in pods:
        if p.succeeded is None and p.stopped is None:
            live.setdefault(p.job, []).append(p)
    waiting = {"without a live pod (not admitted, or not yet created)": 0, "with pods not yet bound": 0,
               "with every live pod bound (running)": 0}
    keys = list(waiting)
    for j in trace.jobs:
        if done(j.name):
            continue
        mine = live.get(j.name, [])
        waiting[keys[0] if not mine else keys[1] if any(p.bound is None for p in mine) else keys[2]] += 1
    total = sum(waiting.values())
    return f"{total} jobs unfinished: " + ", ".join(f"{n} {what}" for what, n in waiting.items() if n)


def _submit(client: KubeClient, policy: Policy, trace: Trace, settings: ReplaySettings, t0: float,
            recorder: Recorder, progress: Progress, workers: int = 4) -> dict[str, float]:
    """Create each job's objects at its (compressed) arrival time.  A few workers, each on its own connection, so
    that a burst of arrivals is not serialised behind one request at a time; a job's time is when the API accepted
    its Job."""
    submitted: dict[str, float] = {}
    lock = threading.Lock()
    local = threading.local()
    clients: list[KubeClient] = []

    def create(tj: TraceJob) -> None:
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = KubeClient(client.config)
            with lock:
                clients.append(c)
        for obj in job_objects(policy, tj, JobContext(namespace=tj.team, compression=settings.compression)):
            c.create_fast(obj)
        with lock:
            submitted[tj.name] = time.monotonic() - t0

    late = 0.0
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = []
            for i, tj in enumerate(trace.jobs):
                delay = t0 + tj.arrival_s / settings.compression - time.monotonic()
                if delay > 0 and recorder.stop.wait(delay):
                    break
                late = max(late, -delay)
                futures.append(pool.submit(create, tj))
                if (i + 1) % 200 == 0:
                    progress(f"simulate {policy.name}: {i + 1}/{len(trace.jobs)} jobs submitted")
            for f in futures:
                f.result()
    finally:
        for c in clients:
            c.close()
    lag = max((submitted[j.name] - j.arrival_s / settings.compression for j in trace.jobs if j.name in submitted),
              default=0.0)
    if max(late, lag) > 1.0:
        progress(f"simulate {policy.name}: submission fell up to {max(late, lag):.1f}s behind the trace's arrivals")
    return submitted


def _preemption_events(client: KubeClient, teams: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for team in teams:
        try:
            items = client.list("Event", team, field_selector="reason=Preempted").get("items", [])
        except ApiError:
            items = []
        out[team] = sum(int(e.get("count") or 1) for e in items)
    return out


class Recorder(threading.Thread):
    """Follows every simulated pod (label ``aiconform.io/sim``) through a list + watch on its own connection and
    keeps when each was bound, running, finished or stopped.  ``all_done`` is set once every job has as many
    Succeeded pods as it has completions."""

    def __init__(self, config: Any, pods_per_job: dict[str, int]) -> None:
        super().__init__(name="simulate-recorder", daemon=True)
        self.client = KubeClient(config)
        self.pods_per_job = pods_per_job
        self.t0 = time.monotonic()
        self.records: dict[str, PodRecord] = {}
        self.succeeded: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.synced = threading.Event()
        self.all_done = threading.Event()
        self.error: AiconformError | None = None
        self._pending_jobs = set(pods_per_job)

    def run(self) -> None:
        try:
            self._follow()
        except AiconformError as err:
            if not self.stop.is_set():
                self.error = err
                self.all_done.set()
        finally:
            self.client.close()

    def _follow(self) -> None:
        path = self.client.path("v1", "Pod")
        selector = f"{LABEL_SIM}=true"
        while not self.stop.is_set():
            listing = self.client.list("Pod", label_selector=selector)
            for pod in listing.get("items", []):
                self._see("ADDED", pod)
            rv = listing.get("metadata", {}).get("resourceVersion")
            self.synced.set()
            try:
                while not self.stop.is_set():
                    for etype, pod in self.client.watch(path, resource_version=rv, label_selector=selector,
                                                        timeout=30):
                        rv = pod.get("metadata", {}).get("resourceVersion", rv)
                        self._see(etype, pod)
                        if self.stop.is_set():
                            return
            except ApiError as err:
                if err.status != 410:
                    raise

    def _see(self, etype: str, pod: dict[str, Any]) -> None:
        now = time.monotonic() - self.t0
        md = pod.get("metadata", {})
        labels = md.get("labels", {}) or {}
        key = f"{md.get('namespace')}/{md.get('name')}"
        spec, status = pod.get("spec", {}), pod.get("status", {}) or {}
        with self.lock:
            rec = self.records.get(key)
            if rec is None:
                gpus = sum(int(c.get("resources", {}).get("limits", {}).get(GPU_RESOURCE, 0))
                           for c in spec.get("containers", []))
                rec = PodRecord(name=key, job=labels.get(LABEL_JOB, ""), team=labels.get(LABEL_TEAM, ""), gpus=gpus,
                                created=now)
                self.records[key] = rec
            if rec.succeeded is not None or rec.stopped is not None:
                return
            if spec.get("nodeName") and rec.bound is None:
                rec.bound, rec.node = now, spec["nodeName"]
            phase = status.get("phase")
            if phase in ("Running", "Succeeded") and rec.running is None:
                rec.running = now
            if phase == "Succeeded":
                rec.succeeded = now
                self.succeeded[rec.job] = self.succeeded.get(rec.job, 0) + 1
                if self.succeeded[rec.job] >= self.pods_per_job.get(rec.job, 1):
                    self._pending_jobs.discard(rec.job)
                    if not self._pending_jobs:
                        self.all_done.set()
            elif phase == "Failed" or etype == "DELETED" or md.get("deletionTimestamp"):
                rec.stopped = now
                rec.stop_reason = _disruption(status) or ("Failed" if phase == "Failed" else "Deleted")

    def job_done(self, job: str) -> bool:
        with self.lock:
            return job not in self._pending_jobs

    def snapshot(self) -> list[PodRecord]:
        with self.lock:
            return [PodRecord(**r.__dict__) for r in self.records.values()]


def _disruption(status: dict[str, Any]) -> str:
    for c in status.get("conditions", []) or []:
        if c.get("type") == "DisruptionTarget" and c.get("status") == "True":
            return str(c.get("reason") or "DisruptionTarget")
    return ""
