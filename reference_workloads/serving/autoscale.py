"""The autoscaling experiment behind the ``pod_autoscaling`` check and the bench's HPA reaction figure: a model
server Deployment with a CPU limit, an autoscaling/v2 HPA on its per-pod queue depth (custom.metrics.k8s.io, served
by prometheus-adapter), and locust offering a fixed request rate one replica cannot serve.

It records a timeline, once a second: ready replicas, the HPA's desired replicas, the per-pod queue depth as the HPA
reads it (the custom metrics API), and afterwards merges locust's per-second sent/served/p99.  It decides nothing:
the scale decisions are the real HPA controller's; the caller judges the phases (:func:`phases`).

Every wait has a deadline.  What the platform does not do is a PlatformFault naming the part (the HPA controller
that never acts on the HPA, custom.metrics.k8s.io that never serves the queue metric): the check is ``failed``.  A
model server that does not start or a locust run that fails (aiconform's own workloads) raises WorkloadError with the
component's own log lines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ApiError, ControllerInactive, KubeError, PlatformFault, WaitFailed, WaitTimeout, WorkloadError
from harness.kube import KubeClient
from harness.proc import poll_until
from reference_workloads.serving.deploy import ModelEndpoint, apply_model, logs_of, model_image, remove_model
from reference_workloads.serving.load import LoadResult, LoadSpec, start_load
from reference_workloads.serving.manifests import QUEUE_METRIC, ModelSpec, queue_depth_hpa

CUSTOM_METRICS = "/apis/custom.metrics.k8s.io/v1beta1"


@dataclass(frozen=True)
class AutoscaleParams:
    """The experiment's knobs (defaults sized for a 2-core machine)."""

    cpu: str = "200m"
    """CPU limit per replica: what makes one replica's capacity finite."""
    users: int = 24
    rate_per_user: float = 1.0
    """Offered rate = users x rate_per_user requests per second."""
    min_replicas: int = 1
    max_replicas: int = 4
    average_queue: float = 2.0
    """The HPA's per-pod queue-depth target (AverageValue)."""
    scale_down_window_s: int = 10
    max_load_s: float = 150.0
    """Locust stops at the latest after this long (earlier once phase 3 has held ``hold_s``)."""
    hold_s: float = 8.0
    scale_in_timeout_s: float = 120.0
    metric_timeout_s: float = 90.0
    """Deadline for the adapter to serve the new pods' queue metric."""

    @property
    def offered_rps(self) -> float:
        return self.users * self.rate_per_user


@dataclass
class Sample:
    t: float
    """Seconds since the load started (negative before)."""
    ready: int
    desired: int
    queue: float | None
    """Mean of the per-pod queue depth values the custom metrics API serves (None: no value yet)."""
    queue_by_pod: dict[str, float] = field(default_factory=dict)


@dataclass
class Timeline:
    params: AutoscaleParams
    endpoint: ModelEndpoint
    samples: list[Sample]
    load: LoadResult
    load_stopped_at: float
    """Seconds since the load started when it was stopped."""
    load_offset_s: float
    """Locust's first request, in the timeline's seconds (its per-second buckets are shifted by this)."""
    pods_seen: dict[str, str]
    """Every model server pod seen Ready → its node."""
    events: list[str]
    """The HPA's own events (SuccessfulRescale messages)."""


def parse_quantity(q: str) -> float:
    """A Kubernetes quantity as the custom metrics API serves it (``1500m``, ``2``, ``3k``)."""
    suffixes = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    if q and q[-1] in suffixes:
        return float(q[:-1]) * suffixes[q[-1]]
    return float(q)


def queue_depths(client: KubeClient, namespace: str, selector: str) -> dict[str, float]:
    """Per-pod queue depth as the HPA reads it, from custom.metrics.k8s.io (empty while the adapter has none)."""
    try:
        body = client.request("GET", f"{CUSTOM_METRICS}/namespaces/{namespace}/pods/*/{QUEUE_METRIC}",
                              params={"labelSelector": selector})
    except ApiError as err:
        if err.status in (404, 503):
            return {}
        raise
    return {i["describedObject"]["name"]: parse_quantity(str(i["value"])) for i in body.get("items", [])}


def wait_queue_metric(client: KubeClient, namespace: str, selector: str, pod: str, *, timeout: float = 60.0) -> dict[str, float]:
    """Until custom.metrics.k8s.io serves ``pod``'s queue depth (Prometheus scrapes it, the adapter relists);
    PlatformFault (custom.metrics.k8s.io) at the deadline.  The aggregated API has no watch for metric values: a
    bounded 1 s poll."""
    depths: dict[str, float] = {}

    def served() -> dict[str, float] | None:
        nonlocal depths
        depths = queue_depths(client, namespace, selector)
        return depths if pod in depths else None

    try:
        return poll_until(served, timeout=timeout, interval=1.0, what=f"{QUEUE_METRIC} of pod {namespace}/{pod}")
    except WaitTimeout:
        raise PlatformFault("custom.metrics.k8s.io", f"{CUSTOM_METRICS} did not serve {QUEUE_METRIC} of pod "
                                                     f"{namespace}/{pod} in {timeout:.0f}s; it served "
                                                     f"{depths or 'nothing'}") from None


