"""The DRA face of the fake GPUs without a cluster: ResourceSlices and DeviceClasses (their format is checked against
the real apiserver by tests/integration/test_dra.py), CDI specs, the profile's DRA checks, the containerd v2 config,
and the driver's gRPC services called over their unix sockets the way the kubelet calls them (the API the driver
reads claims from is an in-memory stand-in: this is the plugin's unit, not the cluster)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from fake_gpu_plugin import cdi
from fake_gpu_plugin.api import dra_pb2 as dra_pb
from fake_gpu_plugin.api import dra_pb2_grpc as dra_grpc
from fake_gpu_plugin.api import pluginregistration_pb2 as reg_pb
from fake_gpu_plugin.api import pluginregistration_pb2_grpc as reg_grpc
from fake_gpu_plugin.config import config_from_pool, parse_gpu, to_pool
from fake_gpu_plugin.dra_devices import (
    DRIVER,
    UNHEALTHY_TAINT,
    VFIO_CLASS,
    device_classes,
    features_used,
    resource_slices,
    semver,
)
from fake_gpu_plugin.dra_plugin import DraDriver, DraSettings
from fake_gpu_plugin.errors import ConfigError as PluginConfigError
from fake_gpu_plugin.errors import PluginError
from fake_gpu_plugin.hostfiles import HostPaths
from fake_gpu_plugin.inventory import assemble_inventory, build_inventory
from fake_gpu_plugin.kubeapi import ApiError
from harness.config import parse_profile
from harness.contract import FAKE_DRIVER_VERSION, FAKE_GPU_LABEL
from harness.dra import memory_mib
from harness.errors import ConfigError
from harness.providers.local.realnode import containerd_config

MIG = {"model": "A100-SXM4-80GB", "count": 2, "mig": {"strategy": "mixed", "layout": [[], ["3g.40gb", "1g.10gb"]]}}
GATES = {"DRAPartitionableDevices": True, "DRAConsumableCapacity": True, "DRADeviceTaints": True}


def _devices(slices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for s in slices for d in s["spec"].get("devices", [])}


def test_mig_gpu_is_published_whole_and_as_partitions_sharing_its_counters() -> None:
    inv = build_inventory(parse_gpu(MIG), "n1")
    slices = resource_slices(inv)
    assert [s["metadata"]["name"] for s in slices] == ["n1-gpu.nvidia.com-counters", "n1-gpu.nvidia.com-devices-0"]
    assert all(s["spec"]["pool"] == {"name": "n1", "generation": 1, "resourceSliceCount": 2} for s in slices)
    assert all(s["spec"]["nodeName"] == "n1" and s["spec"]["driver"] == DRIVER for s in slices)
    counters = slices[0]["spec"]["sharedCounters"]
    assert [c["name"] for c in counters] == ["gpu-1-slices"]
    devs = _devices(slices)
    assert sorted(devs) == ["gpu-0", "gpu-1", "gpu-1-mig-0-3g-40gb", "gpu-1-mig-1-1g-10gb"]
    assert "consumesCounters" not in devs["gpu-0"]
    whole = devs["gpu-1"]["consumesCounters"][0]["counters"]
    part = devs["gpu-1-mig-0-3g-40gb"]["consumesCounters"][0]["counters"]
    assert whole == {"memory-slices": {"value": "8"}, "compute-slices": {"value": "7"}}
    assert part == {"memory-slices": {"value": "4"}, "compute-slices": {"value": "3"}}
    mig = devs["gpu-1-mig-0-3g-40gb"]["attributes"]
    assert mig["type"] == {"string": "mig"} and mig["profile"] == {"string": "3g.40gb"}
    assert mig["parentUUID"]["string"] == devs["gpu-1"]["attributes"]["uuid"]["string"]
    assert devs["gpu-0"]["attributes"]["productName"] == {"string": "NVIDIA A100-SXM4-80GB"}
    assert devs["gpu-0"]["attributes"]["cudaComputeCapability"] == {"version": "8.0.0"}
    assert memory_mib(devs["gpu-0"]) == 81920 and memory_mib({"capacity": {"memory": {"value": "80Gi"}}}) == 81920
    assert features_used(parse_gpu(MIG)) == ["partitionable", "device-taints"]


def test_unhealthy_gpu_and_its_partitions_are_tainted() -> None:
    inv = build_inventory(parse_gpu(MIG), "n1")
    bad = inv.gpus[1].uuid
    devs = _devices(resource_slices(inv, unhealthy=frozenset({bad}), generation=7))
    assert devs["gpu-1"]["taints"] == [UNHEALTHY_TAINT]
    assert devs["gpu-1-mig-1-1g-10gb"]["taints"] == [UNHEALTHY_TAINT]
    assert "taints" not in devs["gpu-0"]


def test_time_sliced_gpu_is_one_device_with_consumable_shares() -> None:
    inv = build_inventory(parse_gpu({"model": "T4", "count": 1, "sharing": {"timeSlicing": {"replicas": 4}}}), "n")
    dev = _devices(resource_slices(inv))["gpu-0"]
    assert dev["allowMultipleAllocations"] is True
    assert dev["capacity"]["shares"]["value"] == "4"
    assert dev["capacity"]["shares"]["requestPolicy"]["default"] == "1"
    assert dev["capacity"]["memory"]["requestPolicy"]["default"] == "3840Mi"


def test_devices_carry_the_driver_versions_and_pci_placement_nvidias_driver_publishes() -> None:
    """driverVersion and cudaDriverVersion are version values (CEL compares them with semver()), on every device;
    the PCI address and root complex are Kubernetes' standard attributes: one bus id per GPU, one root per NUMA
    node, the same on every build for the node, a MIG device placed on its parent GPU."""
    gpu = {**MIG, "count": 4, "numaNodes": 2, "mig": {"strategy": "mixed", "layout": [[], [], [], ["3g.40gb"]]}}
    devs = _devices(resource_slices(build_inventory(parse_gpu(gpu), "n1")))
    assert devs == _devices(resource_slices(build_inventory(parse_gpu(gpu), "n1")))
    for dev in devs.values():
        attrs = dev["attributes"]
        assert attrs["driverVersion"] == {"version": FAKE_DRIVER_VERSION}
        assert attrs["cudaDriverVersion"] == {"version": "12.4.0"}
        assert attrs["cudaComputeCapability"] == {"version": "8.0.0"}
        assert re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", attrs["resource.kubernetes.io/pciBusID"]["string"])
        assert re.fullmatch(r"pci[0-9a-f]{4}:[0-9a-f]{2}", attrs["resource.kubernetes.io/pcieRoot"]["string"])
    whole = {n: d["attributes"] for n, d in devs.items() if d["attributes"]["type"]["string"] == "gpu"}
    bus = {n: a["resource.kubernetes.io/pciBusID"]["string"] for n, a in whole.items()}
    root = {n: a["resource.kubernetes.io/pcieRoot"]["string"] for n, a in whole.items()}
    assert len(set(bus.values())) == 4
    assert root["gpu-0"] == root["gpu-1"] != root["gpu-2"] == root["gpu-3"]
    mig = devs["gpu-3-mig-0-3g-40gb"]["attributes"]
    assert mig["resource.kubernetes.io/pciBusID"]["string"] == bus["gpu-3"]
    assert mig["resource.kubernetes.io/pcieRoot"]["string"] == root["gpu-3"]


def test_a_real_gpu_publishes_nvmls_bus_id_in_sysfs_form_and_no_made_up_root() -> None:
    fake = build_inventory(parse_gpu({"model": "H100-SXM5-80GB", "count": 1}), "n")
    real = replace(fake.gpus[0], pci_bus_id="00000000:3B:00.0")
    inv = assemble_inventory("n", fake.config, (real,), (), fingerprint="f", hardware="nvml")
    attrs = _devices(resource_slices(inv))["gpu-0"]["attributes"]
    assert attrs["resource.kubernetes.io/pciBusID"] == {"string": "0000:3b:00.0"}
    assert "resource.kubernetes.io/pcieRoot" not in attrs


@pytest.mark.parametrize(("dotted", "strict"), [("560.35.03", "560.35.3"), ("535.104.05", "535.104.5"),
                                                 ("13.0", "13.0.0"), ("9", "9.0.0"), ("570.86.10.1", "570.86.10")])
def test_versions_are_published_as_strict_semver(dotted: str, strict: str) -> None:
    assert semver(dotted) == strict


def test_device_classes_cover_gpus_mig_and_each_profile() -> None:
    names = [c["metadata"]["name"] for c in device_classes([parse_gpu(MIG)])]
    assert names == ["gpu.nvidia.com", "mig.nvidia.com", "vfio.gpu.nvidia.com", "1g.10gb.mig.nvidia.com",
                     "3g.40gb.mig.nvidia.com"]
    vfio = next(c for c in device_classes([]) if c["metadata"]["name"] == VFIO_CLASS)
    assert vfio["spec"]["selectors"][0]["cel"]["expression"] == (
        'device.driver == "gpu.nvidia.com" && device.attributes["gpu.nvidia.com"].type == "vfio"')


PASSTHROUGH = {"model": "H100-SXM5-80GB", "count": 2, "passthrough": True}


def _counters_used(device: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {c["counterSet"]: {k: int(v["value"]) for k, v in c["counters"].items()}
            for c in device.get("consumesCounters", [])}


def test_passthrough_publishes_each_gpu_also_as_a_vfio_device_never_allocatable_beside_it() -> None:
    """Each GPU is also ``gpu-vfio-<i>`` (type vfio, the GPU's uuid and PCI address, NVIDIA's PCI ids); the GPU and
    its vfio device each consume the whole of the GPU's counter set, so the allocator can hand out one, not both;
    another GPU's devices use another set."""
    slices = resource_slices(build_inventory(parse_gpu(PASSTHROUGH), "n1"))
    assert [s["metadata"]["name"] for s in slices] == ["n1-gpu.nvidia.com-counters", "n1-gpu.nvidia.com-devices-0"]
    sets = {c["name"]: {k: int(v["value"]) for k, v in c["counters"].items()}
            for c in slices[0]["spec"]["sharedCounters"]}
    devs = _devices(slices)
    assert list(devs) == ["gpu-0", "gpu-vfio-0", "gpu-1", "gpu-vfio-1"]
    for i in (0, 1):
        gpu, vfio = devs[f"gpu-{i}"], devs[f"gpu-vfio-{i}"]
        assert vfio["attributes"]["type"] == {"string": "vfio"} and gpu["attributes"]["type"] == {"string": "gpu"}
        for name in ("uuid", "productName", "resource.kubernetes.io/pciBusID", "resource.kubernetes.io/pcieRoot"):
            assert vfio["attributes"][name] == gpu["attributes"][name], name
        assert _counters_used(gpu) == _counters_used(vfio) == {f"gpu-{i}-slices": sets[f"gpu-{i}-slices"]}
        for counter, total in sets[f"gpu-{i}-slices"].items():  # both together overdraw the set: one or the other
            assert _counters_used(gpu)[f"gpu-{i}-slices"][counter] + _counters_used(vfio)[f"gpu-{i}-slices"][counter] \
                > total
    attrs = devs["gpu-vfio-0"]["attributes"]
    assert attrs["vendorID"] == {"string": "0x10de"} and attrs["deviceID"] == {"string": "0x2330"}
    assert attrs["iommuFDEnabled"] == {"bool": False}
    assert devs["gpu-vfio-0"]["capacity"] == {"addressableMemory": {"value": "81559Mi"}}
    assert "driverVersion" not in attrs  # a GPU bound to vfio-pci no longer answers NVML
    assert features_used(parse_gpu(PASSTHROUGH)) == ["partitionable", "device-taints"]
    plain = _devices(resource_slices(build_inventory(parse_gpu({**PASSTHROUGH, "passthrough": False}), "n1")))
    assert list(plain) == ["gpu-0", "gpu-1"] and not any("consumesCounters" in d for d in plain.values())


