"""``aiconform run``: profile (or ``--kubeconfig``: provider ``existing``) → the provider from the registry →
create → pytest over scenarios/ with the aiconform plugin → report → delete (unless --keep, or the cluster was up
before the run).  The facts of an existing cluster are detected from what its API serves (harness/detect.py, with
the NetworkPolicy probe unless ``--no-probe``); ``--capability`` declares one instead.  Every fact reaches the
report with its evidence.  ``--upgrade-to`` (a cluster the harness brings up) and ``--upgrade-with`` (an existing
one, upgraded by the user's command: harness/upgrade_command.py) run the suites before and after the upgrade and
write the diff; the facts detected before it stand for both phases, so a capability the upgrade broke fails its
checks instead of skipping them.

The cluster reaches the plugin as one file, ``cluster-info.json`` in the report directory
(:class:`harness.testing.ClusterInfo`).  With ``--parallel N`` (N > 1) pytest runs twice over the same report:
first the checks marked exclusive, one at a time; then the others, N at a time under pytest-xdist.  The second
session starts from the first one's results, so the run ends in one report.

Owns the orchestration only; checks live in scenarios/, reporting in harness/report, clusters in providers/,
the pytest seam in harness/testing.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from harness.bins import check_upgrade, load_versions, pinned_kubernetes
from harness.config import load_profile, parse_profile, with_kubernetes
from harness.contract import REAL_NODE_LABEL, SIMULATED_LABEL
from harness.detect import Evidence, declared_by_provider, detect_facts, merge
from harness.errors import AiconformError, ConfigError
from harness.facts import validate_facts
from harness.images.push import IMAGE_REGISTRY_ENV, parse_registry
from harness.kube import KubeClient, KubeConfig
from harness.providers import provider_for
from harness.providers.base import ClusterProvider, ProviderOptions, UpgradesControlPlane, unsupported
from harness.report import RESULTS_FILE, ReportError, Status, load_results
from harness.report.requirements import CNCF_REQUIREMENTS, Level, cncf_checklist, is_known
from harness.report.submission import load_product
from harness.testing import ClusterInfo, new_run_id
from harness.testing.cluster import CLUSTER_INFO_FILE
from harness.upgrade_command import LOG_FILE, run_command, wait_new_version
from harness.workloads import NODE_SELECTOR_ENV, parse_node_selector

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
EXIT_FAILED = 1
EXIT_INFRA = 3
_PYTEST_NO_TESTS = 5


def known_suites() -> list[str]:
    return sorted(p.stem.removeprefix("test_") for p in SCENARIOS.glob("test_*.py"))


def suite_files(names: list[str] | None) -> list[Path]:
    """The test files of the chosen suites (default: every shipped suite).

    Each ``--suite`` value is a path when it contains a path separator or names an existing folder (a user's own
    folder of checks, or one check file); otherwise a comma-separated list of shipped suite names.
    """
    known = known_suites()
    files: list[Path] = []
    for item in names or []:
        if _is_path(item):
            files += user_suite_files(Path(item))
            continue
        for n in (n.strip() for n in item.split(",")):
            if not n:
                continue
            if Path(n).is_dir():
                files += user_suite_files(Path(n))
            elif n in known:
                files.append(SCENARIOS / f"test_{n}.py")
            else:
                raise ConfigError(f"--suite: unknown suite {n!r}; known suites: {', '.join(known)} "
                                  "(or give the path of a folder of checks)")
    if not names:
        files = [SCENARIOS / f"test_{n}.py" for n in known if n not in UPGRADE_SUITES]
    return list(dict.fromkeys(files))


UPGRADE_SUITES = ("upgrade",)
"""Shipped suites whose checks span an in-place upgrade (state made before it, judged after it): they run only
under ``--upgrade-to``, which adds them to the chosen suites."""


def upgrade_suite_files(files: list[Path], upgrade_to: str | None) -> list[Path]:
    """``files`` plus the upgrade suites when ``--upgrade-to`` is given; an upgrade suite chosen without it is one
    line (its checks would have nothing to judge)."""
    upgrade_files = [SCENARIOS / f"test_{n}.py" for n in UPGRADE_SUITES]
    if not upgrade_to:
        chosen = [f.stem.removeprefix("test_") for f in files if f in upgrade_files]
        if chosen:
            raise ConfigError(f"--suite {chosen[0]}: its checks span an upgrade; run it with --upgrade-to VERSION "
                              "(or --upgrade-with COMMAND on an existing cluster)")
        return files
    return list(dict.fromkeys(files + upgrade_files))


def _is_path(value: str) -> bool:
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return any(s in value for s in seps) or Path(value).is_dir()


def user_suite_files(path: Path) -> list[Path]:
    """The check files in a user's suite: ``test_*.py`` / ``*_test.py`` under a folder, or one such file."""
    p = path.expanduser()
    if not p.exists():
        raise ConfigError(f"--suite: {path} does not exist")
    p = p.resolve()
    if p.is_file():
        if p.suffix != ".py":
            raise ConfigError(f"--suite: {path} is not a folder of checks or a Python file")
        return [p]
    found = sorted({*p.rglob("test_*.py"), *p.rglob("*_test.py")})
    found = [f for f in found if not any(part.startswith(".") or part == "__pycache__" for part in f.relative_to(p).parts)]
    if not found:
        raise ConfigError(f"--suite: {path} holds no checks (no test_*.py or *_test.py files)")
    return found


