"""``aiconform selftest`` without a cluster: the mutation registry and its profiles, the owning checks found in the
shipped suites' markers, ``--list`` coverage of every MUST and gpu_sharing, grading, and the scheduler-plugin knob the
gang mutations use."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bins import pinned_kubernetes
from harness.cli import build_parser
from harness.config import parse_profile
from harness.errors import ConfigError
from harness.providers.local import components as comp
from harness.selftest import run as st
from harness.selftest.mutations import DELETE, MUTATIONS, REGISTRY, Edit, apply_edits
from harness.selftest.report import LISTED_SHOULDS, must_ids, power_rows, render_list, write_report


@pytest.fixture(scope="module")
def owners(tmp_path_factory: pytest.TempPathFactory) -> list[st.Owner]:
    """The checks of the shipped suites whose markers name mutations (collected by pytest, nothing runs)."""
    return st.collect_owners(st.check_files(None), workdir=tmp_path_factory.mktemp("collect"))


# -- the registry -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.id)
def test_every_mutation_is_a_valid_profile_that_differs_from_its_baseline(mutation: st.Mutation) -> None:
    base = parse_profile(mutation.baseline_document(), name="base")
    mutated = mutation.profile()
    assert mutated.provider == base.provider == "local", "selftest brings mutations up on the local provider"
    assert mutated.tier == mutation.tier, f"{mutation.id}: its profile is tier {mutated.tier}, it says {mutation.tier}"
    assert (mutated.pools, mutated.control_plane, mutated.real_node, mutated.addons) != \
        (base.pools, base.control_plane, base.real_node, base.addons), f"{mutation.id} changes nothing"


def test_every_must_and_gpu_sharing_has_a_mutation_with_an_owning_check(owners: list[st.Owner]) -> None:
    musts = must_ids()
    assert len(musts) == 8 and "dra_support" not in musts
    for req in [*musts, *LISTED_SHOULDS]:
        muts = [m for m in MUTATIONS if req in m.requirements]
        assert muts, f"no mutation for {req}"
        assert any(o.requirement == req for m in muts for o in st.owners_of(m, owners)), \
            f"no check evidencing {req} names a mutation of it"


def test_every_mutation_is_owned_and_owners_evidence_its_requirements(owners: list[st.Owner]) -> None:
    for m in MUTATIONS:
        mine = st.owners_of(m, owners)
        assert mine, f"{m.id}: no check names it"
        assert {o.requirement for o in mine} <= set(m.requirements), m.id


def test_the_gang_mutation_runs_here_and_both_gang_checks_must_catch_it(owners: list[st.Owner]) -> None:
    gang = [m for m in MUTATIONS if m.requirement == "gang_scheduling"]
    assert {m.id for m in gang} == {"gang-plugin-off"}
    for m in gang:
        assert m.tier == "S" and not st.why_not_here(m, st.owners_of(m, owners), "S")
        names = {o.name for o in st.owners_of(m, owners)}
        assert names == {"test_native_gang_is_bound_all_or_nothing",
                         "test_two_competing_gangs_one_binds_whole_the_other_none"}


def test_list_names_every_must_and_what_runs_here(owners: list[st.Owner]) -> None:
    text = render_list(owners, "S")
    for req in must_ids():
        assert f"{req} (MUST): " in text
    assert "gpu_sharing (SHOULD): " in text
    assert "<- NONE" not in text
    assert "gang-plugin-off                tier S  runs here" in text
    assert "hpa-controller-off             tier R  needs tier R" in text
    assert "hpa-controller-off             tier R  runs here" in render_list(owners, "R")


def test_selftest_command_line() -> None:
    args = build_parser().parse_args(["selftest", "--requirement", "gang_scheduling", "--check", "test_x",
                                      "--report-dir", "d", "--no-baseline"])
    assert (args.requirement, args.check, args.report_dir, args.no_baseline, args.tier, args.list) == \
        (["gang_scheduling"], ["test_x"], "d", True, "S", False)


def test_apply_edits_sets_deletes_and_selects_list_items_by_field() -> None:
    doc = {"pools": [{"name": "a", "gpu": {"count": 2, "sharing": {"x": 1}}}, {"name": "b"}], "addons": ["k"]}
    out = apply_edits(doc, [Edit("pools[name=a].gpu.sharing"), Edit("addons", []),
                            Edit("controlPlane.extraArgs.kube-controller-manager.controllers", "*,-job-controller")])
    assert out == {"pools": [{"name": "a", "gpu": {"count": 2}}, {"name": "b"}], "addons": [],
                   "controlPlane": {"extraArgs": {"kube-controller-manager": {"controllers": "*,-job-controller"}}}}
    assert doc["pools"][0]["gpu"]["sharing"] == {"x": 1}, "the base document is left alone"
    with pytest.raises(ConfigError, match="0 items of 'pools' have name=zz"):
        apply_edits(doc, [Edit("pools[name=zz].gpu")])
    with pytest.raises(ConfigError, match="has no 'nope'"):
        apply_edits(doc, [Edit("nope", DELETE)])


# -- choosing and grading ---------------------------------------------------------------------------------------------


def test_selection_by_requirement_check_and_bad_ids(owners: list[st.Owner]) -> None:
    chosen = st.choose(owners, requirements=["gang_scheduling"])
    assert [r.mutation.id for r in chosen] == ["gang-plugin-off"] and len(chosen[0].owners) == 2
    one = st.choose(owners, checks=["test_two_competing_gangs_one_binds_whole_the_other_none"])
    assert [r.mutation.id for r in one] == ["gang-plugin-off"] and len(one[0].owners) == 1
    assert "gpu-sharing-left-out" not in {r.mutation.id for r in st.choose(owners, musts_only=True)}
    with pytest.raises(ConfigError, match="unknown requirement 'gang'"):
        st.choose(owners, requirements=["gang"])
    with pytest.raises(ConfigError, match="no mutation is registered for it"):
        st.choose(owners, requirements=["dra_support"])
    with pytest.raises(ConfigError, match="--check test_nothing"):
        st.choose(owners, checks=["test_nothing"])


def test_a_marker_naming_an_unknown_mutation_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.aiconform(requirement='gang_scheduling', mutations=('no-such-mutation',))\n"
        "def test_x():\n    pass\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path.name}/test_mine.py::test_x: its marker names mutation "
                                          "'no-such-mutation'"):  # the check id as `aiconform run` names it
        st.collect_owners(st.check_files(str(tmp_path)), workdir=tmp_path)


@pytest.mark.parametrize(("status", "verdict"), [("failed", st.Verdict.CAUGHT), ("passed", st.Verdict.MISSED),
                                                 ("skipped", st.Verdict.MISSED), ("error", st.Verdict.ERROR),
                                                 (None, st.Verdict.ERROR)])
def test_grading_of_one_check_on_a_mutated_platform(status: str | None, verdict: st.Verdict) -> None:
    g = st.grade_check("c", st.CheckOutcome(status, "why"), st.CheckOutcome("passed"))
    assert g.verdict == verdict
    if status == "failed":
        assert g.reason == "why", "a catch carries the check's own reason"


def test_a_check_that_fails_on_the_unmutated_platform_proves_nothing() -> None:
    g = st.grade_check("c", st.CheckOutcome("failed", "x"), st.CheckOutcome("failed", "broken anyway"))
    assert g.verdict == st.Verdict.ERROR and "unmutated platform" in g.reason and "broken anyway" in g.reason


def test_mutation_verdict_and_exit_code() -> None:
    caught = st.CheckGrade("a", st.Verdict.CAUGHT, "")
    missed = st.CheckGrade("b", st.Verdict.MISSED, "")
    error = st.CheckGrade("c", st.Verdict.ERROR, "")
    assert st.combine([caught, caught]) == st.Verdict.CAUGHT
    assert st.combine([caught, missed, error]) == st.Verdict.MISSED
    assert st.combine([caught, error]) == st.Verdict.ERROR
    assert st.combine([]) == st.Verdict.ERROR
    r = [st.MutationResult(MUTATIONS[0], [], verdict=st.Verdict.CAUGHT),
         st.MutationResult(MUTATIONS[1], [], verdict=st.Verdict.NOT_RUN)]
    assert st.exit_code(r) == 0
    r.append(st.MutationResult(MUTATIONS[2], [], verdict=st.Verdict.ERROR))
    assert st.exit_code(r) == st.EXIT_ERROR
    r.append(st.MutationResult(MUTATIONS[3], [], verdict=st.Verdict.MISSED))
    assert st.exit_code(r) == st.EXIT_MISSED


def test_power_table_report_has_one_row_per_requirement_mutation_and_check(tmp_path: Path) -> None:
    m = REGISTRY["gang-plugin-off"]
    owner = st.Owner("scenarios/test_gang.py::test_x", "test_x", "f", "gang_scheduling", "S", (m.id,))
    done = st.MutationResult(m, [owner], verdict=st.Verdict.CAUGHT,
                             checks=[st.CheckGrade(owner.id, st.Verdict.CAUGHT, "3 of 4 gang pods bound", "failed")],
                             report_dir=str(tmp_path / m.id / "run"))
    not_run = st.MutationResult(REGISTRY["hpa-controller-off"], [], why="needs tier R")
    settings = st.SelftestSettings(report_dir=tmp_path)
    from datetime import UTC, datetime

    write_report(tmp_path, [done, not_run], baselines={}, started=datetime.now(UTC), settings=settings)
    rows = power_rows([done, not_run])
    assert [(r["requirement"], r["mutation"], r["verdict"]) for r in rows] == [
        ("gang_scheduling", "gang-plugin-off", "caught"), ("pod_autoscaling", "hpa-controller-off", "not run")]
    md = (tmp_path / "selftest.md").read_text()
    assert "| gang_scheduling (MUST) | `gang-plugin-off`:" in md and "3 of 4 gang pods bound" in md
    html = (tmp_path / "report.html").read_text()
    assert 'href="gang-plugin-off/run/report.html"' in html and "needs tier R" in html


# -- the knob the gang mutations use ----------------------------------------------------------------------------------


def test_scheduler_disabled_plugins_reach_the_scheduler_configuration() -> None:
    p = parse_profile({"controlPlane": {"schedulerDisabledPlugins": {"permit": ["GangScheduling"]}}})
    assert p.control_plane.scheduler_disabled_plugins == {"permit": ("GangScheduling",)}
    s = comp.Settings(paths=comp.Paths(Path("/run/c1")),
                      ports=comp.Ports(etcd=1, etcd_peer=2, apiserver=3, controller_manager=4, scheduler=5, kwok=6),
                      control_plane=p.control_plane, kubernetes_version=pinned_kubernetes("default"))
    assert comp.scheduler_config(s)["profiles"] == [
        {"schedulerName": "default-scheduler", "plugins": {"permit": {"disabled": [{"name": "GangScheduling"}]}}}]
    assert "profiles" not in comp.scheduler_config(
        comp.Settings(paths=s.paths, ports=s.ports, control_plane=parse_profile({}).control_plane,
                      kubernetes_version=pinned_kubernetes("default")))


@pytest.mark.parametrize(("value", "message"), [
    ({"permits": ["GangScheduling"]}, "permits: not a kube-scheduler extension point"),
    ({"permit": []}, "permit: must be a non-empty list"),
    ({"permit": ["gang-scheduling"]}, r"permit\[0\]: not a plugin name"),
])
def test_scheduler_disabled_plugins_are_validated(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"controlPlane.schedulerDisabledPlugins.{message}"):
        parse_profile({"controlPlane": {"schedulerDisabledPlugins": value}})


def test_ctrl_c_is_passed_once_to_the_child_run_which_cleans_up_before_selftest_stops(tmp_path: Path) -> None:
    """A stand-in for the child ``aiconform run``: it tears down (writes a file) on SIGINT.  Ctrl-C in selftest
    reaches it once, and selftest waits for its teardown before stopping."""
    import subprocess
    import sys
    import time

    done = tmp_path / "torn-down"
    child_code = (
        "import pathlib, signal, sys, time\n"
        "def stop(*_):\n"
        f"    pathlib.Path({str(done)!r}).write_text(str(len(hits) + 1)); hits.append(1); sys.exit(130)\n"
        "hits = []\n"
        "signal.signal(signal.SIGINT, stop)\n"
        f"pathlib.Path({str(tmp_path / 'ready')!r}).touch()\n"
        "time.sleep(60)\n")

    class Interrupted(subprocess.Popen[bytes]):
        calls = 0

        def wait(self, timeout: float | None = None) -> int:
            Interrupted.calls += 1
            if Interrupted.calls == 1:  # the user's Ctrl-C, while selftest waits for the run
                deadline = time.monotonic() + 30
                while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                raise KeyboardInterrupt
            return super().wait(timeout)

    child = Interrupted([sys.executable, "-c", child_code], start_new_session=True)
    with pytest.raises(KeyboardInterrupt):
        st._wait(child)
    assert child.returncode == 130
    assert done.read_text() == "1", "the child got exactly one SIGINT and finished its teardown"
