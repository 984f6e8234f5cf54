"""Fact detection against a real cluster the harness built (profile ``gang``, tier S: Kueue and JobSet as host
processes, the native Workload/PodGroup API with the GenericWorkload gate, KWOK nodes): detected through the
cluster's kubeconfig alone, the facts equal the ones the provider declared for it, each with evidence; the
NetworkPolicy probe finds no node that runs pods; and ``aiconform run --kubeconfig`` without ``--capability`` runs
the native gang check (it would skip without the facts) and lists every fact as detected in results.json."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import load_profile
from harness.detect import detect_facts
from harness.facts import FACTS
from harness.kube import KubeClient
from harness.providers.local import LocalCluster
from tests.integration.conftest import running_cluster

pytestmark = pytest.mark.upstream("jobset", "kueue")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(state_dir: Path) -> Iterator[LocalCluster]:
    with running_cluster("it-detect", state_dir, load_profile("gang")) as c:
        yield c


def test_detected_facts_equal_the_facts_the_provider_declared(cluster: LocalCluster, client: KubeClient) -> None:
    declared = set(cluster.info().facts)
    assert {"kueue", "native-gang", "gang-scheduling", "simulated-nodes"} <= declared, declared
    with KubeClient.from_kubeconfig(cluster.kubeconfig()) as fresh:  # only what a foreign user has: the kubeconfig
        found = detect_facts(fresh, probe=True, run_id="it-detect")
    assert set(found) == set(FACTS)
    assert {f for f, e in found.items() if e.present} == declared, {f: e.detail for f, e in found.items()}
    assert all(e.source == "detected" and e.detail for e in found.values())
    assert "webhook vclusterqueue.kb.io answered" in found["kueue"].detail
    assert "scheduling.k8s.io/v1beta1 serves Workload and PodGroup" in found["native-gang"].detail
    assert "kwok.x-k8s.io/node=fake are Ready" in found["simulated-nodes"].detail
    assert found["networkpolicy"].detail == ("not detected: no node runs pods (every node is simulated, NotReady, "
                                             "cordoned or tainted)")
    # detection stored nothing: the dry runs left no ClusterQueue, no TrainJob, no ResourceSlice, no namespace
    assert not [q for q in client.list("ClusterQueue", api_version="kueue.x-k8s.io/v1beta2")["items"]
                if q["metadata"]["name"] == "aiconform-webhook-probe"]
    assert not [n for n in client.list("Namespace")["items"] if n["metadata"]["name"].startswith("aiconform-detect-")]


def test_run_against_the_kubeconfig_detects_the_facts_the_gang_check_needs(cluster: LocalCluster,
                                                                         tmp_path: Path) -> None:
    report = tmp_path / "report"
    res = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--kubeconfig", str(cluster.kubeconfig()), "--suite", "gang",
         "--report-dir", str(report), "--parallel", "1"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "detecting the cluster's facts from what its API serves" in res.stderr
    data = json.loads((report / "results.json").read_text())
    facts = {f["name"]: f for f in data["cluster"]["facts"]}
    assert set(facts) == set(FACTS)
    assert all(f["source"] == "detected" for f in facts.values())
    assert {n for n, f in facts.items() if f["present"]} == set(cluster.info().facts)
    gang = [c for c in data["checks"] if c["requirement"] == "gang_scheduling"]
    assert gang and all(c["status"] == "passed" for c in gang), gang
    assert "| `native-gang` | yes | detected |" in (report / "report.md").read_text()
