"""The provider registry: every provider, aiconform's own included, is an entry point in the group
``aiconform.providers`` (``name = package.module:factory``), so a third party adds one by installing a package,
without editing aiconform.

A factory is called as ``factory(cluster_name, ProviderOptions)`` and returns a ClusterProvider (base.py).  The
module that holds the factory may publish ``PROFILE_SECTION``, the provider's hook into profile parsing
(harness.config.ProfileSection), which harness/config.py reads through entrypoints.py (the group itself, below both
config and this module).  Nothing outside these two modules looks a provider up by name; the CLI and the runner ask
here.  Entry points are read on each lookup (no cache to go stale).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from harness.config import Profile
from harness.errors import ClusterNotFound, ConfigError
from harness.providers.base import ClusterProvider, ProviderOptions
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

