"""The smoke suite (scenarios/test_smoke.py) through the aiconform pytest plugin against the session cluster:
every check passes on a correct cluster, and the report files say so."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.providers.local import LocalCluster

REPO = Path(__file__).resolve().parents[2]


def test_smoke_suite_passes_and_writes_report(local_cluster: LocalCluster, tmp_path: Path) -> None:
    report = tmp_path / "report"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "scenarios" / "test_smoke.py"),
         f"--aiconform-kubeconfig={local_cluster.kubeconfig()}", f"--aiconform-report-dir={report}",
         "--aiconform-provider=local", "--aiconform-profile=default", "--aiconform-run-id=it-smoke"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    results = json.loads((report / "results.json").read_text())
    statuses = {c["id"]: c["status"] for c in results["checks"]}
    assert len(statuses) == 4 and set(statuses.values()) == {"passed"}, statuses
    assert results["run"]["tier"] == "S"
    assert results["run"]["kubernetes_version"].lstrip("v").startswith("1.")
    suite = ET.parse(report / "junit.xml").getroot()
    assert sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suite.iter("testsuite")) == 0
    over = next(c for c in results["checks"] if "over_ask" in c["id"])
    assert "Insufficient nvidia.com/gpu" in over["evidence"]["condition_message"]
