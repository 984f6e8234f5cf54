"""The cluster under test as checks see it: the cluster-info file, the :class:`ClusterHandle`, tier detection, and
the ``aiconform_cluster`` / ``kube`` fixtures.

``aiconform run`` writes one :class:`ClusterInfo` (``cluster-info.json`` in the report directory) and hands its path
to pytest with ``--aiconform-cluster-info``; a user running pytest directly passes ``--aiconform-kubeconfig`` (or
$AICONFORM_KUBECONFIG) and the rest is detected.  The info is read once per session in the controlling process (no
network: ``pytest_configure``) and handed unchanged to pytest-xdist workers, so every process of a run shares one
run id.  The cluster is contacted only when a check asks for it (:func:`make_handle` fills in the tier and the
Kubernetes version it finds).

Owns nothing of tenants, evidence, markers or grading (the sibling modules of :mod:`harness.testing`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.contract import GPU_RESOURCE, TIERS, Tier, declares_fake_gpus, highest_tier, is_simulated
from harness.errors import ConfigError, KubeError, KubeUnreachable
from harness.kube import KubeClient, KubeConfig

CLUSTER_INFO_FILE = "cluster-info.json"
INFO_KEY = pytest.StashKey["ClusterInfo | None"]()
"""The session's (unresolved) cluster info, in every process; None when no cluster was given."""
HANDLE_KEY = pytest.StashKey["ClusterHandle"]()
"""The handle of this process, once a check asked for the cluster."""
_WORKER_INPUT = "aiconform_cluster_info"
UPGRADE_KEYS = ("phase", "from", "to", "key")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


@dataclass(frozen=True)
class ClusterInfo:
    """What the harness knows about the cluster under test; the schema of ``cluster-info.json``."""

    kubeconfig: str
    """Path of the kubeconfig of an admin identity."""
    run_id: str
    """Labels every namespace and node the run creates (``aiconform.io/run``) and names the report."""
    provider: str = "existing"
    """The provider that made the cluster (``existing`` for one the harness did not make)."""
    profile: str = ""
    """The profile the cluster was made from ("" or ``existing`` for an existing cluster)."""
    tier: str | None = None
    """S, R or G; None: detected from the nodes when a check first asks for the cluster."""
    capabilities: frozenset[str] = frozenset()
    """Cluster facts a check may need (``networkpolicy``, ``simulated-nodes``, ...): the ones present."""
    fact_evidence: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Every fact as the run saw it, for the report: ``{fact: {"present": bool, "source": "detected" | "declared" |
    "provider", "evidence": "what was read"}}`` (harness/detect.py)."""
    kubernetes_version: str = ""
    """The apiserver's version without the ``v``; "" is asked from the apiserver."""
    allow_destructive: bool = False
    """Checks marked ``destructive`` may run on an existing cluster."""
    fake: str = ""
    """What is simulated, in words, for the report."""
    component_pids: Mapping[str, int] = field(default_factory=dict)
    """Local processes of the cluster's components (local provider); a check that fails after one of them exited
    is graded ``error``, not ``failed``."""
    claims: frozenset[str] = frozenset()
    """Requirement ids the platform claims to implement (``aiconform run --claim``; ``musts`` is expanded by the
    runner): a check of one of them on a cluster that lacks a capability it needs is ``failed`` (CNCF "Not
    Implemented", the capability named with its evidence), not skipped.  A tier the cluster does not reach still
    skips: that is what aiconform cannot judge here, not what the platform lacks."""
    upgrade: Mapping[str, str] = field(default_factory=dict)
    """Set by ``aiconform run --upgrade-to`` only: ``phase`` (``before`` or ``after`` the in-place upgrade),
    ``from`` and ``to`` (versions without the ``v``) and ``key`` (one id shared by both phases, so a check can find
    in the after phase what it left in the before phase)."""

    SCHEMA = 1

    def __post_init__(self) -> None:
        if not self.kubeconfig:
            raise ConfigError("cluster info: kubeconfig must not be empty")
        if not self.run_id:
            raise ConfigError("cluster info: run_id must not be empty")
        if self.tier is not None and self.tier not in TIERS:
            raise ConfigError(f"cluster info: tier must be one of {', '.join(TIERS)}, got {self.tier!r}")
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))
        object.__setattr__(self, "claims", frozenset(self.claims))
        object.__setattr__(self, "component_pids", dict(self.component_pids))
        object.__setattr__(self, "upgrade", dict(self.upgrade))
        object.__setattr__(self, "fact_evidence", {k: dict(v) for k, v in self.fact_evidence.items()})
        if self.upgrade:
            missing = [k for k in UPGRADE_KEYS if not self.upgrade.get(k)]
            if missing:
                raise ConfigError(f"cluster info: upgrade lacks {', '.join(missing)}")
            if self.upgrade["phase"] not in ("before", "after"):
                raise ConfigError(f"cluster info: upgrade phase must be 'before' or 'after', got "
                                  f"{self.upgrade['phase']!r}")

    @property
    def resolved(self) -> bool:
        """True when nothing is left to ask the cluster."""
        return self.tier is not None and bool(self.kubernetes_version)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["capabilities"] = sorted(self.capabilities)
        d["claims"] = sorted(self.claims)
        d["component_pids"] = dict(sorted(self.component_pids.items()))
        d["upgrade"] = dict(self.upgrade)
        d["fact_evidence"] = {k: dict(v) for k, v in sorted(self.fact_evidence.items())}
        return {"schema": self.SCHEMA, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: object, source: str = "cluster info") -> ClusterInfo:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        d = dict(data)
        schema = d.pop("schema", cls.SCHEMA)
        if schema != cls.SCHEMA:
            raise ConfigError(f"{source}: schema {schema!r} is not supported (this aiconform reads {cls.SCHEMA})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field {unknown[0]!r}")
        for key in ("kubeconfig", "run_id"):
            if not isinstance(d.get(key), str):
                raise ConfigError(f"{source}: {key} must be a string")
        caps = d.get("capabilities", [])
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ConfigError(f"{source}: capabilities must be a list of strings")
        claims = d.get("claims", [])
        if not isinstance(claims, list) or not all(isinstance(c, str) for c in claims):
            raise ConfigError(f"{source}: claims must be a list of requirement ids")
        pids = d.get("component_pids", {})
        if not isinstance(pids, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in pids.values()):
            raise ConfigError(f"{source}: component_pids must map component names to process ids")
        upgrade = d.get("upgrade", {})
        if not isinstance(upgrade, dict) or not all(isinstance(v, str) for v in upgrade.values()):
            raise ConfigError(f"{source}: upgrade must map keys to strings")
        evidence = d.get("fact_evidence", {})
        if not isinstance(evidence, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("present"), bool) and isinstance(v.get("source"), str)
                and isinstance(v.get("evidence"), str) for v in evidence.values()):
            raise ConfigError(f"{source}: fact_evidence must map facts to {{present, source, evidence}}")
        for key in ("provider", "profile", "kubernetes_version", "fake"):
            if key in d and not isinstance(d[key], str):
                raise ConfigError(f"{source}: {key} must be a string")
        if "tier" in d and d["tier"] is not None and not isinstance(d["tier"], str):
            raise ConfigError(f"{source}: tier must be a string or null")
        if "allow_destructive" in d and not isinstance(d["allow_destructive"], bool):
            raise ConfigError(f"{source}: allow_destructive must be true or false")
        d["capabilities"] = frozenset(caps)
        d["claims"] = frozenset(claims)
        return cls(**d)

    @classmethod
    def from_json(cls, text: str, source: str = "cluster info") -> ClusterInfo:
        try:
            data = json.loads(text)
        except ValueError as err:
            raise ConfigError(f"{source}: not JSON: {err}") from None
        return cls.from_dict(data, source)

    def write(self, path: Path) -> Path:
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClusterInfo:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as err:
            raise ConfigError(f"cluster info {p}: cannot be read: {err.strerror}") from None
        return cls.from_json(text, f"cluster info {p}")


