"""Cluster providers: each backend its own module or package behind the ClusterProvider protocol (base.py), all
found through the entry-point registry (registry.py): ``local`` (local/), ``existing`` (existing.py), ``kind``
(kind/: kind nodes from an offline node image, tier R), and whatever a third party registers.  common.py holds what
providers share."""

from harness.providers.registry import find_cluster, open_provider, provider_for, registered

__all__ = ["find_cluster", "open_provider", "provider_for", "registered"]
