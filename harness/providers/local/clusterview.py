"""What the real node (realnode.py, netsvc.py) needs of the cluster it belongs to, and what netsvc needs of the real
node, as protocols.

LocalCluster and RealNodeHost provide them; the node modules depend on these views, not on each other's modules, so
cluster.py → realnode.py → netsvc.py has no circle.  Owns no behaviour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from harness.hostproc import Supervisor
from harness.kube import KubeClient
from harness.pki import Pki
from harness.providers.base import Progress


class ClusterView(Protocol):
    name: str
    dir: Path
    """The cluster's run directory (the node records its host changes there)."""
    pki: Pki
    procs: Supervisor
    progress: Progress

    def client(self) -> KubeClient: ...

    def kubeconfig(self) -> Path: ...

    def logfile(self, component: str) -> Path: ...

    def pidfile(self, component: str) -> Path: ...


class NodeView(Protocol):
    """The real node as netsvc sees it: its cluster, its directory, and the host record it adds its changes to."""

    cluster: ClusterView
    dir: Path
    record: dict[str, Any]
    progress: Progress

    def _save(self) -> None: ...