def suite_rootdir(files: list[Path]) -> Path:
    """pytest's rootdir, which check ids are relative to: the project for shipped suites (ids stay
    ``scenarios/test_smoke.py::…``), else the folder above the user's suite (``my-checks/test_x.py::…``)."""
    if all(f.is_relative_to(SCENARIOS.parent) for f in files):
        return SCENARIOS.parent
    return Path(os.path.commonpath([f.parent for f in files])).parent


def prepare_report_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ReportError(f"report directory {path} cannot be written: {err.strerror}") from None
    return path


def default_parallel(*, local_cluster: bool) -> int:
    """Checks at a time when --parallel is not given, from the cores this process may use (at most 8): half of them
    when the cluster's control plane runs on this machine too (it needs the other half), all of them otherwise."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores // 2 if local_cluster else cores, 8))


def pytest_sessions(files: list[Path], *, report_dir: Path, cluster_info: Path, parallel: int, seed: int,
                    keyword: str | None = None, product: Path | None = None) -> list[tuple[str, list[str]]]:
    """The pytest sessions of a run, each as (what it runs, argv): one session when ``parallel`` is 1; else the
    exclusive checks one at a time, then the others ``parallel`` at a time, into the same report."""
    report_dir, cluster_info = report_dir.resolve(), cluster_info.resolve()  # pytest runs in the repository root
    base = [
        sys.executable, "-m", "pytest", *map(str, files),
        "-p", "no:cacheprovider", "-q", f"--rootdir={suite_rootdir(files)}",
        f"--aiconform-cluster-info={cluster_info}", f"--aiconform-report-dir={report_dir}",
        f"--hypothesis-seed={seed}",  # always explicit, so the report can name it for a replay
    ]
    if keyword:
        base += ["-k", keyword]
    if product is not None:
        base.append(f"--aiconform-product={product.resolve()}")
    if parallel <= 1:
        return [("all checks", [*base, f"--junitxml={report_dir / 'pytest-junit.xml'}"])]
    return [
        ("the exclusive checks, one at a time",
         [*base, "--aiconform-select=exclusive", f"--junitxml={report_dir / 'pytest-junit-exclusive.xml'}"]),
        (f"the other checks, {parallel} at a time",
         [*base, "--aiconform-select=shared", f"--aiconform-results-from={report_dir / 'results.json'}",
          "-n", str(parallel), f"--junitxml={report_dir / 'pytest-junit-shared.xml'}"]),
    ]


def combined_exit(codes: list[int]) -> int:
    """One pytest exit code for the sessions of a run: 5 (nothing ran) only when no session ran anything.  (A
    check graded ``error`` makes the run exit 3 whatever pytest said: see run_main.)"""
    ran = [c for c in codes if c != 5]
    if not ran:
        return 5
    broke = [c for c in ran if c not in (0, 1)]
    return broke[0] if broke else max(ran)


def _component_pids(cluster: object) -> dict[str, int]:
    """The local processes of the cluster's components, for providers that run them here (local)."""
    running = getattr(cluster, "running_components", None)
    return dict(running()) if callable(running) else {}


