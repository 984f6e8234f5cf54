"""GetPreferredAllocation policy: NUMA packing, must-include devices, replica spreading (pure function)."""

from __future__ import annotations

from typing import Any

from fake_gpu_plugin.config import config_from_pool
from fake_gpu_plugin.inventory import AdvertisedDevice, Inventory, build_inventory
from fake_gpu_plugin.preferred import preferred_allocation


def inventory(**gpu: Any) -> Inventory:
    return build_inventory(config_from_pool({"gpu": {"model": "A100-SXM4-80GB", "count": 8, **gpu}}), "n")


def gpus(inv: Inventory) -> list[AdvertisedDevice]:
    return list(inv.resources["nvidia.com/gpu"])


def numa_of(inv: Inventory, ids: list[str]) -> set[int]:
    return {d.numa_node for d in (inv.device(i) for i in ids) if d is not None}


def test_packs_onto_one_numa_node_when_it_fits() -> None:
    inv = inventory()
    devs = gpus(inv)
    # NUMA 0 has 3 free (0, 1, 2), NUMA 1 has 4 free: a 3-GPU request fits both; the tighter node wins.
    available = [devs[i] for i in (0, 1, 2, 4, 5, 6, 7)]
    ids = preferred_allocation(list(reversed(available)), [], 3)
    assert ids == [devs[0].id, devs[1].id, devs[2].id]


def test_must_include_pulls_the_rest_onto_its_numa_node() -> None:
    inv = inventory()
    devs = gpus(inv)
    ids = preferred_allocation(devs, [devs[6]], 3)
    assert ids[0] == devs[6].id
    assert len(ids) == 3 and numa_of(inv, ids) == {1}


def test_spans_as_few_numa_nodes_as_possible_when_none_fits() -> None:
    inv = inventory()
    devs = gpus(inv)
    available = [devs[i] for i in (0, 4, 5, 6)]
    ids = preferred_allocation(available, [], 4)
    assert sorted(ids) == sorted(d.id for d in available)
    ids = preferred_allocation([devs[i] for i in (0, 1, 4, 5, 6)], [], 4)
    assert ids[:3] == [devs[4].id, devs[5].id, devs[6].id]


def test_replicas_are_spread_over_gpus_before_sharing_one() -> None:
    inv = inventory(count=2, sharing={"timeSlicing": {"replicas": 4}})
    devs = gpus(inv)
    g0, g1 = inv.gpus
    # GPU 0 has two replicas taken already; GPU 1 none: the next pick goes to GPU 1 (NUMA 1, which fits).
    available = [d for d in devs if not (d.unit is g0 and d.replica in (0, 1))]
    ids = preferred_allocation(available, [], 1)
    assert ids == [f"{g1.uuid}::0"]
    one_numa = build_inventory(config_from_pool({"gpu": {"model": "T4", "count": 2, "numaNodes": 1,
                                                         "sharing": {"timeSlicing": {"replicas": 2}}}}), "n")
    ids = preferred_allocation(list(one_numa.resources["nvidia.com/gpu"]), [], 2)
    assert {i.split("::")[0] for i in ids} == {g.uuid for g in one_numa.gpus}


def test_returns_all_must_include_even_if_size_is_smaller() -> None:
    devs = gpus(inventory())
    assert preferred_allocation(devs, devs[:2], 2) == [devs[0].id, devs[1].id]
