"""Profiles that compose (``extends``) and providers that parse their own profile section (``PROFILE_SECTION``).

The merge rule is harness/config.py's docstring and docs/profiles.md; each test writes small YAML files the way a
user would and loads them through ``load_profile``, the path the CLI takes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import GenericSpec, load_profile, parse_profile, profile_data
from harness.errors import ConfigError
from harness.providers.kind import KindSpec, kind_spec
from tests.unit.test_provider_registry import fake_distribution


def write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


A100 = {"model": "A100-SXM4-80GB", "count": 8}
BASE = {
    "name": "base",
    "description": "the base fleet",
    "controlPlane": {"featureGates": {"DRADeviceTaints": True}, "runtimeConfig": {"scheduling.k8s.io/v1beta1": True}},
    "pools": [
        {"name": "a100", "nodes": 4, "gpu": A100, "labels": {"team": "research"},
         "taints": [{"key": "nvidia.com/gpu", "value": "present"}]},
        {"name": "t4", "nodes": 1, "gpu": {"model": "T4", "count": 2, "sharing": {"timeSlicing": {"replicas": 4}}}},
        {"name": "cpu", "nodes": 2, "cpu": "32"},
    ],
    "addons": ["kube-router"],
    "realNode": {"enabled": True, "gpu": {"model": "T4", "count": 1}},
}


def test_a_child_changes_what_it_names_and_inherits_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "base", BASE)
    child = write(tmp_path, "child", {
        "extends": "base.yaml",
        "controlPlane": {"featureGates": {"GenericWorkload": True}},      # mappings merge key by key
        "pools": [
            {"name": "a100", "nodes": 1, "gpu": {"count": 2}},             # merged into the inherited a100, in place
            {"name": "t4", "remove": True},                                # dropped
            {"name": "h100", "gpu": {"model": "H100", "count": 8}},        # appended
        ],
        "addons": ["kueue"],                                               # other lists replace
    })
    p = load_profile(str(child))
    assert p.name == "child"                                               # never inherited
    assert p.control_plane.feature_gates == {"DRADeviceTaints": True, "GenericWorkload": True}
    assert p.control_plane.runtime_config == {"scheduling.k8s.io/v1beta1": "true"}
    assert [(x.name, x.nodes) for x in p.pools] == [("a100", 1), ("cpu", 2), ("h100", 1)]
    a100 = p.pools[0]
    assert a100.gpu is not None and (a100.gpu.model, a100.gpu.count) == ("A100-SXM4-80GB", 2)
    assert a100.labels == {"team": "research"} and [t.key for t in a100.taints] == ["nvidia.com/gpu"]
    assert p.addons == ("kueue",)
    assert p.real_node.enabled and p.tier == "R" and p.node_count() == 1 + 2 + 1 + 1
    assert "description" not in profile_data(str(child))


def test_null_drops_an_inherited_value_and_an_empty_list_empties_one(tmp_path: Path) -> None:
    write(tmp_path, "base", BASE)
    child = write(tmp_path, "child", {"extends": "./base.yaml", "controlPlane": {"featureGates": None},
                                      "realNode": None, "pools": [], "addons": []})
    p = load_profile(str(child))
    assert p.control_plane.feature_gates == {} and p.control_plane.runtime_config == {"scheduling.k8s.io/v1beta1": "true"}
    assert not p.real_node.enabled and p.tier == "S"
    assert p.pools == () and p.addons == ()


def test_parents_merge_in_the_order_given_then_the_child_on_top(tmp_path: Path) -> None:
    write(tmp_path, "one", {"pools": [{"name": "gpu", "nodes": 1, "gpu": A100}], "addons": ["jobset"],
                            "controlPlane": {"featureGates": {"GenericWorkload": False}}})
    write(tmp_path, "two", {"pools": [{"name": "gpu", "nodes": 2}, {"name": "cpu"}], "addons": ["kueue"],
                            "controlPlane": {"featureGates": {"GenericWorkload": True}}})
    both = load_profile(str(write(tmp_path, "both", {"extends": ["one.yaml", "two.yaml"]})))
    assert [(x.name, x.nodes) for x in both.pools] == [("gpu", 2), ("cpu", 1)]
    assert both.pools[0].gpu is not None                                   # one's GPUs, two's node count
    assert both.addons == ("kueue",) and both.control_plane.feature_gates == {"GenericWorkload": True}
    other_way = load_profile(str(write(tmp_path, "other", {"extends": ["two.yaml", "one.yaml"],
                                                           "pools": [{"name": "gpu", "nodes": 7}]})))
    assert [(x.name, x.nodes) for x in other_way.pools] == [("gpu", 7), ("cpu", 1)]
    assert other_way.addons == ("jobset",) and other_way.control_plane.feature_gates == {"GenericWorkload": False}


def test_a_shipped_name_or_a_path_relative_to_the_extending_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "fleet", "gpus", {"extends": "default", "pools": [{"name": "a100", "nodes": 9}]})
    child = write(tmp_path / "teams", "mine", {"extends": "../fleet/gpus.yaml"})
    monkeypatch.chdir(tmp_path / "fleet")  # not where the relative path starts
    p = load_profile(str(child))
    default = load_profile("default")
    assert [(x.name, x.nodes) for x in p.pools] == [(x.name, 9 if x.name == "a100" else x.nodes) for x in default.pools]
    assert p.pools[1:] == default.pools[1:]


@pytest.mark.parametrize(("files", "message"), [
    ({"a": {"extends": "b.yaml"}, "b": {"extends": "a.yaml"}}, "a.yaml: extends: cycle a -> b.yaml -> a.yaml"),
    ({"a": {"extends": "a.yaml"}}, "a.yaml: extends: cycle a -> a.yaml"),
    ({"a": {"extends": ["default", "b.yaml"]}, "b": {"extends": "c.yaml"}, "c": {"extends": "b.yaml"}},
     "a.yaml: extends: cycle a -> b.yaml -> c.yaml -> b.yaml"),
    ({"a": {"extends": "b.yaml"}, "b": {"extends": "no-such-profile"}},
     "a.yaml: extends: a -> b.yaml -> no-such-profile: unknown profile 'no-such-profile'; shipped profiles: autoscale,"),
    ({"a": {"extends": "b.yaml"}}, "a.yaml: extends: a -> b.yaml: profile file "),
    ({"a": {"extends": 3}}, "a.yaml: extends: must be a profile name or path, or a list of them, got 3"),
    ({"a": {"extends": "b.yaml"}, "b": ["not", "a", "mapping"]}, "a.yaml: extends: a -> b.yaml: "),
    ({"a": {"extends": "default", "pools": [{"name": "nope", "remove": True}]}},
     "a.yaml: pools[0].remove: nothing inherited is named 'nope'"),
    ({"a": {"extends": "default", "pools": [{"name": "cpu", "nodes": 1}, {"name": "cpu", "nodes": 2}]}},
     "a.yaml: pools[1].name: duplicate name 'cpu'"),
])
def test_a_broken_chain_is_one_line_naming_it(tmp_path: Path, files: dict[str, Any], message: str) -> None:
    for name, data in files.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_profile(str(tmp_path / "a.yaml"))
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(tmp_path / message.split(": ", 1)[0]))
    assert message.split(": ", 1)[1] in text


def test_an_unknown_key_in_a_child_is_an_error_naming_the_file_and_what_it_extends(tmp_path: Path) -> None:
    child = write(tmp_path, "child", {"extends": "minimal", "pools": [{"name": "gpu", "nodez": 3}]})
    with pytest.raises(ConfigError) as err:
        load_profile(str(child))
    assert str(err.value).startswith(f"{child} (extends minimal): pools[0].nodez: unknown field (allowed: ")
    top = write(tmp_path, "top", {"extends": "minimal", "extend": "default"})
    with pytest.raises(ConfigError, match=r"\(extends minimal\): extend: unknown field \(allowed: addons, controlPlane, "
                                          r"description, extends, name, pools, provider, realNode\)"):
        load_profile(str(top))


def test_a_kind_profile_extends_one_and_merges_workers_by_name(tmp_path: Path) -> None:
    child = write(tmp_path, "kind-t4", {"extends": "kind-gpu", "kind": {"workers": [
        {"name": "a100", "remove": True},
        {"name": "t4-shared", "gpu": {"sharing": {"timeSlicing": {"replicas": 2}}}}]}})
    p = load_profile(str(child))
    spec = kind_spec(p)
    assert spec is not None and [w.name for w in spec.workers] == ["t4-shared"]
    t4 = spec.workers[0].gpu
    assert t4 is not None and (t4.model, t4.count, t4.time_slicing.replicas) == ("T4", 2, 2)
    assert spec.workers[0].labels == {"team": "inference"}
    assert p.provider == "kind" and p.tier == "R" and p.node_count() == 2
    local_child = write(tmp_path, "kind-pools", {"extends": "kind-gpu", "pools": [{"name": "x"}]})
    with pytest.raises(ConfigError, match="pools: a local-provider field in a 'provider: kind' profile"):
        load_profile(str(local_child))


# -- the provider section hook -----------------------------------------------------------------------------------

TRAY_PROVIDER = '''
"""A third-party provider with a profile section of its own ("trays" of boards)."""
from dataclasses import dataclass

from harness.errors import ConfigError


@dataclass(frozen=True)
class TraySpec:
    boards: int

    def tier(self, profile):
        return "G"

    def node_count(self, profile):
        return self.boards


class TraySection:
    key = "tray"
    holds = "trays of boards"

    def parse(self, fields, profile):
        d = fields.mapping(profile.get("tray") or {}, "tray")
        fields.known(d, "tray", {"boards"})
        if profile.get("realNode"):
            raise ConfigError("realNode: a tray has no real node")
        return TraySpec(boards=fields.integer(d.get("boards", 1), "tray.boards", minimum=1, maximum=64))


PROFILE_SECTION = TraySection()


def open_cluster(name, options):
    raise NotImplementedError
'''


@pytest.fixture
def tray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = fake_distribution(tmp_path / "site", "tray-provider", {"tray": "tray_provider:open_cluster",
                                                                  "flat": "flat_provider:open_cluster"}, TRAY_PROVIDER)
    (site / "flat_provider.py").write_text("PROFILE_SECTION = 'not a section'\n\n\ndef open_cluster(name, options):\n"
                                           "    raise NotImplementedError\n")
    monkeypatch.syspath_prepend(str(site))


@pytest.mark.usefixtures("tray")
def test_a_third_party_provider_parses_its_own_section_and_states_tier_and_nodes() -> None:
    p = parse_profile({"provider": "tray", "tray": {"boards": 5}})
    assert p.tier == "G" and p.node_count() == 5 and type(p.provider_spec).__name__ == "TraySpec"
    with pytest.raises(ConfigError, match=r"^inline: tray.boards: must be <= 64, got 65$"):
        parse_profile({"provider": "tray", "tray": {"boards": 65}})
    with pytest.raises(ConfigError, match=r"^inline: realNode: a tray has no real node$"):
        parse_profile({"provider": "tray", "realNode": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"^inline: tray: only a 'provider: tray' profile has trays of boards "
                                          r"\(this one is 'local'\)$"):
        parse_profile({"tray": {"boards": 1}})
    with pytest.raises(ConfigError, match=r"^inline: kind: only a 'provider: kind' profile has kind nodes "
                                          r"\(this one is 'tray'\)$"):
        parse_profile({"provider": "tray", "kind": {"workers": []}})
    with pytest.raises(ConfigError, match=r"^inline: provider 'flat': its PROFILE_SECTION is not a profile section"):
        parse_profile({"provider": "flat"})


def test_aiconform_s_own_providers_state_their_tiers() -> None:
    from harness.addons import check_profile

    kind = load_profile("kind-gpu")
    assert isinstance(kind.provider_spec, KindSpec)
    check_profile(dataclasses.replace(kind, addons=("kube-router",)),  # tier R: every kind node is a real kubelet
                  provider="kind", real_nodes=kind.has_real_node, host_processes=False)
    assert parse_profile({"provider": "existing"}).tier == "G"
    assert parse_profile({}).provider_spec == GenericSpec() and parse_profile({}).tier == "S"
    unregistered = parse_profile({"provider": "not-installed", "pools": [{"name": "x", "nodes": 3}]})
    assert unregistered.provider_spec == GenericSpec() and unregistered.node_count() == 3