def run_main(args: argparse.Namespace) -> int:
    upgrade_with = getattr(args, "upgrade_with", None)
    if upgrade_with is not None and not upgrade_with.strip():
        raise ConfigError("--upgrade-with: give the command that upgrades the cluster, e.g. --upgrade-with "
                          "'./upgrade.sh 1.37'")
    if upgrade_with and not args.kubeconfig:
        raise ConfigError("--upgrade-with runs your own upgrade command on an existing cluster (with --kubeconfig); "
                          "a cluster the harness brings up is upgraded with --upgrade-to VERSION")
    if upgrade_with and getattr(args, "upgrade_to", None):
        raise ConfigError("--upgrade-to and --upgrade-with: give one (--upgrade-to for a cluster the harness brings "
                          "up, --upgrade-with for an existing one)")
    if getattr(args, "upgrade_timeout", None) is not None and args.upgrade_timeout < 0:
        raise ConfigError(f"--upgrade-timeout: seconds, 0 or more, got {args.upgrade_timeout:g}")
    files = upgrade_suite_files(suite_files(args.suite), getattr(args, "upgrade_to", None) or upgrade_with)
    if getattr(args, "product", None):
        load_product(args.product)  # a bad product file is one line now, not after the run
    facts = validate_facts(args.capability or [])
    claims = validate_claims(getattr(args, "claim", None) or [])
    if facts and not args.kubeconfig:
        raise ConfigError("--capability declares facts of an existing cluster (with --kubeconfig); a cluster the "
                          "harness brings up has the facts its provider declares")
    if getattr(args, "no_probe", False) and not args.kubeconfig:
        raise ConfigError("--no-probe skips a probe of fact detection on an existing cluster (with --kubeconfig); "
                          "a cluster the harness brings up has the facts its provider declares")
    image_registry = getattr(args, "image_registry", None)
    node_selector = getattr(args, "node_selector", None)
    if (image_registry or node_selector is not None) and not args.kubeconfig:
        raise ConfigError("--image-registry and --node-selector are for an existing cluster (with --kubeconfig); a "
                          "cluster the harness brings up has its images imported and its real node labelled")
    if image_registry:
        parse_registry(image_registry)  # one line now, not after the cluster answered
    if node_selector is not None:
        try:
            parse_node_selector(node_selector)
        except ValueError as err:
            raise ConfigError(f"--node-selector: {err}; give key=value[,key=value], or none") from None
    if args.kubeconfig and getattr(args, "kubernetes", None):
        raise ConfigError("--kubernetes picks the version of a cluster the harness brings up; an existing cluster "
                          "(--kubeconfig) runs the version it runs")
    if getattr(args, "parallel", None) is None:
        parallel = default_parallel(local_cluster=not args.kubeconfig)
    else:
        parallel = int(args.parallel)
    if parallel < 1:
        raise ConfigError(f"--parallel: must be at least 1, got {parallel}")
    upgrade_to = getattr(args, "upgrade_to", None)
    if upgrade_to:
        upgrade_to = pinned_kubernetes(upgrade_to)
    run_id = new_run_id()
    if args.kubeconfig:
        profile = parse_profile({"provider": "existing"}, name="existing")
        options = ProviderOptions(kubeconfig=Path(args.kubeconfig), facts=facts, run_id=run_id)
    else:
        profile = with_kubernetes(load_profile(args.profile), getattr(args, "kubernetes", None))
        options = ProviderOptions(run_id=run_id)
    cluster = provider_for(profile, args.name, options)  # an unknown provider fails here, before anything is written
    upgrader: UpgradesControlPlane | None = None
    if upgrade_to:  # refused in one line before anything starts: an ability the provider lacks, a bad target
        if not isinstance(cluster, UpgradesControlPlane):
            raise unsupported(cluster, UpgradesControlPlane, "upgrading the control plane (--upgrade-to)",
                              profile.provider)
        upgrader = cluster
        versions = load_versions()
        current = profile.control_plane.kubernetes_version or versions.kubernetes_default
        if not check_upgrade(current, upgrade_to.removeprefix("v"),
                             (versions.kubernetes_previous, versions.kubernetes_default)):
            raise ConfigError(f"--upgrade-to: the profile already runs Kubernetes v{current}")
    report_dir = prepare_report_dir(Path(args.report_dir) if args.report_dir else Path("reports") / run_id)
    was_up = cluster.is_up()
    if not args.kubeconfig:  # an existing cluster is announced once it answered: a bad kubeconfig stays one line
        print(f"aiconform run {run_id}: {'using' if was_up else 'bringing up'} {profile.provider} cluster "
              f"{args.name!r} (profile {profile.name}, tier {profile.tier})", file=sys.stderr, flush=True)
    kubeconfig = cluster.create(profile)
    info = cluster.info()
    found: dict[str, Evidence] | None = None
    if args.kubeconfig:
        print(f"aiconform run {run_id}: using the cluster in {kubeconfig} (tier {info.tier})", file=sys.stderr,
              flush=True)
        client = KubeClient(KubeConfig.from_file(Path(kubeconfig)))
        try:
            _placement(client, run_id, image_registry, node_selector)
            found = _detect(client, facts, run_id, probe=not getattr(args, "no_probe", False))
        finally:
            client.close()
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    env = dict(os.environ)
    if args.examples is not None:
        env["AICONFORM_EXAMPLES"] = str(args.examples)
    t0 = time.monotonic()
    suites = _Suites(files, cluster, Path(kubeconfig), profile.name, parallel, seed, args, env, found, claims)
    regression = False
    try:
        if upgrader is not None and upgrade_to:
            target = upgrade_to.removeprefix("v")

            def upgrade() -> str:
                print(f"aiconform run {run_id}: upgrading to Kubernetes v{target}", file=sys.stderr, flush=True)
                upgrader.upgrade_control_plane(upgrade_to)
                return target
            rc, outputs, regression = _around_upgrade(suites, report_dir, run_id, current, target, upgrade)
        elif upgrade_with:
            current = info.kubernetes_version.removeprefix("v")
            rc, outputs, regression = _around_upgrade(
                suites, report_dir, run_id, current, WITH_COMMAND,
                lambda: _upgrade_with(upgrade_with, Path(kubeconfig), report_dir, run_id, current,
                                      getattr(args, "upgrade_timeout", None)))
        else:
            rc = suites.run(report_dir, run_id)
            outputs = [report_dir]
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
    htmls = [d / "report.html" for d in outputs if (d / "report.html").exists()]
    print(f"aiconform run {run_id}: suites took {wall:.0f}s; report: "
          f"{', '.join(map(str, htmls)) if htmls else report_dir}", file=sys.stderr)
    for d in outputs:
        for line in conformance_lines(d):
            print(f"aiconform run {run_id}: {line}", file=sys.stderr)
    if (upgrade_to or upgrade_with) and (report_dir / "diff.txt").exists():
        print((report_dir / "diff.txt").read_text(), file=sys.stderr, end="")
    print(report_dir)
    errored = sum(_errored_checks(d) for d in outputs) if rc in (0, 1) else 0
    if errored:
        raise _PytestBroke(f"{errored} check(s) ended in error: the run broke (not a verdict of the platform); "
                           f"see {', '.join(map(str, htmls)) if htmls else report_dir}")
    if rc == 0 and not regression:
        return 0
    if rc in (0, 1):
        return EXIT_FAILED
    if rc == _PYTEST_NO_TESTS:
        chosen = f"--suite {','.join(args.suite)}" if args.suite else "the shipped suites"
        raise ConfigError(f"no checks were collected from {chosen}{f' with -k {args.keyword}' if args.keyword else ''}; "
                          "nothing ran")
    raise _PytestBroke(f"the test runner stopped with exit code {rc}; see the output above and {report_dir}")


