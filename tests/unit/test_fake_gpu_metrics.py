"""DCGM-named metrics: attribution from a (test double) PodResources gRPC server, utilisation from annotations."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

from fake_gpu_plugin.config import config_from_pool
from fake_gpu_plugin.inventory import Inventory, build_inventory
from fake_gpu_plugin.metrics import AnnotationLookup, MetricsExporter
from fake_gpu_plugin.plugin import FakeGpuPlugin, PluginSettings
from fake_gpu_plugin.testing import FakePodResources

SERIES = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(\{([A-Za-z_][A-Za-z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? -?[0-9.]+$')


def inventory(**gpu: object) -> Inventory:
    return build_inventory(config_from_pool({"gpu": {"model": "A100-SXM4-80GB", "count": 2, **gpu}}), "node-a")


def series(text: str, name: str) -> dict[str, str]:
    """``{labels: value}`` of one metric."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name):].rsplit(" ", 1)
            out[labels] = value
    return out


def lookup_from(table: Mapping[tuple[str, str], Mapping[str, str]]) -> AnnotationLookup:
    def lookup(namespace: str, pod: str) -> Mapping[str, str]:
        return table.get((namespace, pod), {})

    return lookup


def test_allocated_gpu_carries_pod_labels_and_annotated_utilisation(sockdir: Path) -> None:
    inv = inventory()
    g0, g1 = inv.gpus
    table = [("team-a", "train-0", "main", "nvidia.com/gpu", [g0.uuid]),
             ("kube-system", "other", "c", "example.com/foo", ["x"])]
    with FakePodResources(sockdir / "pr.sock", table):
        exporter = MetricsExporter(inv, pod_resources_socket=sockdir / "pr.sock",
                                   annotation_lookup=lookup_from({("team-a", "train-0"): {
                                       "aiconform.io/gpu-utilization": "85"}}))
        text = exporter.render()
    held = (f'{{gpu="0",UUID="{g0.uuid}",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="node-a",'
            'pod="train-0",namespace="team-a",container="main"}')
    idle = f'{{gpu="1",UUID="{g1.uuid}",device="nvidia1",modelName="NVIDIA A100-SXM4-80GB",Hostname="node-a"}}'
    assert series(text, "DCGM_FI_DEV_GPU_UTIL") == {held: "85", idle: "0"}
    assert series(text, "DCGM_FI_DEV_FB_USED") == {held: "69632", idle: "0"}
    assert series(text, "DCGM_FI_DEV_FB_FREE") == {held: "12288", idle: "81920"}
    assert series(text, "DCGM_FI_DEV_GPU_TEMP") == {held: "72", idle: "30"}
    assert series(text, "DCGM_FI_DEV_POWER_USAGE") == {held: "349.000", idle: "60.000"}
    assert "aiconform_fake_gpu_pod_resources_up 1" in text
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SERIES.match(line), line


def test_without_annotation_lookup_a_held_gpu_uses_the_documented_default(sockdir: Path) -> None:
    inv = inventory(sharing={"timeSlicing": {"replicas": 2}})
    g0 = inv.gpus[0]
    table = [("ns", "a", "c", "nvidia.com/gpu", [f"{g0.uuid}::0"]),
             ("ns", "b", "c", "nvidia.com/gpu", [f"{g0.uuid}::1"])]
    with FakePodResources(sockdir / "pr.sock", table):
        text = MetricsExporter(inv, pod_resources_socket=sockdir / "pr.sock").render()
    util = series(text, "DCGM_FI_DEV_GPU_UTIL")
    assert sorted(v for k, v in util.items() if f'UUID="{g0.uuid}"' in k) == ["100", "100"]
    used = [v for k, v in series(text, "DCGM_FI_DEV_FB_USED").items() if f'UUID="{g0.uuid}"' in k]
    assert used == ["40960", "40960"]  # two time-sliced holders split the memory
    assert {v for k, v in series(text, "DCGM_FI_DEV_FB_FREE").items() if f'UUID="{g0.uuid}"' in k} == {"0"}


def test_mig_devices_are_separate_series(sockdir: Path) -> None:
    inv = inventory(mig={"strategy": "mixed", "layout": [["3g.40gb", "3g.40gb"], []]})
    mig = inv.mig_devices[1]
    with FakePodResources(sockdir / "pr.sock", [("ns", "p", "c", "nvidia.com/mig-3g.40gb", [mig.uuid])]):
        text = MetricsExporter(inv, pod_resources_socket=sockdir / "pr.sock").render()
    util = series(text, "DCGM_FI_DEV_GPU_UTIL")
    assert len(util) == 3
    (held,) = [k for k, v in util.items() if 'pod="p"' in k]
    assert f'GPU_I_PROFILE="3g.40gb",GPU_I_ID="1",MIG_UUID="{mig.uuid}"' in held and util[held] == "100"


def test_unreachable_kubelet_means_no_attribution(sockdir: Path) -> None:
    text = MetricsExporter(inventory(), pod_resources_socket=sockdir / "absent.sock").render()
    assert "aiconform_fake_gpu_pod_resources_up 0" in text
    assert "pod=" not in text


def test_metrics_endpoint_serves_prometheus_text(sockdir: Path) -> None:
    inv = inventory()
    settings = PluginSettings(node_name="node-a", device_plugin_dir=sockdir, state_dir=sockdir / "state",
                              device_nodes=False, metrics_addr=("127.0.0.1", 0), pod_resources_socket=None)
    with FakeGpuPlugin(inv, settings) as plugin:
        assert plugin.metrics_server is not None
        host, port = plugin.metrics_server.address
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = reply.read().decode()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://{host}:{port}/other", timeout=5)
        assert info.value.code == 404
        info.value.close()
    assert "# TYPE DCGM_FI_DEV_GPU_UTIL gauge" in body
    assert len(series(body, "DCGM_FI_DEV_GPU_UTIL")) == 2
