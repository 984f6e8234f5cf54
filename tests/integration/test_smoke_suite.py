"""The smoke suite (scenarios/test_smoke.py) through the aiconform pytest plugin against the session cluster:
every check passes on a correct cluster, and the report files say so, whether the checks ran one at a time or in
two pytest-xdist workers."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.providers.local import LocalCluster
from harness.testing import LABEL_RUN, ClusterInfo

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("how", ["cluster-info", "kubeconfig-xdist"])
def test_smoke_suite_passes_and_writes_report(local_cluster: LocalCluster, tmp_path: Path, how: str) -> None:
    """As `aiconform run` starts it (a cluster-info file whose tier and version are left to detection), and as a
    user would by hand (only a kubeconfig) with two xdist workers."""
    report = tmp_path / "report"
    if how == "cluster-info":
        info = ClusterInfo(kubeconfig=str(local_cluster.kubeconfig()), run_id="it-smoke", provider="local",
                           profile="default").write(tmp_path / "cluster-info.json")
        args = [f"--aiconform-cluster-info={info}"]
    else:
        args = [f"--aiconform-kubeconfig={local_cluster.kubeconfig()}", "-n", "2"]
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "scenarios" / "test_smoke.py"),
         f"--aiconform-report-dir={report}", *args],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    results = json.loads((report / "results.json").read_text())
    statuses = {c["id"]: c["status"] for c in results["checks"]}
    third_party = "scenarios/test_smoke.py::test_third_party_pod_without_selector_lands_on_a_real_node"
    assert statuses.pop(third_party) == "skipped", statuses  # tier R: this cluster has no real node
    assert len(statuses) == 4 and set(statuses.values()) == {"passed"}, statuses
    run_id = results["run"]["run_id"]
    assert results["run"]["tier"] == "S" and (run_id == "it-smoke" or how != "cluster-info")
    assert results["run"]["kubernetes_version"].lstrip("v").startswith("1.")
    suite = ET.parse(report / "junit.xml").getroot()
    assert sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suite.iter("testsuite")) == 0
    over = next(c for c in results["checks"] if "over_ask" in c["id"])
    assert "Insufficient nvidia.com/gpu" in over["evidence"]["condition_message"]
    left = local_cluster.client().list("Namespace", label_selector=f"{LABEL_RUN}={run_id}")["items"]
    assert all(ns["metadata"].get("deletionTimestamp") for ns in left), "the run left namespaces behind"
