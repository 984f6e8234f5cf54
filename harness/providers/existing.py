"""The ``existing`` provider: any cluster the harness did not make, reached through its kubeconfig (tier G on a
GPU cluster, or a tier S/R cluster someone else started).

It never creates or deletes the cluster.  ``create`` only checks that the kubeconfig's API answers and returns the
kubeconfig; ``delete`` removes what the harness labelled with this run's id (``aiconform.io/run=<run id>``:
tenant namespaces and sandbox nodes a crashed check left behind) and nothing else; without a run id it removes
nothing.  Its facts here are the ones the user declared (``--capability``); ``aiconform run`` detects the others from
what the API serves (harness/detect.py) and the report says which is which; the tier is detected from the nodes.
It has no abilities: it cannot add nodes, load images or restart anything it did not make.
It owns no profile section; its profile spec (``PROFILE_SECTION``) states tier G until the nodes say otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import Fields, Profile, ProfileSection
from harness.errors import ConfigError, KubeError, KubeUnreachable
from harness.kube import KubeClient, KubeConfig
from harness.providers.base import ClusterStatus, ProviderInfo, ProviderOptions, provider_info

NAME = "existing"


@dataclass(frozen=True)
class ExistingSpec:
    """What a profile can say of a cluster the harness did not make: take it as the real thing (tier G; the running
    cluster's tier is detected from its nodes, :meth:`ExistingCluster.info`); its nodes are not the profile's."""

    def tier(self, profile: Profile) -> str:
        return "G"

    def node_count(self, profile: Profile) -> int:
        return 0


class ExistingSection:
    """The existing provider's hook into profile parsing (config.ProfileSection): no key of its own."""

    key = ""
    holds = ""

    def parse(self, fields: Fields, profile: Mapping[str, Any]) -> ExistingSpec:
        return ExistingSpec()


PROFILE_SECTION: ProfileSection = ExistingSection()


class ExistingCluster:
    """A cluster reached through ``kubeconfig``; ``name`` only labels it in messages and the report."""

    def __init__(self, name: str, kubeconfig: Path, *, facts: frozenset[str] = frozenset(), run_id: str = "") -> None:
        self.name = name
        self._kubeconfig = kubeconfig
        self.facts = facts
        self.run_id = run_id
        self._api: KubeClient | None = None

    def _client(self) -> KubeClient:
        """One client per provider object (KubeConfigError when the kubeconfig is missing or unusable)."""
        if self._api is None:
            self._api = KubeClient(KubeConfig.from_file(self._kubeconfig))
        return self._api

    def kubeconfig(self) -> Path:
        return self._kubeconfig

    def is_up(self) -> bool:
        try:
            return self._client().healthz("/readyz")
        except KubeError:
            return False

    def create(self, profile: Profile) -> Path:
        """Nothing to bring up: check the API answers (KubeConfigError for a missing or broken kubeconfig,
        KubeUnreachable when it does not answer) and return the kubeconfig."""
        client = self._client()
        if not client.healthz("/readyz"):
            raise KubeUnreachable(f"the cluster in {self._kubeconfig} does not answer "
                                  f"(GET {client.config.server}/readyz failed)")
        return self._kubeconfig

    def delete(self) -> bool:
        """Remove namespaces and nodes labelled with this run's id; the cluster itself is never touched.  Returns
        whether anything was removed (always False without a run id)."""
        if not self.run_id:
            return False
        from harness.testing import LABEL_RUN, label_value  # the pytest seam owns the run label

        client = self._client()
        removed = False
        for kind in ("Namespace", "Node"):
            for obj in client.list(kind, label_selector=f"{LABEL_RUN}={label_value(self.run_id)}")["items"]:
                client.delete(kind, obj["metadata"]["name"], grace_period=0)
                removed = True
        return removed

    def status(self) -> ClusterStatus:
        client = self._client()
        healthy = client.healthz("/readyz")
        try:
            version = client.server_version().lstrip("v") if healthy else ""
        except KubeError:
            version = ""
        return ClusterStatus(name=self.name, provider=NAME, healthy=healthy, kubeconfig=str(self._kubeconfig),
                             tier=self._tier(client) if healthy else "", kubernetes_version=version,
                             server=client.config.server)

    def _tier(self, client: KubeClient) -> str:
        from harness.testing import detect_tier

        return detect_tier(client)

    def collect_logs(self, dest: Path) -> list[Path]:
        return []  # the components' logs belong to whoever runs the cluster

    def info(self) -> ProviderInfo:
        client = self._client()
        try:
            version = client.server_version().lstrip("v")
        except KubeError:
            version = ""
        return provider_info(self, provider=NAME, name=self.name, tier=self._tier(client), facts=self.facts,
                             kubernetes_version=version, profile=NAME, kubeconfig=str(self._kubeconfig),
                             fake="nothing the harness knows of (an existing cluster)")


def open_cluster(name: str, options: ProviderOptions) -> ExistingCluster:
    """Registry entry point."""
    if options.kubeconfig is None:
        raise ConfigError("provider 'existing' has nothing to bring up: run the suites with "
                          "`aiconform run --kubeconfig FILE`")
    return ExistingCluster(name, options.kubeconfig, facts=options.facts, run_id=options.run_id)