def test_passthrough_of_a_carved_gpu_excludes_its_partitions_too() -> None:
    gpu = {**MIG, "passthrough": True}
    devs = _devices(resource_slices(build_inventory(parse_gpu(gpu), "n1")))
    assert sorted(devs) == ["gpu-0", "gpu-1", "gpu-1-mig-0-3g-40gb", "gpu-1-mig-1-1g-10gb", "gpu-vfio-0",
                            "gpu-vfio-1"]
    full = {"memory-slices": 8, "compute-slices": 7}
    assert _counters_used(devs["gpu-vfio-1"]) == _counters_used(devs["gpu-1"]) == {"gpu-1-slices": full}
    assert set(_counters_used(devs["gpu-1-mig-0-3g-40gb"])) == {"gpu-1-slices"}


def test_unhealthy_gpu_taints_its_vfio_device() -> None:
    inv = build_inventory(parse_gpu(PASSTHROUGH), "n1")
    devs = _devices(resource_slices(inv, unhealthy=frozenset({inv.gpus[1].uuid})))
    assert devs["gpu-vfio-1"]["taints"] == [UNHEALTHY_TAINT] and "taints" not in devs["gpu-vfio-0"]


@pytest.mark.parametrize(("gpu", "message"), [
    ({**PASSTHROUGH, "passthrough": "yes"}, "gpu.passthrough: must be true or false, got 'yes'"),
    ({**PASSTHROUGH, "sharing": {"timeSlicing": {"replicas": 2}}},
     "gpu.passthrough: cannot be combined with sharing.timeSlicing"),
])
def test_passthrough_setting_is_validated(gpu: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginConfigError, match=re.escape(message)):
        parse_gpu(gpu)