MUSTS = "musts"
"""``--claim musts``: every MUST of the checklist the run is judged against (by the cluster's version)."""


def validate_claims(values: list[str]) -> frozenset[str]:
    """The requirement ids of ``--claim`` (repeatable, comma-separated; ``musts`` for every MUST): an unknown id is
    one line naming the known ones."""
    claims = {v.strip() for value in values for v in value.split(",") if v.strip()}
    unknown = sorted(c for c in claims if c != MUSTS and not is_known(c))
    if unknown:
        known = ", ".join(r.id for r in CNCF_REQUIREMENTS)
        raise ConfigError(f"--claim: unknown requirement {unknown[0]!r}; give '{MUSTS}' or requirement ids: {known}")
    return frozenset(claims)


def expand_claims(claims: frozenset[str], kubernetes_version: str) -> frozenset[str]:
    """``claims`` with ``musts`` replaced by the MUST ids of the checklist for ``kubernetes_version``."""
    if MUSTS not in claims:
        return claims
    musts = {r.id for r in cncf_checklist(kubernetes_version) if r.level == Level.MUST}
    return frozenset(claims - {MUSTS}) | musts


def conformance_lines(report_dir: Path) -> list[str]:
    """The run's CNCF MUST coverage from its results.json, as lines for the terminal: the count, then each MUST
    not evidenced with what it needed (empty when there is no results.json)."""
    try:
        block = json.loads((report_dir / RESULTS_FILE).read_text()).get("conformance") or {}
    except (OSError, ValueError):
        return []
    if not block.get("musts_total"):
        return []
    state = "conformant" if block.get("verdict") == "passed" else "not conformant"
    lines = [f"{state}: {block['musts_evidenced']} of {block['musts_total']} MUSTs evidenced "
             f"(CNCF checklist {block.get('checklist')})"]
    lines += [f"  not evidenced: {m['id']}: {m.get('needs') or 'no verdict'}"
              for m in block.get("musts", []) if not m.get("evidenced")]
    return lines


