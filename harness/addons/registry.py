"""The addon registry: every addon, aiconform's own included, is an entry point in the group ``aiconform.addons``
(``name = package.module:ADDON``, an :class:`~harness.addons.base.Addon`), so a third party adds one by installing a
package, as with providers (harness/providers/registry.py); examples/third_party_addon is one.

Owns finding addons by name and judging a profile's ``addons:`` against them and against what the provider's
clusters can do (:func:`check_profile`).  Entry points are read on each lookup (no cache to go stale); only the
addon asked for is imported, so a broken third-party addon fails only where it is named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import plugins
from harness.addons.base import Addon
from harness.addons.site import placement
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.config import Profile

GROUP = "aiconform.addons"


def registered() -> list[str]:
    """The names of every registered addon, sorted (nothing is imported)."""
    return sorted(plugins.by_name(GROUP))


def lookup(name: str) -> Addon:
    """The addon registered as ``name``; ConfigError (one line) when there is none, two, or it does not load."""
    ep, loaded = plugins.load(plugins.by_name(GROUP), "addon", name,
                              lambda known: f"unknown addon {name!r}; known addons: {known}")
    if not isinstance(loaded, Addon):
        raise ConfigError(f"addon {name!r} ({plugins.describe(ep)}) is not an Addon (harness/addons/base.py): got "
                          f"{type(loaded).__name__}")
    if loaded.name != name:
        raise ConfigError(f"addon {name!r} ({plugins.describe(ep)}) calls itself {loaded.name!r}; the entry point's name and "
                          "Addon.name must agree")
    return loaded


def known_addons() -> dict[str, Addon]:
    """Every registered addon, loaded: name → Addon."""
    return {name: lookup(name) for name in registered()}


def check_profile(profile: Profile, *, provider: str, real_nodes: bool, host_processes: bool) -> None:
    """A profile's ``addons``: each a registered addon that a cluster of ``provider`` with these abilities can run
    (real nodes for its pods, or host processes at tier S); ConfigError naming the entry otherwise.  Providers call
    it before anything starts."""
    for i, name in enumerate(profile.addons):
        try:
            addon = lookup(name)
        except ConfigError as err:
            raise ConfigError(f"addons[{i}]: {err}") from None
        if not real_nodes and (addon.needs_real_node or addon.host is None and addon.workload is not None):
            raise ConfigError(f"addons[{i}]: {name} runs on the real node; set realNode.enabled: true (tier R)")
        try:
            placement(addon, provider=provider, real_nodes=real_nodes, host_processes=host_processes)
        except ConfigError as err:
            raise ConfigError(f"addons[{i}]: {err}") from None
