"""Cluster providers: each backend its own module or package behind the ClusterProvider protocol (base.py), all
found through the entry-point registry (registry.py): ``local`` (local/), ``existing`` (existing.py), ``kind``
(kind/: kind nodes from an offline node image, tier R), and whatever a third party registers.  What providers that
make clusters share is common.py (state root, names, owner record) and kit.py (the action pipeline and the one
bring-up wrapper); each provider package imports those, never another provider."""

from harness.providers.registry import cluster_of, ensure_addons, find_cluster, open_provider, provider_for, registered

__all__ = ["cluster_of", "ensure_addons", "find_cluster", "open_provider", "provider_for", "registered"]
