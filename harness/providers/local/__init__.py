"""The ``local`` provider (the embedded default): a real control plane as local processes on 127.0.0.1, simulated GPU
node pools played by KWOK (tier S), and optionally one real kubelet node with fake GPUs (tier R, root).

Modules: ``cluster`` (the provider: run directory, bring-up as named actions, teardown, abilities), ``actions`` (the
action pipeline and its undo), ``components`` (pure argv builders of the control plane), ``supervisor`` (daemons
with pidfiles and logs, shared by the control plane and the real node), ``nodes`` (simulated Node objects),
``realnode`` and ``linuxhost`` (the real node and the host changes it makes and undoes), ``profile`` (its
``PROFILE_SECTION``: the generic fields, no section of its own).  Registered as the entry
point ``local = harness.providers.local:open_cluster``.
"""

from harness.providers.common import free_port, state_root
from harness.providers.local.addons import ensure_addons
from harness.providers.local.cluster import STOP_ORDER, LocalCluster, open_cluster, write_kubeconfig
from harness.providers.local.nodes import (
    FAKE_NODE_IP,
    LABEL_CLUSTER,
    LABEL_POOL,
    LABEL_SIMULATED,
    SIM_ANNOTATION,
    create_nodes,
    node_ready,
    register_nodes,
    simulated_node,
)
from harness.providers.local.profile import PROFILE_SECTION

__all__ = [
    "FAKE_NODE_IP", "LABEL_CLUSTER", "LABEL_POOL", "LABEL_SIMULATED", "PROFILE_SECTION", "SIM_ANNOTATION", "STOP_ORDER",
    "LocalCluster", "create_nodes", "ensure_addons", "free_port", "node_ready", "open_cluster", "register_nodes",
    "simulated_node", "state_root", "write_kubeconfig",
]
