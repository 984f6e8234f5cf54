"""The device plugin over real gRPC unix sockets, against a test double of the kubelet's Registration service."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from fake_gpu_plugin.api import deviceplugin_pb2 as pb
from fake_gpu_plugin.api import deviceplugin_pb2_grpc as pb_grpc
from fake_gpu_plugin.config import config_from_pool
from fake_gpu_plugin.health import set_device_health
from fake_gpu_plugin.inventory import HEALTHY, UNHEALTHY, Inventory, build_inventory
from fake_gpu_plugin.plugin import FakeGpuPlugin, PluginSettings
from fake_gpu_plugin.testing import FakeKubeletRegistration

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mknod of the fake device nodes needs root")


def make_inventory(**gpu: Any) -> Inventory:
    return build_inventory(config_from_pool({"gpu": {"model": "A100-SXM4-80GB", "count": 8, **gpu}}), "node-a")


@contextmanager
def running(sockdir: Path, inv: Inventory, **settings: Any) -> Iterator[FakeGpuPlugin]:
    opts: dict[str, Any] = {"node_name": inv.node_name, "device_plugin_dir": sockdir, "state_dir": sockdir / "state",
                            "device_nodes": ROOT, "metrics_addr": None, "pod_resources_socket": None,
                            "poll_interval_s": 0.02, **settings}
    with FakeGpuPlugin(inv, PluginSettings(**opts)) as plugin:
        yield plugin


@contextmanager
def stub_for(plugin: FakeGpuPlugin, resource: str = "nvidia.com/gpu") -> Iterator[pb_grpc.DevicePluginStub]:
    with grpc.insecure_channel(f"unix://{plugin.servers[resource].socket_path}") as channel:
        yield pb_grpc.DevicePluginStub(channel)


def allocate(stub: pb_grpc.DevicePluginStub, *ids: str) -> pb.ContainerAllocateResponse:
    reply = stub.Allocate(pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=ids)]),
                          timeout=5)
    return reply.container_responses[0]


def stream_ends(stream: Iterator[pb.ListAndWatchResponse]) -> bool:
    """True when the stream is over (closed by the plugin, or cancelled with its server) instead of sending more."""
    try:
        next(stream)
    except (StopIteration, grpc.RpcError):
        return True
    return False


def drain_registrations(kubelet: FakeKubeletRegistration, n: int) -> list[pb.RegisterRequest]:
    return [kubelet.next_request() for _ in range(n)]


# ---- registration --------------------------------------------------------------------------------------------


def test_registers_every_resource_with_its_own_socket(sockdir: Path) -> None:
    inv = make_inventory(count=2, mig={"strategy": "mixed", "layout": [["3g.40gb", "2g.20gb"], []]})
    with FakeKubeletRegistration(sockdir) as kubelet, running(sockdir, inv):
        requests = {r.resource_name: r for r in drain_registrations(kubelet, 3)}
    assert set(requests) == {"nvidia.com/gpu", "nvidia.com/mig-3g.40gb", "nvidia.com/mig-2g.20gb"}
    for req in requests.values():
        assert req.version == "v1beta1"
        assert "/" not in req.endpoint and req.endpoint.endswith(".sock")
        assert req.options.get_preferred_allocation_available is True
        assert req.options.pre_start_required is False
    assert len({r.endpoint for r in requests.values()}) == 3


def test_plugin_options_and_prestart(sockdir: Path) -> None:
    with FakeKubeletRegistration(sockdir), running(sockdir, make_inventory()) as plugin, stub_for(plugin) as stub:
        opts = stub.GetDevicePluginOptions(pb.Empty(), timeout=5)
        assert (opts.get_preferred_allocation_available, opts.pre_start_required) == (True, False)
        assert stub.PreStartContainer(pb.PreStartContainerRequest(devices_ids=["x"]), timeout=5) == \
            pb.PreStartContainerResponse()


def test_registers_once_the_kubelet_appears(sockdir: Path) -> None:
    with running(sockdir, make_inventory()) as plugin:
        assert not plugin.servers["nvidia.com/gpu"].registered
        with FakeKubeletRegistration(sockdir) as kubelet:
            assert kubelet.next_request(timeout_s=2).resource_name == "nvidia.com/gpu"


def test_reregisters_quickly_after_a_kubelet_restart(sockdir: Path) -> None:
    inv = make_inventory()
    with FakeKubeletRegistration(sockdir) as kubelet, running(sockdir, inv) as plugin:
        kubelet.next_request()
        server = plugin.servers["nvidia.com/gpu"]
        started = time.monotonic()
        kubelet.restart()  # new kubelet.sock, plugin sockets deleted
        request = kubelet.next_request(timeout_s=2)
        elapsed = time.monotonic() - started
        assert request.resource_name == "nvidia.com/gpu"
        assert elapsed < 0.5, f"re-registration took {elapsed:.3f}s"
        assert plugin.wait_registered(timeout_s=2)
        assert server.socket_path.exists() and server.registrations == 2
        with stub_for(plugin) as stub:
            assert allocate(stub, inv.gpus[0].uuid).envs["NVIDIA_VISIBLE_DEVICES"] == inv.gpus[0].uuid


def test_reregisters_when_only_kubelet_sock_was_recreated(sockdir: Path) -> None:
    with FakeKubeletRegistration(sockdir) as kubelet, running(sockdir, make_inventory()):
        kubelet.next_request()
        kubelet.stop()
        kubelet.start()
        assert kubelet.next_request(timeout_s=2).resource_name == "nvidia.com/gpu"


def test_stop_removes_the_sockets(sockdir: Path) -> None:
    with FakeKubeletRegistration(sockdir), running(sockdir, make_inventory()) as plugin:
        socket_path = plugin.servers["nvidia.com/gpu"].socket_path
        assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
    assert not socket_path.exists()


# ---- ListAndWatch and health ---------------------------------------------------------------------------------


def test_list_and_watch_sends_the_list_then_pushes_health_changes(sockdir: Path) -> None:
    inv = make_inventory()
    target = inv.gpus[3].uuid
    with FakeKubeletRegistration(sockdir), running(sockdir, inv) as plugin, stub_for(plugin) as stub:
        stream = stub.ListAndWatch(pb.Empty(), timeout=10)
        first = next(stream)
        assert [d.ID for d in first.devices] == [g.uuid for g in inv.gpus]
        assert {d.health for d in first.devices} == {HEALTHY}
        assert [d.topology.nodes[0].ID for d in first.devices] == [0, 0, 0, 0, 1, 1, 1, 1]

        started = time.monotonic()
        set_device_health(plugin.paths.state_dir, target, healthy=False)
        pushed = next(stream)
        latency = time.monotonic() - started
        assert {d.ID: d.health for d in pushed.devices}[target] == UNHEALTHY
        assert sum(d.health == UNHEALTHY for d in pushed.devices) == 1
        assert latency < 0.5, f"health push took {latency:.3f}s"

        set_device_health(plugin.paths.state_dir, target, healthy=True)
        assert {d.health for d in next(stream).devices} == {HEALTHY}
        stream.cancel()


def test_unhealthy_gpu_makes_its_mig_devices_and_replicas_unhealthy(sockdir: Path) -> None:
    inv = make_inventory(count=2, mig={"strategy": "mixed", "layout": "3g.40gb"},
                         sharing={"timeSlicing": {"replicas": 2}})
    with FakeKubeletRegistration(sockdir), running(sockdir, inv) as plugin, \
            stub_for(plugin, "nvidia.com/mig-3g.40gb") as stub:
        stream = stub.ListAndWatch(pb.Empty(), timeout=10)
        assert len(next(stream).devices) == 8  # 2 GPUs x 2 MIG devices x 2 replicas
        set_device_health(plugin.paths.state_dir, inv.gpus[1].uuid, healthy=False)
        health = {d.ID: d.health for d in next(stream).devices}
        bad = {dev.id for dev in inv.resources["nvidia.com/mig-3g.40gb"] if dev.gpu is inv.gpus[1]}
        assert {i for i, h in health.items() if h == UNHEALTHY} == bad
        stream.cancel()


# ---- Allocate ------------------------------------------------------------------------------------------------


def test_allocate_hands_out_env_devices_and_mounts(sockdir: Path) -> None:
    inv = make_inventory()
    g2, g5 = inv.gpus[2], inv.gpus[5]
    with FakeKubeletRegistration(sockdir), running(sockdir, inv) as plugin, stub_for(plugin) as stub:
        resp = allocate(stub, g5.uuid, g2.uuid)
    assert resp.envs["NVIDIA_VISIBLE_DEVICES"] == f"{g5.uuid},{g2.uuid}"
    assert resp.envs["AICONFORM_FAKE_GPU"] == "1"
    mounts = {m.container_path: m for m in resp.mounts}
    assert set(mounts) == {"/usr/local/bin/nvidia-smi", "/etc/aiconform-fake-gpu/devices"}
    assert all(m.read_only for m in resp.mounts)
    smi = Path(mounts["/usr/local/bin/nvidia-smi"].host_path)
    assert smi.read_text().startswith("#!/bin/sh") and os.access(smi, os.X_OK)
    data = Path(mounts["/etc/aiconform-fake-gpu/devices"].host_path).read_text()
    assert [line.split("|")[:3] for line in data.splitlines() if not line.startswith("#")] == [
        ["gpu", "0", g5.uuid], ["gpu", "1", g2.uuid]]
    if ROOT:
        assert [d.container_path for d in resp.devices] == ["/dev/nvidia5", "/dev/nvidia2", "/dev/nvidiactl",
                                                             "/dev/nvidia-uvm"]
        for spec in resp.devices:
            st = os.stat(spec.host_path)
            assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
            assert spec.permissions == "rw"


def test_allocate_without_device_nodes_hands_out_no_devices(sockdir: Path) -> None:
    inv = make_inventory()
    with FakeKubeletRegistration(sockdir), running(sockdir, inv, device_nodes=False) as plugin, \
            stub_for(plugin) as stub:
        assert list(allocate(stub, inv.gpus[0].uuid).devices) == []
    assert not (sockdir / "state" / "dev").exists()


@needs_root
def test_device_nodes_are_made_for_every_gpu(sockdir: Path) -> None:
    with running(sockdir, make_inventory(count=2)) as plugin:
        names = sorted(os.listdir(plugin.paths.dev_dir))
    assert names == ["nvidia-uvm", "nvidia0", "nvidia1", "nvidiactl"]


def test_allocate_of_replicas_names_each_gpu_once(sockdir: Path) -> None:
    inv = make_inventory(count=2, sharing={"timeSlicing": {"replicas": 4}})
    g0, g1 = inv.gpus
    with FakeKubeletRegistration(sockdir), running(sockdir, inv) as plugin, stub_for(plugin) as stub:
        resp = allocate(stub, f"{g0.uuid}::0", f"{g0.uuid}::3", f"{g1.uuid}::1")
    assert resp.envs["NVIDIA_VISIBLE_DEVICES"] == f"{g0.uuid},{g1.uuid}"
    if ROOT:
        assert [d.container_path for d in resp.devices][:2] == ["/dev/nvidia0", "/dev/nvidia1"]


def test_fail_requests_greater_than_one(sockdir: Path) -> None:
    inv = make_inventory(count=2, sharing={"timeSlicing": {"replicas": 4, "failRequestsGreaterThanOne": True}})
    g0 = inv.gpus[0]
    with FakeKubeletRegistration(sockdir), running(sockdir, inv) as plugin, stub_for(plugin) as stub:
        assert allocate(stub, f"{g0.uuid}::2").envs["NVIDIA_VISIBLE_DEVICES"] == g0.uuid
        with pytest.raises(grpc.RpcError) as info:
            allocate(stub, f"{g0.uuid}::0", f"{g0.uuid}::1")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request for 'nvidia.com/gpu: 2' too large: maximum request size for shared resources is 1" in \
        info.value.details()


def test_allocate_of_an_unknown_device_is_refused(sockdir: Path) -> None:
    inv = make_inventory(count=1, mig={"strategy": "mixed", "layout": "7g.80gb"})
    with FakeKubeletRegistration(sockdir), running(sockdir, inv) as plugin, \
            stub_for(plugin, "nvidia.com/mig-7g.80gb") as stub:
        with pytest.raises(grpc.RpcError) as info:
            allocate(stub, inv.gpus[0].uuid)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown device" in info.value.details()


def test_allocate_of_mig_devices(sockdir: Path) -> None:
    inv = make_inventory(count=2, mig={"strategy": "mixed", "layout": [["1g.10gb"] * 7, ["1g.10gb"]]})
    migs = [m for m in inv.mig_devices if m.parent.index == 0][:2]
    with FakeKubeletRegistration(sockdir), running(sockdir, inv) as plugin, \
            stub_for(plugin, "nvidia.com/mig-1g.10gb") as stub:
        resp = allocate(stub, *(m.uuid for m in migs))
    assert resp.envs["NVIDIA_VISIBLE_DEVICES"] == ",".join(m.uuid for m in migs)
    if ROOT:
        assert [d.container_path for d in resp.devices] == ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"]
    data = Path({m.container_path: m for m in resp.mounts}["/etc/aiconform-fake-gpu/devices"].host_path)
    kinds = [line.split("|")[0] for line in data.read_text().splitlines() if not line.startswith("#")]
    assert kinds == ["gpu", "mig", "mig"]


def test_get_preferred_allocation_packs_numa_over_grpc(sockdir: Path) -> None:
    inv = make_inventory()
    ids = [g.uuid for g in inv.gpus]
    request = pb.PreferredAllocationRequest(container_requests=[pb.ContainerPreferredAllocationRequest(
        available_deviceIDs=ids[1:], must_include_deviceIDs=[ids[5]], allocation_size=4)])
    with FakeKubeletRegistration(sockdir), running(sockdir, inv) as plugin, stub_for(plugin) as stub:
        reply = stub.GetPreferredAllocation(request, timeout=5)
    chosen = list(reply.container_responses[0].deviceIDs)
    assert chosen[0] == ids[5] and sorted(chosen) == sorted(ids[4:8])


def test_open_streams_end_on_kubelet_restart_and_on_stop(sockdir: Path) -> None:
    inv = make_inventory(count=1)
    with FakeKubeletRegistration(sockdir) as kubelet, running(sockdir, inv) as plugin:
        kubelet.next_request()
        feed = plugin.feeds["nvidia.com/gpu"]
        with stub_for(plugin) as stub:
            stream = stub.ListAndWatch(pb.Empty(), timeout=10)
            next(stream)
            assert feed.stream_count == 1
            kubelet.restart()
            kubelet.next_request(timeout_s=2)
            assert stream_ends(stream)  # the old socket's server is gone, so is its stream
        with stub_for(plugin) as stub:
            stream = stub.ListAndWatch(pb.Empty(), timeout=10)
            next(stream)
            started = time.monotonic()
            plugin.stop()
            assert time.monotonic() - started < 2
            assert stream_ends(stream)
        assert feed.stream_count == 0
