"""``--backend nvml``: real GPUs through the same plugin, tested against NVML answers recorded on a real H100.

``data/nvml-h100.json`` was recorded by ``tests/gpu/nvml_probe.py`` (``nvml_backend.record_nvml``) on a lent machine
with one NVIDIA H100 80GB HBM3 (driver 580.159.04, MIG off).  The MIG, multi-GPU and unknown-model cases are that
recording edited the way NVML would answer for such hardware; ``testing.RecordedNvml`` replays it and delivers
injected Xid events.  The plugin runs over real gRPC unix sockets against the kubelet Registration double.
"""

from __future__ import annotations

import copy
import ctypes.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from fake_gpu_plugin.api import deviceplugin_pb2 as pb
from fake_gpu_plugin.api import deviceplugin_pb2_grpc as pb_grpc
from fake_gpu_plugin.cli import main
from fake_gpu_plugin.config import TimeSlicing
from fake_gpu_plugin.errors import ConfigError, HostSetupError, NvmlError
from fake_gpu_plugin.health import set_device_health
from fake_gpu_plugin.inventory import HEALTHY, UNHEALTHY, Inventory
from fake_gpu_plugin.metrics import MetricsExporter
from fake_gpu_plugin.nvml_backend import (
    GPU_CALLS,
    MIG_CALLS,
    SYSTEM_CALLS,
    NvmlBackend,
    NvmlHealth,
    NvmlSettings,
    XidFilter,
    record_nvml,
    settings_from_file,
)
from fake_gpu_plugin.plugin import FakeGpuPlugin, PluginSettings
from fake_gpu_plugin.testing import FakeKubeletRegistration, FakePodResources, RecordedNvml

H100: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "nvml-h100.json").read_text())
H100_UUID = "GPU-8e5a13ba-c358-fc3f-69e8-2979d4489126"
GIB = 1024**3


# ---- recordings ---------------------------------------------------------------------------------------------------


def two_gpus() -> dict[str, Any]:
    """The H100 recording with a second H100 (minor 1, another bus, NUMA node 1 in sysfs)."""
    rec: dict[str, Any] = copy.deepcopy(H100)
    second = copy.deepcopy(rec["devices"][0])
    second["nvmlDeviceGetUUID"] = {"value": "GPU-00000000-1111-2222-3333-444444444444"}
    second["nvmlDeviceGetMinorNumber"] = {"value": 1}
    second["nvmlDeviceGetPciInfo"]["value"]["busId"] = "00000000:00:07.0"
    rec["devices"].append(second)
    rec["system"]["nvmlDeviceGetCount"] = {"value": 2}
    rec["host"]["sys/bus/pci/devices/0000:00:07.0/numa_node"] = "1\n"
    rec["dev"].append("nvidia1")
    rec["events"]["nvmlDeviceRegisterEvents"].append({"value": None})
    return rec


MIG_LAYOUT = [  # (slot, profile, NVML memory MiB, GPU instance, compute instance, GPU slices)
    (0, "3g.40gb", 40192, 2, 0, 3),
    (1, "2g.20gb", 19968, 3, 0, 2),
    (2, "1g.10gb", 9856, 9, 0, 1),
]


def mig_h100(layout: list[tuple[int, str, int, int, int, int]] = MIG_LAYOUT) -> dict[str, Any]:
    """The H100 recording in MIG mode with ``layout``'s MIG devices (empty slots answer NOT_FOUND, as NVML does)."""
    rec: dict[str, Any] = copy.deepcopy(H100)
    dev = rec["devices"][0]
    dev["nvmlDeviceGetMigMode"] = {"value": [1, 1]}
    dev["nvmlDeviceGetMaxMigDeviceCount"] = {"value": 7}
    used = {slot for slot, *_ in layout}
    dev["mig_devices"] = [{"slot": s, "error": 6, "message": "Not Found"} for s in range(7) if s not in used]
    for slot, profile, mem, gi, ci, slices in layout:
        dev["mig_devices"].append({
            "slot": slot,
            "nvmlDeviceGetUUID": {"value": f"MIG-{slot:08x}-aaaa-bbbb-cccc-dddddddddddd"},
            "nvmlDeviceGetName": {"value": f"NVIDIA H100 80GB HBM3 MIG {profile}"},
            "nvmlDeviceGetMemoryInfo": {"value": {"total": mem * 1024 * 1024, "free": 0, "used": 0}},
            "nvmlDeviceGetGpuInstanceId": {"value": gi},
            "nvmlDeviceGetComputeInstanceId": {"value": ci},
            "nvmlDeviceGetAttributes": {"value": {"gpuInstanceSliceCount": slices, "computeInstanceSliceCount": slices,
                                                  "memorySizeMB": mem}},
        })
    dev["mig_devices"].sort(key=lambda m: m["slot"])
    return rec


