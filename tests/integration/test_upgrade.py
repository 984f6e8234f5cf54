"""The local provider's upgrade_control_plane ability, previous pinned minor -> current, against real components:
the apiserver, controller-manager and scheduler come back on the new binaries, etcd's data (and so every object)
is kept, and the new components make their decisions.  Needs both pinned versions' binaries in the cache
(``aiconform bins --kubernetes <previous>``); the test never builds them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.bins import CONTROL_PLANE, REAL_NODE, BinaryResolver
from harness.config import parse_profile
from harness.errors import ConfigError
from harness.kube import KubeClient, is_running
from harness.providers.local import LocalCluster, node_ready, realnode
from harness.workloads import gpu_pod, wait_bound

RESOLVER = BinaryResolver(download="never")
PREVIOUS, CURRENT = RESOLVER.versions.kubernetes_previous, RESOLVER.versions.kubernetes_default


def _missing(version: str, names: tuple[str, ...] = tuple(CONTROL_PLANE)) -> list[str]:
    out = []
    for name in names:
        comp = RESOLVER.versions.component(RESOLVER.versions.owner_of(name),
                                           version if RESOLVER.versions.owner_of(name) == "kubernetes" else None)
        if not RESOLVER.cached_path(comp, name).is_file():
            out.append(f"{name} v{comp.version}")
    return out


pytestmark = pytest.mark.skipif(bool(_missing(PREVIOUS)), reason=f"binaries not cached: {', '.join(_missing(PREVIOUS))} "
                                f"(run `aiconform bins --kubernetes {PREVIOUS}`)")


@pytest.fixture
def old_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(f"up-{secrets.token_hex(2)}", root=tmp_path / "state")
    cluster.create(parse_profile({"controlPlane": {"kubernetesVersion": PREVIOUS},
                                  "pools": [{"name": "gpu", "nodes": 2, "gpu": {"model": "A100-SXM4-80GB", "count": 8}}]},
                                 name="upgrade"))
    try:
        # Settled first: on a loaded machine the node lifecycle controller may still hold a transient
        # node.kubernetes.io/* taint on a just-registered node, and the test's own pods tolerate none.
        KubeClient.from_kubeconfig(cluster.kubeconfig()).wait_for(
            "Node", condition=lambda nodes: len(nodes) == 2 and all(
                node_ready(n) and not n.get("spec", {}).get("taints") for n in nodes.values()),
            timeout=60, what="both nodes Ready and untainted")
        yield cluster
    finally:
        cluster.delete()


def exe(pid: int | None) -> str:
    assert pid is not None
    return os.readlink(f"/proc/{pid}/exe")


def test_upgrade_keeps_objects_and_the_new_components_decide(old_cluster: LocalCluster) -> None:
    client = KubeClient.from_kubeconfig(old_cluster.kubeconfig())
    assert client.server_version() == f"v{PREVIOUS}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "before"}})
    client.create(gpu_pod("held", 8), namespace="before")
    placed = wait_bound(client, "before", ["held"])
    uid = client.get("Pod", "held", namespace="before")["metadata"]["uid"]
    etcd = old_cluster.running_components()["etcd"]

    res = aiconform(old_cluster, "upgrade", "--name", old_cluster.name, "--to", CURRENT)  # the CLI, as a user runs it
    assert res.returncode == 0, res.stderr

    client = KubeClient.from_kubeconfig(old_cluster.kubeconfig())
    assert client.server_version() == f"v{CURRENT}"
    running = old_cluster.running_components()
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert f"kubernetes-v{CURRENT}" in exe(running.get(component)), component
    assert running["etcd"] == etcd  # etcd untouched
    held = client.get("Pod", "held", namespace="before")  # etcd's data kept: the same pod, not a new one
    assert held["metadata"]["uid"] == uid and held["spec"]["nodeName"] == placed["held"].node
    # the new scheduler binds (onto the other node: the first is full), the new token controller serves a namespace
    client.create(gpu_pod("after", 8), namespace="before")
    assert wait_bound(client, "before", ["after"])["after"].node != placed["held"].node
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "after"}})
    client.wait_for("ServiceAccount", namespace="after", name="default", condition=bool, timeout=60,
                    what="the default service account from the upgraded controller-manager")
    assert old_cluster.state() is not None and old_cluster.state()["kubernetes_version"] == CURRENT  # type: ignore[index]

    res = aiconform(old_cluster, "upgrade", "--name", old_cluster.name, "--to", PREVIOUS)
    assert res.returncode != 0
    assert res.stderr.strip() == f"aiconform: refusing to downgrade the control plane from v{CURRENT} to v{PREVIOUS}"
    with pytest.raises(ConfigError, match="skips a minor version"):
        old_cluster.upgrade_control_plane("1.39.0")
    assert client.server_version() == f"v{CURRENT}"


def aiconform(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    cli = str(Path(sys.executable).parent / "aiconform")
    env = {**os.environ, "AICONFORM_STATE_DIR": str(cluster.root)}
    return subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=300)


def _real_node_skip() -> str:
    if os.geteuid() != 0:
        return "tier R needs root"
    if realnode.missing_packages():
        return f"the real node needs: apt-get install {' '.join(realnode.missing_packages())}"
    missing = _missing(PREVIOUS, tuple(CONTROL_PLANE) + tuple(REAL_NODE))
    return f"binaries not cached: {', '.join(missing)}" if missing else ""


@pytest.mark.realnode
@pytest.mark.skipif(bool(_real_node_skip()), reason=_real_node_skip())
def test_upgrade_reaches_the_real_nodes_kubelet_and_a_gpu_pod_keeps_running(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("upr")  # short: containerd's socket path lives under it
    cluster = LocalCluster(f"upr-{secrets.token_hex(2)}", root=root)
    cluster.create(parse_profile({"controlPlane": {"kubernetesVersion": PREVIOUS},
                                  "realNode": {"enabled": True, "gpu": {"model": "A100-SXM4-80GB", "count": 2}}},
                                 name="upgrade-real"))
    try:
        client = cluster.client()
        node = "aiconform-real-0"
        assert client.get("Node", node)["status"]["nodeInfo"]["kubeletVersion"] == f"v{PREVIOUS}"
        client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "work"}})
        client.wait_for("ServiceAccount", namespace="work", name="default", condition=bool, timeout=60)
        client.create(gpu_pod("trainer", 1, node_selector={"kubernetes.io/hostname": node}), namespace="work")
        client.wait_for("Pod", namespace="work", name="trainer", condition=lambda s: any(map(is_running, s.values())),
                        timeout=90, what="the GPU pod to run on the real node")
        before = client.get("Pod", "trainer", namespace="work")

        cluster.upgrade_control_plane(CURRENT)

        client = cluster.client()
        after_node = client.get("Node", node)
        assert after_node["status"]["nodeInfo"]["kubeletVersion"] == f"v{CURRENT}" and node_ready(after_node)
        after = client.get("Pod", "trainer", namespace="work")
        assert after["metadata"]["uid"] == before["metadata"]["uid"]  # not recreated
        assert is_running(after)
        assert after["status"]["containerStatuses"][0]["restartCount"] == 0
        assert after["status"]["containerStatuses"][0]["containerID"] == before["status"]["containerStatuses"][0]["containerID"]
    finally:
        cluster.delete()


def test_run_upgrade_to_writes_before_after_and_their_diff(tmp_path: Path) -> None:
    """`aiconform run --upgrade-to`: the suites on the previous minor, the in-place upgrade, the suites again, one
    diff naming both versions; a bad target is refused in one line before anything starts."""
    profile = tmp_path / "previous.yaml"
    profile.write_text(f"name: previous\ncontrolPlane: {{kubernetesVersion: {PREVIOUS}}}\n"
                       "pools: [{name: a100, nodes: 2, gpu: {model: A100-SXM4-80GB, count: 8},\n"
                       "         taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]},\n"
                       "        {name: cpu, nodes: 1}]\n")
    cli = str(Path(sys.executable).parent / "aiconform")
    env = {**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state")}
    report = tmp_path / "report"
    res = subprocess.run([cli, "run", "--profile", str(profile), "--name", f"upr-{secrets.token_hex(2)}",
                          "--suite", "smoke", "--upgrade-to", CURRENT, "--report-dir", str(report)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    versions = {phase: json.loads((report / phase / "results.json").read_text())["run"]["kubernetes_version"]
                for phase in ("before", "after")}
    assert versions == {"before": PREVIOUS, "after": CURRENT}
    diff = (report / "diff.txt").read_text()
    assert f"Kubernetes v{PREVIOUS} -> v{CURRENT}" in diff and "result: no regression" in diff
    assert not list((tmp_path / "state").glob("upr-*")), "the cluster was not torn down"

    bad = subprocess.run([cli, "run", "--profile", str(profile), "--name", "upr-bad", "--upgrade-to", PREVIOUS],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert bad.stderr.strip() == "aiconform: --upgrade-to: the profile already runs Kubernetes v" + PREVIOUS
