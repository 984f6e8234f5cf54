"""One source of truth for what a GPU node shows the scheduler: a simulated (tier S) node of a pool must carry
exactly the GPU labels and extended resources that a real (tier R) node gets for the same GPU spec — the labels the
harness applies to the real node and the resources its fake GPU plugin advertises after reading the config file the
harness writes for it.  Checked for every shipped pool and for generated specs.

Both tiers now call the same functions, so this comparison mostly guards the plumbing (the profile parser, the
config file round trip, what ``simulated_node`` copies); whether the labels are *right* is test_gfd_labels.py's job.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_gpu_plugin.config import COMPUTE_SLICES, MEMORY_SLICES, config_from_pool, load_config, to_pool
from fake_gpu_plugin.inventory import build_inventory
from fake_gpu_plugin.labels import FAKE_LABEL, node_labels
from fake_gpu_plugin.models import CATALOGUE, GpuModel
from harness.config import RealNode, load_profile, parse_profile, profile_data, shipped_profiles
from harness.nodes import simulated_node
from harness.providers.kind import kind_spec
from harness.providers.local import LocalCluster, realnode


def _gpu_part(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k.startswith("nvidia.com/") or k == FAKE_LABEL}


def _gpu_capacity(node: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in node["status"]["capacity"].items() if k.startswith("nvidia.com/")}


def _served(config_file_data: dict[str, Any]) -> tuple[dict[str, str], dict[str, int]]:
    """What the plugin process makes of a config file: ``fake-gpu-plugin labels`` and its ListAndWatch resources."""
    config = config_from_pool(json.loads(json.dumps(config_file_data)))
    resources = build_inventory(config, "real-0").resources
    return node_labels(config), {name: len(devices) for name, devices in resources.items()}


def assert_tiers_agree(raw_pool: dict[str, Any], tmp_root: Path) -> None:
    """The simulated node of ``raw_pool`` and a real node with the same ``gpu:`` show the same GPU labels and
    capacity, and so does the plugin fed the raw pool itself (the documented config file format)."""
    shape = {k: v for k, v in raw_pool.items() if k != "autoscale"}  # autoscaling is not part of a node's shape
    profile = parse_profile({"pools": [shape], "realNode": {"enabled": True, "name": "real-0",
                                                             "gpu": raw_pool["gpu"]}})
    pool, real = profile.pools[0], profile.real_node
    assert pool.gpu is not None and real.gpu is not None
    node = simulated_node(pool, 0, "agree")
    sim_labels, sim_capacity = _gpu_part(node["metadata"]["labels"]), _gpu_capacity(node)

    host = realnode.RealNodeHost(LocalCluster("agree", root=tmp_root), real, Path("/nonexistent/kubelet"))
    real_labels = _gpu_part(host.node_labels())
    real_expected = {k: int(v) for k, v in host.expected_resources().items()}
    plugin_labels, plugin_capacity = _served(realnode.plugin_config(real.name, real.gpu))
    raw_labels, raw_capacity = _served(raw_pool)

    assert sim_labels == real_labels == plugin_labels == raw_labels
    assert sim_capacity == real_expected == plugin_capacity == raw_capacity
    assert sim_labels[FAKE_LABEL] == "true" and sim_capacity


def _shipped_pools() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name in shipped_profiles():
        raw = profile_data(name)  # with what it extends merged in
        workers = (raw.get("kind") or {}).get("workers", [])  # kind workers: the same spec, served by the DaemonSet
        out += [(f"{name}/{p['name']}", p) for p in [*raw.get("pools", []), *workers] if p.get("gpu")]
    return out


SHIPPED = _shipped_pools()


@pytest.mark.parametrize(("where", "raw_pool"), SHIPPED, ids=[w for w, _ in SHIPPED])
def test_shipped_pool_simulated_node_equals_real_node(where: str, raw_pool: dict[str, Any], tmp_path: Path) -> None:
    # a DRA pool's spec and labels agree the same way; its GPUs are then offered as ResourceSlices instead (and
    # passthrough, a DRA-only setting, goes with it)
    gpu = {k: v for k, v in raw_pool["gpu"].items() if k != "passthrough"}
    assert_tiers_agree({k: v for k, v in raw_pool.items() if k != "dra"} | {"gpu": gpu}, tmp_path)
    profile_name, pool_name = where.split("/")
    profile = load_profile(profile_name)
    spec = kind_spec(profile)
    pool = next(p for p in [*profile.pools, *(spec.workers if spec else ())] if p.name == pool_name)
    assert pool.gpu is not None and pool.gpu.pool == pool_name
    if getattr(pool, "dra", False):  # kind workers offer their GPUs through the device plugin only
        from fake_gpu_plugin.dra_devices import gpu_devices_of_slices
        from harness.dra import simulated_slices

        assert not _gpu_capacity(simulated_node(pool, 0, "agree")), "a DRA pool's GPUs counted twice"
        assert gpu_devices_of_slices(simulated_slices(pool, 0)) == pool.gpu.count


def test_every_shipped_profile_has_gpu_pools_checked() -> None:
    assert {w.split("/")[0] for w, _ in SHIPPED} == set(shipped_profiles())
    assert {"default/a100-mig", "default/t4-shared"} <= {w for w, _ in SHIPPED}


def test_shipped_real_node_gpu_round_trips_through_its_config_file(tmp_path: Path) -> None:
    real = load_profile("local-real").real_node
    assert real.gpu is not None
    path = tmp_path / "fake-gpu.json"
    path.write_text(json.dumps(realnode.plugin_config(real.name, real.gpu)))
    assert load_config(path) == dataclasses.replace(real.gpu, pool=real.name)


# -- generated specs ------------------------------------------------------------------------------------------------

MIG_MODELS = sorted(k for k, m in CATALOGUE.items() if m.mig_capable)


@st.composite
def _gpu_layout(draw: st.DrawFn, model: GpuModel) -> list[str]:
    """The MIG profiles of one GPU: profiles drawn in turn, each kept only if it still fits the GPU."""
    kept: list[str] = []
    compute = memory = 0
    for name in draw(st.lists(st.sampled_from([p.name for p in model.mig_profiles]), max_size=8)):
        prof = model.mig_profile(name)
        if (compute + prof.compute_slices <= COMPUTE_SLICES and memory + prof.memory_slices <= MEMORY_SLICES
                and kept.count(name) < prof.max_instances):
            kept.append(name)
            compute, memory = compute + prof.compute_slices, memory + prof.memory_slices
    return kept


@st.composite
def gpu_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ``gpu:`` mapping of a profile pool, in any of the forms a user may write."""
    model_key = draw(st.sampled_from(sorted(CATALOGUE)))
    model = CATALOGUE[model_key]
    count = draw(st.integers(min_value=1, max_value=8))
    gpu: dict[str, Any] = {"model": model_key, "count": count}
    if draw(st.booleans()):
        gpu["numaNodes"] = draw(st.integers(min_value=1, max_value=count))
    strategy = draw(st.sampled_from(["none", "single", "mixed"])) if model.mig_capable else "none"
    if strategy == "single":
        prof = draw(st.sampled_from(model.mig_profiles))
        fits = min(prof.max_instances, COMPUTE_SLICES // prof.compute_slices, MEMORY_SLICES // prof.memory_slices)
        layout: Any = draw(st.sampled_from([prof.name, {prof.name: draw(st.integers(1, fits))}]))
        gpu["mig"] = {"strategy": "single", "layout": layout}
    elif strategy == "mixed":
        per_gpu = draw(st.lists(_gpu_layout(model), min_size=count, max_size=count))
        gpu["mig"] = {"strategy": "mixed", "layout": per_gpu}
    if draw(st.booleans()):
        gpu["sharing"] = {"timeSlicing": {
            "replicas": draw(st.integers(min_value=1, max_value=8)),
            "renameByDefault": draw(st.booleans()),
            "failRequestsGreaterThanOne": draw(st.booleans()),
        }}
    return gpu


@settings(max_examples=150, deadline=None)
@given(gpu=gpu_specs())
def test_generated_spec_simulated_node_equals_real_node(gpu: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="agree") as root:
        assert_tiers_agree({"name": "gen", "nodes": 1, "gpu": gpu}, Path(root))


@settings(max_examples=150, deadline=None)
@given(gpu=gpu_specs())
def test_to_pool_round_trips(gpu: dict[str, Any]) -> None:
    """The real node's config file is the spec itself: reading it back gives the value the profile parsed."""
    spec = parse_profile({"pools": [{"name": "gen", "gpu": gpu}]}).pools[0].gpu
    assert spec is not None
    assert config_from_pool(json.loads(json.dumps(to_pool(spec)))) == spec


def test_real_node_without_gpus_has_no_gpu_labels(tmp_path: Path) -> None:
    host = realnode.RealNodeHost(LocalCluster("nogpu", root=tmp_path), RealNode(enabled=True, name="r"), Path("/k"))
    assert not _gpu_part(host.node_labels()) and host.expected_resources() == {}
