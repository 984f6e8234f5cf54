"""The ``aiconform`` CLI against real local clusters: up, idempotence, down after SIGKILL, Ctrl-C, faults."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import proc
from harness.kube import KubeClient
from harness.providers.local import LocalCluster

AICONFORM = [sys.executable, "-m", "harness.cli"]


def cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(AICONFORM + args, env=env, capture_output=True, text=True, timeout=timeout)


def live_pids(cluster_dir: Path) -> list[int]:
    out = []
    for pf in (cluster_dir / "pids").glob("*.pid"):
        rec = proc.read_pidfile(pf)
        if rec and proc.pid_alive(rec[0]):
            out.append(rec[0])
    return out


def wait_for_file(path: Path, timeout: float) -> None:
    """Wait for a pidfile the CLI writes (a file, not an API object: no watch exists for it)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.05)


def test_up_prints_kubeconfig_last_and_is_idempotent(cli_env: dict[str, str], state_dir: Path) -> None:
    first = cli(["up", "--profile", "minimal", "--name", "idem"], cli_env)
    try:
        assert first.returncode == 0, first.stderr
        kubeconfig = Path(first.stdout.strip().splitlines()[-1])
        assert kubeconfig.is_file()
        assert "] apiserver: kube-apiserver v" in first.stderr  # one status line per action, on stderr
        client = KubeClient.from_kubeconfig(kubeconfig)
        nodes = client.list("Node")["items"]
        assert [n["metadata"]["name"] for n in nodes] == ["gpu-0"]
        pids_before = sorted(live_pids(state_dir / "idem"))
        again = cli(["up", "--profile", "minimal", "--name", "idem"], cli_env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip().splitlines()[-1] == str(kubeconfig)
        assert "already up" in again.stderr
        assert sorted(live_pids(state_dir / "idem")) == pids_before  # nothing restarted

        other = cli(["up", "--profile", "default", "--name", "idem"], cli_env)
        assert other.returncode != 0
        assert other.stderr.strip().count("\n") == 0, other.stderr  # one line
        assert "already up with profile 'minimal'" in other.stderr
        assert sorted(live_pids(state_dir / "idem")) == pids_before

        status = cli(["status", "--name", "idem"], cli_env)
        assert status.returncode == 0 and "healthy" in status.stdout
    finally:
        cli(["down", "--name", "idem", "--ignore-missing"], cli_env)
    assert not (state_dir / "idem").exists()


def test_down_after_up_was_killed_with_sigkill(cli_env: dict[str, str], state_dir: Path) -> None:
    up = subprocess.Popen(AICONFORM + ["up", "--profile", "minimal", "--name", "killed"], env=cli_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_file(state_dir / "killed" / "pids" / "kube-apiserver.pid", 120)
    up.kill()
    up.communicate(timeout=30)
    pids = live_pids(state_dir / "killed")
    assert pids, "the killed up left no process to clean up; the test proves nothing"
    down = cli(["down", "--name", "killed"], cli_env)
    assert down.returncode == 0, down.stderr
    assert not any(proc.pid_alive(p) for p in pids)
    assert not (state_dir / "killed").exists()


def test_ctrl_c_during_up_tears_down_what_was_started(cli_env: dict[str, str], state_dir: Path) -> None:
    # Ctrl-C as a terminal delivers it: SIGINT at its default disposition (a parent started in the background by a
    # non-interactive shell, as a CI runner may be, passes SIGINT on ignored, and Python keeps it ignored).
    up = subprocess.Popen(AICONFORM + ["up", "--profile", "minimal", "--name", "interrupted"], env=cli_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_file(state_dir / "interrupted" / "pids" / "etcd.pid", 120)
    rec = proc.read_pidfile(state_dir / "interrupted" / "pids" / "etcd.pid")
    assert rec is not None
    up.send_signal(signal.SIGINT)
    _, err = up.communicate(timeout=60)
    assert up.returncode == 130, err
    assert "interrupted" in err.strip().splitlines()[-1]
    assert not proc.pid_alive(rec[0])
    assert not (state_dir / "interrupted").exists()


def test_port_in_use_is_one_line_and_leaves_nothing(
    cli_env: dict[str, str], state_dir: Path, tmp_path: Path, local_cluster: LocalCluster
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        profile = tmp_path / "port.yaml"
        profile.write_text(f"provider: local\ncontrolPlane: {{apiserverPort: {port}}}\npools: []\n")
        before = sorted(live_pids(local_cluster.dir))
        res = cli(["up", "--profile", str(profile), "--name", "porttest"], cli_env)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert f"port {port}" in lines[0] and "in use" in lines[0]
    assert not (state_dir / "porttest").exists()
    assert sorted(live_pids(local_cluster.dir)) == before  # the other cluster is untouched
    assert local_cluster.is_up()


def test_down_of_unknown_cluster_is_one_line_nonzero(cli_env: dict[str, str]) -> None:
    res = cli(["down", "--name", "does-not-exist"], cli_env)
    assert res.returncode != 0
    assert res.stderr.strip() == "aiconform: no cluster named 'does-not-exist'; nothing to do"
    ok = cli(["down", "--name", "does-not-exist", "--ignore-missing"], cli_env)
    assert ok.returncode == 0


def test_two_clusters_run_side_by_side(cli_env: dict[str, str], local_cluster: LocalCluster) -> None:
    res = cli(["up", "--profile", "minimal", "--name", "beside"], cli_env)
    try:
        assert res.returncode == 0, res.stderr
        a = KubeClient.from_kubeconfig(local_cluster.kubeconfig())
        b = KubeClient.from_kubeconfig(Path(res.stdout.strip().splitlines()[-1]))
        assert a.config.server != b.config.server
        assert len(b.list("Node")["items"]) == 1
        assert len(a.list("Node")["items"]) > 1
    finally:
        down = cli(["down", "--name", "beside"], cli_env)
    assert down.returncode == 0
    assert local_cluster.is_up()


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("pools: [{name: x, nodes: -1}]", "pools[0].nodes: must be >= 0, got -1"),
        ("pools: [{name: x, gpu: {model: B300}}]", "pools[0].gpu.model: unknown GPU model 'B300'; known:"),
        ("pools: [{name: x, nodes: 1\n", "not valid YAML"),
    ],
)
def test_broken_profile_is_one_line_and_starts_nothing(
    cli_env: dict[str, str], state_dir: Path, tmp_path: Path, yaml_text: str, expected: str
) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text(yaml_text)
    res = cli(["up", "--profile", str(profile), "--name", "broken"], cli_env)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert expected in res.stderr
    assert not (state_dir / "broken").exists()
    assert os.environ.get("AICONFORM_STATE_DIR") != str(state_dir)
