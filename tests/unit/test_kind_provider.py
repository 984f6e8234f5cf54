"""The kind provider's pure parts, no Docker: profile validation (kind vs local-only fields), the generated kind
config, per-node CNI config and routes, the fake GPU DaemonSet manifests (one spec per worker), the plugin's own-node
label patch, the runc wrapper that drops CAP_SYS_RESOURCE, and `aiconform upgrade` on a kind cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fake_gpu_plugin.labels import FAKE_LABEL, node_labels
from fake_gpu_plugin.nodelabels import label_patch
from harness.config import load_profile, parse_profile
from harness.contract import GPU_RESOURCE, POOL_LABEL, REAL_NODE_LABEL
from harness.errors import ConfigError
from harness.providers.kind import gpustack, kindconfig, network
from harness.providers.kind.cluster import gpu_specs
from harness.providers.kind.engine import DROPPED_CAPS, dockerd_argv, engine_settings, wrapper_script


def _kind(**extra: object) -> dict[str, object]:
    return {"name": "k", "provider": "kind", "kind": {"workers": [{"name": "w", "gpu": {"model": "T4", "count": 1}}]},
            **extra}


@pytest.mark.parametrize("field, value, named", [
    ("pools", [{"name": "a", "nodes": 1}], "pools"),
    ("realNode", {"enabled": True}, "realNode"),
    ("controlPlane", {"liftLimits": False}, "controlPlane.liftLimits"),
])
def test_a_kind_profile_with_a_local_only_field_is_one_line(field: str, value: object, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_profile(_kind(**{field: value}))
    assert f"{named}: a local-provider field in a 'provider: kind' profile" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_kind_section_on_another_provider_is_refused() -> None:
    with pytest.raises(ConfigError, match="kind: only a 'provider: kind' profile"):
        parse_profile({"name": "x", "provider": "local", "kind": {"workers": []}})


def test_worker_fields_are_validated_by_name() -> None:
    bad = _kind(kind={"workers": [{"name": "w", "gpu": {"model": "T4", "count": -1}}]})
    with pytest.raises(ConfigError, match=r"kind.workers\[0\].gpu.count"):
        parse_profile(bad)
    dup = _kind(kind={"workers": [{"name": "w"}, {"name": "w"}]})
    with pytest.raises(ConfigError, match=r"kind.workers\[1\].name: duplicate"):
        parse_profile(dup)
    rel = _kind(kind={"workers": [{"name": "w", "extraMounts": [{"hostPath": "data", "containerPath": "/d"}]}]})
    with pytest.raises(ConfigError, match=r"extraMounts\[0\].hostPath: must be an absolute path"):
        parse_profile(rel)


def test_shipped_kind_profile_has_per_worker_gpu_specs() -> None:
    profile = load_profile("kind-gpu")
    assert profile.tier == "R" and profile.node_count() == 3
    specs = gpu_specs("c", profile)
    assert sorted(specs) == ["c-worker", "c-worker2"]
    assert specs["c-worker"].model != specs["c-worker2"].model
    assert specs["c-worker"].mig.enabled and not specs["c-worker2"].mig.enabled
    assert specs["c-worker2"].time_slicing.replicas == 8


def test_kind_config_patches_and_nodes() -> None:
    profile = parse_profile(_kind(controlPlane={
        "featureGates": {"GenericWorkload": True}, "runtimeConfig": {"scheduling.k8s.io/v1beta1": True},
        "extraArgs": {"kube-scheduler": {"v": 3}}}, kind={"workers": [
            {"name": "gpu", "gpu": {"model": "T4", "count": 1}, "taints": [{"key": GPU_RESOURCE, "value": "x"}],
             "extraMounts": [{"hostPath": "/srv", "containerPath": "/srv", "readOnly": True}]},
            {"name": "cpu"}]}))
    cfg = kindconfig.kind_config(profile, node_image="img:1", etcd_tag="v3.7.3", coredns_tag="v1.15.0")
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker", "worker"]
    assert all(n["image"] == "img:1" for n in cfg["nodes"])
    gpu, cpu = cfg["nodes"][1], cfg["nodes"][2]
    assert gpu["labels"] == {POOL_LABEL: "gpu", REAL_NODE_LABEL: "true",
                             kindconfig.PLUGIN_NODE_LABEL: "true"}
    assert kindconfig.PLUGIN_NODE_LABEL not in cpu["labels"]
    assert not any(k.startswith("nvidia.com/") for n in cfg["nodes"] for k in n.get("labels", {}))  # the plugin's
    assert gpu["extraMounts"] == [{"hostPath": "/srv", "containerPath": "/srv", "readOnly": True}]
    join = yaml.safe_load(gpu["kubeadmConfigPatches"][0])
    assert join["nodeRegistration"]["taints"] == [{"key": GPU_RESOURCE, "value": "x", "effect": "NoSchedule"}]
    net = cfg["networking"]
    assert net["disableDefaultCNI"] is True and net["apiServerAddress"] == "127.0.0.1"
    patches = [yaml.safe_load(p) for p in cfg["kubeadmConfigPatches"]]
    cluster = next(p for p in patches if p["kind"] == "ClusterConfiguration")
    assert cluster["imageRepository"] == "aiconform.local"
    assert cluster["etcd"]["local"]["imageTag"] == "v3.7.3" and cluster["dns"]["imageTag"] == "v1.15.0"
    assert next(p for p in patches if p["kind"] == "KubeletConfiguration")["failCgroupV1"] is False
    assert "restrict_oom_score_adj = true" in cfg["containerdConfigPatches"][0]
    assert cfg["featureGates"] == {"GenericWorkload": True}
    assert cfg["runtimeConfig"] == {"scheduling.k8s.io/v1beta1": "true"}
    ops = yaml.safe_load(cfg["kubeadmConfigPatchesJSON6902"][0]["patch"])
    assert ops == [{"op": "add", "path": "/scheduler/extraArgs/-", "value": {"name": "v", "value": "3"}}]


def test_worker_names_follow_kind() -> None:
    assert kindconfig.worker_node_names("c", 3) == ["c-worker", "c-worker2", "c-worker3"]


def test_cni_config_and_routes_per_node() -> None:
    doc = json.loads(network.conflist("10.128.1.0/24"))
    ptp = doc["plugins"][0]
    assert ptp["type"] == "ptp" and ptp["ipam"]["ranges"] == [[{"subnet": "10.128.1.0/24"}]]
    nodes = [network.NodeNet("a", "172.18.0.2", "10.128.0.0/24"), network.NodeNet("b", "172.18.0.3", "10.128.1.0/24"),
             network.NodeNet("c", "172.18.0.4", "10.128.2.0/24")]
    assert network.route_argvs(nodes[0], nodes) == [
        ["ip", "route", "replace", "10.128.1.0/24", "via", "172.18.0.3"],
        ["ip", "route", "replace", "10.128.2.0/24", "via", "172.18.0.4"]]


def test_daemonset_manifests_carry_one_spec_per_node_and_the_builders_image() -> None:
    from harness.images import image_ref

    specs = gpu_specs("c", load_profile("kind-gpu"))
    objs = {o["kind"]: o for o in gpustack.manifests(specs, image_ref("fake-gpu-plugin"))}
    data = objs["ConfigMap"]["data"]
    assert sorted(data) == ["c-worker.yaml", "c-worker2.yaml"]
    assert yaml.safe_load(data["c-worker2.yaml"])["gpu"]["model"] == "T4"
    pod = objs["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == image_ref("fake-gpu-plugin")
    assert "--config=/etc/aiconform/fake-gpu/$(NODE_NAME).yaml" in pod["containers"][0]["args"]
    assert "--label-node" in pod["containers"][0]["args"]
    assert pod["nodeSelector"] == {kindconfig.PLUGIN_NODE_LABEL: "true"}
    rules = objs["ClusterRole"]["rules"]
    assert {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]} in rules
    # the file on disk names the same image as the builder (a user applying it by hand gets the image built here)
    raw = [d for d in yaml.safe_load_all(gpustack.DAEMONSET_FILE.read_text()) if d and d["kind"] == "DaemonSet"]
    assert raw[0]["spec"]["template"]["spec"]["containers"][0]["image"] == image_ref("fake-gpu-plugin")
    resources = gpustack.expected_resources("c-worker", specs["c-worker"])
    assert resources[GPU_RESOURCE] == 7 and resources["nvidia.com/mig-1g.10gb"] == 2


def test_label_patch_sets_ours_and_removes_stale_ones() -> None:
    specs = gpu_specs("c", load_profile("kind-gpu"))
    wanted = node_labels(specs["c-worker2"])
    current = {"kubernetes.io/hostname": "c-worker2", "nvidia.com/mig.strategy": "mixed", FAKE_LABEL: "true",
               "team": "inference"}
    patch = label_patch(current, wanted)
    assert patch["nvidia.com/mig.strategy"] is None  # stale: this spec has no MIG
    assert patch["nvidia.com/gpu.product"] == wanted["nvidia.com/gpu.product"]
    assert "kubernetes.io/hostname" not in patch and "team" not in patch and FAKE_LABEL not in patch
    assert label_patch(dict(wanted), wanted) == {}


def test_runc_wrapper_drops_sys_resource_from_bundles_and_exec_processes(tmp_path: Path) -> None:
    fake_runc = tmp_path / "runc"
    fake_runc.write_text("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/argv\"\n")
    fake_runc.chmod(0o755)
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(wrapper_script(str(fake_runc), sys.executable))
    wrapper.chmod(0o755)
    caps = ["CAP_CHOWN", *DROPPED_CAPS, "CAP_NET_ADMIN"]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"process": {"capabilities": {"bounding": caps,
                                                                                 "effective": caps}}}))
    subprocess.run([str(wrapper), "--root", "/x", "create", "--bundle", str(bundle), "id1"], check=True, timeout=30)
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["process"]["capabilities"]["bounding"] == ["CAP_CHOWN", "CAP_NET_ADMIN"]
    assert (tmp_path / "argv").read_text().split() == ["--root", "/x", "create", "--bundle", str(bundle), "id1"]
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"capabilities": {"permitted": caps}}))
    subprocess.run([str(wrapper), "exec", "--process", str(process), "id1"], check=True, timeout=30)
    assert json.loads(process.read_text())["capabilities"]["permitted"] == ["CAP_CHOWN", "CAP_NET_ADMIN"]


def test_dockerd_leaves_the_host_alone(tmp_path: Path) -> None:
    s = engine_settings(tmp_path)
    argv = dockerd_argv("/usr/sbin/dockerd", s)
    assert {"--iptables=false", "--ip-masq=false", "--bridge=none"} <= set(argv)
    assert argv[argv.index("--data-root") + 1] == str(tmp_path / ".docker" / "data")
    assert argv[argv.index("--default-runtime") + 1] == "aiconform-runc"
    assert argv[argv.index("--host") + 1] == f"unix://{tmp_path}/.docker/docker.sock"


def test_upgrade_on_kind_says_why_in_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "state" / "k1"
    run_dir.mkdir(parents=True)
    (run_dir / "provider").write_text("kind\n")
    res = subprocess.run([sys.executable, "-m", "harness.cli", "upgrade", "--name", "k1", "--to", "1.38.0"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state")})
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("aiconform: provider 'kind' does not support upgrading the control plane: a kind "
                               "cluster has no control-plane upgrade path")


def test_up_without_docker_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """No dockerd on PATH: `aiconform up` of a kind profile ends in one line naming the package, nothing recorded."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    state = tmp_path / "state"
    res = subprocess.run([sys.executable, "-m", "harness.cli", "up", "--profile", "kind-gpu", "--name", "nodocker"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PATH": str(bindir), "AICONFORM_STATE_DIR": str(state)})
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("aiconform:")]
    assert lines == ["aiconform: the kind provider needs Docker: dockerd is not installed (Debian: apt-get install "
                     "docker.io)"]
    assert not (state / "nodocker").exists()


def test_kind_takes_addons_as_pods_on_its_nodes_and_runs_no_host_process(tmp_path: Path) -> None:
    """KindSite is the addon installer's view of a kind cluster: real nodes (images ``kind load``-ed), no host
    process, so every addon goes on the nodes as pods, and one that could only run beside the control plane would be
    refused naming kind."""
    from harness.addons import AddonSite, HostProcesses, RealNodes, lookup, placement
    from harness.providers.kind.cluster import KindCluster, KindSite

    site = KindSite(KindCluster("k", root=tmp_path))
    assert isinstance(site, AddonSite) and isinstance(site, RealNodes) and not isinstance(site, HostProcesses)
    assert site.provider == "kind" and site.cluster == "k" and site.ca() is None
    assert dict(site.node_selector) == {REAL_NODE_LABEL: "true"}
    assert placement(lookup("jobset"), provider="kind", real_nodes=True, host_processes=False) == "pod"


def test_the_engine_kind_would_use_is_docker_host_then_the_default_socket(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    from harness.providers.kind import engine as eng

    monkeypatch.setattr(eng, "DEFAULT_SOCKET", tmp_path / "docker.sock")
    assert eng.user_engine({}) is None
    (tmp_path / "docker.sock").touch()
    assert eng.user_engine({}) == (f"unix://{tmp_path / 'docker.sock'}", "the default socket")
    assert eng.user_engine({"DOCKER_HOST": "tcp://127.0.0.1:2375"}) == ("tcp://127.0.0.1:2375", "DOCKER_HOST")
    assert eng.engine_choice({}) == "auto" and eng.engine_choice({"AICONFORM_KIND_ENGINE": "own"}) == "own"
    with pytest.raises(ConfigError, match=r"^AICONFORM_KIND_ENGINE='docker': give one of auto, own, user$"):
        eng.engine_choice({"AICONFORM_KIND_ENGINE": "docker"})
