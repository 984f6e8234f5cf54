"""Controllers' timers on a time-compressed cluster (aiconform simulate): production values divided by the
compression, clamped to what kube-scheduler and Kueue accept, and the configs that carry them."""

from __future__ import annotations

from pathlib import Path

import yaml

from harness import timescale
from harness.addons import kueue
from harness.addons.base import AddonContext
from harness.bins import pinned_kubernetes
from harness.config import ControlPlane
from harness.providers.local import components as comp
from harness.simulate import report
from tests.unit.addon_fixtures import host_context


def test_timers_are_production_over_compression_and_clamps_say_why() -> None:
    k = timescale.kueue_timers(300)
    assert k["waitForPodsReady.timeout"].value_s == 1.0 and not k["waitForPodsReady.timeout"].clamped
    assert k["waitForPodsReady.requeuingStrategy.backoffMaxSeconds"].value_s == 12
    base = k["waitForPodsReady.requeuingStrategy.backoffBaseSeconds"]  # 60 s / 300 = 0.2 s: no integer above 0
    assert base.value_s == 1 and "0 turns the requeue backoff off" in base.clamped
    s = timescale.scheduler_timers(300)
    assert s["podInitialBackoffSeconds"].value_s == 1 and "integer seconds > 0" in s["podInitialBackoffSeconds"].clamped
    assert s["podMaxBackoffSeconds"].value_s == 1 and ">= podInitialBackoffSeconds" in s["podMaxBackoffSeconds"].clamped
    assert s["--pod-max-in-unschedulable-pods-duration"].value_s == 1.0
    assert "every 30 s" in s["--pod-max-in-unschedulable-pods-duration"].note  # a period no setting changes
    # at 1x nothing is clamped: the production values themselves
    assert all(t.value_s == t.production_s and not t.clamped for t in timescale.timers(1))
    tiny = timescale.kueue_timers(1e6)["waitForPodsReady.timeout"]  # 0.3 ms: below what is rendered, never "0s"
    assert tiny.clamped and timescale.duration(tiny.value_s) == "0.001s"
    # 10x: 60 s / 10 = 6 s exactly; 1 s / 10 rounds to 0, below the scheduler's minimum
    assert timescale.kueue_timers(10)["waitForPodsReady.requeuingStrategy.backoffBaseSeconds"].value_s == 6
    assert timescale.timers(7, (timescale.SCHEDULER,))[1].clamped  # 10 s / 7 = 1.43 s: whole seconds only
    assert timescale.duration(1 / 3) == "0.333s" and timescale.duration(300) == "300s"


def settings(compression: float | None) -> comp.Settings:
    return comp.Settings(
        paths=comp.Paths(Path("/run/c1")),
        ports=comp.Ports(etcd=2379, etcd_peer=2380, apiserver=6443, controller_manager=10257, scheduler=10259,
                         kwok=10247),
        control_plane=ControlPlane(time_compression=compression),
        kubernetes_version=pinned_kubernetes("default"),
    )


def test_scheduler_config_and_flags_carry_the_compressed_backoffs() -> None:
    cfg = comp.scheduler_config(settings(1000))
    assert (cfg["podInitialBackoffSeconds"], cfg["podMaxBackoffSeconds"]) == (1, 1)
    assert "--pod-max-in-unschedulable-pods-duration=0.3s" in comp.scheduler_argv(Path("/b/s"), settings(1000))
    plain = comp.scheduler_config(settings(None))  # an ordinary cluster keeps kube-scheduler's defaults
    assert "podInitialBackoffSeconds" not in plain and "podMaxBackoffSeconds" not in plain
    assert not any("unschedulable" in a for a in comp.scheduler_argv(Path("/b/s"), settings(None)))


def test_kueue_configuration_follows_the_profiles_compression(tmp_path: Path) -> None:
    cfg = kueue.configuration(kueue.settings_for(300), webhook={}, health=":1")["waitForPodsReady"]
    assert cfg["timeout"] == "1s" and cfg["recoveryTimeout"] == "1s"
    assert cfg["requeuingStrategy"]["backoffBaseSeconds"] == 1 and cfg["requeuingStrategy"]["backoffMaxSeconds"] == 12
    assert kueue.settings_for(None) == kueue.KueueSettings()
    # the installer hands the profile's compression to the host process (tier S) and to the manifests (pod mode)
    h = host_context(tmp_path, webhook_port=1, health_port=2, time_compression=60)
    [(_, text)] = kueue.host(h).files
    assert yaml.safe_load(text)["waitForPodsReady"]["timeout"] == "5s"
    cm = {"kind": "ConfigMap", "metadata": {"name": kueue.CONFIG_MAP}}
    [out] = kueue.adapt([cm], AddonContext(image="", apiserver_host="h", apiserver_port=1, time_compression=60))
    assert yaml.safe_load(out["data"][kueue.CONFIG_KEY])["waitForPodsReady"]["requeuingStrategy"] == {
        "timestamp": "Eviction", "backoffBaseSeconds": 1, "backoffMaxSeconds": 60}


def test_report_states_the_timers_and_their_clamps() -> None:
    doc = {"compression": 300, "nodes": 1, "gpu_model": "g", "total_gpus": 8, "policies": [],
           "trace": {"source": "s", "seed": 1, "jobs": 0, "pods": 0, "gpu_hours_asked": 0, "teams": []},
           "timers": [t.as_dict() for t in timescale.timers(300)]}
    html = report.render_html(doc)
    assert "backoffBaseSeconds" in html and "0 turns the requeue backoff off" in html
    assert "podMaxBackoffSeconds" in html and "run in wall time" not in html
