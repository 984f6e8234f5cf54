"""The ``kind`` provider: registered so that a profile naming it gets a clear answer, not implemented yet.

When it is, it is this one module (or a package of the same name) behind the ClusterProvider protocol, found through
the registry like every other provider.
"""

from __future__ import annotations

from harness.errors import ConfigError
from harness.providers.base import ClusterProvider, ProviderOptions


def open_cluster(name: str, options: ProviderOptions) -> ClusterProvider:
    """Registry entry point: refuses in one line."""
    raise ConfigError("provider 'kind' is not implemented yet; use provider 'local', or run the suites against a "
                      "kind cluster you made with `aiconform run --kubeconfig FILE`")
