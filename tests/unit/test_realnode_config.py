"""The real node's generated configs, image archives and host claim, without a kubelet (tests/integration has that)."""

from __future__ import annotations

import json
import os
import signal
import tomllib
from pathlib import Path

import pytest

from fake_gpu_plugin.config import config_from_pool
from fake_gpu_plugin.inventory import build_inventory, resource_counts
from fake_gpu_plugin.labels import node_labels
from harness import images
from harness.config import load_profile, parse_profile
from harness.contract import GPU_RESOURCE
from harness.errors import ClusterError
from harness.hostproc import Supervisor
from harness.providers.local import LocalCluster, linuxhost, realnode


def test_containerd_config_has_this_vms_cri_settings(tmp_path: Path) -> None:
    text = realnode.containerd_config(tmp_path / "root", tmp_path / "state", tmp_path / "c.sock", tmp_path / "net",
                                      tmp_path / "cdi")
    cfg = tomllib.loads(text)
    assert cfg["version"] == 3 and cfg["root"] == str(tmp_path / "root") and cfg["state"] == str(tmp_path / "state")
    assert cfg["grpc"]["address"] == str(tmp_path / "c.sock")
    cri = cfg["plugins"]["io.containerd.cri.v1.runtime"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cfg["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == images.PAUSE_IMAGE
    assert cri["cni"] == {"bin_dirs": ["/usr/lib/cni"], "conf_dir": str(tmp_path / "net"), "max_conf_num": 1}
    assert cri["cdi_spec_dirs"] == [str(tmp_path / "cdi")]
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cfg["plugins"]["io.containerd.internal.v1.opt"]["path"].startswith(str(tmp_path))


def test_kubelet_config() -> None:
    cfg = realnode.kubelet_config(ca=Path("/ca.crt"), socket=Path("/run/x.sock"), port=1, healthz_port=2,
                                  serving=(Path("/s.crt"), Path("/s.key")),
                                  taints=[{"key": "k", "effect": "NoSchedule"}])
    assert cfg["cgroupDriver"] == "cgroupfs" and cfg["failSwapOn"] is False and cfg["failCgroupV1"] is False
    assert cfg["authentication"]["x509"]["clientCAFile"] == "/ca.crt"
    assert cfg["authorization"]["mode"] == "Webhook"
    assert cfg["containerRuntimeEndpoint"] == "unix:///run/x.sock"
    assert cfg["address"] == realnode.NODE_IP
    assert cfg["nodeStatusUpdateFrequency"] == realnode.NODE_STATUS_UPDATE_FREQUENCY
    assert "staticPodPath" not in cfg
    assert all(v in ("0%", "1Mi") for v in cfg["evictionHard"].values())
    assert cfg["registerWithTaints"] == [{"key": "k", "effect": "NoSchedule"}]


def test_cni_conflist_is_bridge_host_local_portmap(tmp_path: Path) -> None:
    conf = realnode.cni_conflist(tmp_path)
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap"]
    bridge = conf["plugins"][0]
    assert bridge["ipam"]["type"] == "host-local" and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": realnode.POD_CIDR}]]
    # pods reach the apiserver on the node address, and have no default route off the machine
    assert bridge["ipam"]["routes"] == [{"dst": f"{realnode.NODE_IP}/32"}] and not bridge.get("isDefaultGateway")


def test_plugin_config_for_mixed_mig_gives_the_profiles_resources() -> None:
    """Mixed MIG at unit level: the plugin, reading the config file the real node writes, serves what the profile's
    GPU spec says, and the node's labels are the spec's."""
    profile = parse_profile({"name": "m", "realNode": {"enabled": True, "gpu": {
        "model": "A100-SXM4-80GB", "count": 2,
        "mig": {"strategy": "mixed", "layout": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}},
        "sharing": {"timeSlicing": {"replicas": 2}}}}})
    gpu = profile.real_node.gpu
    assert gpu is not None
    served = config_from_pool(json.loads(json.dumps(realnode.plugin_config("n", gpu))))
    inv = build_inventory(served, "n")
    advertised = {name: len(devs) for name, devs in inv.resources.items()}
    assert advertised == resource_counts(gpu) == {
        "nvidia.com/mig-3g.40gb": 4, "nvidia.com/mig-2g.20gb": 4, "nvidia.com/mig-1g.10gb": 8}
    assert node_labels(served) == node_labels(gpu)
    assert node_labels(gpu)["nvidia.com/mig-1g.10gb.product"] == "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb-SHARED"


def test_shipped_local_real_profile() -> None:
    p = load_profile("local-real")
    assert p.tier == "R" and p.real_node.name == "aiconform-real-0"
    assert p.real_node.gpu is not None and resource_counts(p.real_node.gpu) == {GPU_RESOURCE: 8}
    assert p.addons == ("kube-router",)
    assert p.pools


def test_static_elf_detection() -> None:
    assert not images.is_static_elf(b"#!/bin/sh\n")


def test_one_real_node_per_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode, "HOST_CLAIM", tmp_path / "claim.json")
    first, second = LocalCluster("one", root=tmp_path), LocalCluster("two", root=tmp_path)
    first.dir.mkdir()
    daemons = Supervisor(first.dir)
    daemons.start("kubelet", ["sleep", "60"])  # the holder's cluster still runs a process
    try:
        realnode.claim_host(first)
        with pytest.raises(ClusterError, match="one real node per host"):
            realnode.claim_host(second)
        realnode.release_host(second)  # not the holder: no effect
        assert realnode.HOST_CLAIM.exists()
        realnode.release_host(first)
        realnode.claim_host(second)  # free again
    finally:
        daemons.stop("kubelet")


