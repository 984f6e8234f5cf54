"""The provider kit's bring-up wrapper, which local and kind both go through: lock, fingerprint, state.json, "already
up", leftovers, and the actions with undo.  A paper cluster stands in for a provider (its "processes" are files);
the wrapper under test is the real one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.config import parse_profile
from harness.errors import ClusterError, ClusterExists, ConfigError
from harness.providers.kit import Action, bring_up, cluster_lock, profile_fingerprint, read_state, tear_down


class Paper:
    """A cluster whose only process is the file ``up`` in its run directory."""

    def __init__(self, root: Path, name: str = "p") -> None:
        self.name, self.root, self.dir = name, root, root / name
        self.lines: list[str] = []
        self.log: list[str] = []

    def progress(self, line: str) -> None:
        self.lines.append(line)

    def state(self) -> dict[str, Any] | None:
        return read_state(self.dir)

    def is_up(self) -> bool:
        return (self.dir / "up").exists()

    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def teardown(self) -> None:
        self.log.append("teardown")
        for p in sorted(self.dir.iterdir()):
            p.unlink()
        self.dir.rmdir()

    def plan(self, profile_name: str, fail: str = "") -> Any:
        def plan(fp: str) -> list[Action]:
            self.log.append("plan")

            def start() -> None:
                self.dir.mkdir(parents=True, exist_ok=True)
                (self.dir / "up").touch()
                if fail:
                    raise ClusterError(fail)

            def write_state() -> None:
                (self.dir / "state.json").write_text(json.dumps({"profile": profile_name, "fingerprint": fp}))

            return [Action("start", "the paper process", start, lambda: (self.dir / "up").unlink(missing_ok=True)),
                    Action("state", "state.json", write_state)]

        return plan


def test_bring_up_runs_the_plan_once_then_is_a_no_op_for_the_same_profile(tmp_path: Path) -> None:
    c = Paper(tmp_path)
    profile = parse_profile({"name": "one"})
    assert bring_up(c, "local", profile, c.plan("one")) == c.kubeconfig()
    assert c.lines[:2] == ["[1/2] start: the paper process", "[2/2] state: state.json"]
    assert c.lines[-1].startswith("cluster 'p' is up (")
    assert c.state() == {"profile": "one", "fingerprint": profile_fingerprint(profile)}
    c.lines.clear()
    bring_up(c, "local", profile, c.plan("one"))
    assert c.lines == ["cluster 'p' is already up with profile 'one'"] and c.log == ["plan"]


def test_another_profile_on_a_running_cluster_is_one_line(tmp_path: Path) -> None:
    c = Paper(tmp_path)
    bring_up(c, "local", parse_profile({"name": "one"}), c.plan("one"))
    with pytest.raises(ClusterExists) as err:
        bring_up(c, "local", parse_profile({"name": "two", "pools": []}), c.plan("two"))
    assert str(err.value) == ("cluster 'p' is already up with profile 'one'; run `aiconform down --name p` first or "
                              "pick another --name")


def test_leftovers_of_a_cluster_that_is_not_up_are_removed_first(tmp_path: Path) -> None:
    c = Paper(tmp_path)
    bring_up(c, "local", parse_profile({"name": "one"}), c.plan("one"))
    (c.dir / "up").unlink()  # its process died
    bring_up(c, "local", parse_profile({"name": "one"}), c.plan("one"))
    assert "removing leftovers of an earlier cluster 'p'" in c.lines and c.log == ["plan", "teardown", "plan"]
    assert c.is_up()


def test_a_failing_action_is_undone_and_nothing_is_recorded(tmp_path: Path) -> None:
    c = Paper(tmp_path)
    with pytest.raises(ClusterError, match="paper broke"):
        bring_up(c, "local", parse_profile({"name": "one"}), c.plan("one", fail="paper broke"))
    assert not c.is_up() and c.state() is None
    assert "bring-up did not finish; undoing what was done" in c.lines


def test_a_profile_of_another_provider_and_a_held_lock_are_one_line(tmp_path: Path) -> None:
    c = Paper(tmp_path)
    with pytest.raises(ConfigError, match=r"^profile 'k' is for provider 'kind', not local$"):
        bring_up(c, "local", parse_profile({"name": "k", "provider": "kind", "kind": {}}), c.plan("k"))
    with cluster_lock(tmp_path, "p"):
        with pytest.raises(ClusterError, match=r"^another aiconform command is working on cluster 'p'$"):
            bring_up(c, "local", parse_profile({"name": "one"}), c.plan("one"))
        with pytest.raises(ClusterError, match="another aiconform command"):
            tear_down(c)
    assert c.log == [] and not c.dir.exists()


def test_tear_down_removes_the_cluster_and_its_lock_file(tmp_path: Path) -> None:
    c = Paper(tmp_path)
    assert tear_down(c) is False
    bring_up(c, "local", parse_profile({"name": "one"}), c.plan("one"))
    assert tear_down(c) is True
    assert not c.dir.exists() and not (tmp_path / ".p.lock").exists()


@pytest.mark.parametrize(("raised", "said", "interrupted"), [
    (KeyboardInterrupt(), "interrupted: undoing what was done", True),
    (ClusterError("etcd did not start"), "bring-up did not finish; undoing what was done", False),
])
def test_undos_know_whether_the_user_interrupted(raised: BaseException, said: str, interrupted: bool) -> None:
    """Ctrl-C (or SIGTERM, turned into one) leaves nothing behind; a failed bring-up keeps its logs for a
    post-mortem: each undo can tell which it is undoing."""
    from harness.providers.kit import run_actions, undoing_an_interrupt

    seen: list[bool] = []
    lines: list[str] = []

    def fail() -> None:
        raise raised

    with pytest.raises(type(raised)):
        run_actions([Action("run-dir", "made", lambda: None, lambda: seen.append(undoing_an_interrupt())),
                     Action("etcd", "fails", fail)], lines.append)
    assert seen == [interrupted] and said in lines
    assert not undoing_an_interrupt()  # outside an undo


def test_a_cluster_brought_up_on_another_kubernetes_version_still_finds_its_profile(tmp_path: Path) -> None:
    """`up --profile FILE --kubernetes previous`: the addon installer and add_nodes reload the profile from its file
    and must get it as it was brought up (the version set), not refuse it as "changed since"."""
    from harness.bins import pinned_kubernetes
    from harness.config import load_profile, with_kubernetes
    from harness.providers.local import LocalCluster

    source = tmp_path / "mine.yaml"
    source.write_text("name: mine\nextends: [minimal]\n")
    previous = pinned_kubernetes("previous")
    running = with_kubernetes(load_profile(str(source)), "previous")
    cluster = LocalCluster("mine", root=tmp_path / "state")
    cluster.dir.mkdir(parents=True)
    state = {"name": "mine", "provider": "local", "profile": "mine", "profile_source": str(source),
             "profile_kubernetes": previous, "fingerprint": profile_fingerprint(running),
             "kubernetes_version": previous}
    (cluster.dir / "state.json").write_text(json.dumps(state))
    assert cluster._running_profile().control_plane.kubernetes_version == previous
    source.write_text("name: mine\nextends: [default]\n")  # the file really changed: refused
    with pytest.raises(ClusterError, match="changed since cluster 'mine' was brought up"):
        cluster._running_profile()
