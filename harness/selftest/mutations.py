"""The registry of platform mutations: profile changes a real vendor could ship by mistake, each of which the checks
that name it in their marker (``@pytest.mark.aiconform(..., mutations=("gang-plugin-off",))``) must catch.

A mutation is a shipped profile (its *base*, trimmed by ``base_edits`` to what the owning checks need) plus a few
edits of the profile document: a scheduler plugin turned off, a controller left out of ``--controllers``, a GPU
pool's sharing or autoscaling left out.  Edits are data (a path into the YAML document and a value, or a deletion),
so ``aiconform selftest --list`` and the report can say exactly what changed.  Pure data and document edits: nothing
here starts a cluster or reads results (harness/selftest/run.py does).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from harness.config import Profile, parse_profile, resolve_profile_path
from harness.errors import ConfigError

DELETE = object()
"""An :class:`Edit` value that removes the key (or list item) the path names."""

_STEP = re.compile(r"^([A-Za-z0-9_.-]+?)(?:\[(\w+)=([^\]]+)\])?$")


@dataclass(frozen=True)
class Edit:
    """One change to a profile document: ``path`` names a key, dotted, and a list item by one of its fields
    (``pools[name=t4-shared].gpu.sharing``); ``value`` replaces what is there (missing mappings on the way are
    created), or :data:`DELETE` removes it."""

    path: str
    value: Any = DELETE

    def describe(self) -> str:
        if self.value is DELETE:
            return f"{self.path}: removed"
        return f"{self.path}: {yaml.safe_dump(self.value, default_flow_style=True, width=10_000).strip()}"


@dataclass(frozen=True)
class Mutation:
    """One platform mutation and what it takes to bring it up."""

    id: str
    """Named in the owning checks' markers, ``--list`` and the report."""
    requirement: str
    """The requirement whose checks must catch it (a CNCF id, or ``aiconform.*``)."""
    mistake: str
    """What the vendor shipped, in one line (the report's wording)."""
    base: str
    """The shipped profile it starts from."""
    edits: tuple[Edit, ...]
    """The mutation itself."""
    base_edits: tuple[Edit, ...] = ()
    """Trims of the base that do not change what the owning checks judge (e.g. addons only other checks use), so the
    unmutated baseline and the mutated platform differ in ``edits`` alone."""
    tier: str = "S"
    """The tier the owning checks need: S runs on any machine; R needs root and a real node (``--tier R``)."""
    also: tuple[str, ...] = ()
    """Further requirements whose checks must catch it too."""
    note: str = ""
    """What is known about it that ``--list`` should say (a known gap, why it is not run)."""

    @property
    def requirements(self) -> tuple[str, ...]:
        return (self.requirement, *self.also)

    def baseline_document(self) -> dict[str, Any]:
        """The base profile document with ``base_edits`` applied (the platform the checks must pass on)."""
        doc = yaml.safe_load(resolve_profile_path(self.base).read_text())
        return apply_edits(doc, self.base_edits)

    def document(self) -> dict[str, Any]:
        """The mutated profile document."""
        doc = apply_edits(self.baseline_document(), self.edits)
        # The name stays the base's: checks may look their profile up by name (a shipped one).
        doc["description"] = f"selftest mutation {self.id} of profile {self.base}: {self.mistake}"
        return doc

    def profile(self) -> Profile:
        """The mutated profile, validated as any profile is (ConfigError naming the field)."""
        return parse_profile(self.document(), name=f"{self.base}-{self.id}", source=f"selftest mutation {self.id}")

    def baseline_key(self) -> str:
        """Mutations with the same key share one unmutated baseline run."""
        return self.base + "".join(f"|{e.describe()}" for e in self.base_edits)


def apply_edits(doc: dict[str, Any], edits: Iterable[Edit]) -> dict[str, Any]:
    """A deep copy of ``doc`` with ``edits`` applied in order; ConfigError when a path names nothing there."""
    out = copy.deepcopy(doc)
    for edit in edits:
        _apply(out, edit)
    return out


def _apply(doc: dict[str, Any], edit: Edit) -> None:
    steps = edit.path.split(".")
    node: Any = doc
    for i, step in enumerate(steps):
        m = _STEP.match(step)
        if m is None:
            raise ConfigError(f"mutation edit {edit.path!r}: bad step {step!r}")
        key, field, want = m.groups()
        last = i == len(steps) - 1
        if not isinstance(node, dict):
            raise ConfigError(f"mutation edit {edit.path!r}: {'.'.join(steps[:i]) or 'the profile'} is not a mapping")
        if field is None:
            if last:
                if edit.value is DELETE:
                    if key not in node:
                        raise ConfigError(f"mutation edit {edit.path!r}: the base profile has no {key!r} there")
                    del node[key]
                else:
                    node[key] = copy.deepcopy(edit.value)
                return
            node = node.setdefault(key, {})
            continue
        items = node.get(key)
        if not isinstance(items, list):
            raise ConfigError(f"mutation edit {edit.path!r}: {key!r} is not a list in the base profile")
        hits = [j for j, item in enumerate(items) if isinstance(item, dict) and str(item.get(field)) == want]
        if len(hits) != 1:
            raise ConfigError(f"mutation edit {edit.path!r}: {len(hits)} items of {key!r} have {field}={want}")
        if last:
            if edit.value is DELETE:
                del items[hits[0]]
            else:
                items[hits[0]] = copy.deepcopy(edit.value)
            return
        node = items[hits[0]]


