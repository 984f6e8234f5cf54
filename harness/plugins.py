"""Entry-point groups, read the one way: aiconform's own providers and addons and a third party's are found alike
(``aiconform.providers``: harness/providers/entrypoints.py; ``aiconform.addons``: harness/addons/registry.py).

Entry points are read on each call (no cache to go stale) and only the one asked for is imported, so a broken
third-party package fails only where it is named.  Imports nothing of aiconform but its errors.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from harness.errors import ConfigError

NOT_INSTALLED = "none (is aiconform installed? run `make venv`)"


def by_name(group: str) -> dict[str, list[EntryPoint]]:
    """Every name registered in ``group`` with its entry points (more than one: registered twice)."""
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=group):
        same = found.setdefault(ep.name, [])
        if all(other.value != ep.value for other in same):  # one package seen twice on sys.path is no conflict
            same.append(ep)
    return found


def describe(ep: EntryPoint) -> str:
    """``module:attr from distribution``, for messages."""
    dist = getattr(ep, "dist", None)
    return f"{ep.value}" + (f" from {dist.name}" if dist is not None else "")


def load(eps: dict[str, list[EntryPoint]], noun: str, name: str,
         unknown: Callable[[str], str]) -> tuple[EntryPoint, object]:
    """The one entry point registered as ``name`` and what it names, loaded.  ConfigError in one line: ``unknown``
    (given the registered names, comma-separated) for an unknown name; a name registered twice; one that cannot be
    loaded (``noun`` names the kind: provider, addon)."""
    if name not in eps:
        raise ConfigError(unknown(", ".join(sorted(eps)) or NOT_INSTALLED))
    if len(eps[name]) > 1:
        raise ConfigError(f"{noun} {name!r} is registered twice ({'; '.join(map(describe, eps[name]))}); "
                          "uninstall one of them")
    ep = eps[name][0]
    try:
        return ep, ep.load()
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{noun} {name!r} ({describe(ep)}) cannot be loaded: {type(err).__name__}: {err}") from err
