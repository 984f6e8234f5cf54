"""``aiconform run``: profile (or ``--kubeconfig``: provider ``existing``) → the provider from the registry →
create → pytest over scenarios/ with the aiconform plugin → report → delete (unless --keep, or the cluster was up
before the run).  ``--capability`` declares the facts of an existing cluster.

Owns the orchestration only; checks live in scenarios/, reporting in harness/report, clusters in providers/.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from harness.config import Profile, load_profile
from harness.errors import AiconformError, ConfigError
from harness.facts import validate_facts
from harness.providers import provider_for
from harness.providers.base import ProviderOptions
from harness.pytest_plugin import new_run_id
from harness.report import ReportError

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
EXIT_FAILED = 1
EXIT_INFRA = 3


def known_suites() -> list[str]:
    return sorted(p.stem.removeprefix("test_") for p in SCENARIOS.glob("test_*.py"))


def suite_files(names: list[str] | None) -> list[Path]:
    known = known_suites()
    wanted: list[str] = []
    for item in names or []:
        wanted += [n.strip() for n in item.split(",") if n.strip()]
    if not wanted:
        wanted = known
    for n in wanted:
        if n not in known:
            raise ConfigError(f"--suite: unknown suite {n!r}; known suites: {', '.join(known)}")
    return [SCENARIOS / f"test_{n}.py" for n in dict.fromkeys(wanted)]


def prepare_report_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ReportError(f"report directory {path} cannot be written: {err.strerror}") from None
    return path


def run_main(args: argparse.Namespace) -> int:
    files = suite_files(args.suite)
    facts = validate_facts(args.capability or [])
    if facts and not args.kubeconfig:
        raise ConfigError("--capability declares facts of an existing cluster (with --kubeconfig); a cluster the "
                          "harness brings up has the facts its provider declares")
    run_id = new_run_id()
    if args.kubeconfig:
        profile = Profile(name="existing", provider="existing")
        options = ProviderOptions(kubeconfig=Path(args.kubeconfig), facts=facts, run_id=run_id)
    else:
        profile = load_profile(args.profile)
        options = ProviderOptions(run_id=run_id)
    cluster = provider_for(profile, args.name, options)  # an unknown provider fails here, before anything is written
    report_dir = prepare_report_dir(Path(args.report_dir) if args.report_dir else Path("reports") / run_id)
    was_up = cluster.is_up()
    if not args.kubeconfig:  # an existing cluster is announced once it answered: a bad kubeconfig stays one line
        print(f"aiconform run {run_id}: {'using' if was_up else 'bringing up'} {profile.provider} cluster "
              f"{args.name!r} (profile {profile.name})", file=sys.stderr, flush=True)
    kubeconfig = cluster.create(profile)
    info = cluster.info()
    if args.kubeconfig:
        print(f"aiconform run {run_id}: using the cluster in {kubeconfig} (tier {info.tier}"
              f"{'; facts: ' + ', '.join(sorted(info.facts)) if info.facts else ''})", file=sys.stderr, flush=True)
    provider, profile_name, tier = info.provider, info.profile or profile.name, info.tier
    caps = ",".join(sorted(info.facts))
    argv = [
        sys.executable, "-m", "pytest", *map(str, files),
        "-p", "no:cacheprovider", "-q", f"--rootdir={SCENARIOS.parent}",
        f"--aiconform-kubeconfig={kubeconfig}", f"--aiconform-report-dir={report_dir}",
        f"--aiconform-run-id={run_id}", f"--aiconform-provider={provider}",
        f"--aiconform-profile={profile_name}", f"--aiconform-tier={tier}",
        f"--aiconform-capabilities={caps}",
        f"--junitxml={report_dir / 'pytest-junit.xml'}",
    ]
    if args.allow_existing:
        argv.append("--aiconform-allow-destructive")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    argv.append(f"--hypothesis-seed={seed}")  # always explicit, so the report can name it for a replay
    if args.keyword:
        argv += ["-k", args.keyword]
    env = dict(os.environ)
    if args.examples is not None:
        env["AICONFORM_EXAMPLES"] = str(args.examples)
    t0 = time.monotonic()
    print(f"aiconform run {run_id}: running {', '.join(f.stem.removeprefix('test_') for f in files)} "
          f"against tier {tier}", file=sys.stderr, flush=True)
    try:
        rc = subprocess.call(argv, env=env, cwd=SCENARIOS.parent)
    finally:
        try:
            cluster.collect_logs(report_dir / "logs")
        except OSError:
            pass
        if not was_up and not args.keep:
            cluster.delete()
        elif args.keep and not was_up:
            print(f"cluster {args.name!r} kept; kubeconfig: {kubeconfig}", file=sys.stderr)
    wall = time.monotonic() - t0
    html = report_dir / "report.html"
    print(f"aiconform run {run_id}: suites took {wall:.0f}s; report: {html if html.exists() else report_dir}",
          file=sys.stderr)
    print(report_dir)
    if rc == 0:
        return 0
    if rc == 1:
        return EXIT_FAILED
    raise _PytestBroke(f"the test runner stopped with exit code {rc}; see the output above and {report_dir}")


class _PytestBroke(AiconformError):
    exit_code = EXIT_INFRA