def _sample(client: KubeClient, namespace: str, name: str, selector: str, t: float,
            pods_seen: dict[str, str]) -> Sample:
    dep = client.get("Deployment", name, namespace)
    hpa = client.get("HorizontalPodAutoscaler", name, namespace, api_version="autoscaling/v2")
    for p in client.list("Pod", namespace, label_selector=selector).get("items", []):
        conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", []) or []}
        if conds.get("Ready") == "True":
            pods_seen.setdefault(p["metadata"]["name"], p["spec"].get("nodeName", ""))
    q = queue_depths(client, namespace, selector)
    return Sample(t=round(t, 2), ready=int(dep.get("status", {}).get("readyReplicas", 0) or 0),
                  desired=int(hpa.get("status", {}).get("desiredReplicas", 0) or 0),
                  queue=(sum(q.values()) / len(q)) if q else None, queue_by_pod=q)


def run(client: KubeClient, namespace: str, workdir: Path, params: AutoscaleParams = AutoscaleParams(),
        *, name: str = "model-autoscale") -> Timeline:
    spec = ModelSpec(version="v1", replicas=params.min_replicas, image=model_image(), cpu=params.cpu, name=name)
    ep = apply_model(client, namespace, spec)
    selector = f"app.kubernetes.io/instance={name}"
    hpa = queue_depth_hpa(name, min_replicas=params.min_replicas, max_replicas=params.max_replicas,
                          average_queue=f"{params.average_queue:g}", scale_down_window_s=params.scale_down_window_s)
    hpa["metadata"]["namespace"] = namespace
    client.apply(hpa)
    _wait_metric_served(client, namespace, name, selector, params.metric_timeout_s)

    pods_seen: dict[str, str] = {}
    samples: list[Sample] = []
    wall0 = time.time()
    run_ = start_load(LoadSpec(ep.url, users=params.users, rate_per_user=params.rate_per_user,
                               duration_s=params.max_load_s), workdir / "autoscale-load.json")
    t0 = time.monotonic()
    stopped_at = params.max_load_s
    try:
        held_since: float | None = None
        peak_ready = params.min_replicas
        while time.monotonic() - t0 < params.max_load_s and run_.proc.poll() is None:
            s = _sample(client, namespace, name, selector, time.monotonic() - t0, pods_seen)
            samples.append(s)
            peak_ready = max(peak_ready, s.ready)
            scaled = peak_ready > params.min_replicas
            calm = s.queue is not None and s.queue < params.average_queue
            if scaled and calm:
                held_since = held_since if held_since is not None else s.t
                if s.t - held_since >= params.hold_s:
                    break
            else:
                held_since = None
            _tick(t0, len(samples))
        stopped_at = time.monotonic() - t0
        run_.interrupt()
        load = run_.result()
    finally:
        run_.stop()
    if load.requests == 0:
        raise WorkloadError(f"locust sent no request to {ep.url}" + run_.tail())

    # scale in: sample until the HPA is back at min replicas and the Deployment has that many (deadline)
    deadline = time.monotonic() + params.scale_in_timeout_s
    while time.monotonic() < deadline:
        s = _sample(client, namespace, name, selector, time.monotonic() - t0, pods_seen)
        samples.append(s)
        if s.desired == params.min_replicas and s.ready == params.min_replicas and _replicas(client, namespace, name) \
                == params.min_replicas:
            break
        _tick(t0, len(samples))
    events = hpa_events(client, namespace, name)
    client.delete("HorizontalPodAutoscaler", name, namespace, api_version="autoscaling/v2")
    remove_model(client, namespace, name)
    return Timeline(params, ep, samples, load, round(stopped_at, 2), round(load.started - wall0, 2), pods_seen, events)


def _tick(t0: float, n: int) -> None:
    """Sleep to the next whole second of the timeline (a 1 Hz sampler, bounded by the callers' deadlines)."""
    time.sleep(max(0.0, t0 + n - time.monotonic()))


def _replicas(client: KubeClient, namespace: str, name: str) -> int:
    return int(client.get("Deployment", name, namespace).get("spec", {}).get("replicas", 0) or 0)