def test_passthrough_survives_the_real_nodes_config_file_and_needs_dra() -> None:
    assert config_from_pool(to_pool(parse_gpu(PASSTHROUGH))).passthrough is True
    assert "passthrough" not in to_pool(parse_gpu({"model": "T4"}))["gpu"]
    pool = {"name": "p", "gpu": PASSTHROUGH}
    with pytest.raises(ConfigError, match=re.escape("pools[0].gpu.passthrough: VFIO passthrough devices are offered "
                                                    "through DRA only; set pools[0].dra: true")):
        parse_profile({"name": "t", "controlPlane": {"featureGates": GATES}, "pools": [pool]})
    with pytest.raises(ConfigError, match="DRAPartitionableDevices"):
        parse_profile({"name": "t", "controlPlane": {"featureGates": {"DRADeviceTaints": True}},
                       "pools": [{**pool, "dra": True}]})
    assert parse_profile({"name": "t", "controlPlane": {"featureGates": GATES},
                          "pools": [{**pool, "dra": True}]}).pools[0].gpu.passthrough  # type: ignore[union-attr]


def test_dra_pool_gpus_are_not_the_device_plugin_gpus() -> None:
    dp = build_inventory(parse_gpu({"model": "A100-SXM4-80GB", "count": 8}), "node")
    dra = build_inventory(parse_gpu({"model": "A100-SXM4-80GB", "count": 2}), "node", first_index=8)
    assert [g.minor for g in dra.gpus] == [8, 9]
    assert not ({g.uuid for g in dp.gpus} & {g.uuid for g in dra.gpus})


