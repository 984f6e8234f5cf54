"""Provider abilities (protocols; a provider has exactly those it implements) and cluster facts (one list, declared
by providers and users), kept apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.bins import check_upgrade, pinned_kubernetes
from harness.errors import ConfigError, UnsupportedCapability
from harness.facts import FACTS, validate_facts
from harness.providers.base import (
    ABILITY_PROTOCOLS,
    AddsNodes,
    LoadsImages,
    RestartsNodes,
    UpgradesControlPlane,
    abilities_of,
    ability_name,
    require,
)
from harness.providers.existing import ExistingCluster
from harness.providers.local import LocalCluster


def test_an_ability_is_named_by_its_protocols_one_method() -> None:
    assert [ability_name(p) for p in ABILITY_PROTOCOLS] == [
        "add_nodes", "ensure_addons", "load_image", "restart_node", "upgrade_control_plane"]


def test_abilities_are_derived_from_what_a_provider_implements(tmp_path: Path) -> None:
    class Upgrader:
        def upgrade_control_plane(self, version: str) -> None: ...

    assert abilities_of(LocalCluster("a", root=tmp_path)) == {"add_nodes", "ensure_addons", "load_image",
                                                              "restart_node", "upgrade_control_plane"}
    assert abilities_of(ExistingCluster("e", tmp_path / "kc")) == frozenset()
    assert abilities_of(Upgrader()) == {"upgrade_control_plane"}
    assert isinstance(Upgrader(), UpgradesControlPlane) and not isinstance(Upgrader(), AddsNodes)


def test_a_missing_ability_is_refused_not_ignored(tmp_path: Path) -> None:
    local = LocalCluster("a", root=tmp_path)
    assert require(local, LoadsImages, "loading images") is local
    with pytest.raises(UnsupportedCapability, match="'ExistingCluster' does not support upgrading the control plane"):
        require(ExistingCluster("e", tmp_path / "kc"), UpgradesControlPlane, "upgrading the control plane")
    with pytest.raises(UnsupportedCapability):
        require(ExistingCluster("e", tmp_path / "kc"), RestartsNodes, "restarting a node")


def fake_local_state(cluster: LocalCluster, tier: str) -> None:
    cluster.dir.mkdir(parents=True)
    cluster.state_file.write_text(json.dumps({"provider": "local", "tier": tier, "profile": "p"}))


def test_local_declares_facts_of_the_clusters_it_makes(tmp_path: Path) -> None:
    s, r = LocalCluster("s", root=tmp_path), LocalCluster("r", root=tmp_path)
    fake_local_state(s, "S")
    fake_local_state(r, "R")
    assert s.info().facts == {"simulated-nodes"}
    assert r.info().facts == {"simulated-nodes", "device-plugin"}
    assert "networkpolicy" not in r.info().facts  # the bridge CNI does not enforce policies
    assert s.info().abilities == abilities_of(s)
    assert (s.info().facts | r.info().facts) <= set(FACTS)


def test_load_image_without_a_real_node_says_why(tmp_path: Path) -> None:
    cluster = LocalCluster("s", root=tmp_path)
    fake_local_state(cluster, "S")
    with pytest.raises(UnsupportedCapability, match="it has no real node .* use a profile with realNode.enabled"):
        cluster.load_image(tmp_path / "image.tar")


def test_restart_node_of_a_simulated_node_says_why(tmp_path: Path) -> None:
    cluster = LocalCluster("s", root=tmp_path)
    fake_local_state(cluster, "S")
    with pytest.raises(UnsupportedCapability, match="only a real node has a kubelet"):
        cluster.restart_node("a100-0")


def test_facts_are_one_list() -> None:
    assert validate_facts(["networkpolicy", "dra", "networkpolicy"]) == {"networkpolicy", "dra"}
    with pytest.raises(ConfigError,
                       match="--capability: unknown cluster fact 'netpol'; known facts: custom-metrics, device-plugin, dra"):
        validate_facts(["netpol"])


def cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state")}, cwd=tmp_path)


def test_unknown_capability_is_one_line_listing_the_facts(tmp_path: Path) -> None:
    res = cli(["run", "--kubeconfig", str(tmp_path / "kc"), "--capability", "networkpolicy", "--capability", "gpus",
               "--report-dir", str(tmp_path / "r")], tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"aiconform: --capability: unknown cluster fact 'gpus'; known facts: {', '.join(sorted(FACTS))}"]
    assert not (tmp_path / "r").exists() and not (tmp_path / "state").exists()


def test_capability_is_for_existing_clusters(tmp_path: Path) -> None:
    res = cli(["run", "--capability", "networkpolicy", "--report-dir", str(tmp_path / "r")], tmp_path)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "--capability declares facts of an existing cluster (with --kubeconfig)" in res.stderr
    assert not (tmp_path / "state").exists()


K8S, PREV = pinned_kubernetes("default"), pinned_kubernetes("previous")  # what harness/versions.toml pins
PINNED = (PREV, K8S)
MAJOR, MINOR, PATCH = (int(x) for x in K8S.split("."))
NEXT_PATCH = f"{MAJOR}.{MINOR}.{PATCH + 1}"
TWO_MINORS_BACK = f"{MAJOR}.{MINOR - 2}.4"


@pytest.mark.parametrize(("current", "target", "message"), [
    (K8S, PREV, f"refusing to downgrade the control plane from v{K8S} to v{PREV}"),
    (NEXT_PATCH, K8S, "refusing to downgrade"),
    (TWO_MINORS_BACK, K8S, f"refusing to upgrade from v{TWO_MINORS_BACK} to v{K8S}: it skips a minor version; "
                           f"upgrade to v{MAJOR}.{MINOR - 1} first"),
    (K8S, f"{MAJOR + 1}.0.0", "skips a minor version"),
    (K8S, f"{MAJOR}.{MINOR + 1}.0", f"v{MAJOR}.{MINOR + 1}.0 is not a pinned Kubernetes version (harness/versions.toml "
                                   f"pins v{PREV}, v{K8S})"),
    (K8S, "latest", "upgrade version: not a Kubernetes version (MAJOR.MINOR.PATCH): 'latest'"),
])
def test_upgrades_that_break_version_skew_are_refused_in_one_line(current: str, target: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_upgrade(current, target, PINNED)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_next_minor_and_a_pinned_patch_are_upgrades() -> None:
    assert check_upgrade(PREV, K8S, PINNED)  # the upgrade lane: the previous pin is one minor below the default
    assert check_upgrade(K8S, NEXT_PATCH, (*PINNED, NEXT_PATCH))
    assert not check_upgrade(K8S, K8S, PINNED)  # already there: nothing to do