# -- the handle -----------------------------------------------------------------------------------------------------


@dataclass
class ClusterHandle:
    """The cluster under test as checks see it: the resolved :class:`ClusterInfo` and an admin client."""

    info: ClusterInfo
    client: KubeClient
    _gpu_total: int | None = field(default=None, repr=False)
    _clients: list[KubeClient] = field(default_factory=list, repr=False)

    @property
    def kubeconfig(self) -> Path:
        return Path(self.info.kubeconfig)

    @property
    def run_id(self) -> str:
        return self.info.run_id

    @property
    def tier(self) -> str:
        return self.info.tier or Tier.S.value

    @property
    def capabilities(self) -> frozenset[str]:
        return self.info.capabilities

    @property
    def provider(self) -> str:
        return self.info.provider

    @property
    def profile(self) -> str:
        return self.info.profile

    @property
    def kubernetes_version(self) -> str:
        return self.info.kubernetes_version

    @property
    def allow_destructive(self) -> bool:
        return self.info.allow_destructive

    def gpu_total(self) -> int:
        """Allocatable ``nvidia.com/gpu`` (what a check's ``gpus=`` asks for: device-plugin GPUs; GPUs offered
        through DRA are counted by :meth:`dra_gpu_total` and by tier detection)."""
        if self._gpu_total is None:
            total = 0
            for n in self.client.list("Node")["items"]:
                alloc = n.get("status", {}).get("allocatable", {})
                total += int(alloc.get(GPU_RESOURCE, 0))
            self._gpu_total = total
        return self._gpu_total

    def dra_gpu_total(self) -> int:
        """Whole GPUs published through DRA (driver gpu.nvidia.com) on every node."""
        from harness.dra import dra_gpus

        return dra_gpus(self.client)

    def as_user(self, token: str) -> KubeClient:
        """A client for the same cluster with another identity (a service account token)."""
        client = KubeClient(self.client.config.with_token(token))
        self._clients.append(client)
        return client

    def close(self) -> None:
        for c in [*self._clients, self.client]:
            c.close()


