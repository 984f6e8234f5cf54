"""The pytest seam without a cluster: the cluster-info file, grading (failed = the platform answered and was wrong;
error = the run broke), the way grades reach one report from pytest-xdist workers, the marker's ``exclusive``
selection, and the runner's sessions.

Inner pytest sessions run through ``pytester``; their checks raise what a real check would meet and never touch a
cluster (the stand-in handle below only answers the plugin's own health probe and sweep).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.bins import pinned_kubernetes
from harness.errors import ConfigError
from harness.runner import combined_exit, default_parallel, pytest_sessions
from harness.testing import ClusterInfo

K8S = pinned_kubernetes("default")  # the Kubernetes version harness/versions.toml pins
CHECKS = '''
import pytest
from harness.errors import (ClusterError, CommandError, ControllerInactive, KubeUnreachable, PlatformFault,
                            WaitFailed, WaitTimeout, WebhookNotCalled, WorkloadError, api_error_for)


def api(status):
    return api_error_for(status, "Reason", f"status {status}")


RAISES = {
    "assertion": lambda: AssertionError("3 GPUs bound on a node with 2"),
    "wait_timeout": lambda: WaitTimeout("timed out after 30s waiting for pod p to be bound"),
    "wait_failed": lambda: WaitFailed("while waiting for p: Unschedulable"),
    "forbidden": lambda: api(403),
    "not_found": lambda: api(404),
    "conflict": lambda: api(409),
    "invalid": lambda: api(422),
    "bad_request": lambda: api(400),
    "group_of_failures": lambda: ExceptionGroup("two bugs", [AssertionError("a"), WaitTimeout("b")]),
    "server_error": lambda: api(500),
    "unavailable": lambda: api(503),
    "unauthorized": lambda: api(401),
    "too_many_requests": lambda: api(429),
    "unreachable": lambda: KubeUnreachable("GET https://127.0.0.1:6443/api: Connection refused"),
    "read_timeout": lambda: KubeUnreachable("GET https://127.0.0.1:6443/api: timed out"),
    "command": lambda: CommandError(["kubectl", "get"], 1, "boom"),
    "check_bug": lambda: KeyError("allocatable"),
    "group_with_infra": lambda: ExceptionGroup("mixed", [AssertionError("a"), KubeUnreachable("b")]),
    "platform_fault": lambda: PlatformFault("custom.metrics.k8s.io", "never served queue_depth"),
    "hpa_controller_off": lambda: ControllerInactive("the HorizontalPodAutoscaler controller", "HPA has no status"),
    "own_workload_broke": lambda: WorkloadError("the model server never became Ready"),
    "own_install_broke": lambda: ClusterError("addon trainer: rollout failed"),
}


@pytest.mark.parametrize("kind", sorted(RAISES))
def test_raises(kind):
    raise RAISES[kind]()


def test_pytest_fail():
    pytest.fail("the scheduler bound the pod to a tainted node")


def test_passes():
    pass


def test_skips():
    pytest.skip("needs tier R; this cluster is tier S")


@pytest.fixture
def broken_setup():
    raise AssertionError("a fixture's assertion is not a platform verdict")


def test_setup_breaks(broken_setup):
    pass


@pytest.fixture
def broken_teardown():
    yield
    raise WaitTimeout("namespace never went away")


def test_teardown_breaks(broken_teardown):
    pass


@pytest.fixture
def webhooks_off():
    raise WebhookNotCalled("kube-apiserver admission webhooks", "webhook v of addon trainer is never called")


def test_setup_meets_a_platform_fault(webhooks_off):
    pass


@pytest.fixture
def own_setup_breaks():
    raise WorkloadError("the training image did not load")


def test_setup_meets_an_own_fault(own_setup_breaks):
    pass


@pytest.fixture
def platform_fault_in_teardown():
    yield
    raise PlatformFault("the namespace controller", "namespace never went away")


def test_teardown_meets_a_platform_fault(platform_fault_in_teardown):
    pass


def test_evidence_travels(evidence):
    evidence["node"] = "gpu-a-0"
    evidence["pods"] = ("a", "b")
    evidence.timing("time_to_schedule_s", 0.25)
'''

FAILED = {"assertion", "wait_timeout", "wait_failed", "forbidden", "not_found", "conflict", "invalid", "bad_request",
          "group_of_failures", "platform_fault", "hpa_controller_off"}
ERROR = {"server_error", "unavailable", "unauthorized", "too_many_requests", "unreachable", "read_timeout", "command",
         "check_bug", "group_with_infra", "own_workload_broke", "own_install_broke"}
EXPECTED = {
    **{f"test_checks.py::test_raises[{k}]": "failed" for k in FAILED},
    **{f"test_checks.py::test_raises[{k}]": "error" for k in ERROR},
    "test_checks.py::test_pytest_fail": "failed",
    "test_checks.py::test_passes": "passed",
    "test_checks.py::test_skips": "skipped",
    "test_checks.py::test_setup_breaks": "error",
    "test_checks.py::test_teardown_breaks": "error",
    "test_checks.py::test_setup_meets_a_platform_fault": "failed",  # the platform refused what the check needs
    "test_checks.py::test_setup_meets_an_own_fault": "error",
    "test_checks.py::test_teardown_meets_a_platform_fault": "error",  # after the verdict: tells nothing about it
    "test_checks.py::test_evidence_travels": "passed",
}

MARKED = '''
import pytest


@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling")
def test_shared_one(aiconform_cluster):
    pass


@pytest.mark.aiconform(requirement="aiconform.gpu_scheduling", exclusive=True)
def test_exclusive_fails():
    assert False, "pool not full"


@pytest.mark.aiconform(requirement="aiconform.preemption", destructive=True)
def test_destructive_is_exclusive():
    pass


@pytest.mark.aiconform(requirement="aiconform.quota", tier="R")
def test_shared_needs_tier_r():
    pass


def test_unmarked_is_shared():
    pass
'''

STAND_IN = '''
import pytest
from harness.testing import ClusterHandle, ClusterInfo


class NoCluster:
    """Answers only what the plugin itself asks (health probe, sweep); no check here asks the cluster anything."""

    def healthz(self, endpoint="/readyz"):
        return True

    def list(self, kind, **kw):
        return {"items": []}

    def close(self):
        pass


@pytest.fixture(scope="session")
def aiconform_cluster(request):
    return ClusterHandle(ClusterInfo.load(request.config.getoption("--aiconform-cluster-info")), NoCluster())
'''


def write_info(path: Path, **kw: Any) -> Path:
    info = ClusterInfo(kubeconfig=str(path.parent / "no-such-kubeconfig"), run_id="unit-run", provider="local",
                       profile="default", tier="S", kubernetes_version=K8S, **kw)
    return info.write(path)


def results(report: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((report / "results.json").read_text())
    return data


def statuses(report: Path) -> dict[str, str]:
    checks = results(report)["checks"]
    ids = [c["id"] for c in checks]
    assert len(ids) == len(set(ids)), f"a check was reported twice: {ids}"
    return {c["id"]: c["status"] for c in checks}


# -- the cluster-info file -------------------------------------------------------------------------------------------


def test_cluster_info_round_trips_through_json(tmp_path: Path) -> None:
    info = ClusterInfo(kubeconfig="/k/admin.yaml", run_id="r1", provider="local", profile="default", tier="R",
                       capabilities=frozenset({"networkpolicy", "simulated-nodes"}), kubernetes_version=K8S,
                       allow_destructive=True, fake="GPUs", component_pids={"kube-scheduler": 42})
    back = ClusterInfo.load(info.write(tmp_path / "cluster-info.json"))
    assert back == info
    assert json.loads((tmp_path / "cluster-info.json").read_text())["capabilities"] == ["networkpolicy", "simulated-nodes"]


def test_cluster_info_carries_each_facts_evidence(tmp_path: Path) -> None:
    evidence = {"kueue": {"present": True, "source": "detected", "evidence": "webhook answered"},
                "dra": {"present": False, "source": "detected", "evidence": "no DeviceClass"}}
    info = ClusterInfo(kubeconfig="/k", run_id="r1", capabilities=frozenset({"kueue"}), fact_evidence=evidence)
    back = ClusterInfo.load(info.write(tmp_path / "cluster-info.json"))
    assert back.fact_evidence == evidence
    with pytest.raises(ConfigError, match="fact_evidence must map facts to"):
        ClusterInfo.from_dict({"kubeconfig": "k", "run_id": "r", "fact_evidence": {"kueue": {"present": "yes"}}})


@pytest.mark.parametrize(("doc", "message"), [
    ({"run_id": "r"}, "kubeconfig must be a string"),
    ({"kubeconfig": "k", "run_id": "r", "tier": "X"}, "tier must be one of S, R, G"),
    ({"kubeconfig": "k", "run_id": "r", "tiers": "S"}, "unknown field 'tiers'"),
    ({"kubeconfig": "k", "run_id": "r", "capabilities": "networkpolicy"}, "capabilities must be a list"),
    ({"kubeconfig": "k", "run_id": "r", "schema": 99}, "schema 99 is not supported"),
    ({"kubeconfig": "", "run_id": "r"}, "kubeconfig must not be empty"),
])
def test_cluster_info_refuses_a_bad_file(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClusterInfo.from_json(json.dumps(doc))


def test_a_bad_cluster_info_file_is_one_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    (pytester.path / "info.json").write_text('{"kubeconfig": "k", "run_id": "r", "tier": "Q"}')
    res = pytester.runpytest(f"--aiconform-cluster-info={pytester.path / 'info.json'}")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*tier must be one of S, R, G, got 'Q'*"])
    res = pytester.runpytest(f"--aiconform-cluster-info={pytester.path / 'missing.json'}")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*cluster info */missing.json: cannot be read: No such file or directory*"])
    res = pytester.runpytest(f"--aiconform-cluster-info={pytester.path / 'info.json'}", "--aiconform-kubeconfig=kc")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*pass --aiconform-cluster-info or --aiconform-kubeconfig, not both*"])


# -- grading ---------------------------------------------------------------------------------------------------------


def test_grading_failed_only_when_the_platform_answered_wrong(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks=CHECKS)
    info = write_info(pytester.path / "cluster-info.json")
    report = pytester.path / "report"
    res = pytester.runpytest(f"--aiconform-cluster-info={info}", f"--aiconform-report-dir={report}",
                             "--hypothesis-seed=1234")
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    assert statuses(report) == EXPECTED
    data = results(report)
    assert data["run"]["seed"] == "1234" and data["run"]["run_id"] == "unit-run" and data["run"]["tier"] == "S"
    by_id = {c["id"]: c for c in data["checks"]}
    assert by_id["test_checks.py::test_raises[server_error]"]["reason"].startswith("ServerError: 500")
    assert by_id["test_checks.py::test_raises[forbidden]"]["reason"].startswith("Forbidden: 403")
    assert by_id["test_checks.py::test_skips"]["reason"] == "needs tier R; this cluster is tier S"
    assert by_id["test_checks.py::test_raises[hpa_controller_off]"]["reason"] == (
        "ControllerInactive: the HorizontalPodAutoscaler controller: HPA has no status")  # the reason names the part
    assert by_id["test_checks.py::test_setup_meets_a_platform_fault"]["reason"].startswith(
        "WebhookNotCalled: kube-apiserver admission webhooks: ")
    ev = by_id["test_checks.py::test_evidence_travels"]
    assert ev["evidence"] == {"node": "gpu-a-0", "pods": ["a", "b"]} and ev["timings"] == {"time_to_schedule_s": 0.25}


def test_a_failure_while_a_component_is_dead_is_an_error(pytester: pytest.Pytester) -> None:
    """A wait that timed out because the scheduler died is no verdict of the platform: error, naming the dead
    component; the same failure with every component alive stays failed."""
    pytester.makepyfile(test_checks='''
from harness.errors import WaitTimeout

def test_scheduler_never_binds():
    raise WaitTimeout("timed out after 30s waiting for pod p to be bound")
''')
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pids, status in (({"kube-scheduler": dead.pid}, "error"), ({"kube-scheduler": pytester_pid()}, "failed")):
        info = write_info(pytester.path / "cluster-info.json", component_pids=pids)
        report = pytester.path / f"report-{status}"
        pytester.runpytest(f"--aiconform-cluster-info={info}", f"--aiconform-report-dir={report}")
        check = results(report)["checks"][0]
        assert check["status"] == status, check
        if status == "error":
            assert f"kube-scheduler (pid {dead.pid}) has exited" in check["reason"]
            assert "WaitTimeout: timed out after 30s" in check["reason"]


def pytester_pid() -> int:
    import os

    return os.getpid()


def test_xdist_workers_report_every_check_once_with_the_same_grades(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks=CHECKS, test_dies="def test_worker_dies():\n    import os\n    os._exit(3)\n")
    info = write_info(pytester.path / "cluster-info.json")
    report = pytester.path / "report"
    res = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", f"--aiconform-cluster-info={info}",
                                        f"--aiconform-report-dir={report}", "--hypothesis-seed=77")
    assert res.ret == pytest.ExitCode.TESTS_FAILED, res.stdout.str()[-2000:]
    assert statuses(report) == {**EXPECTED, "test_dies.py::test_worker_dies": "error"}
    data = results(report)
    assert data["run"]["seed"] == "77"
    died = {c["id"]: c for c in data["checks"]}["test_dies.py::test_worker_dies"]
    assert died["reason"].startswith("the pytest worker died while running it: worker 'gw"), died
    ev = {c["id"]: c for c in data["checks"]}["test_checks.py::test_evidence_travels"]
    assert ev["evidence"]["node"] == "gpu-a-0"


# -- the marker and the runner's two sessions ------------------------------------------------------------------------


def selected(pytester: pytest.Pytester, select: str) -> list[str]:
    res = pytester.runpytest("--collect-only", "-q", f"--aiconform-select={select}")
    return sorted(line.split("::")[1] for line in res.outlines if "::" in line)


def test_select_splits_exclusive_from_shared_checks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked=MARKED)
    assert selected(pytester, "exclusive") == ["test_destructive_is_exclusive", "test_exclusive_fails"]
    assert selected(pytester, "shared") == ["test_shared_needs_tier_r", "test_shared_one", "test_unmarked_is_shared"]
    assert len(selected(pytester, "all")) == 5


def test_a_bad_marker_stops_the_run_naming_the_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad='''
import pytest

@pytest.mark.aiconform(requirement="x", exclusiv=True)
def test_typo():
    pass
''')
    res = pytester.runpytest()
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*aiconform marker of test_bad.py::test_typo: unknown field 'exclusiv'*"])


def test_two_sessions_merge_into_the_report_of_one_serial_session(pytester: pytest.Pytester) -> None:
    """The runner's --parallel path (exclusive checks alone, then the rest under xdist, one report) grades exactly
    as one serial session does."""
    pytester.makepyfile(test_marked=MARKED)
    pytester.makeconftest(STAND_IN)
    info = write_info(pytester.path / "cluster-info.json")
    common = ["-p", "no:cacheprovider", f"--aiconform-cluster-info={info}", "--hypothesis-seed=5"]
    serial = pytester.path / "serial"
    pytester.runpytest_subprocess(*common, f"--aiconform-report-dir={serial}")
    split = pytester.path / "split"
    first = pytester.runpytest_subprocess(*common, f"--aiconform-report-dir={split}", "--aiconform-select=exclusive")
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    assert set(statuses(split)) == {"test_marked.py::test_exclusive_fails", "test_marked.py::test_destructive_is_exclusive"}
    second = pytester.runpytest_subprocess(*common, f"--aiconform-report-dir={split}", "--aiconform-select=shared",
                                           f"--aiconform-results-from={split / 'results.json'}", "-n", "2")
    assert second.ret == pytest.ExitCode.OK, second.stdout.str()[-2000:]
    assert statuses(split) == statuses(serial) == {
        "test_marked.py::test_shared_one": "passed",
        "test_marked.py::test_exclusive_fails": "failed",
        "test_marked.py::test_destructive_is_exclusive": "passed",
        "test_marked.py::test_shared_needs_tier_r": "skipped",
        "test_marked.py::test_unmarked_is_shared": "passed",
    }
    assert results(split)["run"]["seed"] == results(serial)["run"]["seed"] == "5"


def test_results_of_another_run_are_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    other = pytester.path / "other"
    pytester.runpytest(f"--aiconform-cluster-info={write_info(pytester.path / 'a.json')}",
                       f"--aiconform-report-dir={other}")
    info = ClusterInfo(kubeconfig="k", run_id="another-run", tier="S").write(pytester.path / "b.json")
    res = pytester.runpytest(f"--aiconform-cluster-info={info}", f"--aiconform-results-from={other}")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*is of run unit-run, not another-run*"])


def test_runner_runs_one_session_serially_and_two_in_parallel(tmp_path: Path) -> None:
    files = [Path("scenarios/test_smoke.py")]
    one = pytest_sessions(files, report_dir=tmp_path, cluster_info=tmp_path / "ci.json", parallel=1, seed=3)
    assert len(one) == 1
    argv = one[0][1]
    assert f"--aiconform-cluster-info={tmp_path / 'ci.json'}" in argv and "--hypothesis-seed=3" in argv
    assert "-n" not in argv and not any(a.startswith("--aiconform-select") for a in argv)
    assert not any(a.startswith(("--aiconform-run-id", "--aiconform-tier", "--aiconform-provider")) for a in argv)
    two = pytest_sessions(files, report_dir=tmp_path, cluster_info=tmp_path / "ci.json", parallel=3, seed=3, keyword="q")
    (_, exclusive), (_, shared) = two
    assert "--aiconform-select=exclusive" in exclusive and "-n" not in exclusive
    assert "--aiconform-select=shared" in shared and shared[shared.index("-n") + 1] == "3"
    assert f"--aiconform-results-from={tmp_path / 'results.json'}" in shared
    assert exclusive[exclusive.index("-k") + 1] == "q" == shared[shared.index("-k") + 1]
    assert not any(a.startswith("--aiconform-product") for a in exclusive + shared)
    with_product = pytest_sessions(files, report_dir=tmp_path, cluster_info=tmp_path / "ci.json", parallel=3, seed=3,
                                   product=tmp_path / "p.yaml")
    assert all(f"--aiconform-product={tmp_path / 'p.yaml'}" in argv for _, argv in with_product)
    assert default_parallel(local_cluster=False) >= default_parallel(local_cluster=True) >= 1


@pytest.mark.parametrize(("codes", "rc"), [([0, 0], 0), ([1, 0], 1), ([0, 1], 1), ([5, 0], 0), ([0, 5], 0),
                                           ([5, 5], 5), ([1, 3], 3), ([2], 2), ([5, 1], 1)])
def test_the_sessions_exit_code(codes: list[int], rc: int) -> None:
    assert combined_exit(codes) == rc


def test_parallel_below_one_is_one_line(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--parallel", "0"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == "aiconform: --parallel: must be at least 1, got 0"
    assert not (tmp_path / "reports").exists()


def test_the_run_writes_the_cncf_submission_for_the_product_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks="def test_unmarked():\n    pass\n")
    info = write_info(pytester.path / "cluster-info.json")
    report = pytester.path / "report"
    res = pytester.runpytest(f"--aiconform-cluster-info={info}", f"--aiconform-report-dir={report}")
    res.stdout.fnmatch_lines(["aiconform: CNCF submission cncf/v1.37/product/PRODUCT.yaml is incomplete: empty "
                              "metadata fields: platformName, *"])
    assert (report / "cncf/v1.37/product/gang_scheduling.md").read_text().startswith(
        "# gang_scheduling (MUST): not shown by this run\n")
    product = pytester.path / "product.yaml"
    product.write_text((Path(__file__).resolve().parents[2] / "examples" / "product.yaml").read_text())
    res = pytester.runpytest(f"--aiconform-cluster-info={info}", f"--aiconform-report-dir={report}",
                             f"--aiconform-product={product}")
    assert "incomplete" not in res.stdout.str()
    assert sorted(p.name for p in (report / "cncf/v1.37").iterdir()) == ["example-ai-platform"]
    product.write_text("vendor: x\n")
    res = pytester.runpytest(f"--aiconform-cluster-info={info}", f"--aiconform-report-dir={report}",
                             f"--aiconform-product={product}")
    assert res.ret == pytest.ExitCode.USAGE_ERROR


def test_a_claimed_requirement_without_its_capability_is_failed_not_skipped(pytester: pytest.Pytester) -> None:
    """A check of a requirement the platform claims (``--claim``), on a cluster that lacks a capability it needs, is
    the platform's fault (CNCF Not Implemented), with the capability and its evidence named; unclaimed, it skips;
    a tier the cluster does not reach skips either way."""
    pytester.makepyfile(test_checks='''
import pytest

@pytest.mark.aiconform(requirement="ai_service_metrics", capabilities=("prometheus",))
def test_claimed():
    pass

@pytest.mark.aiconform(requirement="pod_autoscaling", capabilities=("custom-metrics",))
def test_unclaimed():
    pass

@pytest.mark.aiconform(requirement="ai_service_metrics", tier="R", capabilities=("prometheus",))
def test_claimed_but_above_the_tier():
    pass
''')
    pytester.makeconftest(STAND_IN)
    evidence = {"prometheus": {"present": False, "source": "provider", "evidence": "addon prometheus not installed"}}
    info = write_info(pytester.path / "cluster-info.json", claims=frozenset({"ai_service_metrics"}),
                      fact_evidence=evidence)
    report = pytester.path / "report"
    res = pytester.runpytest(f"--aiconform-cluster-info={info}", f"--aiconform-report-dir={report}")
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    by_id = {c["id"]: c for c in results(report)["checks"]}
    claimed = by_id["test_checks.py::test_claimed"]
    assert claimed["status"] == "failed"
    assert claimed["reason"] == ("PlatformFault: capability prometheus: the platform claims ai_service_metrics "
                                 "(--claim) but lacks it (addon prometheus not installed)")
    assert by_id["test_checks.py::test_unclaimed"]["status"] == "skipped"
    assert by_id["test_checks.py::test_claimed_but_above_the_tier"]["status"] == "skipped"
    assert ClusterInfo.load(info).claims == frozenset({"ai_service_metrics"})
