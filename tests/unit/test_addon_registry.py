"""The addon registry (entry points in ``aiconform.addons``), the site protocol a provider implements, and the rule
that addons never import a provider.

The third-party addon is examples/third_party_addon, registered the way pip would leave it installed: a
``.dist-info`` whose ``entry_points.txt`` carries the entry point of the example's own pyproject.toml, in a directory
on ``sys.path``.  Nothing in aiconform names it.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Any

import pytest

from harness.addons import (
    AddonSite,
    HostProcesses,
    RealNodes,
    check_profile,
    install,
    known_addons,
    lookup,
    placement,
    registered,
)
from harness.config import parse_profile
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "third_party_addon"
OWN = {"jobset", "karpenter", "kube-router", "kueue", "model-server", "prometheus", "prometheus-adapter", "traefik",
       "trainer"}


def installed(where: Path, dist: str, entry_points: dict[str, str]) -> Path:
    """A distribution's metadata as pip leaves it in site-packages, registering ``entry_points`` as addons."""
    info = where / f"{dist.replace('-', '_')}-1.0.0.dist-info"  # pip's directory name: the normalized one
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[aiconform.addons]\n{lines}")
    return where


@pytest.fixture
def team_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """examples/third_party_addon, registered through its own pyproject.toml's entry point."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    eps = project["entry-points"]["aiconform.addons"]
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(installed(tmp_path / "site", project["name"], eps)))
    [name] = eps
    return str(name)


def test_aiconform_registers_its_own_addons_as_entry_points() -> None:
    assert set(registered()) >= OWN
    assert all(known_addons()[name].name == name for name in OWN)


def test_a_third_party_addon_is_found_and_judged_like_our_own(team_defaults: str) -> None:
    from harness.addons import AddonContext

    assert team_defaults == "team-defaults" and team_defaults in registered()
    addon = lookup(team_defaults)
    objs = addon.manifests(AddonContext(image="", apiserver_host="127.0.0.1", apiserver_port=6443))
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [("Namespace", "team-defaults"),
                                                                  ("ConfigMap", "gpu-defaults")]
    # it runs nothing, so every cluster a provider made takes it: tier S local, kind, a provider with neither ability
    profile = parse_profile({"addons": [team_defaults]})
    check_profile(profile, provider="local", real_nodes=False, host_processes=True)
    check_profile(profile, provider="kind", real_nodes=True, host_processes=False)
    check_profile(profile, provider="paper", real_nodes=False, host_processes=False)


def test_a_profile_naming_an_unregistered_addon_lists_the_registered_ones(team_defaults: str) -> None:
    with pytest.raises(ConfigError, match=r"^addons\[1\]: unknown addon 'calico'; known addons: .*team-defaults"):
        check_profile(parse_profile({"addons": ["team-defaults", "calico"]}), provider="local", real_nodes=False,
                      host_processes=True)


def test_a_broken_or_misnamed_third_party_addon_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "odd_addons.py").write_text("from harness.addons import lookup\nJOBSET = lookup('jobset')\n"
                                                     "NOT_AN_ADDON = 3\n")
    monkeypatch.syspath_prepend(str(installed(tmp_path / "site", "odd-addons", {
        "gone": "odd_addons_missing:ADDON", "three": "odd_addons:NOT_AN_ADDON", "renamed": "odd_addons:JOBSET"})))
    with pytest.raises(ConfigError, match=r"^addon 'gone' \(odd_addons_missing:ADDON from odd-addons\) cannot be "
                                          r"loaded: ModuleNotFoundError"):
        lookup("gone")
    with pytest.raises(ConfigError, match=r"^addon 'three' .* is not an Addon .*: got int$"):
        lookup("three")
    with pytest.raises(ConfigError, match=r"^addon 'renamed' .* calls itself 'jobset'"):
        lookup("renamed")
    assert lookup("jobset").name == "jobset"  # one broken package does not take the others down


def test_an_addon_needing_a_host_process_where_the_provider_runs_none_is_one_line_before_bring_up() -> None:
    """JobSet at tier S runs as a host process; a provider whose clusters have no real node and run no host process
    cannot take it: one line naming the addon and the provider, from the profile check providers run first."""
    profile = parse_profile({"addons": ["jobset"]})
    check_profile(profile, provider="local", real_nodes=False, host_processes=True)  # tier S local: a host process
    check_profile(profile, provider="kind", real_nodes=True, host_processes=False)  # kind: pods on its nodes
    with pytest.raises(ConfigError) as err:
        check_profile(profile, provider="paper", real_nodes=False, host_processes=False)
    assert str(err.value) == ("addons[0]: addon jobset needs a host process beside the control plane where there is "
                              "no real node, and provider 'paper' cannot run one")


class Site:
    """A site of a provider whose cluster has neither real nodes nor host processes; it must never be touched."""

    provider = "paper"
    cluster = "p1"
    pools = ()
    time_compression = None

    def __init__(self) -> None:
        self.lines: list[str] = []

    def progress(self, line: str) -> None:
        self.lines.append(line)

    def client(self) -> Any:
        raise AssertionError("the installer reached the cluster before refusing the addon")

    def resolver(self) -> Any:
        raise AssertionError("the installer resolved a binary before refusing the addon")

    def ca(self) -> None:
        return None

    def record_undo(self, commands: list[tuple[str, ...]]) -> None:
        raise AssertionError("nothing may be recorded")


def test_the_installer_refuses_what_a_site_cannot_run_before_anything_starts(team_defaults: str) -> None:
    site = Site()
    assert isinstance(site, AddonSite) and not isinstance(site, RealNodes) and not isinstance(site, HostProcesses)
    with pytest.raises(ConfigError, match=r"^addon kueue needs a host process .* provider 'paper' cannot run one$"):
        install([lookup("kueue")], site)
    with pytest.raises(ConfigError, match=r"^addon kube-router runs on the real node; cluster 'p1' \(provider "
                                          r"'paper'\) has none$"):
        install([lookup(team_defaults), lookup("kube-router")], site)  # refused before the first one starts
    assert site.lines == []


def test_placement_prefers_pods_on_real_nodes_and_host_processes_only_without() -> None:
    jobset = lookup("jobset")
    assert placement(jobset, provider="local", real_nodes=True, host_processes=True) == "pod"
    assert placement(jobset, provider="local", real_nodes=False, host_processes=True) == "host"
    assert placement(jobset, provider="kind", real_nodes=True, host_processes=False) == "pod"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at top level or inside functions and TYPE_CHECKING blocks alike."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return out


@pytest.mark.parametrize("package", ["harness/addons", "harness/governance", "harness/simulate", "scenarios",
                                     "reference_workloads"])
def test_addons_suites_and_reference_stacks_never_import_a_provider_by_name(package: str) -> None:
    """Providers import addons (a provider builds its site and calls the installer), never the other way round; suites,
    governance, simulate and the reference stacks ask the provider registry, never a provider's package."""
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = sorted(m for m in _imports(path) if m.startswith(("harness.providers.local", "harness.providers.kind",
                                                                "harness.providers.existing", "harness.providers.kit")))
        if package == "harness/addons":
            bad = sorted(m for m in _imports(path) if m.startswith("harness.providers"))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_no_provider_imports_another() -> None:
    providers = ROOT / "harness" / "providers"
    for own in ("local", "kind"):
        others = [o for o in ("local", "kind", "existing") if o != own]
        for path in sorted((providers / own).rglob("*.py")):
            bad = sorted(m for m in _imports(path) if any(m.startswith(f"harness.providers.{o}") for o in others))
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
