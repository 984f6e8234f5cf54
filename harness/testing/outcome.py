"""Outcome: grading each check (passed / failed / skipped / error), getting the grade to the one process that writes
the report, the report itself, and the end-of-run sweep.

Grading follows the one rule of whose fault it is, written down in ``harness.errors``.  A check ``failed`` when the
platform answered and was wrong or lacks what is asked: a PlatformFault (an API not served, a controller that never
acts, a webhook never called, a Gateway never Programmed, a metric never served: in the check or in its fixture's
setup), a failed assertion, a watch that saw the wrong verdict (WaitFailed) or none before its deadline
(WaitTimeout: e.g. the scheduler never bound the pod), an API answer the check did not expect (400, 403, 404, 409,
422), or ``pytest.fail``.  The run broke, so the check is ``error``, when the API itself did not answer properly
(KubeUnreachable: connection refused, TLS, an HTTP read timeout; a 5xx; a 429; a 401 to the harness's own
credentials), a command failed, aiconform's own install step failed, the check has a bug (any other exception), a
fixture's setup broke other than by a PlatformFault, its teardown broke, or a component of the cluster died while it
ran (a local component's process has exited, or the apiserver stopped answering /readyz): a verdict taken while the
cluster was broken is not the platform's.

Transport.  The grade is made where the check ran (a pytest-xdist worker or the only process), as a
:class:`CheckRecord` on the teardown report's ``user_properties``; the process that owns the report (the xdist
controller, or the only process) reads it in ``pytest_runtest_logreport``, so every check is seen once whichever
process ran it.  With ``--aiconform-results-from`` the report starts from an earlier session of the same run (the
runner's exclusive phase), so both phases end in one report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException as OfficialApiException

from harness import __version__
from harness.errors import (
    AiconformError,
    ApiError,
    ConfigError,
    Gone,
    KubeError,
    PlatformFault,
    ServerError,
    TooManyRequests,
    Unauthorized,
    WaitFailed,
    WaitTimeout,
)
from harness.kube import KubeClient, KubeConfig
from harness.proc import pid_alive
from harness.report import ClusterFact, ReportError, ResultsCollector, RunResults, load_results
from harness.report.submission import Product, load_product
from harness.testing.cluster import ClusterInfo, session_handle, session_info
from harness.testing.evidence import evidence_of
from harness.testing.requirements import spec_of
from harness.testing.tenants import sweep_run

RECORD_PROPERTY = "aiconform"
"""Name of the user property that carries a check's :class:`CheckRecord` (JSON) to the report."""
_INFRA_API_ERRORS = (ServerError, Unauthorized, TooManyRequests, Gone)
_INFRA_API_STATUSES = frozenset(e.status for e in (Unauthorized, TooManyRequests, Gone))
_PHASES = pytest.StashKey[list["PhaseOutcome"]]()


# -- grading --------------------------------------------------------------------------------------------------------


def is_platform_failure(exc: BaseException | None) -> bool:
    """True when ``exc`` is the platform's verdict (see the module docstring); False when the run broke."""
    if exc is None:
        return False
    if isinstance(exc, BaseExceptionGroup):  # Hypothesis reports several distinct failures as a group
        return bool(exc.exceptions) and all(is_platform_failure(e) for e in exc.exceptions)
    if isinstance(exc, PlatformFault):
        return True
    if isinstance(exc, ApiError):
        return not isinstance(exc, _INFRA_API_ERRORS) and 400 <= exc.status < 500
    if isinstance(exc, OfficialApiException):  # the official client's answers (harness.testing.clients), same rule
        status = int(exc.status or 0)
        return 400 <= status < 500 and status not in _INFRA_API_STATUSES
    return isinstance(exc, AssertionError | WaitTimeout | WaitFailed | pytest.fail.Exception)


def broken_components(info: ClusterInfo | None, client: KubeClient | None) -> list[str]:
    """What of the cluster is broken now: local component processes that exited, an apiserver that no longer
    answers /readyz.  Empty when nothing is known to be broken."""
    problems = [f"{name} (pid {pid}) has exited"
                for name, pid in sorted((info.component_pids if info else {}).items()) if not pid_alive(pid)]
    if client is not None and not client.healthz("/readyz"):
        problems.append("the apiserver no longer answers /readyz")
    return problems


@dataclass(frozen=True)
class PhaseOutcome:
    when: str
    status: str
    reason: str
    duration_s: float


