"""The provider registry: every provider, aiconform's own included, is an entry point in the group
``aiconform.providers`` (``name = package.module:factory``), so a third party adds one by installing a package,
without editing aiconform.

A factory is called as ``factory(cluster_name, ProviderOptions)`` and returns a ClusterProvider (base.py).  The
module that holds the factory may publish ``PROFILE_SECTION``, the provider's hook into profile parsing
(harness.config.ProfileSection): harness/config.py asks :func:`profile_section` for it when it parses a profile, so
this module imports config for types only.  Nothing outside this module looks a provider up by name; the CLI, the
runner and the profile parser ask here.  Entry points are read on each lookup (no cache to go stale).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, cast

from harness.errors import ClusterNotFound, ConfigError
from harness.providers.base import ClusterProvider, ProviderOptions
from harness.providers.common import owner_of, state_root, validate_cluster_name

if TYPE_CHECKING:  # config looks providers up here when it parses a profile: no import of it at run time
    from harness.config import Profile, ProfileSection

GROUP = "aiconform.providers"
SECTION_ATTRIBUTE = "PROFILE_SECTION"
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
    return _load(provider)[1]


def _load(provider: str) -> tuple[EntryPoint, Factory]:
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
    return ep, fn


def profile_section(provider: str) -> ProfileSection | None:
    """The profile hook of ``provider`` (``PROFILE_SECTION`` beside its factory); None for a provider that publishes
    none or is not registered (opening it says so).  ConfigError for a provider that cannot be loaded."""
    if provider not in _entry_points():
        return None
    ep, _ = _load(provider)
    section = getattr(import_module(ep.module), SECTION_ATTRIBUTE, None)
    if section is None:
        return None
    if not isinstance(getattr(section, "key", None), str) or not callable(getattr(section, "parse", None)):
        raise ConfigError(f"provider {provider!r} ({_describe(ep)}): its {SECTION_ATTRIBUTE} is not a profile section "
                          "(a key and a parse method: harness.config.ProfileSection)")
    return cast("ProfileSection", section)


def section_owner(key: str) -> tuple[str, ProfileSection] | None:
    """The registered provider whose own profile section is the top-level ``key``, with that section.  A provider
    that cannot be loaded owns nothing here (opening it says why)."""
    for name in registered():
        try:
            section = profile_section(name)
        except ConfigError:
            continue
        if section is not None and section.key == key:
            return name, section
    return None


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

