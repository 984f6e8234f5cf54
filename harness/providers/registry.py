"""The provider registry: every provider, aiconform's own included, is an entry point in the group
``aiconform.providers`` (``name = package.module:factory``), so a third party adds one by installing a package,
without editing aiconform.

A factory is called as ``factory(cluster_name, ProviderOptions)`` and returns a ClusterProvider (base.py).  The
module that holds the factory may publish ``PROFILE_SECTION``, the provider's hook into profile parsing
(harness.config.ProfileSection), which harness/config.py reads through entrypoints.py (the group itself, below both
config and this module).  Nothing outside these two modules looks a provider up by name; the CLI and the runner ask
here, and suites, fixtures and benches ask for a running cluster's provider (:func:`cluster_of`) and its abilities
(:func:`ensure_addons`) here too.  Entry points are read on each lookup (no cache to go stale).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

from harness.config import Profile
from harness.errors import ClusterNotFound, ConfigError, UnsupportedCapability
from harness.providers.base import ClusterProvider, InstallsAddons, ProviderOptions, unsupported
from harness.providers.common import owner_of, state_root, validate_cluster_name
from harness.providers.entrypoints import GROUP, describe, load, registered

__all__ = ["GROUP", "Factory", "factory", "find_cluster", "open_provider", "provider_for", "registered"]

Factory = Callable[[str, ProviderOptions], ClusterProvider]


def factory(provider: str) -> Factory:
    """The factory registered as ``provider``; ConfigError (one line, listing the registered ones) otherwise."""
    ep, loaded = load(provider)
    if not callable(loaded):
        raise ConfigError(f"provider {provider!r} ({describe(ep)}) is not a factory: got {type(loaded).__name__}")
    return cast(Factory, loaded)


def open_provider(provider: str, name: str, options: ProviderOptions | None = None) -> ClusterProvider:
    """The ``provider`` backend for the cluster called ``name``."""
    cluster = factory(provider)(validate_cluster_name(name), options or ProviderOptions())
    if not isinstance(cluster, ClusterProvider):
        raise ConfigError(f"provider {provider!r} returned a {type(cluster).__name__}, which does not implement "
                          "the ClusterProvider protocol (harness/providers/base.py)")
    return cluster


def provider_for(profile: Profile, name: str, options: ProviderOptions | None = None) -> ClusterProvider:
    """The provider a profile names, for a cluster called ``name``."""
    return open_provider(profile.provider, name, options)


def find_cluster(name: str, options: ProviderOptions | None = None) -> ClusterProvider:
    """The provider of the existing cluster ``name`` (from the owner record in its run directory);
    ClusterNotFound when no provider made a cluster of that name."""
    options = options or ProviderOptions()
    run_dir = (options.root or state_root()) / validate_cluster_name(name)
    owner = owner_of(run_dir)
    if owner is None:
        raise ClusterNotFound(f"no cluster named {name!r}")
    return open_provider(owner, name, options)


def cluster_of(target: object, options: ProviderOptions | None = None) -> ClusterProvider:
    """The provider of the running cluster ``target``: a provider object (returned as it is), or its admin
    kubeconfig (a path, or anything with a ``kubeconfig`` attribute: ClusterHandle, ClusterInfo).  A kubeconfig
    lies in the run directory the cluster's provider made (``<root>/<name>/...``), whose owner record names it;
    ClusterNotFound when no provider of this machine made that cluster (provider ``existing``)."""
    if isinstance(target, ClusterProvider):
        return target
    path = Path(str(getattr(target, "kubeconfig", target))).resolve()
    run_dir = path.parent
    owner = owner_of(run_dir)
    if owner is not None:
        try:
            cluster = open_provider(owner, run_dir.name, ProviderOptions(
                root=run_dir.parent, progress=(options or ProviderOptions()).progress))
            if cluster.kubeconfig().resolve() == path:
                return cluster
        except ConfigError:
            pass
    raise ClusterNotFound(f"the cluster of {path} was not made by a provider of this machine")


def ensure_addons(target: object, *names: str) -> list[str]:
    """Install the addons ``names`` (harness.addons registry) on the running cluster ``target`` (see
    :func:`cluster_of`) unless already there; returns the facts added.  A cluster the harness did not make, or one
    whose provider cannot install addons: UnsupportedCapability in one line."""
    names = tuple(dict.fromkeys(names))
    what = f"installing addons ({', '.join(names)})"
    try:
        cluster = cluster_of(target)
    except ClusterNotFound as err:
        raise UnsupportedCapability("existing", f"{what} into a cluster the harness did not make ({err}); only "
                                    "clusters a provider of this machine made take addons") from None
    if not isinstance(cluster, InstallsAddons):
        name = str(getattr(cluster, "provider_name", "") or owner_of(cluster.kubeconfig().parent) or "")
        raise unsupported(cluster, InstallsAddons, what, name)
    return cluster.ensure_addons(list(names))