def grade_phase(config: pytest.Config, rep: pytest.TestReport, excinfo: pytest.ExceptionInfo[BaseException] | None) -> PhaseOutcome:
    if rep.passed:
        return PhaseOutcome(rep.when, "passed", "", rep.duration)
    if rep.skipped:
        return PhaseOutcome(rep.when, "skipped", _skip_reason(rep), rep.duration)
    exc = excinfo.value if excinfo is not None else None
    reason = failure_reason(exc, rep)
    judged = rep.when == "call" or (rep.when == "setup" and isinstance(exc, PlatformFault))
    if not judged or not is_platform_failure(exc):
        return PhaseOutcome(rep.when, "error", reason, rep.duration)
    handle = session_handle(config)
    problems = broken_components(handle.info if handle else session_info(config), handle.client if handle else None)
    if problems:
        return PhaseOutcome(rep.when, "error", f"the cluster broke during the check ({'; '.join(problems)}); "
                                               f"the check saw {reason}"[:1000], rep.duration)
    return PhaseOutcome(rep.when, "failed", reason, rep.duration)


def combine(phases: list[PhaseOutcome]) -> tuple[str, str, float]:
    """One status for setup + call + teardown: the first skip or failure decides; a broken teardown after a
    passed call is an error."""
    status, reason = "passed", ""
    for p in phases:
        if p.status == "skipped" and status == "passed":
            status, reason = "skipped", p.reason
        elif p.status in ("failed", "error") and status in ("passed", "skipped"):
            status, reason = p.status, p.reason
    return status, reason, max(0.0, sum(p.duration_s for p in phases))


def _skip_reason(rep: pytest.TestReport) -> str:
    lr = rep.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr or "")


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def failure_reason(exc: BaseException | None, rep: pytest.TestReport) -> str:
    if isinstance(exc, AiconformError):  # the harness's own errors are written to be read whole
        return f"{type(exc).__name__}: {exc}"
    if exc is not None:
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
    return _last_line(rep.longreprtext)[:500] or "failed"


# -- the record a check's process sends to the report's process ------------------------------------------------------