def _profile(dra: dict[str, Any], gates: dict[str, bool] | None = None, version: str = "") -> dict[str, Any]:
    return {"name": "t", "controlPlane": {"featureGates": gates or {}, "kubernetesVersion": version},
            "realNode": {"enabled": True, "gpu": {"model": "T4", "count": 1}, "dra": dra}}


def test_profile_names_the_gate_a_dra_feature_needs() -> None:
    with pytest.raises(ConfigError, match="realNode.dra: its GPUs use DRA partitionable, which needs feature gate "
                                          "DRAPartitionableDevices; controlPlane.featureGates.DRAPartitionableDevices "
                                          "is not set"):
        parse_profile(_profile({"gpu": MIG}, {"DRADeviceTaints": True}))
    with pytest.raises(ConfigError, match="DRADeviceTaints is off"):
        parse_profile(_profile({"gpu": {"model": "T4"}}, {"DRADeviceTaints": False}))
    assert parse_profile(_profile({"gpu": MIG}, GATES)).real_node.dra is not None
    assert parse_profile(_profile({"enabled": False, "gpu": MIG})).real_node.dra is None


def test_profile_refuses_dra_before_v1() -> None:
    with pytest.raises(ConfigError, match="DRA needs resource.k8s.io/v1, served from Kubernetes 1.34; "
                                          "controlPlane.kubernetesVersion is 1.33.5"):
        parse_profile(_profile({"gpu": {"model": "T4"}}, GATES, version="1.33.5"))


