"""Inventory config parsing, MIG layout validation, device identities and GFD labels (no sockets)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fake_gpu_plugin.config import InventoryConfig, config_from_pool, load_config, parse_gpu
from fake_gpu_plugin.errors import ConfigError
from fake_gpu_plugin.inventory import build_inventory
from fake_gpu_plugin.labels import node_labels
from fake_gpu_plugin.names import FAKE_GPU_LABEL

UUID_RE = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MIG_RE = re.compile(r"^MIG-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def pool(**gpu: Any) -> dict[str, Any]:
    return {"name": "p", "nodes": 1, "gpu": {"model": "A100-SXM4-80GB", "count": 8, **gpu}}


def error_of(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_pool(data)
    return str(info.value)


def test_plain_pool_gives_whole_gpus_on_two_numa_nodes() -> None:
    inv = build_inventory(config_from_pool(pool()), "node-a")
    assert inv.resource_names == ["nvidia.com/gpu"]
    assert [g.numa_node for g in inv.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert all(UUID_RE.match(g.uuid) for g in inv.gpus)
    assert len({g.uuid for g in inv.gpus}) == 8


def test_uuids_are_stable_per_node_and_differ_between_nodes() -> None:
    cfg = config_from_pool(pool())
    a1, a2, b = build_inventory(cfg, "node-a"), build_inventory(cfg, "node-a"), build_inventory(cfg, "node-b")
    assert [g.uuid for g in a1.gpus] == [g.uuid for g in a2.gpus]
    assert not {g.uuid for g in a1.gpus} & {g.uuid for g in b.gpus}


def test_harness_pool_keys_are_left_to_the_harness() -> None:
    cfg = config_from_pool({**pool(mig={"strategy": "mixed", "layout": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}}),
                            "cpu": "64", "labels": {"a": "b"}, "taints": []})
    assert cfg.mig.layout == (("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"),) * 8


def test_aliases_resolve_to_catalogue_keys() -> None:
    assert config_from_pool({"gpu": {"model": "H100", "count": 1}}).model == "H100-SXM5-80GB"


@pytest.mark.parametrize(("data", "expected"), [
    ({"gpu": {"model": "A100-SXM4-80GB", "count": 0}}, "gpu.count: must be an integer >= 1, got 0"),
    ({"gpu": {"model": "B300", "count": 1}}, "gpu.model: unknown GPU model 'B300'"),
    ({"gpu": {"count": 1}}, "gpu.model: missing"),
    ({"gpu": {"model": "T4", "count": 1, "colour": "red"}}, "gpu.colour: unknown field"),
    ({"gpu": {"model": "T4", "count": 2, "mig": {"strategy": "mixed", "layout": "1g.5gb"}}},
     "gpu.mig.strategy: mixed needs a MIG-capable model; T4 is not"),
    ({"gpu": {"model": "T4", "count": 2, "mig": {"strategy": "sometimes"}}}, "gpu.mig.strategy: must be one of"),
    ({"gpu": {"model": "T4", "count": 2, "sharing": {"timeSlicing": {"replicas": "4"}}}},
     "gpu.sharing.timeSlicing.replicas: must be an integer >= 1, got '4'"),
    ({"gpu": {"model": "T4", "count": 2, "sharing": {"timeSlicing": {"renameByDefault": "yes"}}}},
     "gpu.sharing.timeSlicing.renameByDefault: must be true or false"),
    ({"gpu": {"model": "T4", "count": 2, "numaNodes": 3}}, "gpu.numaNodes: 3 NUMA nodes for 2 GPUs"),
    ([1, 2], "(top level): must be a mapping, got list"),
])
def test_bad_configs_name_the_field(data: Any, expected: str) -> None:
    assert expected in error_of(data)


def test_parse_gpu_roots_paths_where_the_caller_found_the_mapping() -> None:
    assert parse_gpu({"model": "T4"}).count == 1
    with pytest.raises(ConfigError, match=r"^pools\[3\]\.gpu\.mig\.layout\[1\]\[0\]: model A100-SXM4-80GB has no MIG"):
        parse_gpu({"model": "A100-80GB", "count": 2, "mig": {"strategy": "mixed", "layout": [[], ["1g.5gb"]]}},
                  at="pools[3].gpu")
    with pytest.raises(ConfigError, match=r"^gpu\.count: must be an integer >= 1, got 0"):
        parse_gpu({"model": "T4", "count": 0})
    assert parse_gpu({"model": "T4", "count": 0}, allow_zero_count=True).count == 0
    with pytest.raises(ConfigError, match=r"gpu\.sharing\.timeSlicing\.replicas: must be an integer <= 64, got 65"):
        parse_gpu({"model": "T4", "sharing": {"timeSlicing": {"replicas": 65}}})


def test_load_config_reads_yaml_and_json_the_same(tmp_path: Path) -> None:
    data = pool(sharing={"timeSlicing": {"replicas": 2}})
    (tmp_path / "c.json").write_text(json.dumps(data))
    (tmp_path / "c.yaml").write_text("name: p\nnodes: 1\ngpu:\n  model: A100-SXM4-80GB\n  count: 8\n"
                                     "  sharing:\n    timeSlicing:\n      replicas: 2\n")
    assert load_config(tmp_path / "c.json") == load_config(tmp_path / "c.yaml") == config_from_pool(data)


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpu: {model: A100-80GB, count: -1}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: gpu\.count: must be an integer"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


# ---- MIG -----------------------------------------------------------------------------------------------------


def test_mixed_layout_per_gpu_advertises_one_resource_per_profile() -> None:
    cfg = config_from_pool(pool(count=3, mig={"strategy": "mixed", "layout": [
        ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"], {"1g.10gb": 7}, []]}))
    inv = build_inventory(cfg, "n")
    counts = {name: len(devs) for name, devs in inv.resources.items()}
    assert counts == {"nvidia.com/gpu": 1, "nvidia.com/mig-1g.10gb": 9, "nvidia.com/mig-2g.20gb": 1,
                      "nvidia.com/mig-3g.40gb": 1}
    assert all(MIG_RE.match(m.uuid) for m in inv.mig_devices)
    assert inv.resources["nvidia.com/gpu"][0].unit is inv.gpus[2]


def test_shared_layout_forms_are_broadcast_to_every_gpu() -> None:
    by_name = config_from_pool(pool(count=2, mig={"strategy": "mixed", "layout": "1g.20gb"}))
    by_list = config_from_pool(pool(count=2, mig={"strategy": "mixed", "layout": ["1g.20gb"] * 4}))
    by_map = config_from_pool(pool(count=2, mig={"strategy": "mixed", "layout": {"1g.20gb": 4}}))
    assert by_name.mig.layout == by_list.mig.layout == by_map.mig.layout == (("1g.20gb",) * 4,) * 2


@pytest.mark.parametrize(("layout", "expected"), [
    ([["4g.40gb", "4g.40gb"]] * 2, "gpu.mig.layout[0]: 2 x 4g.40gb on one A100-SXM4-80GB; at most 1"),
    ([["3g.40gb", "3g.40gb", "1g.10gb"], []], "gpu.mig.layout[0]: 3g.40gb + 3g.40gb + 1g.10gb needs 9 memory "
                                              "slices; a GPU has 8"),
    ([[], ["4g.40gb", "2g.20gb", "2g.20gb"]], "gpu.mig.layout[1]: 4g.40gb + 2g.20gb + 2g.20gb needs 8 compute "
                                              "slices; a GPU has 7"),
    ([["1g.5gb"], []], "gpu.mig.layout[0][0]: model A100-SXM4-80GB has no MIG profile '1g.5gb'"),
    ([["1g.10gb"]], "gpu.mig.layout: has 1 per-GPU entries for gpu.count 2"),
    ({"1g.10gb": 8}, "gpu.mig.layout: 8 x 1g.10gb on one A100-SXM4-80GB; at most 7"),
])
def test_invalid_mixed_layouts_are_refused_clearly(layout: Any, expected: str) -> None:
    assert expected in error_of(pool(count=2, mig={"strategy": "mixed", "layout": layout}))


def test_mig_layout_needs_a_strategy_and_vice_versa() -> None:
    assert "gpu.mig.layout: set, but gpu.mig.strategy is none" in error_of(pool(mig={"layout": "1g.10gb"}))
    assert "gpu.mig.layout: missing; strategy mixed needs a layout" in error_of(pool(mig={"strategy": "mixed"}))


def test_single_strategy_advertises_mig_devices_as_nvidia_gpu() -> None:
    inv = build_inventory(config_from_pool(pool(count=2, mig={"strategy": "single", "layout": "2g.20gb"})), "n")
    assert inv.resource_names == ["nvidia.com/gpu"]
    assert len(inv.resources["nvidia.com/gpu"]) == 6
    assert all(MIG_RE.match(d.id) for d in inv.resources["nvidia.com/gpu"])


def test_single_strategy_refuses_two_profiles() -> None:
    msg = error_of(pool(count=2, mig={"strategy": "single", "layout": [["1g.10gb"], ["2g.20gb"]]}))
    assert "gpu.mig.layout: strategy single needs every GPU carved into one and the same profile" in msg


# ---- time-slicing --------------------------------------------------------------------------------------------


def test_time_slicing_advertises_replicas_with_uuid_suffixes() -> None:
    cfg = config_from_pool(pool(count=2, sharing={"timeSlicing": {"replicas": 3}}))
    inv = build_inventory(cfg, "n")
    ids = [d.id for d in inv.resources["nvidia.com/gpu"]]
    assert ids == [f"{g.uuid}::{r}" for g in inv.gpus for r in range(3)]


def test_rename_by_default_advertises_shared_names() -> None:
    cfg = config_from_pool(pool(count=1, mig={"strategy": "mixed", "layout": ["3g.40gb", "3g.40gb"]},
                                sharing={"timeSlicing": {"replicas": 2, "renameByDefault": True}}))
    assert build_inventory(cfg, "n").resource_names == ["nvidia.com/mig-3g.40gb.shared"]
    plain = config_from_pool(pool(count=1, sharing={"timeSlicing": {"replicas": 2, "renameByDefault": True}}))
    assert build_inventory(plain, "n").resource_names == ["nvidia.com/gpu.shared"]


# ---- labels --------------------------------------------------------------------------------------------------


def test_labels_declare_the_fake_and_the_sharing() -> None:
    labels = node_labels(config_from_pool(pool(sharing={"timeSlicing": {"replicas": 4}})))
    assert labels[FAKE_GPU_LABEL] == "true"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB-SHARED"
    assert labels["nvidia.com/gpu.replicas"] == "4"
    assert labels["nvidia.com/gpu.sharing-strategy"] == "time-slicing"
    assert "nvidia.com/mig.strategy" not in labels  # GFD writes it only for single and mixed (see labels.py)
    assert labels["nvidia.com/gpu.count"] == "8"


def test_labels_for_mig_strategies() -> None:
    single = node_labels(config_from_pool(pool(count=2, mig={"strategy": "single", "layout": "1g.10gb"})))
    assert single["nvidia.com/mig.strategy"] == "single"
    assert single["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb"
    assert single["nvidia.com/gpu.count"] == "14"
    mixed = node_labels(config_from_pool(pool(count=2, mig={"strategy": "mixed", "layout": [["3g.40gb"], []]})))
    assert mixed["nvidia.com/mig-3g.40gb.count"] == "1"
    assert mixed["nvidia.com/mig-3g.40gb.memory"] == "40960"
    assert mixed["nvidia.com/gpu.sharing-strategy"] == "none"


def test_config_is_a_frozen_value() -> None:
    cfg = config_from_pool(pool())
    assert isinstance(cfg, InventoryConfig)
    with pytest.raises(AttributeError):
        cfg.count = 2  # type: ignore[misc]
