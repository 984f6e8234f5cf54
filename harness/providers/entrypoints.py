"""The ``aiconform.providers`` entry-point group, read: the registered names, the one entry point of a name, its
factory loaded, and what else the module holding the factory publishes (``PROFILE_SECTION``, the provider's hook into
profile parsing).  Imports nothing of aiconform but its errors and harness/plugins.py (the entry-point reading both
groups share), so harness/config.py can ask here for a provider's profile section while the registry (registry.py:
opening clusters) imports config.  Entry points are read on each lookup (no cache to go stale).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import EntryPoint

from harness import plugins
from harness.errors import ConfigError

GROUP = "aiconform.providers"


def by_name() -> dict[str, list[EntryPoint]]:
    """Every registered name with its entry points (more than one: registered twice)."""
    return plugins.by_name(GROUP)


def registered() -> list[str]:
    """The names of every registered provider, sorted."""
    return sorted(by_name())


describe = plugins.describe


def load(provider: str, eps: dict[str, list[EntryPoint]] | None = None) -> tuple[EntryPoint, object]:
    """The entry point registered as ``provider`` (in ``eps``, else as read now) and what it names, loaded;
    ConfigError (one line, listing the registered ones) for an unknown name, a name registered twice, or one that
    cannot be loaded."""
    return plugins.load(by_name() if eps is None else eps, "provider", provider,
                        lambda known: f"provider: unknown provider {provider!r}; registered providers: {known}")


def published(provider: str, attribute: str) -> object | None:
    """``attribute`` of the module that holds ``provider``'s factory; None when it has none or the provider is not
    registered (opening it says so).  ConfigError for a provider that cannot be loaded."""
    eps = by_name()
    if provider not in eps:
        return None
    ep, _ = load(provider, eps)
    return getattr(import_module(ep.module), attribute, None)


def published_by_all(attribute: str) -> list[tuple[str, object]]:
    """``attribute`` of every registered provider that publishes it, by name; a provider that cannot be loaded is
    left out (opening it says why)."""
    out = []
    for name in registered():
        try:
            value = published(name, attribute)
        except ConfigError:
            continue
        if value is not None:
            out.append((name, value))
    return out
