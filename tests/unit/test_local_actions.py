"""The local bring-up as named actions: status lines, and on failure or Ctrl-C the undos of what ran, in reverse."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness.config import parse_profile
from harness.errors import ClusterError
from harness.hostproc import Supervisor
from harness.providers.kit import Action, run_actions
from harness.providers.local import LocalCluster


def recorder(log: list[str], fail_at: str = "", exc: BaseException | None = None) -> list[Action]:
    def run(name: str) -> None:
        log.append(f"run {name}")
        if name == fail_at:
            raise exc or ClusterError(f"{name} broke")

    def undo(name: str) -> None:
        log.append(f"undo {name}")

    return [Action(n, f"doing {n}", lambda n=n: run(n), None if n == "b" else (lambda n=n: undo(n)))  # type: ignore[misc]
            for n in ("a", "b", "c", "d", "e")]


def test_each_action_prints_its_status_line_and_nothing_is_undone_on_success() -> None:
    log: list[str] = []
    lines: list[str] = []
    run_actions(recorder(log), lines.append)
    assert lines == [f"[{i}/5] {n}: doing {n}" for i, n in enumerate("abcde", 1)]
    assert log == [f"run {n}" for n in "abcde"]


def test_a_failure_undoes_what_ran_newest_first_and_raises() -> None:
    log: list[str] = []
    with pytest.raises(ClusterError, match="d broke"):
        run_actions(recorder(log, fail_at="d"), lambda m: None)
    # the failing action may have half-done its work: its undo runs too; b has none; e never ran
    assert log == ["run a", "run b", "run c", "run d", "undo d", "undo c", "undo a"]


def test_ctrl_c_undoes_too() -> None:
    log: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_actions(recorder(log, fail_at="c", exc=KeyboardInterrupt()), lambda m: None)
    assert log[-2:] == ["undo c", "undo a"]


def test_a_failing_undo_does_not_stop_the_others() -> None:
    log: list[str] = []

    def bad_undo() -> None:
        log.append("undo c")
        raise ClusterError("cannot stop c")

    actions = recorder(log, fail_at="d")
    actions[2] = Action("c", "doing c", lambda: log.append("run c"), bad_undo)
    lines: list[str] = []
    with pytest.raises(ClusterError, match="d broke"):
        run_actions(actions, lines.append)
    assert log[-3:] == ["undo d", "undo c", "undo a"]
    assert "warning: undoing c failed: cannot stop c" in lines


def test_local_bring_up_actions_in_order(tmp_path: Path) -> None:
    cluster = LocalCluster("order", root=tmp_path)
    tier_s = parse_profile({"pools": [{"name": "x", "nodes": 2}]}, name="s")
    tier_r = parse_profile({"realNode": {"enabled": True}}, name="r")
    names = [a.name for a in cluster.create_actions(tier_s, cluster.settings_for(tier_s), "fp")]
    assert names == ["run-dir", "binaries", "pki", "etcd", "apiserver", "controller-manager", "scheduler", "kwok",
                     "service-account", "simulated-nodes", "state"]
    names_r = [a.name for a in cluster.create_actions(tier_r, cluster.settings_for(tier_r), "fp")]
    # the real node's host network exists before the apiserver starts (it may bind to the node's address)
    assert names_r.index("host-network") < names_r.index("etcd") < names_r.index("apiserver")
    assert names_r.index("kwok") < names_r.index("real-node") < names_r.index("simulated-nodes")
    assert not (tmp_path / "order").exists()  # building the list does nothing


def test_supervisor_fails_fast_when_a_daemon_dies_and_names_its_log_line(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    sup.start("dies", [sys.executable, "-c", "print('starting'); print('FATAL: port in use'); print('bye')"])
    with pytest.raises(ClusterError, match=r"dies exited during start-up: FATAL: port in use \(log: .*dies.log\)"):
        sup.wait_ready("dies", lambda: False, timeout=30)
    assert sup.died("dies") is not None and sup.running() == {}


def test_supervisor_waits_for_the_probe_and_stops(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    flag = tmp_path / "ready"
    sup.start("sleeper", [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(flag)!r}).touch(); "
                                               "time.sleep(60)"], env=dict(os.environ))
    sup.wait_ready("sleeper", flag.exists, timeout=30)
    pid = sup.pid("sleeper")
    assert pid is not None and sup.running() == {"sleeper": pid} and sup.recorded() == ["sleeper"]
    assert sup.stop("sleeper")
    assert sup.pid("sleeper") is None and sup.recorded() == []