def _wait_metric_served(client: KubeClient, namespace: str, name: str, selector: str, timeout: float) -> None:
    """Until the HPA has read the queue metric once (the adapter discovered the new series).  At the deadline: an HPA
    with no status at all is ControllerInactive (no HPA controller acted on it); one whose controller reports it
    cannot get the metric is a PlatformFault of custom.metrics.k8s.io, with the HPA's conditions and the adapter's
    log lines."""
    from harness.addons.prometheus_adapter import adapter_logs

    def has_metric(state: dict[str, Any]) -> bool:  # keys are namespace/name
        return any((m.get("pods") or {}).get("current") for hpa in state.values()
                   for m in hpa.get("status", {}).get("currentMetrics") or [])

    try:
        client.wait_for("HorizontalPodAutoscaler", namespace=namespace, name=name, condition=has_metric,
                        timeout=timeout, what=f"HPA {namespace}/{name} to read {QUEUE_METRIC}",
                        api_version="autoscaling/v2")
    except (WaitTimeout, WaitFailed) as err:
        hpa = client.get("HorizontalPodAutoscaler", name, namespace, api_version="autoscaling/v2")
        conds = "; ".join(f"{c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}"
                          for c in hpa.get("status", {}).get("conditions", []) or [])
        if not hpa.get("status", {}).get("conditions"):
            raise ControllerInactive("the HorizontalPodAutoscaler controller",
                                     f"HPA {namespace}/{name} has no status {timeout:.0f}s after it was created: no "
                                     "controller acted on it (is kube-controller-manager's horizontalpodautoscaling "
                                     "controller off?)") from err
        raise PlatformFault("custom.metrics.k8s.io", f"{err}; HPA conditions: {conds}" + adapter_logs(client)
                            + logs_of(client, namespace, selector, lines=5)) from err


def hpa_events(client: KubeClient, namespace: str, name: str) -> list[str]:
    try:
        items = client.list("Event", namespace, field_selector=f"involvedObject.name={name},"
                                                              "involvedObject.kind=HorizontalPodAutoscaler")
    except (ApiError, KubeError):
        return []
    return [f"{e.get('reason')}: {e.get('message')}" for e in items.get("items", [])]


# -- judging helpers (pure) ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phases:
    queue_rose_at: float | None
    """First second the queue (as the HPA reads it) was above target."""
    scaled_out_at: float | None
    """First second more than min replicas were Ready."""
    peak_ready: int
    served_reached_at: float | None
    """First second, after scale-out, where locust's served rate (3 s mean) reached 90% of the offered rate."""
    queue_fell_at: float | None
    """First second after scale-out with the queue back under target."""
    scaled_in_at: float | None
    """First second after the load stopped with min replicas again."""
    reaction_s: float | None
    """Queue above target → a new replica Ready (the bench's HPA reaction figure)."""


def phases(tl: Timeline, *, served_fraction: float = 0.9) -> Phases:
    p = tl.params
    rose = next((s.t for s in tl.samples if s.queue is not None and s.queue > p.average_queue), None)
    out = next((s.t for s in tl.samples if s.ready > p.min_replicas), None)
    peak = max((s.ready for s in tl.samples), default=0)
    fell = None if out is None else next(
        (s.t for s in tl.samples if s.t >= out and s.t <= tl.load_stopped_at and s.queue is not None
         and s.queue < p.average_queue), None)
    served_at = None
    if out is not None:
        tlx = {int(round(x["t"] + tl.load_offset_s)): x for x in tl.load.timeline}
        for sec in sorted(tlx):
            if sec < out or sec + 2 > tl.load_stopped_at:
                continue
            window = [tlx.get(sec + i, {}).get("served", 0.0) for i in range(3)]
            if sum(window) / 3 >= served_fraction * p.offered_rps:
                served_at = float(sec)
                break
    scaled_in = next((s.t for s in tl.samples if s.t > tl.load_stopped_at and s.ready == p.min_replicas
                      and s.desired == p.min_replicas), None)
    reaction = (out - rose) if (out is not None and rose is not None and out >= rose) else None
    return Phases(rose, out, peak, served_at, fell, scaled_in, reaction)


def series(tl: Timeline) -> dict[str, dict[str, list[list[float]]]]:
    """The timeline as chart series: requests per second, queue depth and replicas, p99 latency."""
    off = tl.load_offset_s
    load = [{**x, "t": x["t"] + off} for x in tl.load.timeline]
    return {
        "rate": {"offered (req/s)": [[x["t"], tl.params.offered_rps] for x in load if x["t"] <= tl.load_stopped_at],
                 "served (req/s)": [[x["t"], x["served"]] for x in load]},
        "queue_replicas": {"queue depth per pod (HPA's view)": [[s.t, s.queue] for s in tl.samples if s.queue is not None],
                           "ready replicas": [[s.t, float(s.ready)] for s in tl.samples],
                           "HPA desired replicas": [[s.t, float(s.desired)] for s in tl.samples],
                           "queue target": [[s.t, tl.params.average_queue] for s in tl.samples]},
        "p99": {"p99 latency (s)": [[x["t"], x["p99_s"]] for x in load if x["served"]]},
    }
