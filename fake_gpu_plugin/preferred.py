"""GetPreferredAllocation's policy: which of the available devices the plugin would like the kubelet to pick.

Owns a pure function.  Policy, in order:
1. the ``must_include`` devices are always in the answer;
2. the rest comes from one NUMA node when one can supply it: the NUMA node of the must-include devices if it has
   room, else the node that fits most tightly (fewest spare devices, then lowest id), so large free blocks stay
   intact for large requests; for time-slicing replicas the least loaded node (most free replicas) instead, so
   sharing is spread;
3. if no single node can, nodes are used largest-first so the answer spans as few NUMA nodes as possible;
4. within a node, time-slicing replicas are spread: the next pick is a replica of the unit with the most free
   replicas (ties: lowest unit position), so two pods share a GPU only when they must.
The kubelet is free to ignore the answer; it only ever narrows to devices it offered.
"""

from __future__ import annotations

from collections.abc import Sequence

from fake_gpu_plugin.inventory import AdvertisedDevice, MigDevice


def preferred_allocation(available: Sequence[AdvertisedDevice], must_include: Sequence[AdvertisedDevice],
                         size: int) -> list[str]:
    """Device ids to allocate: ``size`` of them (fewer only if fewer are available)."""
    chosen = list(dict.fromkeys(d.id for d in must_include))
    if len(chosen) >= size:
        return chosen
    taken = set(chosen)
    # The kubelet's order is arbitrary (a Go map); decide in inventory order so the answer is reproducible.
    pool = sorted((d for d in available if d.id not in taken), key=_inventory_order)
    need = size - len(chosen)
    by_numa: dict[int, list[AdvertisedDevice]] = {}
    for dev in pool:
        by_numa.setdefault(dev.numa_node, []).append(dev)
    replicated = any(d.replica is not None for d in pool)
    order = _numa_order(by_numa, {d.numa_node for d in must_include}, need, spread=replicated)
    for node in order:
        chosen += _spread(by_numa[node], size - len(chosen))
        if len(chosen) >= size:
            break
    return chosen


def _inventory_order(dev: AdvertisedDevice) -> tuple[int, int, int]:
    slot = dev.unit.slot if isinstance(dev.unit, MigDevice) else -1
    return (dev.gpu.index, slot, dev.replica or 0)


def _numa_order(by_numa: dict[int, list[AdvertisedDevice]], must_nodes: set[int], need: int, *,
                spread: bool) -> list[int]:
    fitting = [n for n, devs in by_numa.items() if len(devs) >= need]
    if len(must_nodes) == 1:
        (home,) = must_nodes
        if home in fitting:
            return [home]
    if fitting:
        sign = -1 if spread else 1
        return [min(fitting, key=lambda n: (sign * len(by_numa[n]), n))]
    return sorted(by_numa, key=lambda n: (-len(by_numa[n]), n))


def _spread(devices: Sequence[AdvertisedDevice], count: int) -> list[str]:
    """``count`` device ids from ``devices``, replicas spread over units (see module docstring, rule 4)."""
    per_unit: dict[str, list[AdvertisedDevice]] = {}
    for dev in devices:
        per_unit.setdefault(dev.unit.uuid, []).append(dev)
    position = {uuid: i for i, uuid in enumerate(per_unit)}
    queues = {uuid: sorted(devs, key=lambda d: d.replica or 0) for uuid, devs in per_unit.items()}
    out: list[str] = []
    while len(out) < count and queues:
        uuid = max(queues, key=lambda u: (len(queues[u]), -position[u]))
        out.append(queues[uuid].pop(0).id)
        if not queues[uuid]:
            del queues[uuid]
    return out
