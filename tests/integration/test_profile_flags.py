"""Profiles carry feature gates, ``--runtime-config`` and component flags, checked against the pinned binaries.

One tier S cluster whose profile turns on ``GenericWorkload`` and ``scheduling.k8s.io/v1beta1``: the real apiserver
serves Workload and PodGroup, and the real scheduler holds a gang until it is complete.  Bad gates and flags go
through the CLI: one line naming the component, a non-zero exit, nothing started.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.bins import pinned_kubernetes
from harness.config import parse_profile
from harness.errors import Invalid
from harness.kube import KubeClient, is_bound
from harness.providers.local import LocalCluster
from tests.integration.conftest import running_cluster

K8S = pinned_kubernetes("default")  # the Kubernetes version harness/versions.toml pins

GATED = {
    "name": "gates",
    "pools": [{"name": "cpu", "nodes": 2, "cpu": "4", "memory": "8Gi"}],
    "controlPlane": {
        "featureGates": {"GenericWorkload": True},
        "runtimeConfig": {"scheduling.k8s.io/v1beta1": True},
        "extraArgs": {"kube-controller-manager": {"horizontal-pod-autoscaler-sync-period": "5s"}},
    },
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster("fg", tmp_path_factory.mktemp("fg"), parse_profile(GATED, name="gates")) as c:
        yield c


def _cmdline(cluster: LocalCluster, component: str) -> list[str]:
    pid = cluster.running_components()[component]
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_gated_api_is_served(client: KubeClient) -> None:
    doc = client.request("GET", "/apis/scheduling.k8s.io/v1beta1")
    names = {r["name"] for r in doc["resources"]}
    assert {"workloads", "podgroups"} <= names, names


def test_gate_reaches_every_component_and_extra_args_their_binary(cluster: LocalCluster) -> None:
    for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert "--feature-gates=GenericWorkload=true" in _cmdline(cluster, comp), comp
    assert "--horizontal-pod-autoscaler-sync-period=5s" in _cmdline(cluster, "kube-controller-manager")


def test_tier_s_apiserver_stays_on_loopback_and_cannot_host_an_apiservice_backend(
        cluster: LocalCluster, client: KubeClient) -> None:
    """Tier S is unchanged: kube-apiserver listens on 127.0.0.1 only, with no endpoint reconciler.  An APIService
    needs an endpoint address, and the apiserver refuses loopback ones, so no backend can live at tier S."""
    from tests.integration.test_realnode_api import listening_addresses

    assert listening_addresses(cluster.running_components()["kube-apiserver"]) == {"127.0.0.1"}
    assert "--endpoint-reconciler-type=none" in _cmdline(cluster, "kube-apiserver")
    with pytest.raises(Invalid, match="loopback"):
        client.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": "loopback", "labels": {"kubernetes.io/service-name": "x"}},
                       "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"]}],
                       "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}]}, namespace="default")


def test_scheduler_holds_an_incomplete_gang(client: KubeClient) -> None:
    """The scheduler's gang plugins exist only with the gate: one pod of a two-pod gang stays unbound, the second
    pod completes the gang and both bind."""
    ns = f"fg-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    client.create({"apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup", "metadata": {"name": "gang"},
                   "spec": {"schedulingPolicy": {"gang": {"minCount": 2}}}}, namespace=ns)

    def member(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"schedulingGroup": {"podGroupName": "gang"},
                         "tolerations": [{"operator": "Exists"}],
                         "containers": [{"name": "c", "image": "aiconform.local/busybox:latest",
                                         "resources": {"requests": {"cpu": "100m"}}}]}}

    client.create(member("a"), namespace=ns)
    with pytest.raises(Exception, match="to be bound"):  # WaitTimeout: the gang holds it
        client.wait_for("Pod", namespace=ns, name="a", condition=lambda s: any(is_bound(p) for p in s.values()),
                        timeout=8, what="the lone gang member to be bound")
    client.create(member("b"), namespace=ns)
    client.wait_for("Pod", namespace=ns, condition=lambda s: len(s) == 2 and all(is_bound(p) for p in s.values()),
                    timeout=60, what="both gang members to be bound")
    client.delete("Namespace", ns)


# -- bad input through the CLI ----------------------------------------------------------------------------------------


def _up(tmp_path: Path, control_plane: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "bad.yaml"
    profile.write_text(yaml.safe_dump({"name": "bad", "pools": [], "controlPlane": control_plane}))
    env = {**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "harness.cli", "up", "--profile", str(profile), "--name", "bad"],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    ("control_plane", "message"),
    [
        ({"featureGates": {"NoSuchGate": True}},
         f"controlPlane.featureGates.NoSuchGate: no component of Kubernetes v{K8S} accepts it (kube-apiserver: "
         "unrecognized feature gate: NoSuchGate)"),
        ({"extraArgs": {"kube-controller-manager": {"no-such-flag": "1"}}},
         f"controlPlane.extraArgs.kube-controller-manager.no-such-flag: kube-controller-manager v{K8S} has no flag "
         "--no-such-flag"),
        ({"extraArgs": {"kube-apiserver": {"etcd-servers": "http://127.0.0.1:1"}}},
         "controlPlane.extraArgs.kube-apiserver.etcd-servers: --etcd-servers is set by the harness and cannot be "
         "overridden"),
        ({"extraArgs": {"kube-controller-manager": {"horizontal-pod-autoscaler-sync-period": "5x"}}},
         f"controlPlane.extraArgs.kube-controller-manager: kube-controller-manager v{K8S} refuses it: invalid "
         "argument \"5x\" for \"--horizontal-pod-autoscaler-sync-period\""),
    ],
)
def test_bad_gate_or_flag_is_one_line_and_starts_nothing(tmp_path: Path, control_plane: dict[str, Any],
                                                         message: str) -> None:
    res = _up(tmp_path, control_plane)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aiconform: "), res.stderr
    assert message in lines[0], lines[0]
    state = tmp_path / "state"
    assert not (state / "bad").exists(), "a run dir was left behind"
