"""The aiconform pytest plugin: the cluster, per-test tenant namespaces, the ``aiconform`` marker, and the report.

A check declares what it needs and what it evidences::

    @pytest.mark.aiconform(requirement="gpu_sharing", tier="S", gpus=1, capabilities=("networkpolicy",))
    def test_time_sliced_gpus_are_shared(kube, tenant, evidence): ...

On a cluster below the tier, without the capabilities or with fewer GPUs, the check is skipped with the reason in
the report.  Results go to a :class:`harness.report.ResultsCollector` and, with ``--aiconform-report-dir``, to
junit.xml, results.json, report.html, report.md and cncf-evidence.yaml.

Loaded for every pytest run in this environment (entry point ``pytest11``), so it does nothing until a test asks
for a cluster fixture or the report options are given.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import __version__
from harness.errors import AiconformError, ApiError, CommandError, Conflict, KubeError, KubeUnreachable, WaitFailed, WaitTimeout
from harness.kube import KubeClient, KubeConfig

pytest_plugins = ["harness.testing.clients"]  # the official kubernetes client, configured for the run

TIERS = {"S": 0, "R": 1, "G": 2}
LABEL_RUN = "aiconform.io/run"
LABEL_TENANT = "aiconform.io/tenant"
_INFRA_ERRORS = (KubeUnreachable, CommandError)
_COLLECTOR = pytest.StashKey[Any]()
_SESSION = pytest.StashKey["ClusterHandle"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("aiconform")
    g.addoption("--aiconform-kubeconfig", default=None, help="kubeconfig of the cluster under test")
    g.addoption("--aiconform-run-id", default=None, help="run id (labels, namespaces, report)")
    g.addoption("--aiconform-report-dir", default=None, help="write the conformance report here")
    g.addoption("--aiconform-tier", default=None, choices=sorted(TIERS), help="tier of the cluster (else detected)")
    g.addoption("--aiconform-capabilities", default=None, help="comma-separated capabilities of the cluster")
    g.addoption("--aiconform-provider", default="existing", help="provider name for the report")
    g.addoption("--aiconform-profile", default="", help="profile name for the report")
    g.addoption("--aiconform-allow-destructive", action="store_true",
                help="allow checks marked destructive (cluster-wide objects) on this cluster")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "aiconform(requirement, tier='S', gpus=0, capabilities=(), destructive=False): a conformance check; "
        "skipped on a cluster that cannot satisfy it",
    )
    if config.getoption("--aiconform-report-dir", None):
        config.stash[_COLLECTOR] = None  # created lazily once the cluster is known


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


# -- the cluster handle ---------------------------------------------------------------------------------------------


@dataclass
class ClusterHandle:
    """The cluster under test as checks see it."""

    kubeconfig: Path
    client: KubeClient
    run_id: str
    tier: str
    capabilities: frozenset[str]
    provider: str = "existing"
    profile: str = ""
    kubernetes_version: str = ""
    allow_destructive: bool = False
    _gpu_total: int | None = field(default=None, repr=False)
    _clients: list[KubeClient] = field(default_factory=list, repr=False)

    def gpu_total(self) -> int:
        if self._gpu_total is None:
            total = 0
            for n in self.client.list("Node")["items"]:
                alloc = n.get("status", {}).get("allocatable", {})
                total += int(alloc.get("nvidia.com/gpu", 0))
            self._gpu_total = total
        return self._gpu_total

    def as_user(self, token: str) -> KubeClient:
        """A client for the same cluster with another identity (a service account token)."""
        client = KubeClient(self.client.config.with_token(token))
        self._clients.append(client)
        return client

    def close(self) -> None:
        for c in [*self._clients, self.client]:
            c.close()


def detect_tier(client: KubeClient) -> str:
    """S when GPUs exist only on simulated nodes, R with a real node whose GPUs are fake, G with real GPUs."""
    tier = "S"
    for n in client.list("Node")["items"]:
        labels = n.get("metadata", {}).get("labels", {})
        if labels.get("aiconform.io/simulated") == "true":
            continue
        if labels.get("aiconform.io/fake-gpu") == "true":
            tier = max(tier, "R", key=TIERS.__getitem__)
        elif int(n.get("status", {}).get("allocatable", {}).get("nvidia.com/gpu", 0) or 0) > 0:
            tier = "G"
    return tier


def make_handle(config: pytest.Config, kubeconfig: Path, **defaults: Any) -> ClusterHandle:
    client = KubeClient(KubeConfig.from_file(kubeconfig))
    if not client.healthz("/readyz"):
        raise KubeUnreachable(f"the cluster in {kubeconfig} does not answer /readyz")
    tier = config.getoption("--aiconform-tier") or defaults.get("tier") or detect_tier(client)
    caps_opt = config.getoption("--aiconform-capabilities")
    caps = frozenset(c for c in (caps_opt.split(",") if caps_opt else defaults.get("capabilities", ())) if c)
    try:
        version = client.server_version().lstrip("v")
    except KubeError:
        version = ""
    return ClusterHandle(
        kubeconfig=kubeconfig,
        client=client,
        run_id=config.getoption("--aiconform-run-id") or defaults.get("run_id") or new_run_id(),
        tier=tier,
        capabilities=caps,
        provider=defaults.get("provider") or config.getoption("--aiconform-provider"),
        profile=defaults.get("profile") or config.getoption("--aiconform-profile"),
        kubernetes_version=version,
        allow_destructive=bool(config.getoption("--aiconform-allow-destructive") or defaults.get("allow_destructive")),
    )


@pytest.fixture(scope="session")
def aiconform_cluster(request: pytest.FixtureRequest) -> ClusterHandle:
    """The cluster under test: ``--aiconform-kubeconfig`` (or $AICONFORM_KUBECONFIG).  Overridden by the project's
    integration tests, which start a local cluster once per session."""
    config = request.config
    if _SESSION in config.stash:
        return config.stash[_SESSION]
    path = config.getoption("--aiconform-kubeconfig") or os.environ.get("AICONFORM_KUBECONFIG")
    if not path:
        pytest.skip("no cluster: pass --aiconform-kubeconfig or run through `aiconform run`")
    handle = make_handle(config, Path(path))
    config.stash[_SESSION] = handle
    return handle


@pytest.fixture(scope="session")
def kube(aiconform_cluster: ClusterHandle) -> KubeClient:
    """An admin client of the cluster under test."""
    return aiconform_cluster.client


# -- tenants --------------------------------------------------------------------------------------------------------


@dataclass
class Tenant:
    """A namespace of one test, labelled with the run id; removed after the test."""

    name: str
    client: KubeClient

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.client.create(obj, namespace=self.name)

    def service_account_token(self, sa: str = "default", *, seconds: int = 3600) -> str:
        """A token for a service account of this tenant, from the TokenRequest API."""
        if sa != "default":
            try:
                self.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}})
            except Conflict:
                pass
        self.client.wait_for("ServiceAccount", namespace=self.name, name=sa, condition=bool, timeout=30,
                             what=f"service account {self.name}/{sa}")
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds}}
        path = self.client.kind_path("ServiceAccount", self.name, sa) + "/token"
        return str(self.client.request("POST", path, body)["status"]["token"])


def _ns_name(prefix: str, run_id: str) -> str:
    run = re.sub(r"[^a-z0-9]", "", run_id.lower())[-10:]
    return f"{prefix}-{run}-{secrets.token_hex(3)}"[:63]


@pytest.fixture
def tenants(aiconform_cluster: ClusterHandle) -> Iterator[Callable[..., Tenant]]:
    """Factory: ``tenants("team-a", labels={...})`` makes a fresh namespace; all are deleted after the test."""
    made: list[str] = []
    client = aiconform_cluster.client

    def make(prefix: str = "t", *, labels: dict[str, str] | None = None) -> Tenant:
        name = _ns_name(prefix, aiconform_cluster.run_id)
        create_run_namespace(client, name, aiconform_cluster.run_id, {LABEL_TENANT: "true", **(labels or {})})
        made.append(name)
        return Tenant(name, client)

    yield make
    for name in made:
        release_tenant(client, name)


def release_tenant(client: KubeClient, namespace: str, timeout: float = 60.0) -> None:
    """Delete a tenant's pods at once and wait until they are gone (their GPUs free for the next check), then
    delete the namespace (the namespace controller removes the rest in the background)."""
    try:
        client.delete_collection("Pod", namespace, grace_period=0)
        client.wait_for("Pod", namespace=namespace, condition=lambda s: not s, timeout=timeout,
                        what=f"pods of {namespace} to be deleted")
    except (KubeError, WaitTimeout):
        pass
    try:
        client.delete("Namespace", namespace, grace_period=0)
    except KubeError:
        pass


@pytest.fixture
def tenant(tenants: Callable[..., Tenant]) -> Tenant:
    """One fresh namespace for this test."""
    return tenants("t")


def label_value(v: str) -> str:
    """``v`` as a valid label value (a run id becomes the value of aiconform.io/run)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", v)[:63].strip("-_.")


