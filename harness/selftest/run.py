"""``aiconform selftest``: for each chosen mutation, bring up the mutated platform, run only its owning checks, grade.

Which checks own which mutation comes from the checks' own markers (collected by pytest with
:mod:`harness.selftest.collect`, nothing runs).  Each platform (the unmutated baseline of a base profile, then each
mutation of it) is one ``aiconform run`` of the mutated profile, as a child process: the same bring-up, pytest seam,
grading and teardown as a user's run, on a fresh local cluster with a unique name under a state directory of this
selftest's own (so it runs beside other clusters).  Ctrl-C is passed to the running child, which tears its cluster
down as ``aiconform run`` does, before this process stops.

Grading of one owning check on one mutation, from the verdict ``aiconform run`` wrote to results.json:
``failed`` → caught (with the check's reason); ``passed`` or ``skipped`` → missed (a blind spot: the broken platform
was not failed); ``error``, no verdict at all, or a check that does not pass on the unmutated baseline → error (a
grading defect, not a verdict on the platform).  Owns the orchestration and grading; the report is
:mod:`harness.selftest.report`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from harness.errors import ConfigError
from harness.report import ReportError, load_results
from harness.report.requirements import is_known
from harness.runner import SCENARIOS, known_suites, prepare_report_dir, suite_rootdir, user_suite_files
from harness.selftest.model import (
    CheckGrade,
    CheckOutcome,
    MutationResult,
    Owner,
    SelftestSettings,
    Verdict,
    owners_of,
    why_not_here,
)
from harness.selftest.mutations import MUTATIONS, REGISTRY
from harness.selftest.report import must_ids, render_list, write_report

EXIT_MISSED = 1
EXIT_ERROR = 3
TIERS_HERE = ("S", "R")
CHILD_STOP_S = 300.0
"""How long a child ``aiconform run`` gets to tear its cluster down after Ctrl-C."""
# -- finding the owning checks --------------------------------------------------------------------------------------


def check_files(suite: str | None) -> list[Path]:
    """The check files to look in: a user's folder or file of checks, or every shipped suite."""
    if suite:
        return user_suite_files(Path(suite))
    return [SCENARIOS / f"test_{n}.py" for n in known_suites()]


def collect_owners(files: Sequence[Path], *, workdir: Path) -> list[Owner]:
    """Collect (never run) the checks in ``files`` and return those whose marker names mutations; ConfigError when
    collection fails or a marker names a mutation the registry does not have."""
    out = workdir / "collected.json"
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
            "-p", "harness.selftest.collect", f"--aiconform-selftest-collect={out}",
            f"--rootdir={suite_rootdir(list(files))}", *map(str, files)]  # check ids as `aiconform run` names them
    res = subprocess.run(argv, cwd=SCENARIOS.parent, capture_output=True, text=True, check=False)
    if res.returncode not in (0, 5) or not out.exists():
        tail = (res.stdout + res.stderr).strip().splitlines()[-1:] or [f"exit status {res.returncode}"]
        raise ConfigError(f"cannot collect the checks in {', '.join(map(str, files))}: {tail[0]}")
    owners = [Owner(id=c["id"], name=c["name"], file=c["file"], requirement=c["requirement"], tier=c["tier"],
                    mutations=tuple(c["mutations"])) for c in json.loads(out.read_text()) if c["mutations"]]
    for o in owners:
        unknown = [m for m in o.mutations if m not in REGISTRY]
        if unknown:
            raise ConfigError(f"{o.id}: its marker names mutation {unknown[0]!r}, which harness/selftest/mutations.py "
                              f"does not define (known: {', '.join(sorted(REGISTRY))})")
    return owners


def choose(owners: Sequence[Owner], *, requirements: Sequence[str] = (), checks: Sequence[str] = (),
           mutation_ids: Sequence[str] = (), musts_only: bool = False) -> list[MutationResult]:
    """The mutations selected by ``--requirement``, ``--check``, ``--mutation`` and ``--must`` (all when none is
    given), each with its owning checks (only the named ones with ``--check``).  ConfigError for an id that selects
    nothing."""

    musts = set(must_ids())
    validate_ids(requirements, mutation_ids)
    for c in checks:
        if not any(_is_check(o, c) for o in owners):
            raise ConfigError(f"--check {c}: no check of that id or name names a mutation in its marker")
    chosen = []
    for m in MUTATIONS:
        if requirements and not set(requirements) & set(m.requirements):
            continue
        if mutation_ids and m.id not in mutation_ids:
            continue
        if musts_only and not musts & set(m.requirements):
            continue
        mine = owners_of(m, owners)
        if checks:
            mine = [o for o in mine if any(_is_check(o, c) for c in checks)]
            if not mine:
                continue
        chosen.append(MutationResult(m, mine))
    if not chosen:
        raise ConfigError("the selection (--requirement/--check/--mutation) leaves no mutation to run")
    return chosen