@dataclass(frozen=True)
class CheckRecord:
    """One graded check, as it travels from the process that ran it to the one that writes the report."""

    id: str
    name: str
    suite: str
    status: str
    requirement: str | None
    tier: str
    reason: str
    duration_s: float
    evidence: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cluster: dict[str, Any] | None = None
    """The resolved cluster info of the process that ran it, once a check there reached the cluster."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> CheckRecord:
        return cls(**json.loads(text))


def _name_and_suite(nodeid: str) -> tuple[str, str]:
    """``scenarios/test_smoke.py::test_gpu_fit[2]`` → ("gpu fit[2]", "smoke")."""
    module = nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")
    return nodeid.rsplit("::", 1)[-1].removeprefix("test_").replace("_", " "), module


def record_of(item: pytest.Item, phases: list[PhaseOutcome]) -> CheckRecord:
    spec = spec_of(item)
    status, reason, duration = combine(phases)
    ev = evidence_of(item)
    handle = session_handle(item.config)
    name, suite = _name_and_suite(item.nodeid)
    return CheckRecord(
        id=item.nodeid,
        name=name,
        suite=suite,
        status=status,
        requirement=spec.requirement if spec else None,
        tier=spec.tier if spec else "S",
        reason=reason,
        duration_s=duration,
        evidence=dict(ev.data) if ev else {},
        timings=dict(ev.timings) if ev else {},
        cluster=handle.info.to_dict() if handle else None,
    )


def _records_wanted(config: pytest.Config) -> bool:
    return bool(config.getoption("--aiconform-report-dir", None)) or hasattr(config, "workerinput")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep: pytest.TestReport = yield
    if not _records_wanted(item.config):
        return rep
    phases = item.stash.setdefault(_PHASES, [])
    phases.append(grade_phase(item.config, rep, call.excinfo))
    if rep.when == "teardown":
        rep.user_properties.append((RECORD_PROPERTY, record_of(item, phases).to_json()))
    return rep


# -- the report's process --------------------------------------------------------------------------------------------


class RunReport:
    """Registered in the process that owns the run (never in an xdist worker): gathers every check's record,
    writes the report at the end (with ``--aiconform-report-dir``) and sweeps what the run left on the cluster."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.records: dict[str, CheckRecord] = {}
        self.cluster: ClusterInfo | None = None
        self.started_at = datetime.now(UTC)
        out = config.getoption("--aiconform-report-dir", None)
        self.out = Path(out) if out else None
        self.prior = _load_prior(config)
        self.product = _load_product(config)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in ("setup", "call", "teardown") and report.failed and report.nodeid not in self.records:
            # pytest-xdist's report of a worker that died while running the check: no record comes from it
            name, suite = _name_and_suite(report.nodeid)
            self.records[report.nodeid] = CheckRecord(
                id=report.nodeid, name=name, suite=suite, status="error", requirement=None, tier="S",
                reason=f"the pytest worker died while running it: {_last_line(report.longreprtext)}"[:500],
                duration_s=0.0)
            return
        if report.when != "teardown":
            return
        for name, value in report.user_properties:
            if name == RECORD_PROPERTY:
                rec = CheckRecord.from_json(str(value))
                self.records[rec.id] = rec
                if self.cluster is None and rec.cluster is not None:
                    self.cluster = ClusterInfo.from_dict(rec.cluster, "cluster info of a check")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        handle = session_handle(self.config)
        if self.out is not None:
            self._write(handle.info if handle else self.cluster)
        if handle is not None:
            sweep_run(handle.client, handle.run_id)
            handle.close()
        elif self.cluster is not None:
            try:
                with KubeClient(KubeConfig.from_file(self.cluster.kubeconfig)) as client:
                    sweep_run(client, self.cluster.run_id)
            except KubeError:
                pass

    def _write(self, cluster: ClusterInfo | None) -> None:
        assert self.out is not None
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        col = self._collector(cluster)
        if col is None:
            if tr is not None:
                tr.write_line("aiconform: no report: no check reached the cluster and its tier is unknown")
            return
        if self.prior is not None:
            for c in self.prior.checks:
                col.add_check(c.id, name=c.name, suite=c.suite, status=c.status, requirement=c.requirement,
                              tier=c.tier, reason=c.reason, duration_s=c.duration_s, evidence=dict(c.evidence),
                              timings=dict(c.timings))
        for r in self.records.values():
            col.add_check(r.id, name=r.name, suite=r.suite, status=r.status, requirement=r.requirement, tier=r.tier,
                          reason=r.reason, duration_s=r.duration_s, evidence=r.evidence, timings=r.timings,
                          replace=True)

        def notice(line: str) -> None:
            if tr is not None:
                tr.write_line(f"aiconform: {line}")

        paths = col.write_all(self.out, product=self.product, notice=notice)
        if tr is not None:
            tr.write_line(f"aiconform report: {paths.get('report.html', self.out)}")

    def _collector(self, cluster: ClusterInfo | None) -> ResultsCollector | None:
        seed = self.config.getoption("hypothesis_seed", None) if hasattr(self.config.option, "hypothesis_seed") else None
        started = self.started_at
        if self.prior is not None:
            started = self.prior.info.started_at
            seed = seed if seed is not None else self.prior.info.seed
        info = cluster or session_info(self.config)
        if info is not None and info.tier is not None:
            facts = tuple(ClusterFact(name, bool(e["present"]), str(e["source"]), str(e["evidence"]))
                          for name, e in info.fact_evidence.items())
            return ResultsCollector(run_id=info.run_id, harness_version=__version__,
                                    kubernetes_version=info.kubernetes_version, provider=info.provider,
                                    tier=info.tier, profile=info.profile, seed=seed, started_at=started, facts=facts)
        if self.prior is not None:
            p = self.prior.info
            return ResultsCollector(run_id=p.run_id, harness_version=__version__,
                                    kubernetes_version=p.kubernetes_version, provider=p.provider, tier=p.tier,
                                    profile=p.profile, seed=seed, started_at=started, facts=p.facts)
        return None


def _load_prior(config: pytest.Config) -> RunResults | None:
    path = config.getoption("--aiconform-results-from", None)
    if not path:
        return None
    try:
        prior = load_results(path)
    except ReportError as err:
        raise pytest.UsageError(f"--aiconform-results-from: {err}") from None
    info = session_info(config)
    if info is not None and prior.info.run_id != info.run_id:
        raise pytest.UsageError(f"--aiconform-results-from: {path} is of run {prior.info.run_id}, not {info.run_id}")
    return prior


def _load_product(config: pytest.Config) -> Product | None:
    path = config.getoption("--aiconform-product", None)
    if not path:
        return None
    try:
        return load_product(path)
    except ConfigError as err:
        raise pytest.UsageError(str(err)) from None


def configure(config: pytest.Config) -> None:
    """Register the report's process plugin (not in xdist workers)."""
    if hasattr(config, "workerinput"):
        return
    config.pluginmanager.register(RunReport(config), "aiconform-run-report")