def create_run_namespace(client: KubeClient, name: str, run_id: str, labels: dict[str, str] | None = None) -> None:
    """A namespace labelled with the run id, so :func:`sweep_run` finds it if its check never cleans up."""
    client.create({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": {LABEL_RUN: label_value(run_id), **(labels or {})}}})


# -- evidence -------------------------------------------------------------------------------------------------------


class Evidence:
    """What a check observed; lands in results.json and the report.  ``evidence["key"] = value``."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def timing(self, key: str, seconds: float) -> None:
        self.timings[key] = round(float(seconds), 4)


_EVIDENCE = pytest.StashKey[Evidence]()


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    ev = Evidence()
    request.node.stash[_EVIDENCE] = ev
    return ev


# -- marker enforcement ---------------------------------------------------------------------------------------------


def _marker(item: pytest.Item) -> dict[str, Any]:
    m = item.get_closest_marker("aiconform")
    if m is None:
        return {}
    kw = dict(m.kwargs)
    if m.args:
        kw.setdefault("requirement", m.args[0])
    return kw


@pytest.fixture(autouse=True)
def _aiconform_requirements(request: pytest.FixtureRequest) -> None:
    """Skip a marked check, with the reason, on a cluster that cannot satisfy its marker."""
    spec = _marker(request.node)
    if not spec:
        return
    handle: ClusterHandle = request.getfixturevalue("aiconform_cluster")
    request.config.stash[_SESSION] = handle
    need_tier = str(spec.get("tier", "S"))
    if TIERS[need_tier] > TIERS[handle.tier]:
        pytest.skip(f"needs tier {need_tier}; this cluster is tier {handle.tier}")
    missing = [c for c in spec.get("capabilities", ()) if c not in handle.capabilities]
    if missing:
        pytest.skip(f"cluster lacks capability {', '.join(missing)}")
    gpus = int(spec.get("gpus", 0))
    if gpus and handle.gpu_total() < gpus:
        pytest.skip(f"needs {gpus} allocatable nvidia.com/gpu; cluster has {handle.gpu_total()}")
    if spec.get("destructive") and handle.provider == "existing" and not handle.allow_destructive:
        pytest.skip("destructive on an existing cluster; pass --allow-existing to run it")


# -- reporting ------------------------------------------------------------------------------------------------------


def _collector(config: pytest.Config) -> Any:
    if _COLLECTOR not in config.stash:
        return None
    col = config.stash[_COLLECTOR]
    if col is None and _SESSION in config.stash:
        from harness.report import ResultsCollector

        h = config.stash[_SESSION]
        seed = config.getoption("hypothesis_seed", None) if hasattr(config.option, "hypothesis_seed") else None
        col = ResultsCollector(
            run_id=h.run_id, harness_version=__version__, kubernetes_version=h.kubernetes_version,
            provider=h.provider, tier=h.tier, profile=h.profile, seed=seed,
        )
        config.stash[_COLLECTOR] = col
    return col


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    rep: pytest.TestReport = outcome.get_result()
    if _COLLECTOR not in item.config.stash:
        return
    phase_results = item.stash.setdefault(_PHASES, {})
    phase_results[rep.when] = (rep, call.excinfo)
    if rep.when == "teardown":
        _record(item, phase_results)


_PHASES = pytest.StashKey[dict[str, Any]]()


def _record(item: pytest.Item, phases: dict[str, Any]) -> None:
    col = _collector(item.config)
    if col is None:
        return
    spec = _marker(item)
    status, reason, duration = "passed", "", 0.0
    for when in ("setup", "call", "teardown"):
        if when not in phases:
            continue
        rep, excinfo = phases[when]
        duration += rep.duration
        if rep.skipped and status == "passed":
            status = "skipped"
            reason = _skip_reason(rep)
        elif rep.failed and status in ("passed", "skipped"):
            exc = excinfo.value if excinfo is not None else None
            status = "failed" if when == "call" and _is_platform_failure(exc) else "error"
            reason = _failure_reason(exc, rep)
    ev = item.stash.get(_EVIDENCE, None)
    module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")
    col.add_check(
        item.nodeid,
        name=item.name.removeprefix("test_").replace("_", " "),
        suite=module,
        status=status,
        requirement=spec.get("requirement"),
        tier=str(spec.get("tier", "S")),
        reason=reason,
        duration_s=max(0.0, duration),
        evidence=ev.data if ev else None,
        timings=ev.timings if ev else None,
        replace=True,
    )


def _is_platform_failure(exc: BaseException | None) -> bool:
    """A failed assertion, a wait that saw the wrong outcome, or an API answer the check did not expect: the
    platform's verdict.  Anything else (apiserver unreachable, a command that broke, a bug) is an infrastructure
    error."""
    if isinstance(exc, _INFRA_ERRORS):
        return False
    return isinstance(exc, AssertionError | WaitTimeout | WaitFailed | ApiError)


def _skip_reason(rep: pytest.TestReport) -> str:
    lr = rep.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr or "")


def _failure_reason(exc: BaseException | None, rep: pytest.TestReport) -> str:
    if isinstance(exc, AiconformError):
        return f"{type(exc).__name__}: {exc}"
    if exc is not None:
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
    return str(rep.longreprtext).strip().splitlines()[-1][:500] if rep.longreprtext else "failed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    _write_report(config)
    if _SESSION in config.stash:
        handle = config.stash[_SESSION]
        sweep_run(handle.client, handle.run_id)
        handle.close()


def sweep_run(client: KubeClient, run_id: str) -> None:
    """Safety net at the end of a session: remove every namespace labelled with this run's id that a check left
    behind (a crashed teardown, an interrupted property), and sandbox nodes labelled with it, so nothing of the run
    stays on the cluster."""
    selector = f"{LABEL_RUN}={label_value(run_id)}"
    try:
        for kind in ("Namespace", "Node"):
            for obj in client.list(kind, label_selector=selector)["items"]:
                client.delete(kind, obj["metadata"]["name"], grace_period=0)
    except KubeError:
        pass


def _write_report(config: pytest.Config) -> None:
    out = config.getoption("--aiconform-report-dir", None)
    if not out or _COLLECTOR not in config.stash:
        return
    col = _collector(config)
    if col is None:
        return
    paths = col.write_all(out)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"aiconform report: {paths.get('report.html', out)}")