def validate_ids(requirements: Sequence[str], mutation_ids: Sequence[str]) -> None:
    """ConfigError for a ``--requirement`` or ``--mutation`` the registry cannot serve (before anything is collected)."""
    for r in requirements:
        if not is_known(r):
            raise ConfigError(f"--requirement: unknown requirement {r!r}")
        if not any(r in m.requirements for m in MUTATIONS):
            raise ConfigError(f"--requirement {r}: no mutation is registered for it")
    for m in mutation_ids:
        if m not in REGISTRY:
            raise ConfigError(f"--mutation: unknown mutation {m!r}; known: {', '.join(sorted(REGISTRY))}")


def _is_check(owner: Owner, wanted: str) -> bool:
    return wanted in (owner.id, owner.name)


# -- grading --------------------------------------------------------------------------------------------------------


def grade_check(check: str, outcome: CheckOutcome, baseline: CheckOutcome | None) -> CheckGrade:
    """One owning check on one mutated platform (``baseline``: its verdict on the unmutated one, if that ran)."""
    if baseline is not None and baseline.status != "passed":
        said = f"ended {baseline.status}" if baseline.status else "got no verdict"
        return CheckGrade(check, Verdict.ERROR, f"on the unmutated platform the check {said} "
                          f"({baseline.reason or 'no reason'}): a catch would prove nothing", outcome.status)
    if outcome.status == "failed":
        return CheckGrade(check, Verdict.CAUGHT, outcome.reason, outcome.status)
    if outcome.status == "passed":
        return CheckGrade(check, Verdict.MISSED, "passed on the mutated platform", outcome.status)
    if outcome.status == "skipped":
        return CheckGrade(check, Verdict.MISSED, f"skipped on the mutated platform ({outcome.reason})",
                          outcome.status)
    if outcome.status == "error":
        return CheckGrade(check, Verdict.ERROR, outcome.reason, outcome.status)
    return CheckGrade(check, Verdict.ERROR, outcome.reason or "the check got no verdict (it did not run)", None)


def combine(grades: Sequence[CheckGrade]) -> Verdict:
    """A mutation's verdict from its owning checks': missed when any check missed it (the blind spot is the news),
    else error when any check errored, else caught (every owning check failed the mutated platform)."""
    verdicts = {g.verdict for g in grades}
    if not grades:
        return Verdict.ERROR
    if Verdict.MISSED in verdicts:
        return Verdict.MISSED
    if Verdict.ERROR in verdicts:
        return Verdict.ERROR
    return Verdict.CAUGHT


def exit_code(results: Sequence[MutationResult]) -> int:
    verdicts = {r.verdict for r in results}
    if Verdict.MISSED in verdicts:
        return EXIT_MISSED
    if Verdict.ERROR in verdicts:
        return EXIT_ERROR
    return 0


# -- running one platform -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformRun:
    """One ``aiconform run`` of one profile document with some checks."""

    rc: int
    outcomes: dict[str, CheckOutcome]
    log: Path
    report_dir: Path
    duration_s: float

    def outcome(self, check: str) -> CheckOutcome:
        found = self.outcomes.get(check)
        if found is not None:
            return found
        return CheckOutcome(None, f"no verdict: aiconform run exited {self.rc} before the check ran "
                                  f"({_last_line(self.log)}; log: {self.log})")


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"


