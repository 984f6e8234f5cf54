"""Running the training workload on a cluster: the waits and reads the training scenarios and the bench share.

Every wait is a watch with a deadline that fails fast, carrying the operator's and the pods' own messages (TrainJob
``Failed`` condition, a pod waiting on a missing image, a volume that cannot be mounted, a container that exited
non-zero); pod logs are followed with a deadline.  Owns no verdict: callers assert.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import AiconformError, ApiError, PlatformFault, ServerError, WaitFailed, WaitTimeout
from harness.kube import KubeClient, Obj
from harness.workloads import BAD_WAITING_REASONS
from reference_workloads.training import logs
from reference_workloads.training.manifests import JOB_NAME_LABEL

EVENT_RECHECK_S = 5.0
"""How often a pod wait reads the namespace's events again (events change no pod, so no pod watch sees them)."""
_BAD_EVENTS = ("FailedMount", "FailedAttachVolume", "FailedScheduling", "FailedCreate", "BackoffLimitExceeded")


def condition(obj: Obj, kind: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def pods_of(client: KubeClient, namespace: str, job: str) -> list[Obj]:
    return list(client.list("Pod", namespace, label_selector=f"{JOB_NAME_LABEL}={job}").get("items", []))


def pod_problem(pod: Obj) -> str | None:
    """The pod's own reason it cannot run or why it stopped, if it has one (missing image, crash, non-zero exit with
    its termination message: the runtime's container falls back to its last log lines)."""
    name = pod["metadata"]["name"]
    for cs in pod.get("status", {}).get("containerStatuses", []) or []:
        waiting = cs.get("state", {}).get("waiting") or {}
        if waiting.get("reason") in BAD_WAITING_REASONS:
            return f"pod {name}: {waiting['reason']}: {waiting.get('message', '')}".strip()
        term = cs.get("state", {}).get("terminated") or {}
        if term and term.get("exitCode", 0) != 0:
            msg = " ".join((term.get("message") or term.get("reason") or "").split())[-400:]
            return f"pod {name} exited {term.get('exitCode')}: {msg}"
    return None


def recent_events(client: KubeClient, namespace: str, reasons: tuple[str, ...] = _BAD_EVENTS) -> list[str]:
    """Warning events of the namespace with those reasons, as ``Kind/name: reason: message`` (newest last)."""
    out = []
    for ev in client.list("Event", namespace).get("items", []):
        if ev.get("reason") in reasons:
            inv = ev.get("involvedObject", {})
            out.append(f"{inv.get('kind')}/{inv.get('name')}: {ev.get('reason')}: {ev.get('message', '').strip()}")
    return out


TRANSIENT_MOUNT_ERRORS = ("no relationship found between node",)
"""FailedMount messages the kubelet recovers from by itself: the apiserver's node authorizer lets a kubelet read a
pod's PVC only once its graph holds the pod's binding, which can lag the pod's arrival on the node (seen here under
load; kubernetes/kubernetes#113429).  The kubelet retries the mount; a wait must not end on it."""


def mount_failures(client: KubeClient, namespace: str) -> list[str]:
    """The namespace's FailedMount events that are not :data:`TRANSIENT_MOUNT_ERRORS` (newest last)."""
    return [m for m in recent_events(client, namespace, ("FailedMount",))
            if not any(t in m for t in TRANSIENT_MOUNT_ERRORS)]


def _diagnose(client: KubeClient, namespace: str, name: str, job: Obj | None) -> str:
    parts = []
    if job is not None:
        for c in job.get("status", {}).get("conditions", []) or []:
            parts.append(f"TrainJob {c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}")
    for pod in pods_of(client, namespace, name):
        problem = pod_problem(pod)
        phase = pod.get("status", {}).get("phase", "?")
        parts.append(problem or f"pod {pod['metadata']['name']}: {phase}")
    parts += recent_events(client, namespace)[-5:]
    return "; ".join(parts) or "no pods and no events"


def wait_runtime_known(client: KubeClient, namespace: str, runtime: str, *, timeout: float = 30) -> None:
    """Until Trainer's validating webhook knows a TrainingRuntime just created: it judges TrainJobs from its own
    informer cache, which sees a new runtime a moment after the apiserver stored it (a TrainJob created in between
    is refused with "... not found").  A server-side dry run of a TrainJob naming it goes through the webhook and
    stores nothing; the webhook has no watchable state, so this polls, with a deadline.  A webhook that still does
    not know the runtime at the deadline is a PlatformFault naming it (the check is ``failed``)."""
    from reference_workloads.training.manifests import train_job

    probe = train_job("runtime-probe", namespace, runtime=runtime, steps=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.create(probe, namespace=namespace, dry_run=True)
            return
        except ServerError:  # a 5xx (the apiserver could not call the webhook) is no verdict of the webhook
            raise
        except ApiError as err:
            if "not found" in str(err) and time.monotonic() <= deadline:
                time.sleep(0.2)
                continue
            waited = f" still after {timeout:.0f}s" if "not found" in str(err) else ""
            raise PlatformFault("Trainer's validating webhook",
                                f"it refused a dry-run TrainJob on TrainingRuntime {namespace}/{runtime}{waited}: "
                                f"{err}") from err


def wait_trainjob(client: KubeClient, namespace: str, name: str, *, timeout: float) -> Obj:
    """Watch the TrainJob until it is Complete; WaitFailed at once when it is Failed (the operator's message, and
    its pods' and events' messages); WaitTimeout at the deadline with everything the cluster said (a pod that cannot
    start: use :func:`wait_pods_running` first, which fails on it at once)."""
    last: dict[str, Obj | None] = {"job": None}
    key = f"{namespace}/{name}"

    def done(state: dict[str, Obj]) -> bool:
        job = state.get(key)
        last["job"] = job
        c = condition(job, "Complete") if job else None
        return bool(c and c.get("status") == "True")

    def failure(state: dict[str, Obj]) -> str | None:
        job = state.get(key)
        if job is None:
            return None
        c = condition(job, "Failed")
        if c and c.get("status") == "True":
            return f"TrainJob {namespace}/{name} Failed: {c.get('reason', '')}: {c.get('message', '')}; " + \
                _diagnose(client, namespace, name, job)
        return None

    try:
        return client.wait_for("TrainJob", namespace=namespace, name=name, condition=done, failure=failure,
                               timeout=timeout, what=f"TrainJob {namespace}/{name} to complete")[key]
    except WaitTimeout as err:
        raise WaitTimeout(f"{err}; {_diagnose(client, namespace, name, last['job'])}") from err


def wait_pods_running(client: KubeClient, namespace: str, job: str, count: int, *, timeout: float,
                      exclude: frozenset[str] = frozenset()) -> list[Obj]:
    """Watch until ``count`` pods of the job (not named in ``exclude``) are Running; fails fast on a pod's own
    problem or a volume that cannot be mounted."""

    def running(state: dict[str, Obj]) -> list[Obj]:
        return [p for p in state.values() if p["metadata"]["name"] not in exclude
                and p.get("status", {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]

    def failure(state: dict[str, Obj]) -> str | None:
        for p in state.values():
            if p["metadata"]["name"] in exclude:
                continue
            problem = pod_problem(p)
            if problem:
                return problem
        mounts = mount_failures(client, namespace)
        return mounts[-1] if mounts else None

    # A FailedMount is an Event, not a change of the pod (it stays ContainerCreating): the pod watch runs in slices
    # and the events are read again between them, so a volume that cannot be mounted fails the wait soon after the
    # kubelet says so, not at the deadline.
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            state = client.wait_for("Pod", namespace=namespace, label_selector=f"{JOB_NAME_LABEL}={job}",
                                    condition=lambda s: len(running(s)) >= count, failure=failure,
                                    timeout=max(0.1, min(EVENT_RECHECK_S, left)),
                                    what=f"{count} pods of TrainJob {namespace}/{job} to run")
            return running(state)
        except WaitTimeout:
            mounts = mount_failures(client, namespace)
            if mounts:
                raise WaitFailed(mounts[-1]) from None
            if time.monotonic() >= deadline:
                raise


def pod_log(client: KubeClient, namespace: str, pod: str) -> str:
    return str(client.request("GET", client.kind_path("Pod", namespace, pod) + "/log", raw=True))


class LogFollower:
    """Follows one pod's log in a thread from its first line until the container ends (or ``timeout``), so the
    records written right up to a kill are kept even when the pod is deleted soon after."""

    def __init__(self, client: KubeClient, namespace: str, pod: str, *, timeout: float) -> None:
        self.pod = pod
        self.records: list[logs.Record] = []
        self.error = ""
        self._cond = threading.Condition()
        self._ended = False
        path = client.kind_path("Pod", namespace, pod) + "/log?follow=true"
        resp, self._lines = client.transport.stream(path, client._headers(None), timeout)  # noqa: SLF001
        if resp.status >= 400:
            raise WaitFailed(f"log of pod {namespace}/{pod}: HTTP {resp.status}: "
                             f"{resp.body.decode(errors='replace')[:300]}")
        self._thread = threading.Thread(target=self._run, name=f"log-{pod}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in self._lines:
                recs = logs.parse([raw.decode(errors="replace")])
                with self._cond:
                    self.records += recs
                    self._cond.notify_all()
        except AiconformError as err:
            self.error = str(err)
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def wait(self, until: Callable[[logs.Record], bool], *, timeout: float) -> logs.Record:
        """The first record satisfying ``until``; WaitFailed when the log ends first, WaitTimeout at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hit = next((r for r in self.records if until(r)), None)
                if hit is not None:
                    return hit
                if self._ended:
                    raise WaitFailed(f"pod {self.pod}: its log ended before the awaited line "
                                     f"(last: {json.dumps(self.records[-3:])}) {self.error}".strip())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(f"pod {self.pod}: the awaited log line did not come in {timeout:.0f}s "
                                      f"(last: {json.dumps(self.records[-3:])})")
                self._cond.wait(left)

    def finish(self, *, timeout: float) -> list[logs.Record]:
        """Wait (up to ``timeout``) for the log to end; returns every record read."""
        self._thread.join(timeout)
        with self._cond:
            return list(self.records)


@dataclass(frozen=True)
class RankLogs:
    """The records of every pod of one attempt, keyed by pod name."""

    by_pod: dict[str, list[logs.Record]]

    def attempt(self) -> logs.Attempt:
        return logs.attempt([r for recs in self.by_pod.values() for r in recs])


def collect(client: KubeClient, namespace: str, pods: list[str]) -> RankLogs:
    return RankLogs({p: logs.parse(pod_log(client, namespace, p)) for p in pods})