def unknown_model() -> dict[str, Any]:
    rec: dict[str, Any] = copy.deepcopy(H100)
    dev = rec["devices"][0]
    dev["nvmlDeviceGetName"] = {"value": "NVIDIA Future GPU 96GB"}
    dev["nvmlDeviceGetMemoryInfo"]["value"]["total"] = 96 * GIB
    dev["nvmlDeviceGetCudaComputeCapability"] = {"value": [10, 0]}
    dev["nvmlDeviceGetPowerManagementDefaultLimit"] = {"value": 1000000}
    return rec


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A host root holding the recording's sysfs/procfs files and /dev entries (plain files: no root needed)."""
    return tmp_path / "host"


def make_host(root: Path, rec: dict[str, Any]) -> Path:
    for rel, text in rec["host"].items():
        if text is not None:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    dev = root / "dev"
    dev.mkdir(parents=True, exist_ok=True)
    for name in rec["dev"]:
        if name == "nvidia-caps":
            (dev / name).mkdir(exist_ok=True)
        else:
            (dev / name).touch()
    return dev


def open_backend(rec: dict[str, Any], root: Path, **env: str) -> tuple[NvmlBackend, RecordedNvml]:
    make_host(root, rec)
    nvml = RecordedNvml(rec)
    return NvmlBackend(nvml, host_root=root, dev_root=root / "dev", env=env), nvml


@contextmanager
def serving(sockdir: Path, backend: NvmlBackend, inv: Inventory, *, health: bool = True) -> Iterator[FakeGpuPlugin]:
    settings = PluginSettings(node_name=inv.node_name, device_plugin_dir=sockdir, state_dir=sockdir / "state",
                              metrics_addr=None, pod_resources_socket=None, poll_interval_s=0.02,
                              dev_root=backend.dev_root)
    source = backend.health_source(inv) if health else None
    if source is not None:
        source.wait_ms = 50
    with FakeKubeletRegistration(sockdir), FakeGpuPlugin(inv, settings, health_source=source) as plugin:
        yield plugin


@contextmanager
def stub_for(plugin: FakeGpuPlugin, resource: str = "nvidia.com/gpu") -> Iterator[pb_grpc.DevicePluginStub]:
    with grpc.insecure_channel(f"unix://{plugin.servers[resource].socket_path}") as channel:
        yield pb_grpc.DevicePluginStub(channel)


def allocate(stub: pb_grpc.DevicePluginStub, *ids: str) -> pb.ContainerAllocateResponse:
    reply = stub.Allocate(pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=ids)]),
                          timeout=5)
    response: pb.ContainerAllocateResponse = reply.container_responses[0]
    return response


def health_of(response: pb.ListAndWatchResponse) -> dict[str, str]:
    return {d.ID: d.health for d in response.devices}


# ---- inventory from NVML ------------------------------------------------------------------------------------------


