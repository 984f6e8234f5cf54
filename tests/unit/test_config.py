"""Profile validation: every shipped profile loads; every mistake names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from fake_gpu_plugin.inventory import resource_counts
from harness.config import load_profile, parse_profile, shipped_profiles
from harness.contract import GPU_RESOURCE
from harness.errors import ConfigError
from harness.providers.kind import kind_spec


@pytest.mark.parametrize("name", shipped_profiles())
def test_shipped_profiles_load(name: str) -> None:
    profile = load_profile(name)
    assert profile.provider == ("kind" if kind_spec(profile) is not None else "local")
    assert profile.node_count() >= 1


def test_default_profile_gpu_resources() -> None:
    pools = {p.name: p for p in load_profile("default").pools}
    assert pools["a100"].gpu is not None and resource_counts(pools["a100"].gpu) == {GPU_RESOURCE: 8}
    mig = pools["a100-mig"].gpu
    assert mig is not None
    assert resource_counts(mig) == {
        "nvidia.com/mig-3g.40gb": 2, "nvidia.com/mig-2g.20gb": 2, "nvidia.com/mig-1g.10gb": 4,
    }
    shared = pools["t4-shared"].gpu
    assert shared is not None and resource_counts(shared) == {GPU_RESOURCE: 8}
    assert pools["cpu"].gpu is None


def test_zero_gpus_means_no_gpus() -> None:
    """``count: 0`` is a GPU-less pool (the model is still checked), not a node with an empty plugin."""
    p = parse_profile({"pools": [{"name": "x", "gpu": {"model": "T4", "count": 0}}]})
    assert p.pools[0].gpu is None
    with pytest.raises(ConfigError, match=r"pools\[0\]\.gpu\.model: unknown GPU model 'T5'"):
        parse_profile({"pools": [{"name": "x", "gpu": {"model": "T5", "count": 0}}]})


def test_real_node_gpu_errors_name_the_real_node_path() -> None:
    with pytest.raises(ConfigError, match=r"realNode\.gpu\.sharing\.timeSlicing\.replicas: must be an integer >= 1"):
        parse_profile({"realNode": {"enabled": True, "gpu": {"model": "T4", "count": 1,
                                                              "sharing": {"timeSlicing": {"replicas": 0}}}}})


def test_model_alias_is_normalised() -> None:
    p = parse_profile({"pools": [{"name": "x", "gpu": {"model": "H100", "count": 4}}]})
    assert p.pools[0].gpu is not None and p.pools[0].gpu.model == "H100-SXM5-80GB"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"pools": [{"name": "x", "nodes": -2}]}, "pools[0].nodes: must be >= 0, got -2"),
        ({"pools": [{"name": "x", "gpu": {"model": "B300", "count": 8}}]},
         "pools[0].gpu.model: unknown GPU model 'B300'; known: A100-SXM4-40GB, A100-SXM4-80GB"),
        ({"pools": [{"name": "x", "gpu": {"model": "T4", "count": -1}}]}, "pools[0].gpu.count: must be an integer >= 0, got -1"),
        ({"pools": [{"name": "x", "gpu": {"model": "T4", "count": "8"}}]}, "pools[0].gpu.count: must be an integer"),
        ({"pools": [{"name": "x"}, {"name": "x"}]}, "pools[1].name: duplicate pool name 'x'"),
        ({"pools": [{"name": "Bad_Name"}]}, "pools[0].name: must be a DNS-1123 label"),
        ({"pools": [{"name": "x", "gpus": 8}]}, "pools[0].gpus: unknown field"),
        ({"pools": [{"name": "x", "gpu": {"model": "T4", "count": 65}}]}, "pools[0].gpu.count: must be an integer <= 64"),
        ({"pools": [{"name": "x"}, {"name": "y", "gpu": {"model": "T4", "colour": "red"}}]},
         "pools[1].gpu.colour: unknown field"),
        ({"pools": [{"name": "x", "taints": [{"key": "a", "effect": "Sometimes"}]}]},
         "pools[0].taints[0].effect: must be one of NoSchedule, PreferNoSchedule, NoExecute"),
        ({"pools": [{"name": "x", "labels": {"team": "a b"}}]}, "pools[0].labels.team: invalid label value"),
        ({"pools": [{"name": "x", "gpu": {"model": "T4", "mig": {"strategy": "mixed", "layout": {"1g.5gb": 1}}}}]},
         "pools[0].gpu.mig.strategy: mixed needs a MIG-capable model; T4 is not"),
        ({"pools": [{"name": "x", "gpu": {"model": "A100-80GB", "mig": {"strategy": "mixed",
                                                                          "layout": {"7g.80gb": 1, "1g.10gb": 1}}}}]},
         "pools[0].gpu.mig.layout: 7g.80gb + 1g.10gb needs 8 compute slices; a GPU has 7"),
        ({"pools": [{"name": "x", "gpu": {"model": "A100-80GB", "mig": {"strategy": "mixed",
                                                                          "layout": {"5g.50gb": 1}}}}]},
         "pools[0].gpu.mig.layout.5g.50gb: model A100-SXM4-80GB has no MIG profile '5g.50gb'"),
        ({"provider": "Cloud X"}, "provider: must be a provider name (lowercase letters, digits, '-'), got 'Cloud X'"),
        ({"controlPlane": {"apiserverPort": 80}}, "controlPlane.apiserverPort: choose a port >= 1024"),
        ({"pools": "many"}, "pools: must be a list"),
        ([1, 2], "profile: must be a mapping"),
    ],
)
def test_bad_profiles_name_the_field(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_profile(data, name="bad")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_profile_lists_shipped_ones() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'nope'; shipped profiles: .*default"):
        load_profile("nope")


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_profile(str(tmp_path / "missing.yaml"))


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("pools:\n  - name: x\n    nodes: [1\n")
    with pytest.raises(ConfigError, match=r"p.yaml line \d+: not valid YAML"):
        load_profile(str(f))
