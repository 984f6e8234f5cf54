"""The ``kind`` provider: tier R on kind nodes (Docker containers), air-gapped.

Modules: ``engine`` (the harness-managed dockerd and the Docker SDK client), ``nodeimage`` (the offline node image:
``aiconform node-image build``), ``kindconfig`` (the kind config from a profile: pure), ``network`` (CNI config and
routes per node, in place of kindnetd), ``gpustack`` (the fake GPU plugin as a DaemonSet), ``cluster`` (the
provider: bring-up as named actions, teardown, abilities), ``profile`` (the profile's ``kind:`` section:
``PROFILE_SECTION``, read by harness/config.py through the registry).  Registered as the entry point
``kind = harness.providers.kind:open_cluster``.
"""

from harness.providers.kind.cluster import NO_UPGRADE, PROVIDER, KindCluster, open_cluster
from harness.providers.kind.profile import PROFILE_SECTION, KindSpec, KindWorker, kind_spec

__all__ = ["NO_UPGRADE", "PROFILE_SECTION", "PROVIDER", "KindCluster", "KindSpec", "KindWorker", "kind_spec",
           "open_cluster"]
