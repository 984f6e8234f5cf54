"""One real local cluster (profile ``default``) for the whole integration session, torn down at the end.

Integration tests never mock the cluster: every verdict they check comes from the real control plane.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import load_profile
from harness.providers.local import LocalCluster
from harness.testing import ClusterHandle, ClusterInfo, make_handle, new_run_id


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in item.nodeid:
            item.add_marker(pytest.mark.integration)


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
