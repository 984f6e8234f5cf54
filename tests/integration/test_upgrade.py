"""The local provider's upgrade_control_plane ability, previous pinned minor -> current, against real components:
the apiserver, controller-manager and scheduler come back on the new binaries, etcd's data (and so every object)
is kept, and the new components make their decisions.  The previous minor's binaries are built on first use (``make
bins`` builds only the default minor): the module's first test waits for that build, its progress lines shown."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.bins import CONTROL_PLANE, REAL_NODE, BinaryResolver, load_versions
from harness.config import parse_profile
from harness.errors import ConfigError
from harness.kube import KubeClient
from harness.nodes import node_ready
from harness.providers.local import LocalCluster, realnode
from harness.workloads import gpu_pod, untolerated_taints, wait_bound

VERSIONS = load_versions()
PREVIOUS, CURRENT = VERSIONS.kubernetes_previous, VERSIONS.kubernetes_default


def build_previous(config: pytest.Config, names: list[str]) -> None:
    """The previous minor's ``names``, from the cache or built now (minutes cold: the progress lines, with the
    last measured duration, go to the terminal).  A failed build is an error of this test run, not a skip."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def say(msg: str) -> None:  # past pytest's output capture, as live logging does
        if reporter is None:
            return
        if capture is None:
            reporter.write_line(f"[previous minor] {msg}")
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[previous minor] {msg}")

    resolver = BinaryResolver(download="never", progress=say)
    resolver.resolve_many(names, kubernetes=PREVIOUS)


@pytest.fixture(scope="module")
def previous_control_plane(pytestconfig: pytest.Config) -> None:
    build_previous(pytestconfig, list(CONTROL_PLANE))


