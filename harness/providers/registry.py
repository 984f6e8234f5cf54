"""The provider registry: every provider, aiconform's own included, is an entry point in the group
``aiconform.providers`` (``name = package.module:factory``), so a third party adds one by installing a package,
without editing aiconform.

A factory is called as ``factory(cluster_name, ProviderOptions)`` and returns a ClusterProvider (base.py).  Nothing
outside this module looks a provider up by name; the CLI and the runner ask here.  Entry points are read on each
lookup (no cache to go stale).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from harness.config import Profile
from harness.errors import ClusterNotFound, ConfigError
from harness.providers.base import ClusterProvider, ProviderOptions
from harness.providers.common import owner_of, state_root, validate_cluster_name

GROUP = "aiconform.providers"
Factory = Callable[[str, ProviderOptions], ClusterProvider]


def _entry_points() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=GROUP):
        same = found.setdefault(ep.name, [])
        if all(other.value != ep.value for other in same):  # one package seen twice on sys.path is no conflict
            same.append(ep)
    return found


def registered() -> list[str]:
    """The names of every registered provider, sorted."""
    return sorted(_entry_points())


def _describe(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{ep.value}" + (f" from {dist.name}" if dist is not None else "")


def factory(provider: str) -> Factory:
    """The factory registered as ``provider``; ConfigError (one line, listing the registered ones) otherwise."""
    eps = _entry_points()
    if provider not in eps:
        known = ", ".join(sorted(eps)) or "none (is aiconform installed? run `make venv`)"
        raise ConfigError(f"provider: unknown provider {provider!r}; registered providers: {known}")
    if len(eps[provider]) > 1:
        raise ConfigError(f"provider {provider!r} is registered twice ({'; '.join(map(_describe, eps[provider]))}); "
                          "uninstall one of them")
    ep = eps[provider][0]
    try:
        loaded = ep.load()
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"provider {provider!r} ({_describe(ep)}) cannot be loaded: "
                          f"{type(err).__name__}: {err}") from err
    if not callable(loaded):
        raise ConfigError(f"provider {provider!r} ({_describe(ep)}) is not a factory: got {type(loaded).__name__}")
    fn: Factory = loaded
    return fn


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

