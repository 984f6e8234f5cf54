"""The ``local`` provider (the embedded default): a real control plane as local processes on 127.0.0.1, simulated GPU
node pools played by KWOK (tier S), and optionally one real kubelet node with fake GPUs (tier R, root).

Modules: ``cluster`` (the provider: run directory, bring-up as named actions run by the provider kit
(harness/providers/kit.py), teardown, abilities), ``components`` (pure argv builders of the control plane),
``addonsite`` (the cluster as the addon installer's site), ``realnode`` and ``linuxhost`` (the real node and the
host changes it makes and undoes), ``profile`` (its ``PROFILE_SECTION``: the generic fields, no section of its
own).  Its daemons run under harness/hostproc.py's supervisor and its simulated nodes
come from harness/nodes.py, both shared with the addons.  Registered as the entry point
``local = harness.providers.local:open_cluster``; nothing outside harness/providers and the project's own tests
imports it by name (suites ask the registry: ``harness.providers.cluster_of``, ``ensure_addons``).
"""

from harness.providers.local.cluster import STOP_ORDER, LocalCluster, open_cluster
from harness.providers.local.profile import PROFILE_SECTION

__all__ = ["PROFILE_SECTION", "STOP_ORDER", "LocalCluster", "open_cluster"]
