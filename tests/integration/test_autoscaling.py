"""Node autoscaling at tier S (the ``autoscale`` profile: Karpenter's kwok provider as a host process through the
one installer): a node Karpenter adds has the shape of the pool's simulated nodes (labels, taints, resources from
the one GPU spec owner), and the ``autoscaling`` suite passes against the cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.addons.karpenter import KARPENTER_LABEL_DOMAINS
from harness.config import load_profile
from harness.contract import GPU_RESOURCE, POOL_LABEL, SIMULATED_TAINT
from harness.kube import KubeClient
from harness.providers.local import LocalCluster
from harness.testing import ClusterInfo
from harness.workloads import gpu_pod, wait_bound
from tests.integration.conftest import running_cluster

pytestmark = pytest.mark.upstream("karpenter")

REPO = Path(__file__).resolve().parents[2]
PRODUCT = "nvidia.com/gpu.product"


@pytest.fixture(scope="module")
def cluster(state_dir: Path) -> Iterator[LocalCluster]:
    with running_cluster("it-autoscale", state_dir, load_profile("autoscale")) as c:
        yield c


def test_karpenter_node_has_the_shape_of_the_pools_simulated_nodes(cluster: LocalCluster,
                                                                     client: KubeClient) -> None:
    st = cluster.state() or {}
    assert "node-autoscaling" in st.get("facts", []), st.get("facts")
    sim = client.get("Node", "a100-1g-0")
    ns = "shape"
    client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    client.wait_all("ServiceAccount", [f"{ns}/default"], lambda _o: True, timeout=60)
    names = [f"p{i}" for i in range(3)]  # the pool's 2 one-GPU nodes hold 2: the third needs a new node
    for n in names:
        client.create(gpu_pod(n, 1, node_selector={POOL_LABEL: "a100-1g"}), ns)
    placed = wait_bound(client, ns, names, timeout=90, fail_fast=False)
    added = {p.node for p in placed.values()} - {"a100-1g-0", "a100-1g-1"}
    assert len(added) == 1, placed
    new = client.get("Node", added.pop())

    sim_labels = {k: v for k, v in sim["metadata"]["labels"].items() if k != "kubernetes.io/hostname"}
    new_labels = new["metadata"]["labels"]
    assert {k: new_labels.get(k) for k in sim_labels} == sim_labels
    extra = sorted(k for k in new_labels if k not in sim_labels and k != "kubernetes.io/hostname")
    assert all(k.startswith(KARPENTER_LABEL_DOMAINS) for k in extra), f"labels not from the pool: {extra}"
    assert new_labels["karpenter.sh/nodepool"] == "a100-1g"

    def taints(node: dict[str, object]) -> list[object]:
        spec = node.get("spec", {})
        assert isinstance(spec, dict)
        return sorted((t["key"], t.get("value", ""), t["effect"]) for t in spec.get("taints") or []
                      if not t["key"].startswith("karpenter.sh/"))

    own = (SIMULATED_TAINT["key"], SIMULATED_TAINT["value"], SIMULATED_TAINT["effect"])
    assert taints(new) == taints(sim) == sorted([(GPU_RESOURCE, "present", "NoSchedule"), own])
    assert _quantities(new["status"]["allocatable"]) == _quantities(sim["status"]["allocatable"])
    # upstream's kwok provider writes into capacity only what the pods that caused the node asked for
    assert int(new["status"]["capacity"].get(GPU_RESOURCE, 0)) >= 1
    for n in names:
        client.delete("Pod", n, ns, grace_period=0)


def _quantities(resources: dict[str, str]) -> dict[str, float]:
    """Resource quantities as numbers (the API may print 128Gi as 137438953472)."""
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}
    out = {}
    for k, v in resources.items():
        for suf in sorted(suffixes, key=len, reverse=True):
            if v.endswith(suf):
                out[k] = float(v[: -len(suf)]) * suffixes[suf]
                break
        else:
            out[k] = float(v)
    return out


def test_autoscaling_suite_passes(cluster: LocalCluster, tmp_path: Path) -> None:
    st = cluster.state() or {}
    info = ClusterInfo(kubeconfig=str(cluster.kubeconfig()), run_id="it-autoscale", provider="local",
                       profile="autoscale", tier="S",
                       capabilities=frozenset(st.get("facts", []))).write(tmp_path / "cluster-info.json")
    report = tmp_path / "report"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "scenarios" / "test_autoscaling.py"),
         f"--aiconform-report-dir={report}", f"--aiconform-cluster-info={info}"],
        capture_output=True, text=True, timeout=400, cwd=REPO,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    checks = json.loads((report / "results.json").read_text())["checks"]
    assert {c["status"] for c in checks} == {"passed"} and len(checks) == 2, checks
    up = next(c for c in checks if "requested_type" in c["id"])
    assert up["evidence"]["added_nodes"] and up["requirement"] == "cluster_autoscaling"