def test_the_recorded_h100_is_advertised_as_one_catalogue_gpu(host: Path) -> None:
    backend, _ = open_backend(H100, host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    (gpu,) = inv.gpus
    assert (gpu.uuid, gpu.model.key, gpu.memory_mib, gpu.minor, gpu.pci_bus_id) == \
        (H100_UUID, "H100-SXM5-80GB", 81559, 0, "00000000:00:06.0")
    assert gpu.numa_node == 0  # NVML: Not Supported; sysfs: -1 (no NUMA affinity)
    assert gpu.model.power_watts == 700
    assert inv.hardware == "nvml" and not inv.fake
    assert {k: [d.id for d in v] for k, v in inv.resources.items()} == {"nvidia.com/gpu": [H100_UUID]}
    assert inv.mig_devices == ()


def test_numa_node_comes_from_sysfs_when_nvml_has_none(host: Path) -> None:
    backend, _ = open_backend(two_gpus(), host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    assert [(g.minor, g.numa_node) for g in inv.gpus] == [(0, 0), (1, 1)]


def test_an_unknown_model_works_with_nvmls_own_figures(host: Path, sockdir: Path) -> None:
    backend, _ = open_backend(unknown_model(), host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    model = inv.gpus[0].model
    assert (model.key, model.product, model.memory_mib, model.family, model.power_watts) == \
        ("NVIDIA-Future-GPU-96GB", "NVIDIA Future GPU 96GB", 96 * 1024, "blackwell", 1000)
    with serving(sockdir, backend, inv) as plugin, stub_for(plugin) as stub:
        assert health_of(next(stub.ListAndWatch(pb.Empty(), timeout=5))) == {H100_UUID: HEALTHY}
        assert allocate(stub, H100_UUID).envs["NVIDIA_VISIBLE_DEVICES"] == H100_UUID
    metrics = MetricsExporter(inv, pod_resources_socket=None).render()
    free = [line for line in metrics.splitlines() if line.startswith("DCGM_FI_DEV_FB_FREE{")]
    assert len(free) == 1 and free[0].endswith(" 98304")
    assert 'modelName="NVIDIA Future GPU 96GB"' in free[0]


def test_time_slicing_applies_to_real_gpus(host: Path) -> None:
    backend, _ = open_backend(H100, host)
    inv = backend.inventory("gpu-node", NvmlSettings(time_slicing=TimeSlicing(replicas=3)))
    assert [d.id for d in inv.resources["nvidia.com/gpu"]] == [f"{H100_UUID}::{r}" for r in range(3)]


# ---- MIG ----------------------------------------------------------------------------------------------------------


def test_mig_devices_are_advertised_per_profile_under_mixed(host: Path) -> None:
    backend, _ = open_backend(mig_h100(), host)
    inv = backend.inventory("gpu-node", NvmlSettings(mig_strategy="mixed"))
    assert {k: [d.id for d in v] for k, v in inv.resources.items()} == {
        "nvidia.com/mig-1g.10gb": ["MIG-00000002-aaaa-bbbb-cccc-dddddddddddd"],
        "nvidia.com/mig-2g.20gb": ["MIG-00000001-aaaa-bbbb-cccc-dddddddddddd"],
        "nvidia.com/mig-3g.40gb": ["MIG-00000000-aaaa-bbbb-cccc-dddddddddddd"],
    }
    assert [(m.profile.name, m.memory_mib, m.slot) for m in inv.mig_devices] == \
        [("3g.40gb", 40192, 0), ("2g.20gb", 19968, 1), ("1g.10gb", 9856, 2)]


def test_mig_strategy_none_advertises_the_whole_gpu(host: Path) -> None:
    backend, _ = open_backend(mig_h100(), host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    assert {k: [d.id for d in v] for k, v in inv.resources.items()} == {"nvidia.com/gpu": [H100_UUID]}


def test_mig_strategy_single_needs_one_profile(host: Path) -> None:
    backend, _ = open_backend(mig_h100(), host)
    with pytest.raises(NvmlError, match="single needs every GPU carved into one and the same profile, found "
                                        "1g.10gb, 2g.20gb, 3g.40gb"):
        backend.inventory("gpu-node", NvmlSettings(mig_strategy="single"))
    backend, _ = open_backend(mig_h100([(0, "3g.40gb", 40192, 1, 0, 3), (1, "3g.40gb", 40192, 2, 0, 3)]), host)
    inv = backend.inventory("gpu-node", NvmlSettings(mig_strategy="single"))
    assert [d.id[:12] for d in inv.resources["nvidia.com/gpu"]] == ["MIG-00000000", "MIG-00000001"]


def test_a_mig_gpu_with_no_instances_is_not_advertised_under_mixed(host: Path) -> None:
    rec = two_gpus()
    rec["devices"][1]["nvmlDeviceGetMigMode"] = {"value": [1, 1]}
    rec["devices"][1]["nvmlDeviceGetMaxMigDeviceCount"] = {"value": 7}
    rec["devices"][1]["mig_devices"] = [{"slot": s, "error": 6, "message": "Not Found"} for s in range(7)]
    backend, _ = open_backend(rec, host)
    inv = backend.inventory("gpu-node", NvmlSettings(mig_strategy="mixed"))
    assert {k: [d.id for d in v] for k, v in inv.resources.items()} == {"nvidia.com/gpu": [H100_UUID]}


def test_mig_profiles_of_an_unknown_model_come_from_nvml(host: Path) -> None:
    rec = mig_h100([(0, "1g.12gb", 12032, 7, 0, 1), (1, "2g.24gb", 24064, 5, 0, 2)])
    rec["devices"][0]["nvmlDeviceGetName"] = {"value": "NVIDIA Future GPU 96GB"}
    rec["devices"][0]["mig_devices"][1]["nvmlDeviceGetName"] = {"value": "NVIDIA Future GPU 96GB"}  # no profile
    backend, _ = open_backend(rec, host)
    inv = backend.inventory("gpu-node", NvmlSettings(mig_strategy="mixed"))
    assert sorted(inv.resources) == ["nvidia.com/mig-1g.12gb", "nvidia.com/mig-2g.24gb"]
    assert [(m.profile.name, m.profile.compute_slices, m.memory_mib) for m in inv.mig_devices] == \
        [("1g.12gb", 1, 12032), ("2g.24gb", 2, 24064)]


def test_allocate_of_a_mig_device_hands_its_capability_nodes(host: Path, sockdir: Path) -> None:
    backend, _ = open_backend(mig_h100(), host)
    caps = backend.dev_root / "nvidia-caps"
    # gpu0/gi9/access and gpu0/gi9/ci0/access in the recorded /proc/driver/nvidia-caps/mig-minors
    assert "gpu0/gi9/access 84\ngpu0/gi9/ci0/access 85\n" in H100["host"]["proc/driver/nvidia-caps/mig-minors"]
    for minor in (84, 85):
        (caps / f"nvidia-cap{minor}").touch()
    inv = backend.inventory("gpu-node", NvmlSettings(mig_strategy="mixed"))
    mig = "MIG-00000002-aaaa-bbbb-cccc-dddddddddddd"
    with serving(sockdir, backend, inv) as plugin, stub_for(plugin, "nvidia.com/mig-1g.10gb") as stub:
        resp = allocate(stub, mig)
    assert dict(resp.envs) == {"NVIDIA_VISIBLE_DEVICES": mig}
    assert [(d.container_path, d.host_path) for d in resp.devices] == [
        (f"/dev/{n}", str(backend.dev_root / n)) for n in
        ("nvidia0", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-caps/nvidia-cap84",
         "nvidia-caps/nvidia-cap85")]


# ---- Allocate on real GPUs ----------------------------------------------------------------------------------------


def test_allocate_hands_the_real_device_nodes_and_uuids(host: Path, sockdir: Path) -> None:
    backend, _ = open_backend(H100, host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    before = sorted(os.listdir(backend.dev_root))
    with serving(sockdir, backend, inv) as plugin, stub_for(plugin) as stub:
        options = stub.GetDevicePluginOptions(pb.Empty(), timeout=5)
        first = next(stub.ListAndWatch(pb.Empty(), timeout=5))
        resp = allocate(stub, H100_UUID)
    assert options.get_preferred_allocation_available
    assert [(d.ID, d.health, [n.ID for n in d.topology.nodes]) for d in first.devices] == [(H100_UUID, HEALTHY, [0])]
    # Real hardware: nothing fake declared or mounted, the driver's own nodes (from the recorded /dev listing).
    assert dict(resp.envs) == {"NVIDIA_VISIBLE_DEVICES": H100_UUID}
    assert list(resp.mounts) == []
    assert [(d.container_path, d.host_path, d.permissions) for d in resp.devices] == [
        (f"/dev/{n}", str(backend.dev_root / n), "rw") for n in ("nvidia0", "nvidiactl", "nvidia-uvm",
                                                                 "nvidia-uvm-tools")]
    assert sorted(os.listdir(backend.dev_root)) == before  # never creates or replaces anything there
    assert not (sockdir / "state" / "dev").exists() and not (sockdir / "state" / "bin" / "nvidia-smi").exists()


def test_preferred_allocation_and_pod_attribution_use_the_real_ids(host: Path, sockdir: Path) -> None:
    backend, _ = open_backend(two_gpus(), host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    second = inv.gpus[1].uuid
    request = pb.PreferredAllocationRequest(container_requests=[pb.ContainerPreferredAllocationRequest(
        available_deviceIDs=[H100_UUID, second], must_include_deviceIDs=[second], allocation_size=1)])
    with serving(sockdir, backend, inv) as plugin, stub_for(plugin) as stub:
        assert list(stub.GetPreferredAllocation(request, timeout=5).container_responses[0].deviceIDs) == [second]
    holders = [("team-a", "trainer", "main", "nvidia.com/gpu", [second])]
    with FakePodResources(sockdir / "pr.sock", holders):
        text = MetricsExporter(inv, pod_resources_socket=sockdir / "pr.sock").render()
    util = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines()
            if line.startswith("DCGM_FI_DEV_GPU_UTIL{")}
    assert [(f'UUID="{second}"' in k, 'pod="trainer"' in k, v) for k, v in util.items()] == \
        [(False, False, "0"), (True, True, "100")]


def test_uvm_nodes_are_handed_out_only_where_present(host: Path, sockdir: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    rec: dict[str, Any] = copy.deepcopy(H100)
    rec["dev"] = ["nvidia0", "nvidiactl"]  # nvidia-uvm not loaded yet
    backend, _ = open_backend(rec, host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    with serving(sockdir, backend, inv) as plugin, stub_for(plugin) as stub:
        assert "containers cannot run CUDA until the nvidia-uvm module is loaded" in caplog.text
        assert [d.container_path for d in allocate(stub, H100_UUID).devices] == ["/dev/nvidia0", "/dev/nvidiactl"]
        for name in ("nvidia-uvm", "nvidia-uvm-tools"):  # the module loads later: handed out from then on
            (backend.dev_root / name).touch()
        assert [d.container_path for d in allocate(stub, H100_UUID).devices][2:] == \
            ["/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]


def test_a_host_without_the_driver_nodes_is_refused(host: Path, sockdir: Path) -> None:
    backend, _ = open_backend(H100, host)
    (backend.dev_root / "nvidiactl").unlink()
    inv = backend.inventory("gpu-node", NvmlSettings())
    with pytest.raises(HostSetupError, match=r"device node\(s\) .*/dev/nvidiactl missing: is the NVIDIA driver loaded"):
        with serving(sockdir, backend, inv):
            pass


# ---- health: Xid events -------------------------------------------------------------------------------------------


def test_a_critical_xid_makes_the_gpu_unhealthy_and_an_ignored_one_does_nothing(host: Path, sockdir: Path) -> None:
    backend, nvml = open_backend(two_gpus(), host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    second = inv.gpus[1].uuid
    with serving(sockdir, backend, inv) as plugin, stub_for(plugin) as stub:
        assert nvml.registered == [(0, 0xB), (1, 0xB)]  # Xid critical + double- and single-bit ECC, on every GPU
        stream = stub.ListAndWatch(pb.Empty(), timeout=10)
        assert set(health_of(next(stream)).values()) == {HEALTHY}
        nvml.push_event(1, 43)  # "GPU stopped processing": an application error, ignored by default
        nvml.push_event(0, 79)  # "GPU has fallen off the bus"
        started = time.monotonic()
        pushed = health_of(next(stream))  # events are handled in order: 43 was seen before 79 changed anything
        latency = time.monotonic() - started
        assert pushed == {H100_UUID: UNHEALTHY, second: HEALTHY}
        assert plugin.health_source is not None and plugin.health_source.unhealthy() == {H100_UUID}
        assert latency < 1.0, f"Xid to ListAndWatch took {latency:.3f}s"
        stream.cancel()


def test_xid_health_merges_with_the_control_file_and_stays(host: Path, sockdir: Path) -> None:
    backend, nvml = open_backend(two_gpus(), host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    second = inv.gpus[1].uuid
    with serving(sockdir, backend, inv) as plugin, stub_for(plugin) as stub:
        stream = stub.ListAndWatch(pb.Empty(), timeout=10)
        next(stream)
        set_device_health(plugin.paths.state_dir, second, healthy=False)
        assert health_of(next(stream)) == {H100_UUID: HEALTHY, second: UNHEALTHY}
        nvml.push_event(0, 48)  # double-bit ECC error
        assert health_of(next(stream)) == {H100_UUID: UNHEALTHY, second: UNHEALTHY}
        set_device_health(plugin.paths.state_dir, second, healthy=True)
        set_device_health(plugin.paths.state_dir, H100_UUID, healthy=True)  # an Xid verdict is sticky, as NVIDIA's
        assert health_of(next(stream)) == {H100_UUID: UNHEALTHY, second: HEALTHY}
        stream.cancel()


def test_an_xid_on_one_mig_device_marks_only_that_device(host: Path, sockdir: Path) -> None:
    backend, nvml = open_backend(mig_h100(), host)
    inv = backend.inventory("gpu-node", NvmlSettings(mig_strategy="mixed"))
    with serving(sockdir, backend, inv) as plugin:
        feeds = plugin.feeds
        with stub_for(plugin, "nvidia.com/mig-2g.20gb") as stub:
            stream = stub.ListAndWatch(pb.Empty(), timeout=10)
            next(stream)
            nvml.push_event(0, 94, gpu_instance=3, compute_instance=0)  # the 2g.20gb device (gi 3, ci 0)
            assert set(health_of(next(stream)).values()) == {UNHEALTHY}
            stream.cancel()
        others = [feeds[r].current for r in ("nvidia.com/mig-1g.10gb", "nvidia.com/mig-3g.40gb")]
        assert all(d.health == HEALTHY for resp in others for d in resp.devices)


def test_an_xid_without_an_instance_on_a_mig_gpu_marks_all_its_devices(host: Path, sockdir: Path) -> None:
    backend, nvml = open_backend(mig_h100(), host)
    inv = backend.inventory("gpu-node", NvmlSettings(mig_strategy="mixed"))
    with serving(sockdir, backend, inv) as plugin, stub_for(plugin, "nvidia.com/mig-3g.40gb") as stub:
        stream = stub.ListAndWatch(pb.Empty(), timeout=10)
        next(stream)
        nvml.push_event(0, 79)
        assert set(health_of(next(stream)).values()) == {UNHEALTHY}
        assert all(d.health == UNHEALTHY for feed in plugin.feeds.values() for d in feed.current.devices)
        stream.cancel()


def test_events_other_than_xid_critical_errors_change_nothing(host: Path) -> None:
    backend, nvml = open_backend(H100, host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    health = backend.health_source(inv)
    single_bit = type("Event", (), {"device": nvml.nvmlDeviceGetHandleByIndex(0), "eventData": 0,
                                    "eventType": nvml.nvmlEventTypeSingleBitEccError,
                                    "gpuInstanceId": 0xFFFFFFFF, "computeInstanceId": 0xFFFFFFFF})()
    assert health.handle_event(single_bit) is None
    assert health.unhealthy() == frozenset()


def test_a_gpu_whose_events_cannot_be_registered_starts_unhealthy(host: Path, sockdir: Path) -> None:
    rec: dict[str, Any] = copy.deepcopy(H100)
    rec["events"]["nvmlDeviceRegisterEvents"] = [{"error": 3, "message": "Not Supported"}]
    backend, _ = open_backend(rec, host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    with serving(sockdir, backend, inv) as plugin, stub_for(plugin) as stub:
        assert health_of(next(stub.ListAndWatch(pb.Empty(), timeout=5))) == {H100_UUID: UNHEALTHY}


def test_a_failed_event_wait_marks_every_gpu_unhealthy(host: Path, sockdir: Path) -> None:
    backend, nvml = open_backend(two_gpus(), host)
    inv = backend.inventory("gpu-node", NvmlSettings())
    with serving(sockdir, backend, inv) as plugin, stub_for(plugin) as stub:
        stream = stub.ListAndWatch(pb.Empty(), timeout=10)
        next(stream)
        nvml.push_wait_error(nvml.NVML_ERROR_GPU_IS_LOST)
        assert set(health_of(next(stream)).values()) == {UNHEALTHY}
        stream.cancel()


def test_health_checks_off_start_no_watcher(host: Path, sockdir: Path) -> None:
    backend, nvml = open_backend(H100, host, DP_DISABLE_HEALTHCHECKS="all")
    inv = backend.inventory("gpu-node", NvmlSettings())
    with serving(sockdir, backend, inv):
        assert nvml.registered == [] and nvml.event_sets_open == 0
    backend, nvml = open_backend(H100, host)
    with serving(sockdir, backend, backend.inventory("gpu-node", NvmlSettings())):
        assert nvml.event_sets_open == 1
    assert nvml.event_sets_open == 0  # freed on stop


@pytest.mark.parametrize(("env", "counted", "ignored"), [
    ({}, [79, 48, 94, 95, 119], [13, 31, 43, 45, 68, 109]),
    ({"DP_DISABLE_HEALTHCHECKS": "79, 48"}, [94], [79, 48, 13]),
    ({"DP_ENABLE_HEALTHCHECKS": "43"}, [43, 79], [13, 31]),
    ({"DP_ENABLE_HEALTHCHECKS": "all"}, [13, 31, 43, 45, 68, 109], []),
    ({"DP_DISABLE_HEALTHCHECKS": "all", "DP_ENABLE_HEALTHCHECKS": "79"}, [79], [48, 13]),
])
def test_xid_filter_follows_nvidias_device_plugin(env: dict[str, str], counted: list[int], ignored: list[int]) -> None:
    xids = XidFilter.from_env(env)
    assert [x for x in counted if xids.ignores(x)] == []
    assert [x for x in ignored if not xids.ignores(x)] == []
    assert not xids.off
    assert XidFilter.from_env({"DP_DISABLE_HEALTHCHECKS": "xids"}).off


# ---- NVML not there ----------------------------------------------------------------------------------------------


def test_without_nvidia_ml_py_one_line_and_non_zero(monkeypatch: pytest.MonkeyPatch, sockdir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    rc = main(["serve", "--backend", "nvml", "--device-plugin-dir", str(sockdir), "--state-dir", str(sockdir / "s"),
               "--metrics-addr", "off"])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.count("\n") == 1
    assert err.startswith("fake-gpu-plugin: error: the nvml backend needs nvidia-ml-py (pip install 'aiconform[nvml]')")
    assert os.listdir(sockdir) == []  # nothing started, nothing left


def test_nvml_library_missing_is_one_line_and_non_zero(monkeypatch: pytest.MonkeyPatch, sockdir: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", RecordedNvml(H100, init_error=RecordedNvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    for argv in (["inventory", "--backend", "nvml"],
                 ["serve", "--backend", "nvml", "--device-plugin-dir", str(sockdir), "--metrics-addr", "off"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith("fake-gpu-plugin: error: cannot load NVML (NVML Shared Library Not Found): is the NVIDIA "
                              "driver installed")
    assert os.listdir(sockdir) == []


@pytest.mark.skipif(ctypes.util.find_library("nvidia-ml") is not None, reason="this machine has NVML")
def test_real_pynvml_without_a_driver_exits_with_one_line(sockdir: Path) -> None:
    pytest.importorskip("pynvml")
    done = subprocess.run([sys.executable, "-m", "fake_gpu_plugin", "serve", "--backend", "nvml", "--device-plugin-dir",
                           str(sockdir), "--state-dir", str(sockdir / "s"), "--metrics-addr", "off"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("fake-gpu-plugin: error: cannot load NVML")
    assert os.listdir(sockdir) == []


# ---- CLI and config -----------------------------------------------------------------------------------------------


def test_cli_inventory_of_the_recorded_h100(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    nvml = RecordedNvml(H100)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    config = tmp_path / "nvml.yaml"
    config.write_text("gpu:\n  mig: {strategy: mixed}\n  sharing: {timeSlicing: {replicas: 2}}\n")
    assert main(["inventory", "--backend", "nvml", "--config", str(config), "--node-name", "n1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hardware"] == "nvml"
    assert out["gpus"] == [{"index": 0, "uuid": H100_UUID, "numa": 0, "model": "H100-SXM5-80GB",
                            "product": "NVIDIA H100 80GB HBM3", "memory_mib": 81559, "minor": 0,
                            "pci_bus_id": "00000000:00:06.0"}]
    assert out["resources"] == {"nvidia.com/gpu": [f"{H100_UUID}::0", f"{H100_UUID}::1"]}
    assert nvml.initialised == 0  # NVML shut down again


def test_fake_backend_still_needs_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory"]) == 2
    assert capsys.readouterr().err == \
        "fake-gpu-plugin: error: --config is required with --backend fake (the GPUs it plays)\n"


@pytest.mark.parametrize(("text", "message"), [
    ("gpu: {model: H100, count: 1}\n", "gpu.model: set, but the nvml backend reads it from the hardware"),
    ("gpu: {mig: {strategy: mixed, layout: 1g.10gb}}\n", "gpu.mig: only strategy can be set with the nvml backend"),
    ("gpu: {mig: {strategy: some}}\n", "gpu.mig.strategy: must be one of none, single, mixed, got 'some'"),
    ("gpu: {sharing: {timeSlicing: {replicas: 0}}}\n", "gpu.sharing.timeSlicing.replicas: must be an integer >= 1"),
])
def test_nvml_config_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from_file(config)


# ---- recording ---------------------------------------------------------------------------------------------------


def test_record_nvml_reproduces_the_recording(host: Path) -> None:
    make_host(host, H100)
    again = record_nvml(RecordedNvml(H100), host_root=host)
    for key in ("system", "devices", "host", "dev", "events"):
        assert again[key] == H100[key], key


def test_every_nvml_call_exists_in_real_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    calls = [*GPU_CALLS, *MIG_CALLS, *SYSTEM_CALLS, "nvmlInit", "nvmlShutdown", "nvmlDeviceGetHandleByIndex",
             "nvmlDeviceGetMigDeviceHandleByIndex", "nvmlEventSetCreate", "nvmlEventSetFree", "nvmlEventSetWait",
             "nvmlDeviceRegisterEvents", "NVMLError"]
    assert [c for c in calls if not hasattr(pynvml, c)] == []
    for name in ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_NOT_FOUND", "NVML_ERROR_TIMEOUT", "NVML_ERROR_GPU_IS_LOST",
                 "NVML_ERROR_LIBRARY_NOT_FOUND", "NVML_ERROR_INVALID_ARGUMENT", "NVML_DEVICE_MIG_ENABLE",
                 "nvmlEventTypeXidCriticalError", "nvmlEventTypeDoubleBitEccError", "nvmlEventTypeSingleBitEccError"):
        assert getattr(pynvml, name) == getattr(RecordedNvml, name), name
    assert {f for f, *_ in pynvml.c_nvmlEventData_t._fields_} == \
        {"device", "eventType", "eventData", "gpuInstanceId", "computeInstanceId"}


def test_nvml_health_is_a_health_source() -> None:
    from fake_gpu_plugin.plugin import HealthSource

    source: HealthSource = NvmlHealth(RecordedNvml(H100), (), frozenset(), xids=XidFilter())
    assert source.unhealthy() == frozenset()


def _slice_devices(inv: Inventory) -> dict[str, dict[str, Any]]:
    from fake_gpu_plugin.dra_devices import resource_slices

    out = {}
    for s in resource_slices(inv):
        assert s["spec"]["nodeName"] == inv.node_name and s["spec"]["driver"] == "gpu.nvidia.com"
        out |= {d["name"]: d for d in s["spec"].get("devices", [])}
    return out


def test_dra_slices_of_the_real_h100_carry_nvmls_own_facts(host: Path) -> None:
    """The DRA driver serves the NVML inventory through the same slice code as the fake: the recorded H100 is one
    device whose uuid, product and memory are what NVML answered."""
    backend, _ = open_backend(H100, host)
    (dev,) = _slice_devices(backend.inventory("gpu-node", NvmlSettings())).values()
    attrs = {k: next(iter(v.values())) for k, v in dev["attributes"].items()}
    assert attrs["uuid"] == H100_UUID
    assert "H100" in str(attrs["productName"])
    assert str(dev["capacity"]["memory"]["value"]).startswith("81559")


def test_dra_slices_of_a_mig_h100_offer_its_real_mig_devices(host: Path) -> None:
    """Under MIG the real instances NVML lists are DRA devices with their MIG profile; their uuids are NVML's."""
    backend, _ = open_backend(mig_h100(), host)
    inv = backend.inventory("gpu-node", NvmlSettings(mig_strategy="mixed"))
    devices = _slice_devices(inv)
    mig_uuids = {m.uuid for m in inv.mig_devices}
    assert mig_uuids and mig_uuids <= {next(iter(d["attributes"]["uuid"].values())) for d in devices.values()}
    profiles = {next(iter(d["attributes"]["profile"].values())) for d in devices.values() if "profile" in d["attributes"]}
    assert profiles == {m.profile.name for m in inv.mig_devices} == {"3g.40gb", "2g.20gb", "1g.10gb"}