class _Suites:
    """Runs the chosen suites against the cluster into one report directory (pytest sessions: see
    pytest_sessions); ``run`` answers the sessions' combined pytest exit code."""

    def __init__(self, files: list[Path], cluster: ClusterProvider, kubeconfig: Path, profile: str, parallel: int,
                 seed: int, args: argparse.Namespace, env: dict[str, str],
                 facts: dict[str, Evidence] | None = None, claims: frozenset[str] = frozenset()) -> None:
        """``facts``: the detected (and declared) facts of an existing cluster; None: the provider's.  ``claims``:
        ``--claim`` as given (``musts`` is expanded per phase, by the version the cluster then serves)."""
        self.files, self.cluster, self.kubeconfig, self.profile = files, cluster, kubeconfig, profile
        self.parallel, self.seed, self.args, self.env, self.facts = parallel, seed, args, env, facts
        self.claims = claims

    def run(self, report_dir: Path, run_id: str, upgrade: dict[str, str] | None = None) -> int:
        info = self.cluster.info()  # asked anew: an upgrade changes the version
        facts = self.facts if self.facts is not None else declared_by_provider(
            frozenset(info.facts), info.provider, info.profile or self.profile)
        cluster_info = ClusterInfo(
            kubeconfig=str(self.kubeconfig.resolve()), run_id=run_id, provider=info.provider,
            profile=info.profile or self.profile, tier=info.tier,
            capabilities=frozenset(f for f, e in facts.items() if e.present),
            fact_evidence={f: e.to_dict() for f, e in facts.items()},
            claims=expand_claims(self.claims, info.kubernetes_version),
            kubernetes_version=info.kubernetes_version, allow_destructive=bool(self.args.allow_existing),
            fake=info.fake, component_pids=_component_pids(self.cluster), upgrade=upgrade or {},
        ).write(report_dir / CLUSTER_INFO_FILE)
        sessions = pytest_sessions(self.files, report_dir=report_dir, cluster_info=cluster_info,
                                   parallel=self.parallel, seed=self.seed, keyword=self.args.keyword,
                                   product=Path(self.args.product) if getattr(self.args, "product", None) else None)
        print(f"aiconform run {run_id}: running {', '.join(f.stem.removeprefix('test_') for f in self.files)} "
              f"against tier {info.tier} (Kubernetes v{info.kubernetes_version}), {self.parallel} check(s) at a time",
              file=sys.stderr, flush=True)
        codes: list[int] = []
        for what, argv in sessions:
            if len(sessions) > 1:
                print(f"aiconform run {run_id}: {what}", file=sys.stderr, flush=True)
            codes.append(subprocess.call(argv, env=self.env, cwd=SCENARIOS.parent))
            if codes[-1] not in (0, 1, 5):
                break
        return combined_exit(codes)


def _placement(client: KubeClient, run_id: str, image_registry: str | None, node_selector: str | None) -> None:
    """Where an existing cluster's pods get their images and which nodes the real-node ones go to: this process's
    environment (detection reads it; the suites' pytest process inherits it).  Without ``--node-selector``, a
    cluster with nodes labelled as aiconform's real nodes keeps that label, one with no simulated node pins nothing
    (its nodes all run containers), and any other keeps the label (nothing runs on a simulated node)."""
    if image_registry:
        os.environ[IMAGE_REGISTRY_ENV] = image_registry
        print(f"aiconform run {run_id}: images from {parse_registry(image_registry).prefix} (push them with "
              f"`aiconform images push --registry {image_registry}`)", file=sys.stderr, flush=True)
    if node_selector is None:
        labels = [(n.get("metadata") or {}).get("labels") or {} for n in client.list("Node")["items"]]
        if any(lb.get(REAL_NODE_LABEL) == "true" for lb in labels) or any(lb.get(SIMULATED_LABEL) == "true"
                                                                           for lb in labels):
            return
        node_selector = ""
    os.environ[NODE_SELECTOR_ENV] = node_selector
    chosen = parse_node_selector(node_selector)
    print(f"aiconform run {run_id}: pods that need a node running containers "
          + (f"go to nodeSelector {','.join(f'{k}={v}' for k, v in chosen.items())}" if chosen
             else "are not pinned (no simulated node here)"), file=sys.stderr, flush=True)


