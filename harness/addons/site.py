"""Where addons are installed: what the installer needs of a running cluster, as protocols a provider implements.

The direction is providers → addons: a provider builds its site (an object implementing :class:`AddonSite`, plus
:class:`RealNodes` and/or :class:`HostProcesses` for what its cluster can do) and hands it to
:func:`harness.addons.install`; nothing under harness/addons imports a provider.  A site's abilities are the
protocols it implements (``isinstance``), as with the providers' own abilities (harness/providers/base.py).

- every site: the provider's and the cluster's names (error lines name both), an API client, the binary resolver,
  the profile's pools, the cluster CA (webhook and host-process certificates), status lines, and where the host
  undo commands of the addons' pods are recorded;
- :class:`RealNodes`: nodes that run containers — an image loader and the selector of those nodes (pod mode);
- :class:`HostProcesses`: a supervised host process beside the control plane (host mode, tier S).

:func:`placement` decides pod or host mode for one addon from those abilities alone, so a provider asks it before
anything starts (:func:`harness.addons.check_profile`) and the installer asks it again with the site in hand.
Owns types and that decision; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.addons.base import Addon, UndoCommand
    from harness.bins import BinaryResolver
    from harness.config import Pool
    from harness.hostproc import Supervisor
    from harness.kube import KubeClient
    from harness.pki import Pki

Progress = Callable[[str], None]


@runtime_checkable
class AddonSite(Protocol):
    """A running cluster as the installer sees it."""

    provider: str
    """The provider's registry name (``local``, ``kind``), for error lines."""
    cluster: str
    """The cluster's name (labels that name it, e.g. on nodes an autoscaler adds)."""
    pools: tuple[Pool, ...]
    """The profile's simulated node pools (an autoscaler's node shapes come from them); () when unknown."""
    time_compression: float | None
    """The profile's ``controlPlane.time_compression`` (the addons' timers scale by it); None when unset."""
    progress: Progress

    def client(self) -> KubeClient:
        """A new admin client; the installer closes it."""
        ...

    def resolver(self) -> BinaryResolver: ...

    def ca(self) -> Pki | None:
        """The cluster CA (issues webhook serving and host-process client certificates); None: the site has none,
        and an addon that needs one is refused."""
        ...

    def record_undo(self, commands: list[UndoCommand]) -> None:
        """Keep the host undo commands of the addons' pods (all so far, each call) for the cluster's teardown; a
        site whose nodes take their host changes with them ignores them."""
        ...


@runtime_checkable
class RealNodes(Protocol):
    """Ability: nodes that run containers (pod mode)."""

    node_selector: Mapping[str, str]
    """Selects the real nodes (traffic-carrying and host-touching workloads never land on simulated ones)."""
    host_metrics: Mapping[str, str]
    """Host-process metrics endpoints of the real nodes (``fake-gpu-plugin`` → ``127.0.0.1:PORT``), reachable from a
    host-network pod only; {} when there are none."""

    def load_image(self, archive: Path) -> None:
        """Import an image archive into the container runtime of the real nodes (no registry, no pull)."""
        ...


@runtime_checkable
class HostProcesses(Protocol):
    """Ability: run an addon's binary as a supervised process on the machine of the control plane (host mode)."""

    workdir: Path
    """Where each host process gets a directory of its own (under the cluster's run directory)."""

    def supervisor(self) -> Supervisor:
        """The cluster's supervisor: what it starts, the cluster's teardown stops."""
        ...


def placement(addon: Addon, *, provider: str, real_nodes: bool, host_processes: bool, cluster: str = "") -> str:
    """``pod`` (on the real nodes) or ``host`` (a host process) for ``addon`` on a cluster of ``provider`` with these
    abilities; ConfigError, one line naming the addon and the provider, when it can run neither way there."""
    if real_nodes:
        return "pod"
    where = f"cluster {cluster!r} (provider {provider!r})" if cluster else f"a cluster of provider {provider!r}"
    if not addon.needs_real_node and addon.workload is None:  # manifests only: nothing runs anywhere
        return "host"
    if addon.needs_real_node or addon.host is None:
        raise ConfigError(f"addon {addon.name} runs on the real node; {where} has none")
    if not host_processes:
        raise ConfigError(f"addon {addon.name} needs a host process beside the control plane where there is no real "
                          f"node, and provider {provider!r} cannot run one")
    return "host"


def site_placement(addon: Addon, site: AddonSite) -> str:
    """:func:`placement` for a site in hand."""
    return placement(addon, provider=site.provider, real_nodes=isinstance(site, RealNodes),
                     host_processes=isinstance(site, HostProcesses), cluster=site.cluster)
