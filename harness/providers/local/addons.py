"""Addons on a running local cluster, for suites and fixtures: ``ensure_addons(cluster, "jobset", "trainer")``.

The installer and the addon registry are ``harness.addons``; this is the provider's door to them for a cluster that
is already up (a profile's ``addons:`` go through the same ``LocalCluster.ensure_addons`` at bring-up)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.errors import ConfigError, UnsupportedCapability
from harness.providers.local.cluster import LocalCluster


def ensure_addons(cluster: object, *names: str) -> list[str]:
    """Install the addons ``names`` on a running local cluster unless already there; returns the facts added.

    ``cluster``: a ``LocalCluster``, anything with a ``kubeconfig`` (``ClusterHandle``, ``ClusterInfo``), or the
    kubeconfig path of a cluster made by the ``local`` provider."""
    if isinstance(cluster, LocalCluster):
        return cluster.ensure_addons(_names(names))
    path = Path(str(getattr(cluster, "kubeconfig", cluster))).resolve()
    try:
        local: LocalCluster | None = LocalCluster(path.parent.name, root=path.parent.parent)
    except ConfigError:
        local = None
    if local is None or local.kubeconfig().resolve() != path or local.state() is None:
        raise UnsupportedCapability("existing", f"installing addons ({', '.join(names)}) into a cluster the harness "
                                    f"did not make ({path}); only clusters of the local provider take addons")
    return local.ensure_addons(_names(names))


def _names(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))
