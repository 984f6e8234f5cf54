"""The ``kind`` provider: tier R on kind nodes (Docker containers), air-gapped.

Modules: ``engine`` (the harness-managed dockerd and the Docker SDK client), ``nodeimage`` (the offline node image:
``aiconform node-image build``), ``kindconfig`` (the kind config from a profile: pure), ``network`` (CNI config and
routes per node, in place of kindnetd), ``gpustack`` (the fake GPU plugin as a DaemonSet), ``cluster`` (the
provider: bring-up as named actions, teardown, abilities).  Registered as the entry point
``kind = harness.providers.kind:open_cluster``.
"""

from harness.providers.kind.cluster import NO_UPGRADE, PROVIDER, KindCluster, open_cluster

__all__ = ["NO_UPGRADE", "PROVIDER", "KindCluster", "open_cluster"]
