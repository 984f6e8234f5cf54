"""The ``aiconform`` marker: what a check evidences and needs, checked at collection, enforced before it runs.

    @pytest.mark.aiconform(requirement="gpu_sharing", tier="S", gpus=1, capabilities=("networkpolicy",))
    def test_time_sliced_gpus_are_shared(kube, tenant, evidence): ...

On a cluster below the tier, without the capabilities or with fewer GPUs the check is skipped with the reason.
``mutations=("gang-plugin-off",)`` names the platform mutations the check must catch (``failed`` on the mutated
platform): ids of the registry in harness/selftest/mutations.py, run by ``aiconform selftest``.
``exclusive=True`` says the check needs the cluster to itself (it fills a whole pool, adds nodes, preempts, or takes
every unit of a scarce resource): under ``aiconform run --parallel N`` it runs alone, never beside another check.
``destructive=True`` (cluster-wide objects; refused on an existing cluster without ``--allow-existing``) implies
exclusive.  ``--aiconform-select=exclusive|shared`` keeps only one kind (the runner's two phases).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.contract import TIERS, Tier
from harness.errors import PlatformFault
from harness.testing.cluster import ClusterHandle, remember_handle

MARKER = "aiconform"
MARKER_HELP = (
    "aiconform(requirement, tier='S', gpus=0, capabilities=(), destructive=False, exclusive=False, mutations=()): a "
    "conformance check; skipped on a cluster that cannot satisfy it; exclusive (or destructive) checks never run beside "
    "another; mutations: the platform mutations it must catch (aiconform selftest)"
)
SELECT_CHOICES = ("all", "exclusive", "shared")


@dataclass(frozen=True)
class CheckSpec:
    """One check's ``aiconform`` marker."""

    requirement: str | None = None
    """The requirement id it evidences (CNCF AI conformance id, or ``aiconform.*``)."""
    tier: str = "S"
    """The lowest tier at which its verdict means something."""
    gpus: int = 0
    """Allocatable ``nvidia.com/gpu`` the cluster must have in all."""
    capabilities: tuple[str, ...] = ()
    """Cluster facts it needs (``networkpolicy``, ``simulated-nodes``...)."""
    destructive: bool = False
    """Creates cluster-wide objects: refused on an existing cluster unless allowed; implies exclusive."""
    exclusive: bool = False
    """Needs the cluster to itself: never runs beside another check."""
    mutations: tuple[str, ...] = ()
    """Platform mutations the check must catch (ids in harness/selftest/mutations.py; ``aiconform selftest``)."""

    @property
    def runs_alone(self) -> bool:
        return self.exclusive or self.destructive


class MarkerError(ValueError):
    pass


def spec_of(item: pytest.Item) -> CheckSpec | None:
    """The check's marker, or None for a test without one.  MarkerError names what is wrong with it."""
    m = item.get_closest_marker(MARKER)
    if m is None:
        return None
    kw = dict(m.kwargs)
    if len(m.args) > 1:
        raise MarkerError("takes at most one positional argument (the requirement)")
    if m.args:
        if "requirement" in kw:
            raise MarkerError("requirement given twice")
        kw["requirement"] = m.args[0]
    unknown = sorted(set(kw) - {"requirement", "tier", "gpus", "capabilities", "destructive", "exclusive",
                                 "mutations"})
    if unknown:
        raise MarkerError(f"unknown field {unknown[0]!r}")
    tier = kw.get("tier", "S")
    if tier not in TIERS:
        raise MarkerError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    gpus = kw.get("gpus", 0)
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
        raise MarkerError(f"gpus must be a non-negative integer, got {gpus!r}")
    caps = kw.get("capabilities", ())
    if isinstance(caps, str) or not all(isinstance(c, str) for c in caps):
        raise MarkerError(f"capabilities must be a tuple of names, got {caps!r}")
    muts = kw.get("mutations", ())
    if isinstance(muts, str) or not isinstance(muts, tuple | list) or not all(isinstance(m, str) for m in muts):
        raise MarkerError(f"mutations must be a tuple of mutation ids, got {muts!r}")
    for flag in ("destructive", "exclusive"):
        if not isinstance(kw.get(flag, False), bool):
            raise MarkerError(f"{flag} must be True or False, got {kw[flag]!r}")
    req = kw.get("requirement")
    if req is not None and not isinstance(req, str):
        raise MarkerError(f"requirement must be a string, got {req!r}")
    return CheckSpec(requirement=req or None, tier=tier, gpus=gpus, capabilities=tuple(caps),
                     destructive=bool(kw.get("destructive", False)), exclusive=bool(kw.get("exclusive", False)),
                     mutations=tuple(muts))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check every marker (a bad one stops the run with one line naming the check), then keep only the checks
    ``--aiconform-select`` asks for."""
    select = config.getoption("--aiconform-select", "all") or "all"
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        try:
            spec = spec_of(item)
        except MarkerError as err:
            raise pytest.UsageError(f"aiconform marker of {item.nodeid}: {err}") from None
        alone = spec is not None and spec.runs_alone
        if select == "all" or (select == "exclusive") == alone:
            keep.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(autouse=True)
def _aiconform_requirements(request: pytest.FixtureRequest) -> None:
    """Skip a marked check, with the reason, on a cluster that cannot satisfy its marker."""
    spec = spec_of(request.node)
    if spec is None:
        return
    handle: ClusterHandle = request.getfixturevalue("aiconform_cluster")
    remember_handle(request.config, handle)  # also a handle made by an overriding fixture (integration tests)
    if Tier(spec.tier).rank > Tier(handle.tier).rank:
        pytest.skip(f"needs tier {spec.tier}; this cluster is tier {handle.tier}")
    missing = [c for c in spec.capabilities if c not in handle.capabilities]
    if missing:
        why = [str(handle.info.fact_evidence.get(c, {}).get("evidence", "")) for c in missing]
        seen = f" ({'; '.join(w for w in why if w)})" if any(why) else ""
        if spec.requirement in handle.info.claims:  # claimed but lacking: the platform's fault (Not Implemented)
            raise PlatformFault(f"capability {', '.join(missing)}",
                                f"the platform claims {spec.requirement} (--claim) but lacks it{seen}")
        pytest.skip(f"cluster lacks capability {', '.join(missing)}{seen}")
    if spec.gpus and handle.gpu_total() < spec.gpus:
        pytest.skip(f"needs {spec.gpus} allocatable nvidia.com/gpu; cluster has {handle.gpu_total()}")
    if spec.destructive and handle.provider == "existing" and not handle.allow_destructive:
        pytest.skip("destructive on an existing cluster; pass --allow-existing to run it")
