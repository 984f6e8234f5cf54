"""The provider registry: entry points in ``aiconform.providers``, aiconform's own and a third party's alike.

The third-party provider here is a real installed-looking distribution (a ``.dist-info`` with ``entry_points.txt``
in a directory on ``sys.path``), found by importlib.metadata the way pip-installed packages are.  Nothing in
aiconform names it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.config import parse_profile
from harness.errors import ClusterNotFound, ConfigError
from harness.providers import find_cluster, open_provider, provider_for, registered
from harness.providers.base import ClusterProvider, ProviderOptions, abilities_of

FAKE_PROVIDER = '''
"""A third-party provider: keeps a "cluster" as a file, to prove the registry finds it."""
from pathlib import Path

from harness.errors import ClusterNotFound
from harness.providers.base import ClusterStatus, provider_info
from harness.providers.common import mark_owner, state_root


class PaperCluster:
    def __init__(self, name, root):
        self.name = name
        self.dir = (root or state_root()) / name

    def kubeconfig(self):
        return self.dir / "kubeconfig"

    def create(self, profile):
        mark_owner(self.dir, "paper")
        self.kubeconfig().write_text("paper")
        return self.kubeconfig()

    def delete(self):
        if not self.dir.exists():
            return False
        for p in self.dir.iterdir():
            p.unlink()
        self.dir.rmdir()
        return True

    def is_up(self):
        return self.kubeconfig().exists()

    def status(self):
        if not self.is_up():
            raise ClusterNotFound(f"no paper cluster {self.name!r}")
        return ClusterStatus(name=self.name, provider="paper", healthy=True, kubeconfig=str(self.kubeconfig()),
                             profile="paper", tier="S", components={"paper": None})

    def collect_logs(self, dest):
        return []

    def info(self):
        return provider_info(self, provider="paper", name=self.name, tier="S")

    def add_nodes(self, pool, count):
        return [f"{pool}-{i}" for i in range(count)]


def open_cluster(name, options):
    return PaperCluster(name, options.root)


def not_a_provider(name, options):
    return object()
'''


def fake_distribution(where: Path, dist: str, entry_points: dict[str, str], module: str = "") -> Path:
    """A distribution as pip would leave it in site-packages: the module and ``<dist>-0.1.dist-info``."""
    info = where / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[aiconform.providers]\n{lines}")
    if module:
        (where / f"{dist.replace('-', '_')}.py").write_text(textwrap.dedent(module))
    return where


@pytest.fixture
def paper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = fake_distribution(tmp_path / "site", "paper-provider", {"paper": "paper_provider:open_cluster"},
                             FAKE_PROVIDER)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_aiconform_registers_its_own_providers_as_entry_points() -> None:
    assert {"local", "existing", "kind"} <= set(registered())


def test_a_third_party_provider_is_found_without_editing_aiconform(paper: Path, tmp_path: Path) -> None:
    assert "paper" in registered()
    profile = parse_profile({"provider": "paper"}, name="p")
    cluster = provider_for(profile, "one", ProviderOptions(root=tmp_path / "state"))
    assert isinstance(cluster, ClusterProvider)
    kubeconfig = cluster.create(profile)
    assert kubeconfig.read_text() == "paper"
    assert find_cluster("one", ProviderOptions(root=tmp_path / "state")).status().provider == "paper"
    assert cluster.info().abilities == frozenset({"add_nodes"})  # derived from the method it has, nothing declared


def test_cli_commands_reach_a_third_party_provider_through_the_registry(paper: Path, tmp_path: Path) -> None:
    env = {**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state"),
           "PYTHONPATH": os.pathsep.join([str(paper), os.environ.get("PYTHONPATH", "")])}
    profile = tmp_path / "paper.yaml"
    profile.write_text("provider: paper\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    up = cli("up", "--profile", str(profile), "--name", "pp")
    assert up.returncode == 0, up.stderr
    kubeconfig = up.stdout.strip().splitlines()[-1]
    assert Path(kubeconfig).read_text() == "paper"
    status = cli("status", "--name", "pp")
    assert status.returncode == 0, status.stderr
    assert "provider    paper" in status.stdout
    assert cli("kubeconfig", "--name", "pp").stdout.strip() == kubeconfig
    down = cli("down", "--name", "pp")
    assert down.returncode == 0, down.stderr
    assert not Path(kubeconfig).exists()
    again = cli("down", "--name", "pp")
    assert again.returncode == 1 and again.stderr.strip() == "aiconform: no cluster named 'pp'; nothing to do"


def test_suites_ask_the_registry_for_a_running_clusters_provider_and_its_abilities(paper: Path, tmp_path: Path) -> None:
    from harness.errors import UnsupportedCapability
    from harness.providers import cluster_of, ensure_addons

    profile = parse_profile({"provider": "paper"}, name="p")
    kubeconfig = provider_for(profile, "one", ProviderOptions(root=tmp_path / "state")).create(profile)
    found = cluster_of(kubeconfig)  # from the owner record beside the kubeconfig: no provider named by the caller
    assert type(found).__name__ == "PaperCluster" and found.name == "one"
    with pytest.raises(UnsupportedCapability) as err:
        ensure_addons(kubeconfig, "jobset", "jobset")
    assert str(err.value) == "provider 'paper' does not support installing addons (jobset)"
    foreign = tmp_path / "kubeconfig"
    foreign.write_text("apiVersion: v1\n")
    with pytest.raises(UnsupportedCapability, match=r"^provider 'existing' does not support installing addons "
                                                    r"\(trainer\) into a cluster the harness did not make"):
        ensure_addons(foreign, "trainer")


def test_unknown_provider_is_one_line_listing_the_registered_ones(tmp_path: Path) -> None:
    profile = tmp_path / "foo.yaml"
    profile.write_text("provider: foo\n")
    res = subprocess.run([sys.executable, "-m", "harness.cli", "up", "--profile", str(profile)], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state")})
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"aiconform: provider: unknown provider 'foo'; registered providers: {', '.join(registered())}"]
    assert not (tmp_path / "state" / "aiconform").exists()
    run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--profile", str(profile), "--report-dir",
                          str(tmp_path / "report")], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state")})
    assert run.returncode == 2 and run.stderr == res.stderr
    assert not (tmp_path / "report").exists()


def test_kind_opens_through_the_registry_without_the_upgrade_ability(tmp_path: Path) -> None:
    cluster = open_provider("kind", "k", ProviderOptions(root=tmp_path))
    assert type(cluster).__name__ == "KindCluster"
    assert abilities_of(cluster) == {"ensure_addons", "load_image"}


def test_existing_needs_a_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="aiconform run --kubeconfig FILE"):
        open_provider("existing", "e", ProviderOptions(root=tmp_path))


def test_broken_entry_points_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = fake_distribution(tmp_path / "site", "broken-provider",
                             {"gone": "no_such_module:open_cluster", "thing": "broken_provider:not_a_provider"},
                             FAKE_PROVIDER)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ConfigError, match=r"provider 'gone' \(no_such_module:open_cluster from broken-provider\) "
                                          "cannot be loaded: ModuleNotFoundError"):
        open_provider("gone", "x")
    with pytest.raises(ConfigError, match="returned a object, which does not implement the ClusterProvider"):
        open_provider("thing", "x")


def test_one_name_registered_by_two_packages_is_refused(paper: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    other = fake_distribution(tmp_path / "other", "other-paper", {"paper": "other_paper:open_cluster"})
    monkeypatch.syspath_prepend(str(other))
    with pytest.raises(ConfigError, match="provider 'paper' is registered twice"):
        open_provider("paper", "x")


def test_find_cluster_of_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ClusterNotFound, match="no cluster named 'nope'"):
        find_cluster("nope", ProviderOptions(root=tmp_path))
    (tmp_path / "junk").mkdir()  # a directory no provider claimed
    with pytest.raises(ClusterNotFound):
        find_cluster("junk", ProviderOptions(root=tmp_path))


def test_run_dirs_from_before_owner_records_are_found_by_their_state(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "state.json").write_text('{"provider": "local", "tier": "S"}')
    assert type(find_cluster("old", ProviderOptions(root=tmp_path))).__name__ == "LocalCluster"


def test_free_ports_are_below_the_ephemeral_range() -> None:
    """A component restarted on its port must not find it taken by an outgoing connection's source port, so
    listening ports come from below the kernel's ephemeral range."""
    from pathlib import Path

    from harness.hostproc import free_port

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(p < low for p in ports) and len(ports) > 1
