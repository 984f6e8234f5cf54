"""One source of truth for what a GPU node advertises: a simulated (tier S) node of a pool must carry exactly the
resources the fake GPU plugin advertises to a real kubelet (tier R) for the same pool."""

from __future__ import annotations

import pytest
import yaml

from fake_gpu_plugin.config import config_from_pool
from fake_gpu_plugin.inventory import build_inventory
from harness.config import PROFILES_DIR, load_profile, shipped_profiles


def _pools() -> list[tuple[str, dict[str, object]]]:
    out = []
    for name in shipped_profiles():
        raw = yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text())
        out += [(f"{name}/{p['name']}", p) for p in raw.get("pools", []) if p.get("gpu")]
    return out


@pytest.mark.parametrize(("where", "raw_pool"), _pools(), ids=[w for w, _ in _pools()])
def test_simulated_node_resources_equal_plugin_inventory(where: str, raw_pool: dict[str, object]) -> None:
    profile_name, pool_name = where.split("/")
    pool = next(p for p in load_profile(profile_name).pools if p.name == pool_name)
    assert pool.gpu is not None
    inventory = build_inventory(config_from_pool(raw_pool), "node-0")
    plugin = {name: len(devices) for name, devices in inventory.resources.items()}
    assert pool.gpu.extended_resources() == plugin


@pytest.mark.parametrize("gpu", [
    {"model": "H100", "count": 4, "mig": {"strategy": "single", "layout": {"1g.10gb": 7}}},
    {"model": "A100-40GB", "count": 2, "mig": {"strategy": "mixed", "layout": {"3g.20gb": 2}}},
    {"model": "L40S", "count": 4, "sharing": {"timeSlicing": {"replicas": 3, "renameByDefault": True}}},
    {"model": "H200", "count": 8},
])
def test_variants_agree(gpu: dict[str, object]) -> None:
    from harness.config import parse_profile

    raw = {"name": "p", "nodes": 1, "gpu": gpu}
    pool = parse_profile({"pools": [raw]}).pools[0]
    assert pool.gpu is not None
    inventory = build_inventory(config_from_pool(raw), "node-0")
    assert pool.gpu.extended_resources() == {n: len(d) for n, d in inventory.resources.items()}