def run_platform(doc: dict[str, object], checks: Sequence[Owner], out_dir: Path, *, state_dir: Path,
                 label: str, progress: Callable[[str], None]) -> PlatformRun:
    """Bring up the platform ``doc`` describes as a fresh local cluster, run ``checks`` on it through ``aiconform
    run`` (child process, own cluster name under ``state_dir``), tear it down; the checks' verdicts."""
    out_dir = prepare_report_dir(out_dir)
    profile = out_dir / "profile.yaml"
    profile.write_text(yaml.safe_dump(doc, sort_keys=False))
    name = f"st-{label[:28].strip('-')}-{secrets.token_hex(2)}"
    files = list(dict.fromkeys(o.file for o in checks))
    names = sorted({o.name for o in checks})
    argv = [sys.executable, "-m", "harness.cli", "run", "--profile", str(profile), "--name", name,
            "--report-dir", str(out_dir / "run"), "--parallel", "1", "-k", " or ".join(names)]
    for f in files:
        argv += ["--suite", f]
    claimed = sorted({o.requirement for o in checks if o.requirement})
    if claimed:  # the platform claims what its mutation breaks: a capability it lacks is then failed, not skipped
        argv += ["--claim", ",".join(claimed)]
    env = {**os.environ, "AICONFORM_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"}
    log = out_dir / "run.log"
    progress(f"{label}: bringing up {name} and running {', '.join(names)} (log: {log})")
    t0 = time.monotonic()
    with log.open("w") as sink:
        child = subprocess.Popen(argv, cwd=SCENARIOS.parent, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # Ctrl-C reaches it once, from here (see _wait)
        rc = _wait(child)
    outcomes: dict[str, CheckOutcome] = {}
    try:
        for c in load_results(out_dir / "run").checks:
            outcomes[c.id] = CheckOutcome(str(c.status), c.reason)
    except ReportError:
        pass
    return PlatformRun(rc, outcomes, log, out_dir / "run", time.monotonic() - t0)


def _wait(child: subprocess.Popen[bytes]) -> int:
    """The child's exit status; on Ctrl-C (or SIGTERM, which the CLI turns into one), pass one SIGINT to the
    child's session, as a terminal would to ``aiconform run``, and wait while it tears its cluster down."""
    try:
        return child.wait()
    except KeyboardInterrupt:
        try:
            os.killpg(child.pid, signal.SIGINT)
        except ProcessLookupError:
            raise KeyboardInterrupt from None
        try:
            child.wait(timeout=CHILD_STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        raise


# -- the command ----------------------------------------------------------------------------------------------------


def selftest(settings: SelftestSettings, progress: Callable[[str], None]) -> list[MutationResult]:
    """Run the chosen mutations; every result graded (or marked not run, with why)."""

    if settings.max_tier not in TIERS_HERE:
        raise ConfigError(f"--tier: must be one of {', '.join(TIERS_HERE)}, got {settings.max_tier!r}")
    if settings.max_tier == "R" and os.geteuid() != 0:
        raise ConfigError("--tier R brings up a real node, which needs root")
    validate_ids(settings.requirements, settings.mutations)
    files = check_files(settings.suite)
    started = datetime.now(UTC)
    state_dir = Path(tempfile.mkdtemp(prefix="aiconform-selftest-"))
    try:
        owners = collect_owners(files, workdir=state_dir)
        results = choose(owners, requirements=settings.requirements, checks=settings.checks,
                         mutation_ids=settings.mutations, musts_only=settings.musts_only)
        for r in results:
            r.why = why_not_here(r.mutation, r.owners, settings.max_tier)
        runnable = [r for r in results if not r.why]
        if not runnable:
            raise ConfigError("no selected mutation can run here: "
                              + "; ".join(f"{r.mutation.id} {r.why}" for r in results))
        report_dir = prepare_report_dir(settings.report_dir)
        baselines: dict[str, PlatformRun] = {}
        if settings.baseline:
            for key in dict.fromkeys(r.mutation.baseline_key() for r in runnable):
                group = [r for r in runnable if r.mutation.baseline_key() == key]
                checks = list({o.id: o for r in group for o in r.owners}.values())
                base = group[0].mutation
                label = f"baseline-{base.base}"
                baselines[key] = run_platform(base.baseline_document(), checks, report_dir / label,
                                              state_dir=state_dir, label=label, progress=progress)
        for r in runnable:
            m = r.mutation
            try:
                m.profile()  # a mutation that is no valid profile is the registry's bug: one line, graded error
            except ConfigError as err:
                r.verdict, r.why = Verdict.ERROR, f"the mutated profile is invalid: {err}"
                continue
            run = run_platform(m.document(), r.owners, report_dir / m.id, state_dir=state_dir, label=m.id,
                               progress=progress)
            base_run = baselines.get(m.baseline_key())
            r.checks = [grade_check(o.id, run.outcome(o.id), base_run.outcome(o.id) if base_run else None)
                        for o in r.owners]
            r.verdict = combine(r.checks)
            r.report_dir, r.duration_s = str(run.report_dir), run.duration_s
            progress(f"{m.id}: {r.verdict}" + "".join(f"\n  {g.check}: {g.verdict} ({g.reason})" for g in r.checks))
        write_report(report_dir, results, baselines={k: str(v.report_dir) for k, v in baselines.items()},
                     started=started, settings=settings)
        return results
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def selftest_main(settings: SelftestSettings) -> int:
    def progress(line: str) -> None:
        print(f"aiconform selftest: {line}", file=sys.stderr, flush=True)

    results = selftest(settings, progress)
    for r in results:
        print(f"{r.mutation.requirement:<28} {r.mutation.id:<30} {r.verdict}"
              + (f"  ({r.why})" if r.verdict == Verdict.NOT_RUN or (r.why and not r.checks) else ""))
    print(settings.report_dir / "report.html")
    return exit_code(results)


def list_main(suite: str | None, max_tier: str) -> int:
    """``aiconform selftest --list``."""

    with tempfile.TemporaryDirectory(prefix="aiconform-selftest-") as tmp:
        owners = collect_owners(check_files(suite), workdir=Path(tmp))
    print(render_list(owners, max_tier))
    return 0
