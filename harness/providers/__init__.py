"""Cluster providers: one module per backend behind the ClusterProvider protocol (see base.py)."""

from __future__ import annotations

from harness.config import Profile
from harness.errors import ConfigError
from harness.providers.base import ClusterProvider


def provider_for(profile: Profile, name: str, **kwargs: object) -> ClusterProvider:
    """The provider a profile names, for a cluster called ``name``."""
    if profile.provider == "local":
        from harness.providers.local import LocalCluster

        return LocalCluster(name, **kwargs)  # type: ignore[arg-type]
    if profile.provider == "existing":
        raise ConfigError(
            "provider 'existing' has nothing to bring up: run the suites with `aiconform run --kubeconfig FILE`"
        )
    raise ConfigError(f"provider: {profile.provider!r} is not implemented yet (available: local; existing via "
                      "`aiconform run --kubeconfig`)")
