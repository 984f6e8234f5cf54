"""Providers against a real local cluster: the local provider's add_nodes ability, the existing provider, and
cluster facts declared on the command line reaching the checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import Profile
from harness.contract import GPU_RESOURCE, POOL_LABEL
from harness.errors import ConfigError
from harness.kube import KubeClient
from harness.nodes import node_ready
from harness.providers import open_provider
from harness.providers.base import ProviderOptions
from harness.providers.local import LocalCluster
from harness.testing import create_run_namespace


def test_add_nodes_grows_a_profile_pool_with_ready_gpu_nodes(local_cluster: LocalCluster, state_dir: Path) -> None:
    fresh = LocalCluster(local_cluster.name, root=state_dir)  # a new handle: the pool comes from the profile file
    client = KubeClient.from_kubeconfig(local_cluster.kubeconfig())
    added = fresh.add_nodes("h100", 2)
    try:
        assert added == ["h100-2", "h100-3"]
        nodes = {n["metadata"]["name"]: n for n in client.list("Node", label_selector=f"{POOL_LABEL}=h100")["items"]}
        assert sorted(nodes) == ["h100-0", "h100-1", "h100-2", "h100-3"]
        for name in added:
            assert node_ready(nodes[name])
            assert nodes[name]["status"]["allocatable"][GPU_RESOURCE] == "8"
            assert nodes[name]["metadata"]["labels"]["nvidia.com/gpu.product"] == \
                nodes["h100-0"]["metadata"]["labels"]["nvidia.com/gpu.product"]
    finally:
        for name in added:
            client.delete("Node", name, grace_period=0)
    with pytest.raises(ConfigError, match="profile 'default' has no pool 'b200'; its pools: a100, h100"):
        fresh.add_nodes("b200", 1)


def test_existing_provider_uses_the_cluster_and_removes_only_its_runs_objects(local_cluster: LocalCluster) -> None:
    client = KubeClient.from_kubeconfig(local_cluster.kubeconfig())
    existing = open_provider("existing", "theirs", ProviderOptions(
        kubeconfig=local_cluster.kubeconfig(), facts=frozenset({"networkpolicy"}), run_id="prov-run-1"))
    assert existing.create(Profile(name="existing", provider="existing")) == local_cluster.kubeconfig()
    info = existing.info()
    assert (info.provider, info.tier, info.facts, info.abilities) == ("existing", "S", {"networkpolicy"}, frozenset())
    create_run_namespace(client, "prov-mine", "prov-run-1")
    create_run_namespace(client, "prov-other", "prov-run-2")
    try:
        assert existing.delete()
        namespaces = {n["metadata"]["name"]: n for n in client.list("Namespace")["items"]}
        assert "prov-other" in namespaces
        assert "prov-mine" not in namespaces or namespaces["prov-mine"]["status"].get("phase") == "Terminating"
        assert local_cluster.is_up()  # the cluster itself is never touched
    finally:
        client.delete("Namespace", "prov-other", grace_period=0)


def test_a_fact_is_detected_on_an_existing_cluster_or_declared_with_capability(local_cluster: LocalCluster,
                                                                              tmp_path: Path) -> None:
    """The property checks need the ``simulated-nodes`` fact.  On a cluster aiconform did not build it is detected
    from what the API serves (KWOK-managed nodes), and the report says so with its evidence; declared with
    ``--capability``, the report says declared."""
    check = "test_random_inventories_and_requests_respect_capacity"

    def run(*extra: str) -> tuple[dict[str, str], dict[str, dict[str, object]]]:
        report = tmp_path / f"r{len(extra)}"
        res = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", "--kubeconfig", str(local_cluster.kubeconfig()),
             "--suite", "properties", "-k", check, "--examples", "1", "--report-dir", str(report), *extra],
            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert res.returncode == 0, res.stderr[-2000:]
        data = json.loads((report / "results.json").read_text())
        facts = {f["name"]: f for f in (data.get("cluster") or {}).get("facts", [])}
        return {c["id"].rsplit("::", 1)[-1]: c["status"] for c in data["checks"]}, facts

    checks, facts = run("--no-probe")
    assert checks == {check: "passed"}
    assert facts["simulated-nodes"]["present"] and facts["simulated-nodes"]["source"] == "detected", facts
    assert facts["simulated-nodes"]["evidence"], facts
    checks, facts = run("--no-probe", "--capability", "simulated-nodes")
    assert checks == {check: "passed"}
    assert facts["simulated-nodes"]["source"] == "declared", facts