def detect_tier(client: KubeClient) -> str:
    """S when GPUs exist only on simulated nodes, R with a real node whose GPUs are fake, G with real GPUs.  GPUs
    count whether a device plugin advertises them (``nvidia.com/gpu``) or a DRA driver publishes them (whole GPUs
    in ResourceSlices of the node)."""
    from harness.dra import gpus_by_node

    tier = Tier.S
    dra = gpus_by_node(client)
    for n in client.list("Node")["items"]:
        if is_simulated(n):
            continue
        if declares_fake_gpus(n):
            tier = highest_tier(tier, Tier.R)
        elif (int(n.get("status", {}).get("allocatable", {}).get(GPU_RESOURCE, 0) or 0) > 0
              or dra.get(n["metadata"]["name"], 0) > 0):
            tier = Tier.G
    return tier.value


def make_handle(info: ClusterInfo) -> ClusterHandle:
    """Connect to the cluster of ``info`` (KubeUnreachable if it does not answer /readyz) and fill in what the info
    left open: the tier (from the nodes) and the Kubernetes version (from the apiserver)."""
    client = KubeClient(KubeConfig.from_file(info.kubeconfig))
    if not client.healthz("/readyz"):
        client.close()
        raise KubeUnreachable(f"the cluster in {info.kubeconfig} does not answer /readyz")
    tier = info.tier or detect_tier(client)
    version = info.kubernetes_version
    if not version:
        try:
            version = client.server_version().lstrip("v")
        except KubeError:
            version = ""
    return ClusterHandle(dataclasses.replace(info, tier=tier, kubernetes_version=version), client)


# -- the session's cluster info -------------------------------------------------------------------------------------


def configure(config: pytest.Config) -> None:
    """Read the session's cluster info once: from the xdist controller in a worker, else from the options.  No
    network; a broken file is a usage error (one line, before anything runs)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and _WORKER_INPUT in workerinput:
        text = workerinput[_WORKER_INPUT]
        config.stash[INFO_KEY] = ClusterInfo.from_json(text) if text else None
        return
    try:
        config.stash[INFO_KEY] = _info_from_options(config)
    except ConfigError as err:
        raise pytest.UsageError(str(err)) from None


def _info_from_options(config: pytest.Config) -> ClusterInfo | None:
    path = config.getoption("--aiconform-cluster-info", None)
    if path and config.getoption("--aiconform-kubeconfig", None):
        raise ConfigError("pass --aiconform-cluster-info or --aiconform-kubeconfig, not both")
    if path:
        return ClusterInfo.load(path)
    kubeconfig = config.getoption("--aiconform-kubeconfig", None) or os.environ.get("AICONFORM_KUBECONFIG")
    if kubeconfig:
        return ClusterInfo(kubeconfig=str(kubeconfig), run_id=new_run_id())
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist (controller): every worker gets the controller's cluster info, run id included."""
    info = node.config.stash.get(INFO_KEY, None)
    node.workerinput[_WORKER_INPUT] = info.to_json() if info is not None else ""


def session_info(config: pytest.Config) -> ClusterInfo | None:
    return config.stash.get(INFO_KEY, None)


def session_handle(config: pytest.Config) -> ClusterHandle | None:
    """This process's handle, if a check has asked for the cluster."""
    return config.stash.get(HANDLE_KEY, None)


def remember_handle(config: pytest.Config, handle: ClusterHandle) -> None:
    config.stash[HANDLE_KEY] = handle


# -- fixtures -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def aiconform_cluster(request: pytest.FixtureRequest) -> ClusterHandle:
    """The cluster under test (``--aiconform-cluster-info``, ``--aiconform-kubeconfig`` or $AICONFORM_KUBECONFIG).
    Overridden by the project's integration tests, which start a local cluster once per session."""
    config = request.config
    handle = session_handle(config)
    if handle is not None:
        return handle
    info = session_info(config)
    if info is None:
        pytest.skip("no cluster: pass --aiconform-kubeconfig or --aiconform-cluster-info, or run `aiconform run`")
    handle = make_handle(info)
    remember_handle(config, handle)
    return handle


@pytest.fixture(scope="session")
def kube(aiconform_cluster: ClusterHandle) -> KubeClient:
    """An admin client of the cluster under test."""
    return aiconform_cluster.client


@dataclass(frozen=True)
class UpgradePhase:
    """Where a check stands in ``aiconform run --upgrade-to``: the same checks run before and after the in-place
    upgrade; a check that spans it makes its state ``before`` and judges it ``after``, finding it by ``key``."""

    phase: str
    from_version: str
    to_version: str
    key: str

    @property
    def before(self) -> bool:
        return self.phase == "before"


@pytest.fixture(scope="session")
def upgrade_phase(aiconform_cluster: ClusterHandle) -> UpgradePhase:
    """The upgrade phase of this run; the check is skipped (with the reason) outside ``--upgrade-to``."""
    up = aiconform_cluster.info.upgrade
    if not up:
        pytest.skip("spans an in-place upgrade: runs only under `aiconform run --upgrade-to VERSION` "
                    "(or `--upgrade-with COMMAND` on an existing cluster)")
    return UpgradePhase(up["phase"], up["from"], up["to"], up["key"])