def test_containerd_config_is_format_3_with_cdi_and_this_vms_settings(tmp_path: Path) -> None:
    text = containerd_config(tmp_path / "root", tmp_path / "state", tmp_path / "c.sock", tmp_path / "net.d",
                             tmp_path / "cdi")
    import tomllib

    cfg = tomllib.loads(text)
    assert cfg["version"] == 3
    runtime = cfg["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    assert runtime["cdi_spec_dirs"] == [str(tmp_path / "cdi")]
    assert runtime["cni"]["conf_dir"] == str(tmp_path / "net.d")
    assert cfg["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"].startswith("aiconform.local/")


def test_cdi_spec_per_claim(tmp_path: Path) -> None:
    inv = build_inventory(parse_gpu({"model": "A100-SXM4-80GB", "count": 2}), "n", first_index=8)
    paths = HostPaths(tmp_path / "state")
    paths.alloc_dir.mkdir(parents=True)
    path = cdi.write_claim_spec(tmp_path / "cdi", "uid-1", [cdi.ClaimDevice("gpu-9", inv.gpus[1])], paths)
    spec = json.loads(path.read_text())
    assert spec["kind"] == "k8s.gpu.nvidia.com/claim"
    assert [d["name"] for d in spec["devices"]] == ["uid-1-gpu-9"]
    assert spec["devices"][0]["containerEdits"]["deviceNodes"][0]["path"] == "/dev/nvidia9"
    assert f"NVIDIA_VISIBLE_DEVICES={inv.gpus[1].uuid}" in spec["containerEdits"]["env"]
    assert {m["containerPath"] for m in spec["containerEdits"]["mounts"]} == {
        "/usr/local/bin/nvidia-smi", "/etc/aiconform-fake-gpu/devices"}
    assert cdi.qualified("uid-1", "gpu-9") == "k8s.gpu.nvidia.com/claim=uid-1-gpu-9"
    assert cdi.remove_claim_spec(tmp_path / "cdi", "uid-1", paths) and cdi.our_specs(tmp_path / "cdi") == []


def test_cdi_spec_of_a_passthrough_claim_names_the_pci_address_and_injects_no_gpu(tmp_path: Path) -> None:
    inv = build_inventory(parse_gpu(PASSTHROUGH), "n")
    paths = HostPaths(tmp_path / "state")
    paths.alloc_dir.mkdir(parents=True)
    bus = _devices(resource_slices(inv))["gpu-vfio-1"]["attributes"]["resource.kubernetes.io/pciBusID"]["string"]
    spec = json.loads(cdi.write_claim_spec(tmp_path / "cdi", "uid-2", [cdi.ClaimDevice("gpu-vfio-1", inv.gpus[1],
                                                                                       passthrough=True)],
                                           paths).read_text())
    assert spec["devices"] == [{"name": "uid-2-gpu-vfio-1", "containerEdits": {"env": [f"AICONFORM_FAKE_VFIO_1={bus}"]}}]
    assert spec["containerEdits"] == {"env": ["AICONFORM_FAKE_GPU=1", f"AICONFORM_FAKE_VFIO_DEVICES={bus}"]}
    assert not cdi.claim_data_file(paths, "uid-2").exists()
    both = cdi.claim_spec("uid-3", [cdi.ClaimDevice("gpu-0", inv.gpus[0]),
                                    cdi.ClaimDevice("gpu-vfio-1", inv.gpus[1], passthrough=True)], paths, tmp_path / "d")
    assert f"NVIDIA_VISIBLE_DEVICES={inv.gpus[0].uuid}" in both["containerEdits"]["env"]
    assert f"AICONFORM_FAKE_VFIO_DEVICES={bus}" in both["containerEdits"]["env"]
    assert [d["name"] for d in both["devices"]] == ["uid-3-gpu-vfio-1", "uid-3-gpu-0"]


class _Api:
    """An in-memory apiserver for the driver's few requests (slices by name, claims by namespace/name)."""

    def __init__(self) -> None:
        self.objects: dict[str, Any] = {}

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        base = path.split("?", 1)[0]
        if method == "GET" and base.endswith("/resourceslices"):
            return {"items": [o for k, o in self.objects.items() if k.startswith(base + "/")]}
        if method == "GET":
            if base not in self.objects:
                raise ApiError(method, path, 404, "not found")
            return self.objects[base]
        if method in ("POST",):
            self.objects[f"{base}/{body['metadata']['name']}"] = {**body, "metadata": {**body["metadata"],
                                                                                      "resourceVersion": "1"}}
            return body
        if method == "PUT":
            self.objects[base] = body
            return body
        if method == "DELETE":
            self.objects.pop(base, None)
            return {}
        raise PluginError(f"unexpected {method} {path}")


def test_driver_serves_registration_and_prepares_claims_over_its_sockets(tmp_path: Path) -> None:
    inv = build_inventory(parse_gpu({"model": "A100-SXM4-80GB", "count": 2}), "node-a", first_index=8)
    api = _Api()
    api.objects["/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/c"] = {
        "metadata": {"uid": "u1", "name": "c", "namespace": "ns"},
        "status": {"allocation": {"devices": {"results": [
            {"request": "gpu", "driver": DRIVER, "pool": "node-a", "device": "gpu-9"}]}}}}
    settings = DraSettings(node_name="node-a", kubelet_root=tmp_path / "k", cdi_dir=tmp_path / "cdi",
                           state_dir=tmp_path / "s", device_nodes=False)
    with DraDriver(inv, settings, api) as driver:
        with grpc.insecure_channel(f"unix://{settings.registration_socket}") as ch:
            info = reg_grpc.RegistrationStub(ch).GetInfo(reg_pb.InfoRequest(), timeout=5)
            assert (info.type, info.name, info.endpoint) == ("DRAPlugin", DRIVER, str(settings.dra_socket))
            assert list(info.supported_versions) == ["v1.DRAPlugin"]
            reg_grpc.RegistrationStub(ch).NotifyRegistrationStatus(
                reg_pb.RegistrationStatus(plugin_registered=True), timeout=5)
        assert sorted(api.objects)[-1].endswith("/resourceslices/node-a-gpu.nvidia.com-devices-0")
        claim = dra_pb.Claim(namespace="ns", uid="u1", name="c")
        with grpc.insecure_channel(f"unix://{settings.dra_socket}") as ch:
            stub = dra_grpc.DRAPluginStub(ch)
            got = stub.NodePrepareResources(dra_pb.NodePrepareResourcesRequest(claims=[claim]), timeout=5)
            dev = got.claims["u1"].devices[0]
            assert (dev.pool_name, dev.device_name, list(dev.request_names)) == ("node-a", "gpu-9", ["gpu"])
            assert list(dev.cdi_device_ids) == ["k8s.gpu.nvidia.com/claim=u1-gpu-9"]
            assert cdi.our_specs(settings.cdi_dir) and driver.prepared_claims() == ["u1"]
            wrong = dra_pb.Claim(namespace="ns", uid="other", name="c")
            bad = stub.NodePrepareResources(dra_pb.NodePrepareResourcesRequest(claims=[wrong]), timeout=5)
            assert "has uid u1, not other" in bad.claims["other"].error
            stub.NodeUnprepareResources(dra_pb.NodeUnprepareResourcesRequest(claims=[claim]), timeout=5)
            assert not cdi.our_specs(settings.cdi_dir) and driver.prepared_claims() == []
        ops = [json.loads(ln)["op"] for ln in settings.calls_log.read_text().splitlines()]
        assert ops == ["prepare", "prepare", "unprepare"]
    assert not settings.registration_socket.exists() and not settings.dra_socket.exists()
    assert not [k for k in api.objects if "/resourceslices/" in k]


def test_driver_prepares_a_passthrough_claim(tmp_path: Path) -> None:
    inv = build_inventory(parse_gpu(PASSTHROUGH), "node-a")
    api = _Api()
    api.objects["/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/vm"] = {
        "metadata": {"uid": "u9", "name": "vm", "namespace": "ns"},
        "status": {"allocation": {"devices": {"results": [
            {"request": "vm", "driver": DRIVER, "pool": "node-a", "device": "gpu-vfio-0"}]}}}}
    settings = DraSettings(node_name="node-a", kubelet_root=tmp_path / "k", cdi_dir=tmp_path / "cdi",
                           state_dir=tmp_path / "s", device_nodes=False)
    with DraDriver(inv, settings, api) as driver:
        (dev,) = driver.prepare("ns", "vm", "u9")
        assert (dev.device_name, list(dev.cdi_device_ids)) == ("gpu-vfio-0",
                                                               ["k8s.gpu.nvidia.com/claim=u9-gpu-vfio-0"])
        (spec,) = cdi.our_specs(settings.cdi_dir)
        edits = json.loads(spec.read_text())["containerEdits"]
        assert "deviceNodes" not in edits and not any(e.startswith("NVIDIA_VISIBLE_DEVICES") for e in edits["env"])
        driver.unprepare("u9")
        assert not cdi.our_specs(settings.cdi_dir)


class _Lister:
    """Answers ``list`` with fixed Node and ResourceSlice items (detect_tier reads nothing else)."""

    def __init__(self, nodes: list[dict[str, Any]], slices: list[dict[str, Any]]) -> None:
        self.items = {"Node": nodes, "ResourceSlice": slices}

    def list(self, kind: str, *_: Any, **__: Any) -> dict[str, Any]:
        return {"items": self.items[kind]}


def test_tier_detection_counts_gpus_offered_through_dra() -> None:
    from typing import cast

    from harness.kube import KubeClient
    from harness.testing import detect_tier

    gpu_node = {"metadata": {"name": "n1", "labels": {}}, "status": {"allocatable": {}}}
    inv = build_inventory(parse_gpu({"model": "H100", "count": 2}), "n1")
    with_dra = _Lister([gpu_node], resource_slices(inv))
    assert detect_tier(cast(KubeClient, with_dra)) == "G"  # a real node whose GPUs come only through DRA
    assert detect_tier(cast(KubeClient, _Lister([gpu_node], []))) == "S"
    fake = {"metadata": {"name": "n1", "labels": {FAKE_GPU_LABEL: "true"}}, "status": {"allocatable": {}}}
    assert detect_tier(cast(KubeClient, _Lister([fake], resource_slices(inv)))) == "R"