@pytest.fixture
def old_cluster(tmp_path: Path, previous_control_plane: None) -> Iterator[LocalCluster]:
    cluster = LocalCluster(f"up-{secrets.token_hex(2)}", root=tmp_path / "state")
    cluster.create(parse_profile({"controlPlane": {"kubernetesVersion": PREVIOUS},
                                  "pools": [{"name": "gpu", "nodes": 2, "gpu": {"model": "A100-SXM4-80GB", "count": 8}}]},
                                 name="upgrade"))
    try:
        # Settled first: on a loaded machine the node lifecycle controller may still hold a transient
        # node.kubernetes.io/* taint on a just-registered node, and the test's own pods tolerate none of those
        # (only the simulated nodes' own).
        KubeClient.from_kubeconfig(cluster.kubeconfig()).wait_for(
            "Node", condition=lambda nodes: len(nodes) == 2 and all(
                node_ready(n) and not untolerated_taints(n) for n in nodes.values()),
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
    return ""


@pytest.mark.realnode
@pytest.mark.skipif(bool(_real_node_skip()), reason=_real_node_skip())
def test_upgrade_lane_at_tier_r_keeps_gpu_pods_and_upgrades_kubelet_and_kube_proxy(tmp_path: Path,
                                                                                     pytestconfig: pytest.Config) -> None:
    """`aiconform run --suite upgrade --upgrade-to` on a real node: the upgrade suite holds before and after (the
    GPU pods keep their containers and devices, quota and priority hold, the plugin re-registers, nothing is
    handed out twice), and the kubelet and kube-proxy run the new version's binaries."""
    build_previous(pytestconfig, list(CONTROL_PLANE) + list(REAL_NODE))
    profile = tmp_path / "previous-real.yaml"
    profile.write_text(f"name: previous-real\ncontrolPlane: {{kubernetesVersion: {PREVIOUS}}}\n"
                       "realNode: {enabled: true, gpu: {model: A100-SXM4-80GB, count: 4}}\n")
    name = f"upr-{secrets.token_hex(2)}"
    state = Path("/tmp") / f"aic-{secrets.token_hex(3)}"  # short: containerd's socket path lives under it
    env = {**os.environ, "AICONFORM_STATE_DIR": str(state)}
    cli = str(Path(sys.executable).parent / "aiconform")
    report = tmp_path / "report"
    try:
        res = subprocess.run([cli, "run", "--profile", str(profile), "--name", name, "--suite", "upgrade",
                              "--upgrade-to", CURRENT, "--report-dir", str(report), "--keep"],
                             env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        for phase in ("before", "after"):
            checks = json.loads((report / phase / "results.json").read_text())["checks"]
            got = {c["id"].rsplit("::", 1)[1]: c["status"] for c in checks}
            assert len(got) == 3 and set(got.values()) == {"passed"}, (phase, got)
            survivors = next(c for c in checks if c["id"].endswith("::test_gpu_workload_survives_the_upgrade"))
            assert all(p["devices"] for p in survivors["evidence"]["now"].values())  # real devices, tier R
        cluster = LocalCluster(name, root=state)
        client = cluster.client()
        node = client.get("Node", "aiconform-real-0")
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{CURRENT}" and node_ready(node)
        running = cluster.running_components()
        for component in ("kubelet", "kube-proxy"):
            assert f"kubernetes-v{CURRENT}" in exe(running.get(component)), component
    finally:
        subprocess.run([cli, "down", "--name", name], env=env, capture_output=True, text=True, timeout=300)


def _previous_profile(tmp_path: Path) -> Path:
    profile = tmp_path / "previous.yaml"
    profile.write_text(f"name: previous\ncontrolPlane: {{kubernetesVersion: {PREVIOUS}}}\n"
                       "pools: [{name: a100, nodes: 2, gpu: {model: A100-SXM4-80GB, count: 8},\n"
                       "         taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]},\n"
                       "        {name: cpu, nodes: 1}]\n")
    return profile


def _assert_before_after(report: Path) -> None:
    """Both phases' versions, the upgrade suite held in both, and the diff names both versions."""
    versions = {phase: json.loads((report / phase / "results.json").read_text())["run"]["kubernetes_version"]
                for phase in ("before", "after")}
    assert versions == {"before": PREVIOUS, "after": CURRENT}
    for phase in ("before", "after"):  # the upgrade suite joined the chosen one and held in both phases
        checks = json.loads((report / phase / "results.json").read_text())["checks"]
        upgrade = {c["name"]: c["status"] for c in checks if "test_upgrade.py" in c["id"]}
        assert len(upgrade) == 3 and set(upgrade.values()) == {"passed"}, (phase, upgrade)
        survived = next(c for c in checks if c["id"].endswith("::test_gpu_workload_survives_the_upgrade"))
        assert survived["evidence"]["phase"] == phase
    diff = (report / "diff.txt").read_text()
    assert f"Kubernetes v{PREVIOUS} -> v{CURRENT}" in diff and "result: no regression" in diff


def test_run_upgrade_to_writes_before_after_and_their_diff(tmp_path: Path, previous_control_plane: None) -> None:
    """`aiconform run --upgrade-to`: the suites on the previous minor, the in-place upgrade, the suites again, one
    diff naming both versions; a bad target is refused in one line before anything starts."""
    profile = _previous_profile(tmp_path)
    cli = str(Path(sys.executable).parent / "aiconform")
    env = {**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state")}
    report = tmp_path / "report"
    res = subprocess.run([cli, "run", "--profile", str(profile), "--name", f"upr-{secrets.token_hex(2)}",
                          "--suite", "smoke", "--upgrade-to", CURRENT, "--report-dir", str(report)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_before_after(report)
    assert not list((tmp_path / "state").glob("upr-*")), "the cluster was not torn down"

    bad = subprocess.run([cli, "run", "--profile", str(profile), "--name", "upr-bad", "--upgrade-to", PREVIOUS],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert bad.stderr.strip() == "aiconform: --upgrade-to: the profile already runs Kubernetes v" + PREVIOUS


def test_run_upgrade_with_upgrades_an_existing_cluster_by_the_users_command(tmp_path: Path,
                                                                           previous_control_plane: None) -> None:
    """`aiconform run --kubeconfig KC --upgrade-with COMMAND` on a cluster the run did not bring up: the suites, the
    user's own upgrade command (here `aiconform upgrade`, standing for their kubeadm or cloud CLI; KUBECONFIG set for
    it, its output kept), the wait for the new version, the suites again, the diff."""
    cli = str(Path(sys.executable).parent / "aiconform")
    env = {**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state")}
    name = f"upw-{secrets.token_hex(2)}"
    up = subprocess.run([cli, "up", "--profile", str(_previous_profile(tmp_path)), "--name", name], env=env,
                        capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr[-3000:]
    try:
        kubeconfig = subprocess.run([cli, "kubeconfig", "--name", name], env=env, capture_output=True, text=True,
                                    timeout=30, check=True).stdout.strip()
        command = f'test -r "$KUBECONFIG" && {cli} upgrade --name {name} --to {CURRENT}'
        report = tmp_path / "report"
        res = subprocess.run([cli, "run", "--kubeconfig", kubeconfig, "--no-probe", "--suite", "smoke",
                              "--upgrade-with", command, "--report-dir", str(report)],
                             env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        _assert_before_after(report)
        log = (report / "upgrade-command.log").read_text()
        assert log.startswith(f"$ {command}\n") and "# exit status 0 after" in log
        assert f"the API serves Kubernetes v{CURRENT}" in res.stderr
        assert KubeClient.from_kubeconfig(Path(kubeconfig)).server_version().removeprefix("v") == CURRENT
    finally:
        subprocess.run([cli, "down", "--name", name], env=env, capture_output=True, text=True, timeout=300)
