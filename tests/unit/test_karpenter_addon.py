"""What Karpenter is told about the autoscaled pools: an instance type and a NodePool per pool, generated from the
one GPU spec owner, so an added node has the shape of the pool's simulated nodes; and the profile key."""

from __future__ import annotations

import pytest

from harness.addons import karpenter
from harness.config import load_profile, parse_profile
from harness.contract import GPU_RESOURCE
from harness.errors import ConfigError
from harness.nodes import pool_labels, pool_resources, simulated_node


def test_instance_types_and_node_pools_have_each_pools_shape() -> None:
    profile = load_profile("autoscale")
    pools = karpenter.autoscaled(profile.pools)
    assert [p.name for p in pools] == ["a100-1g", "h100-1g", "cpu"]
    types = {t["name"]: t for t in karpenter.instance_types(profile.pools)}
    nps = {np["metadata"]["name"]: np for np in karpenter.node_pools(profile.pools, "c1")}
    for pool in pools:
        it = types[karpenter.instance_type_name(pool)]
        node = simulated_node(pool, 0, "c1")
        # the instance type is the pool's node plus the provider's kube-reserved: allocatable comes out equal
        assert it["resources"] == karpenter.with_kube_reserved(pool_resources(pool))
        assert pool_resources(pool) == node["status"]["allocatable"]
        tmpl = nps[pool.name]["spec"]["template"]
        expected = {k: v for k, v in pool_labels(pool, "c1").items() if k not in ("kubernetes.io/os", "kubernetes.io/arch")}
        assert tmpl["metadata"]["labels"] == expected
        assert {k: node["metadata"]["labels"][k] for k in expected} == expected
        assert tmpl["spec"].get("taints", []) == node["spec"].get("taints", [])
        assert tmpl["spec"]["requirements"] == [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                                 "values": [it["name"]]}]
        assert nps[pool.name]["spec"]["disruption"]["consolidateAfter"] == "5s"
    assert types["aiconform-a100-1g"]["resources"][GPU_RESOURCE] == "1"
    assert nps["h100-1g"]["spec"]["template"]["metadata"]["labels"]["nvidia.com/gpu.product"].startswith("NVIDIA-H100")
    # a CPU-only shape is cheaper than any GPU shape: a CPU pod never makes Karpenter pick a GPU node by price
    assert types["aiconform-cpu"]["offerings"][0]["Price"] < types["aiconform-a100-1g"]["offerings"][0]["Price"]
    assert nps["cpu"]["spec"]["limits"] == {"cpu": "32"}


def test_kube_reserved_is_added_once() -> None:
    res = karpenter.with_kube_reserved({"cpu": "16", "memory": "128Gi", "pods": "110", GPU_RESOURCE: "1"})
    assert res == {"cpu": "16100m", "memory": str(128 * 2**30 + 10 * 2**20), "pods": "110", GPU_RESOURCE: "1"}
    assert karpenter.with_kube_reserved({"cpu": "500m", "memory": "1G"})["cpu"] == "600m"


def test_autoscale_key_is_validated() -> None:
    base = {"pools": [{"name": "p", "nodes": 1, "autoscale": {"maxNodes": 2}}], "addons": ["karpenter"]}
    assert parse_profile(base).pools[0].autoscale is not None
    with pytest.raises(ConfigError, match=r"pools\[0\].autoscale: node autoscaling needs the karpenter addon"):
        parse_profile({"pools": base["pools"]})
    with pytest.raises(ConfigError, match=r"pools\[0\].autoscale.maxNodes: must be >= 1"):
        parse_profile({**base, "pools": [{"name": "p", "autoscale": {"maxNodes": 0}}]})
    with pytest.raises(ConfigError, match=r"pools\[0\].autoscale.consolidateAfter: must be a duration"):
        parse_profile({**base, "pools": [{"name": "p", "autoscale": {"maxNodes": 1, "consolidateAfter": "soon"}}]})
