"""One real local cluster (profile ``default``) for the whole integration session, torn down at the end.

Integration tests never mock the cluster: every verdict they check comes from the real control plane.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.bins import load_versions
from harness.config import Profile, load_profile
from harness.kube import KubeClient
from harness.providers.local import LocalCluster
from harness.testing import ClusterHandle, ClusterInfo, make_handle, new_run_id


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in item.nodeid:
            item.add_marker(pytest.mark.integration)
    items[:] = in_build_order(items, list(load_versions().groups))


def in_build_order(items: list[pytest.Item], build_order: list[str]) -> list[pytest.Item]:
    """Modules whose clusters need only the core binaries first, then by the latest-built group their
    ``upstream`` marker names (versions.toml's section order: `aiconform bins --all` builds top to bottom); the
    order within a rank, and within a module, is kept.  On a cold run (.ci/run builds everything in the background)
    the tests of the early binaries run while the late ones (Prometheus, Traefik) still build; warm, only the
    order changes."""

    def rank(item: pytest.Item) -> int:
        groups = [g for m in item.iter_markers("upstream") for g in m.args]
        unknown = [g for g in groups if g not in build_order]
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: upstream marker names {unknown}, not a versions.toml group")
        return max((build_order.index(g) + 1 for g in groups), default=0)

    return sorted(items, key=rank)  # stable


@contextmanager
def running_cluster(prefix: str, root: Path, profile: Profile) -> Iterator[LocalCluster]:
    """A LocalCluster named ``<prefix>-<random>`` under ``root``, up for the with-block and deleted after it (a
    module's own ``cluster`` fixture, for a profile of its own)."""
    c = LocalCluster(f"{prefix}-{secrets.token_hex(2)}", root=root)
    c.create(profile)
    try:
        yield c
    finally:
        c.delete()


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[KubeClient]:
    """An admin client of the module's ``cluster`` fixture (modules that bring up a cluster of their own)."""
    c = cluster.client()
    yield c
    c.close()


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private state root so tests never touch a user's clusters."""
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def local_cluster(state_dir: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(f"it-{secrets.token_hex(2)}", root=state_dir)
    cluster.create(load_profile("default"))
    try:
        yield cluster
    finally:
        cluster.delete()


@pytest.fixture(scope="session")
def aiconform_cluster(local_cluster: LocalCluster) -> ClusterHandle:
    return make_handle(ClusterInfo(kubeconfig=str(local_cluster.kubeconfig()), run_id=new_run_id(), provider="local",
                                   profile="default"))


@pytest.fixture
def cli_env(state_dir: Path) -> dict[str, str]:
    """Environment for running the ``aiconform`` CLI against the private state root."""
    return {**os.environ, "AICONFORM_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"}


REGISTRY_BINARY = Path("/usr/bin/docker-registry")
"""Debian's ``docker-registry`` (the CNCF distribution registry): the real registry images are pushed to in tests."""


@dataclass(frozen=True)
class LoopbackRegistry:
    address: str
    """``127.0.0.1:PORT``"""
    log: Path


@contextmanager
def loopback_registry(root: Path) -> Iterator[LoopbackRegistry]:
    """The distribution registry serving plain HTTP on a free 127.0.0.1 port, its storage and log under ``root``,
    stopped after the with-block."""
    import urllib.request

    from harness import proc
    from harness.hostproc import free_port

    port = free_port()
    config = root / "registry.yml"
    config.write_text(f"version: 0.1\nlog: {{level: info}}\nstorage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
                      f"http: {{addr: 127.0.0.1:{port}}}\n")
    log, pidfile = root / "registry.log", root / "registry.pid"
    proc.start_daemon("registry", [str(REGISTRY_BINARY), "serve", str(config)], log=log, pidfile=pidfile)
    try:
        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        proc.poll_until(answers, timeout=30, interval=0.1, what="the registry on 127.0.0.1")
        yield LoopbackRegistry(f"127.0.0.1:{port}", log)
    finally:
        proc.stop_pidfile(pidfile)
