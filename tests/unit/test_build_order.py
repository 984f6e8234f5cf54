"""A cold CI run builds the pins in versions.toml's order and runs the integration modules in the order of what they
need, so its tests start on the first binaries while the big addon builds go on (docs/cold-ci.md)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from harness.bins import CONTROL_PLANE, REAL_NODE, load_versions
from tests.integration.conftest import in_build_order

REPO = Path(__file__).resolve().parents[2]


def test_every_cluster_needs_first_and_the_biggest_addon_builds_last() -> None:
    versions = load_versions()
    order = list(versions.groups)
    core = {versions.owner_of(b) for b in CONTROL_PLANE + REAL_NODE}
    assert order[0] == "kubernetes"
    assert set(order[: len(core)]) == core, order
    assert order[-1] == "traefik" and order.index("prometheus") > order.index("kueue") > order.index("kube-router")
    # what `aiconform bins --all` builds follows the same order
    assert [versions.owner_of(b) for b in versions.all_binaries()] == sorted(
        (versions.owner_of(b) for b in versions.all_binaries()), key=order.index)


class _Item:
    def __init__(self, nodeid: str, *groups: str) -> None:
        self.nodeid = nodeid
        self.groups = groups

    def iter_markers(self, name: str) -> Iterator[Any]:
        if name == "upstream" and self.groups:
            yield pytest.mark.upstream(*self.groups).mark


def test_modules_run_core_first_then_by_their_latest_built_need() -> None:
    items = [_Item("test_gateway.py::a", "traefik"), _Item("test_check_api.py::a"), _Item("test_detect.py::a", "kueue"),
             _Item("test_gateway.py::b", "traefik"), _Item("test_real_node.py::a", "jobset", "kube-router")]
    ordered = in_build_order(cast(list[pytest.Item], items), ["kubernetes", "kube-router", "jobset", "kueue", "traefik"])
    assert [i.nodeid for i in ordered] == ["test_check_api.py::a", "test_real_node.py::a", "test_detect.py::a",
                                          "test_gateway.py::a", "test_gateway.py::b"]
    with pytest.raises(pytest.UsageError, match="'traefk'.*not a versions.toml group"):
        in_build_order(cast(list[pytest.Item], [_Item("test_gateway.py::a", "traefk")]), ["traefik"])


def test_the_integration_session_runs_the_gateway_and_serving_modules_last() -> None:
    res = subprocess.run([sys.executable, "-m", "pytest", "tests/integration", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    modules = list(dict.fromkeys(ln.split("::")[0].rsplit("/", 1)[-1] for ln in res.stdout.splitlines() if "::" in ln))
    assert modules[-2:] == ["test_gateway.py", "test_serving_stack.py"], modules
    assert modules.index("test_check_api.py") < modules.index("test_real_node.py") < modules.index("test_governance.py")