def _controllers_off(*names: str) -> Edit:
    """kube-controller-manager started with some controllers left out of ``--controllers``."""
    return Edit("controlPlane.extraArgs.kube-controller-manager.controllers",
                ",".join(["*", *(f"-{n}" for n in names)]))


_NATIVE_GANG_BASE = (Edit("addons", []),)  # gang.yaml's Kueue and JobSet serve the Kueue checks, not the native ones

MUTATIONS: tuple[Mutation, ...] = (
    # gang_scheduling.  Its second half, "a gang plugin that admits partial gangs", has no mutation yet: in
    # kube-scheduler 1.37 the all-or-nothing test (GangScheduling's PlacementFeasible, in the pod-group cycle) runs
    # whenever the plugin is enabled at any extension point, so no scheduler configuration keeps the plugin and
    # admits a partial gang (turning it off at Permit alone changes nothing), and minCount is the user's PodGroup
    # field, not the platform's.  The Kueue path has one (waitForPodsReady off: a partial gang keeps its quota and
    # runs), but the Kueue addon's settings are not a profile field yet (docs/selftest.md).
    Mutation("gang-plugin-off", "gang_scheduling",
             "kube-scheduler runs with its GangScheduling plugin disabled (the PodGroup API is served, nobody "
             "honours it): pods of a gang are placed one by one",
             base="gang", base_edits=_NATIVE_GANG_BASE,
             edits=(Edit("controlPlane.schedulerDisabledPlugins.multiPoint", ["GangScheduling"]),)),
    # cluster_autoscaling: an autoscaler is installed, but the GPU node groups are not autoscaled.
    Mutation("gpu-pools-not-autoscaled", "cluster_autoscaling",
             "the node autoscaler is installed, but the GPU node groups were left out of it (fixed size): pending GPU "
             "pods never get a node",
             base="autoscale",
             edits=(Edit("pools[name=a100-1g].autoscale"), Edit("pools[name=h100-1g].autoscale"))),
    # pod_autoscaling: the HPA controller is not running.
    Mutation("hpa-controller-off", "pod_autoscaling",
             "kube-controller-manager runs without the horizontal-pod-autoscaler controller: HPAs are accepted and "
             "never act",
             base="local-serving", tier="R",
             edits=(_controllers_off("horizontal-pod-autoscaler-controller"),)),
    # ai_inference: the gateway has no endpoints to route to.
    Mutation("endpointslice-controller-off", "ai_inference",
             "kube-controller-manager runs without the EndpointSlice controller: Services and HTTPRoutes exist, the "
             "gateway has no backend endpoints",
             base="local-serving", tier="R",
             edits=(_controllers_off("endpointslice-controller"),)),
    # ai_service_metrics / accelerator_metrics: no monitoring stack.
    Mutation("monitoring-left-out", "ai_service_metrics",
             "the monitoring stack (Prometheus and its adapter) was left out of the platform",
             base="local-serving", tier="R",
             edits=(Edit("addons", ["kube-router", "model-server", "traefik"]),),
             also=("accelerator_metrics",)),
    # secure_accelerator_access: one GPU handed to several containers.
    Mutation("gpu-handed-to-many", "secure_accelerator_access",
             "the device plugin is configured to time-slice every GPU 8 ways on a node meant for exclusive "
             "training: containers are given GPUs other containers hold",
             base="local-real", tier="R",
             edits=(Edit("realNode.gpu.sharing", {"timeSlicing": {"replicas": 8}}),)),
    # robust_controller: the operator's Jobs are never run.
    Mutation("job-controller-off", "robust_controller",
             "kube-controller-manager runs without the Job controller: the operator's CRs reconcile into Jobs that "
             "never start a pod",
             base="local-real", tier="R",
             edits=(_controllers_off("job-controller"),)),
    # gpu_sharing (SHOULD): the shared pool is not shared.
    Mutation("gpu-sharing-left-out", "gpu_sharing",
             "the GPU sharing configuration was left out: no time-slicing on the inference pool, no MIG partitions "
             "on the MIG pool; every GPU is advertised once, whole",
             base="default",
             edits=(Edit("pools[name=t4-shared].gpu.sharing"), Edit("pools[name=a100-mig].gpu.mig")),
             note="known blind spot: the sharing checks skip when no node advertises time-sliced or MIG GPUs, so "
                  "this mutation ends missed (a SHOULD: `make selftest` runs the MUSTs; ask for it with "
                  "--requirement gpu_sharing)"),
)

REGISTRY: dict[str, Mutation] = {m.id: m for m in MUTATIONS}


def get(mutation_id: str) -> Mutation:
    try:
        return REGISTRY[mutation_id]
    except KeyError:
        raise ConfigError(f"unknown mutation {mutation_id!r}; known mutations: {', '.join(sorted(REGISTRY))}") from None