def test_claim_of_a_cluster_whose_processes_all_died_is_taken_over(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """After a crash or a reboot the holder's run directory can survive with only dead pidfiles: a new cluster
    takes the real node instead of being refused until someone removes the claim by hand."""
    monkeypatch.setattr(realnode, "HOST_CLAIM", tmp_path / "claim.json")
    crashed, new = LocalCluster("crashed", root=tmp_path), LocalCluster("new", root=tmp_path)
    crashed.dir.mkdir()
    daemons = Supervisor(crashed.dir)
    kubelet = daemons.start("kubelet", ["sleep", "60"])
    realnode.claim_host(crashed)
    os.kill(kubelet.pid, signal.SIGKILL)  # dies without its pidfile being removed, as in a crash
    os.waitpid(kubelet.pid, 0)
    assert daemons.recorded() == ["kubelet"] and not daemons.running()
    realnode.claim_host(new)
    assert json.loads(realnode.HOST_CLAIM.read_text())["cluster"] == "new"


def test_a_crashed_holder_with_its_host_record_is_named_for_cleanup(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The next bring-up undoes what a crashed real node left only when its claim is stale and its record of the
    host's changes survives; never a live holder's, never its own."""
    monkeypatch.setattr(realnode, "HOST_CLAIM", tmp_path / "claim.json")
    crashed, new = LocalCluster("crashed", root=tmp_path), LocalCluster("new", root=tmp_path)
    crashed.dir.mkdir()
    assert realnode.crashed_holder(new) is None  # no claim at all
    realnode.claim_host(crashed)
    assert realnode.crashed_holder(new) is None  # no record of host changes: nothing to undo
    (crashed.dir / "realnode.json").write_text("{}")
    assert realnode.crashed_holder(new) == crashed.dir
    assert realnode.crashed_holder(crashed) is None  # its own claim
    daemons = Supervisor(crashed.dir)
    daemons.start("kubelet", ["sleep", "60"])
    try:
        assert realnode.crashed_holder(new) is None  # alive: refused by the one-real-node rule instead
    finally:
        daemons.stop("kubelet")
    assert realnode.crashed_holder(new) == crashed.dir


def test_stale_claim_is_taken_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode, "HOST_CLAIM", tmp_path / "claim.json")
    realnode.HOST_CLAIM.write_text(json.dumps({"cluster": "gone", "run_dir": str(tmp_path / "gone")}))
    realnode.claim_host(LocalCluster("new", root=tmp_path))
    assert json.loads(realnode.HOST_CLAIM.read_text())["cluster"] == "new"


def test_missing_packages_names_apt_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode.shutil, "which", lambda exe: None if exe in ("containerd", "runc") else "/bin/x")
    monkeypatch.setattr(realnode, "CNI_BIN_DIR", Path("/nonexistent"))
    missing = realnode.missing_packages()
    assert {"runc", "containernetworking-plugins"} <= set(missing)
    assert "containerd" not in missing  # the pinned containerd v2 (harness/versions.toml), not Debian's


def test_mounts_under_unescapes_and_orders_deepest_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("1 0 8:1 / / rw - ext4 /dev/a rw\n"
                    "2 1 0:5 / /var/lib/kubelet/aiconform rw - ext4 /dev/a rw\n"
                    "3 2 0:6 / /var/lib/kubelet/aiconform/pods/x/volumes/a\\040b rw - tmpfs tmpfs rw\n"
                    "4 1 0:7 / /var/lib/kubeletother rw - tmpfs tmpfs rw\n")
    real_path = linuxhost.Path

    def fake_path(*parts: str) -> Path:
        return info if parts == ("/proc/self/mountinfo",) else real_path(*parts)

    monkeypatch.setattr(linuxhost, "Path", fake_path)
    assert linuxhost.mounts_under([real_path("/var/lib/kubelet/aiconform")]) == [
        "/var/lib/kubelet/aiconform/pods/x/volumes/a b", "/var/lib/kubelet/aiconform"]


def test_overlap_check() -> None:
    import ipaddress

    nets = [ipaddress.IPv4Network("10.244.0.0/16"), ipaddress.IPv4Network("192.0.2.0/24")]
    assert linuxhost.overlapping("10.244.0.0/24", nets) == nets[0]
    assert linuxhost.overlapping("172.31.255.0/30", nets) is None
