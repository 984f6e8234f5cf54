"""DRA at tier S against a real control plane: the ``dra`` profile (simulated nodes whose GPUs exist only as the
ResourceSlices the harness publishes), the ``dra`` suite run by ``aiconform run`` against it, and bad input answered
in one line by the component whose job it is (the apiserver for a CEL expression, the scheduler for a device
class; the profile check for a version without DRA v1, before anything starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import load_profile
from harness.contract import DRA_DRIVER
from harness.providers.local import LocalCluster
from tests.integration.conftest import running_cluster

CLI = str(Path(sys.executable).parent / "aiconform")


@pytest.fixture(scope="module")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dra")


@pytest.fixture(scope="module")
def cluster(state_root: Path) -> Iterator[LocalCluster]:
    with running_cluster("dra", state_root, load_profile("dra")) as c:
        yield c


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "AICONFORM_STATE_DIR": str(root), "PYTHONUNBUFFERED": "1"}


def _cli(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=_env(root), capture_output=True, text=True, timeout=timeout)


def test_dra_suite_passes_on_simulated_dra_nodes(cluster: LocalCluster, state_root: Path, tmp_path: Path) -> None:
    """Every tier S check of the dra suite passes on the real scheduler's DRA allocator; the tier R one is skipped
    for its tier, not for anything missing."""
    res = _cli(state_root, "run", "--profile", "dra", "--name", cluster.name, "--keep", "--suite", "dra",
               "--report-dir", str(tmp_path / "report"), "--examples", "3", timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    outcomes = {c["id"].split("::")[-1]: c["status"] for c in results["checks"]}
    skipped = {n for n, o in outcomes.items() if o == "skipped"}
    assert skipped == {"test_claimed_gpu_is_visible_only_to_the_claiming_container"}, outcomes
    assert all(o == "passed" for n, o in outcomes.items() if n not in skipped), outcomes
    assert len(outcomes) >= 10


def test_cel_that_does_not_compile_is_the_apiservers_one_line(cluster: LocalCluster, state_root: Path) -> None:
    res = _cli(state_root, "dra", "claim", "--name", cluster.name, "--cel",
               f'device.attributes["{DRA_DRIVER}"].productName ==')
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1, res.stderr
    assert lines[0].startswith("aiconform: the apiserver refused the claim:") and "compilation failed" in lines[0]


def test_unknown_device_class_is_the_schedulers_one_line(cluster: LocalCluster, state_root: Path) -> None:
    res = _cli(state_root, "dra", "claim", "--name", cluster.name, "--class", "no-such.example.com")
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1, res.stderr
    assert "device class no-such.example.com does not exist" in lines[0], lines[0]


def test_claim_by_product_prints_the_allocated_device(cluster: LocalCluster, state_root: Path) -> None:
    res = _cli(state_root, "dra", "claim", "--name", cluster.name, "--cel",
               f'device.attributes["{DRA_DRIVER}"].productName == "NVIDIA H100 80GB HBM3"')
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("dra-h100-0/gpu-") and "NVIDIA H100 80GB HBM3" in res.stdout


def test_dra_on_a_version_without_dra_v1_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    """A profile asking DRA of Kubernetes 1.33 (resource.k8s.io/v1 is served from 1.34): refused in one line, and
    nothing is started.  (Turning resource.k8s.io/v1 off on a 1.37 apiserver is no way to get such a cluster: the
    apiserver's own DRA informers then keep it from ever becoming ready.)"""
    profile = tmp_path / "nodra.yaml"
    profile.write_text("name: nodra\nprovider: local\n"
                       "controlPlane: {kubernetesVersion: 1.33.5, featureGates: {DRADeviceTaints: true}}\n"
                       "pools: [{name: g, nodes: 1, gpu: {model: T4, count: 1}, dra: true}]\n")
    res = _cli(tmp_path, "up", "--profile", str(profile), "--name", "nodra", timeout=60)
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1, res.stderr
    assert lines[0].startswith("aiconform:") and "DRA needs resource.k8s.io/v1, served from Kubernetes 1.34" in lines[0]
    assert not (tmp_path / "nodra").exists()