def _detect(client: KubeClient, declared: frozenset[str], run_id: str, *, probe: bool) -> dict[str, Evidence]:
    """The facts of an existing cluster: detected from what its API serves, the NetworkPolicy probe unless ``probe``
    is off or the fact is declared, then the declarations on top.  One progress line before, one after."""
    probe = probe and "networkpolicy" not in declared
    print(f"aiconform run {run_id}: detecting the cluster's facts from what its API serves"
          f"{' (and a NetworkPolicy probe: a server pod and client pods, at most 60 s)' if probe else ''}",
          file=sys.stderr, flush=True)
    found = merge(detect_facts(client, probe=probe, run_id=run_id), declared)
    detected = sorted(f for f, e in found.items() if e.present and e.source != "declared")
    print(f"aiconform run {run_id}: facts detected: {', '.join(detected) or 'none'}"
          f"{'; declared: ' + ', '.join(sorted(declared)) if declared else ''} (evidence in the report)",
          file=sys.stderr, flush=True)
    return found


WITH_COMMAND = "(the upgrade command's)"
"""The target version an --upgrade-with run's before phase names: the user's command decides it."""
UPGRADE_TIMEOUT = 1800.0
"""--upgrade-with: seconds the API may take, after the command ended, to serve another version."""


def _around_upgrade(suites: _Suites, report_dir: Path, run_id: str, current: str, target: str,
                    upgrade: Callable[[], str]) -> tuple[int, list[Path], bool]:
    """The suites before, ``upgrade()`` (which answers the version it brought), the suites after, their diff:
    the combined exit code, the two report folders and whether the diff holds a regression.  A before phase that
    broke (exit other than 0 or 1) stops there, upgrading nothing."""
    before, after = report_dir / "before", report_dir / "after"
    phase = {"from": current, "to": target, "key": run_id}
    rc = suites.run(prepare_report_dir(before), f"{run_id}-before", {**phase, "phase": "before"})
    if rc not in (0, 1):
        return rc, [before, after], False
    reached = upgrade()
    rc = suites.run(prepare_report_dir(after), f"{run_id}-after", {**phase, "to": reached, "phase": "after"})
    return rc, [before, after], _write_diff(before, after, report_dir / "diff.txt")


def _upgrade_with(command: str, kubeconfig: Path, report_dir: Path, run_id: str, before: str,
                  timeout: float | None) -> str:
    """--upgrade-with: the user's command (output to the terminal and REPORT_DIR/upgrade-command.log), then the
    wait until the API serves the version it brought; that version."""
    def say(line: str) -> None:
        print(f"aiconform run {run_id}: {line}", file=sys.stderr, flush=True)

    say(f"upgrading with your command (Kubernetes v{before} now; output in {report_dir / LOG_FILE}): {command}")
    took = run_command(command, kubeconfig, report_dir / LOG_FILE)
    client = KubeClient(KubeConfig.from_file(kubeconfig))
    try:
        reached = wait_new_version(client.server_version, before,
                                   UPGRADE_TIMEOUT if timeout is None else timeout, progress=say)
    finally:
        client.close()
    say(f"the upgrade command ended after {took:.0f}s; the API serves Kubernetes v{reached}")
    return reached


def _write_diff(before: Path, after: Path, out: Path) -> bool:
    """The before/after diff (both Kubernetes versions named) into ``out``; True on a regression."""
    from harness.report.diff import diff, load_pair, render_diff

    b, a = load_pair(before, after)
    result = diff(b, a)
    header = (f"upgrade: Kubernetes v{b.info.kubernetes_version} -> v{a.info.kubernetes_version}\n"
              f"before: {before}\nafter:  {after}\n")
    out.write_text(header + render_diff(result))
    return result.has_regression


def _errored_checks(report_dir: Path) -> int:
    try:
        return sum(1 for c in load_results(report_dir).checks if c.status == Status.ERROR)
    except ReportError:
        return 0


class _PytestBroke(AiconformError):
    exit_code = EXIT_INFRA
