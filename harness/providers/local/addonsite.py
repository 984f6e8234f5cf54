"""The local provider's addon site (harness/addons/site.py): what the one installer gets of a local cluster.

Every local cluster runs host processes under its supervisor (tier S: an addon's binary beside the control plane);
one with a real node (tier R) also takes images into that node's containerd, and the installer then prefers pods
there.  The host undo commands of the addons' pods are kept in ``addons.json`` of the run directory, which the
cluster's teardown runs.  Owns that record; starts nothing by itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.addons import UndoCommand
from harness.bins import BinaryResolver
from harness.config import Pool
from harness.hostproc import Supervisor
from harness.kube import KubeClient
from harness.pki import Pki
from harness.providers.local.clusterview import ClusterView

PROVIDER = "local"
RECORD = "addons.json"


class LocalSite:
    """A local cluster as an addon site with host processes (AddonSite + HostProcesses)."""

    provider = PROVIDER

    def __init__(self, view: ClusterView, *, resolver: BinaryResolver, pools: Sequence[Pool] = (),
                 recorded: Sequence[str] = (), record: bool = True, time_compression: float | None = None) -> None:
        """``recorded``: the addon names ``addons.json`` lists once these are installed; ``record=False``: keep no
        undo record (an install a test drives by hand)."""
        self._view = view
        self._resolver = resolver
        self._recorded = list(recorded)
        self._record = record
        self.cluster = view.name
        self.pools = tuple(pools)
        self.time_compression = time_compression
        self.progress = view.progress
        self.workdir = view.dir / "addons"
        try:
            self._earlier = json.loads((view.dir / RECORD).read_text()).get("undo", [])
        except (OSError, ValueError, AttributeError):
            self._earlier = []

    def client(self) -> KubeClient:
        return self._view.client()

    def resolver(self) -> BinaryResolver:
        return self._resolver

    def ca(self) -> Pki | None:
        return self._view.pki

    def supervisor(self) -> Supervisor:
        return self._view.procs

    def record_undo(self, commands: list[UndoCommand]) -> None:
        if self._record:
            (self._view.dir / RECORD).write_text(json.dumps(
                {"addons": self._recorded, "undo": [*self._earlier, *[list(c) for c in commands]]}, indent=2))


class LocalNodeSite(LocalSite):
    """A local cluster with a real node (tier R): LocalSite + RealNodes."""

    def __init__(self, view: ClusterView, *, resolver: BinaryResolver, load_image: Callable[[Path], None],
                 node_selector: Mapping[str, str], host_metrics: Mapping[str, str], pools: Sequence[Pool] = (),
                 recorded: Sequence[str] = (), record: bool = True, time_compression: float | None = None) -> None:
        super().__init__(view, resolver=resolver, pools=pools, recorded=recorded, record=record,
                         time_compression=time_compression)
        self._load_image = load_image
        self.node_selector = dict(node_selector)
        self.host_metrics = dict(host_metrics)

    def load_image(self, archive: Path) -> None:
        self._load_image(archive)


def undo_recorded(run_dir: Path) -> list[UndoCommand]:
    """The undo commands ``addons.json`` of ``run_dir`` holds (none when there is no record)."""
    try:
        return [tuple(c) for c in json.loads((run_dir / RECORD).read_text()).get("undo", [])]
    except (OSError, ValueError, AttributeError, TypeError):
        return []
