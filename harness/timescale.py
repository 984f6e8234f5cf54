"""Controllers' timers on a cluster that plays time compressed (``aiconform simulate``): each timer the harness sets
is its production value divided by the compression factor, clamped to what the component accepts, and says so.

Owns the table of timers (component, setting, production value, the smallest value the component accepts and why)
and the arithmetic.  It renders no configuration: the local provider's kube-scheduler config
(harness/providers/local/components.py) and the Kueue addon's Configuration (harness/addons/kueue.py) read the values
from here, and the simulator's report states them.

Production values are upstream's defaults of the pinned versions: kube-scheduler ``podInitialBackoffSeconds`` 1 and
``podMaxBackoffSeconds`` 10 (pkg/scheduler/apis/config/v1/defaults.go), ``--pod-max-in-unschedulable-pods-duration``
5 min; Kueue ``waitForPodsReady.timeout`` 5 min (its v1beta1 default, the value its documentation gives),
``recoveryTimeout`` the timeout, ``requeuingStrategy.backoffBaseSeconds`` 60 and ``backoffMaxSeconds`` 3600
(apis/config/v1beta2/defaults.go).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

SCHEDULER = "kube-scheduler"
KUEUE = "kueue"


@dataclass(frozen=True)
class Timer:
    """One timer as a compressed cluster sets it."""

    component: str
    setting: str
    production_s: float
    value_s: float
    """What the component is given: ``production_s / compression`` unless clamped."""
    clamped: str = ""
    """Why ``value_s`` is not ``production_s / compression`` (the component's limit); "" when it is."""
    note: str = ""
    """What the component does with it that no setting changes (a fixed period that checks it)."""

    def as_dict(self) -> dict[str, object]:
        return {"component": self.component, "setting": self.setting, "production_s": self.production_s,
                "value_s": self.value_s, "clamped": self.clamped, "note": self.note}


def _scaled(component: str, setting: str, production_s: float, compression: float, *, whole_seconds: bool,
            minimum: float, why: str) -> Timer:
    """``production_s / compression``, rounded to whole seconds (``whole_seconds``, an integer field) or to the
    millisecond (a duration), and raised to ``minimum`` when below it (``why``: the component's rule)."""
    exact = production_s / compression
    value = float(round(exact)) if whole_seconds else round(exact, 3)
    if value < minimum:
        return Timer(component, setting, production_s, minimum, f"{exact:.3g} s → {minimum:g} s: {why}")
    if whole_seconds and not math.isclose(value, exact, rel_tol=1e-9):
        return Timer(component, setting, production_s, value, f"{exact:.3g} s → {value:g} s: whole seconds only")
    return Timer(component, setting, production_s, value)


def scheduler_timers(compression: float) -> dict[str, Timer]:
    """kube-scheduler's pod backoffs (KubeSchedulerConfiguration, integer seconds) and how long an unschedulable pod
    waits for a cluster event before it is retried anyway (a duration flag)."""
    initial = _scaled(SCHEDULER, "podInitialBackoffSeconds", 1, compression, whole_seconds=True, minimum=1,
                      why="kube-scheduler requires integer seconds > 0")
    maximum = _scaled(SCHEDULER, "podMaxBackoffSeconds", 10, compression, whole_seconds=True,
                      minimum=initial.value_s, why="kube-scheduler requires >= podInitialBackoffSeconds")
    unschedulable = replace(
        _scaled(SCHEDULER, "--pod-max-in-unschedulable-pods-duration", 300, compression, whole_seconds=False,
                minimum=0.001, why="a positive duration (ms precision here)"),
        note="kube-scheduler looks for such pods every 30 s (a fixed period): a pod no cluster event moves waits "
             "up to 30 s more")
    return {t.setting: t for t in (initial, maximum, unschedulable)}


def kueue_timers(compression: float) -> dict[str, Timer]:
    """Kueue's all-or-nothing timers (Configuration ``waitForPodsReady``): the timeout and recovery timeout
    (durations) and the requeue backoff (integer seconds)."""
    timeout = _scaled(KUEUE, "waitForPodsReady.timeout", 300, compression, whole_seconds=False, minimum=0.001,
                      why="Kueue requires a positive timeout (ms precision here)")
    recovery = _scaled(KUEUE, "waitForPodsReady.recoveryTimeout", 300, compression, whole_seconds=False,
                       minimum=0.001, why="a positive duration (ms precision here)")
    base = _scaled(KUEUE, "waitForPodsReady.requeuingStrategy.backoffBaseSeconds", 60, compression,
                   whole_seconds=True, minimum=1,
                   why="integer seconds; Kueue accepts 0, but 0 turns the requeue backoff off")
    cap = _scaled(KUEUE, "waitForPodsReady.requeuingStrategy.backoffMaxSeconds", 3600, compression,
                  whole_seconds=True, minimum=base.value_s, why="integer seconds, >= backoffBaseSeconds")
    return {t.setting: t for t in (timeout, recovery, base, cap)}


def timers(compression: float, components: tuple[str, ...] = (SCHEDULER, KUEUE)) -> list[Timer]:
    """Every timer of ``components`` at ``compression``, in a stable order."""
    out: list[Timer] = []
    if SCHEDULER in components:
        out += scheduler_timers(compression).values()
    if KUEUE in components:
        out += kueue_timers(compression).values()
    return out


def duration(seconds: float) -> str:
    """A Go duration string (``metav1.Duration``, ``time.ParseDuration``): ``1s``, ``0.333s``, ``300s``."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
