"""Grading against a real cluster: a check that waits for the real scheduler to bind a pod passes while the
scheduler runs; the same check after kube-scheduler died is ``error`` (the run broke), not ``failed`` (a verdict
of the platform), and the report names the dead component.

Uses a cluster of its own (killing the session cluster's scheduler would break the other tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import load_profile
from harness.providers.local import LocalCluster
from harness.testing import ClusterInfo
from tests.integration.conftest import running_cluster

REPO = Path(__file__).resolve().parents[2]
CHECK = '''
import pytest
from harness.workloads import gpu_pod, wait_bound


@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", tier="S", gpus=1)
def test_gpu_pod_is_bound(kube, tenant):
    tenant.create(gpu_pod("p", 1))
    wait_bound(kube, tenant.name, ["p"], timeout=10)
'''


@pytest.fixture
def own_cluster(state_dir: Path) -> Iterator[LocalCluster]:
    with running_cluster("it-grade", state_dir, load_profile("minimal")) as cluster:
        yield cluster


def run_check(cluster: LocalCluster, tmp_path: Path, label: str, pids: dict[str, int]) -> dict[str, str]:
    """The check in its own pytest session, as `aiconform run` would start it (pids: taken when the run began)."""
    info = ClusterInfo(kubeconfig=str(cluster.kubeconfig()), run_id=f"it-grade-{label}", provider="local",
                       profile="minimal", component_pids=pids)
    (tmp_path / "test_bind.py").write_text(CHECK)
    report = tmp_path / f"report-{label}"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_bind.py"),
         f"--rootdir={tmp_path}", f"--aiconform-cluster-info={info.write(tmp_path / f'{label}.json')}",
         f"--aiconform-report-dir={report}"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    check: dict[str, str] = json.loads((report / "results.json").read_text())["checks"][0]
    return check


def test_a_check_that_outlives_the_scheduler_is_an_error(own_cluster: LocalCluster, tmp_path: Path) -> None:
    pids = own_cluster.running_components()
    assert run_check(own_cluster, tmp_path, "alive", pids)["status"] == "passed"
    os.kill(pids["kube-scheduler"], signal.SIGKILL)
    check = run_check(own_cluster, tmp_path, "dead", pids)
    assert check["status"] == "error", check
    assert "kube-scheduler" in check["reason"] and "has exited" in check["reason"], check["reason"]
    assert "WaitTimeout" in check["reason"], check["reason"]
