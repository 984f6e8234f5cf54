"""Cluster facts: what a cluster offers the checks, beyond its tier.  The one list of them.

A check asks for facts in its marker (``@pytest.mark.aiconform(..., capabilities=("networkpolicy",))``) and is
skipped, with the reason, on a cluster that lacks them.  A provider declares the facts of the clusters it makes
(``ProviderInfo.facts``); on a cluster it did not make, each fact is detected from what the API serves
(harness/detect.py, one detector per fact here), and the user may declare one instead
(``aiconform run --kubeconfig KC --capability networkpolicy``): declared wins, and the report says which.

Provider *abilities* (what a provider can do to a cluster: add nodes, load images, …) are a different thing and live
in harness/providers/base.py.  Imports nothing from the harness but its error tree.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.contract import GATEWAY_PORT, PROMETHEUS_PORT, SIMULATED_TAINT, SIMULATED_TAINT_TEXT
from harness.errors import ConfigError

FACTS: dict[str, str] = {
    "networkpolicy": "a NetworkPolicy implementation enforces policies (the CNI or a policy agent)",
    "gang-scheduling": "a gang scheduler admits a group of pods all or nothing (Kueue, Volcano, coscheduling)",
    "native-gang": "the Workload/PodGroup API (scheduling.k8s.io/v1beta1, GenericWorkload gate) with kube-scheduler's "
                   "GangScheduling plugin",
    "kueue": "Kueue admits workloads through ClusterQueues/LocalQueues (with its webhooks), all or nothing",
    "dra": "Dynamic Resource Allocation with a GPU DRA driver publishing ResourceSlices",
    "dra-partitionable-devices": "DRA partitionable devices: MIG partitions and their whole GPU share counters",
    "dra-consumable-capacity": "DRA consumable capacity: a time-sliced GPU is allocated to several claims",
    "dra-device-taints": "DRA device taints: an unhealthy GPU is tainted and not allocated",
    "simulated-nodes": f"KWOK plays the kubelet of nodes annotated {SIMULATED_TAINT['key']}={SIMULATED_TAINT['value']} "
                       f"(property sandboxes add them); aiconform's carry the taint {SIMULATED_TAINT_TEXT}, which "
                       "only the pods it means for them tolerate",
    "device-plugin": "GPUs are advertised by a device plugin through a real kubelet",
    "gateway-api": "a Gateway API implementation programs Gateways of GatewayClass 'traefik' on the real node's address "
                   f"(listener port {GATEWAY_PORT}) and routes HTTPRoutes",
    "prometheus": "Prometheus scrapes pods that ask for it (Kubernetes service discovery) and the GPUs' DCGM metrics, "
                  f"answering on port {PROMETHEUS_PORT} of the real node (harness/addons/prometheus.py)",
    "custom-metrics": "custom.metrics.k8s.io is served through the aggregator from Prometheus (prometheus-adapter)",
    "model-server": "the reference model server image (reference_workloads/serving) is on the real nodes",
    "node-autoscaling": "a node autoscaler (Karpenter, cluster-autoscaler) adds nodes for pending pods and removes "
                        "the ones it added once they are empty",
    "trainer": "Kubeflow Trainer runs TrainJobs (its CRDs and validating webhooks, on JobSet)",
}


def validate_facts(names: Iterable[str], *, where: str = "--capability") -> frozenset[str]:
    """The names as a set, or ConfigError naming the first unknown one and listing the known facts."""
    out = set()
    for name in names:
        if name not in FACTS:
            raise ConfigError(f"{where}: unknown cluster fact {name!r}; known facts: {', '.join(sorted(FACTS))}")
        out.add(name)
    return frozenset(out)


NATIVE_GANG_GATE = "GenericWorkload"
NATIVE_GANG_API = "scheduling.k8s.io/v1beta1"


def control_plane_facts(feature_gates: dict[str, dict[str, bool]], runtime_config: dict[str, str]) -> list[str]:
    """Facts a control plane's own settings give (component → gates, ``--runtime-config``): ``native-gang`` and
    ``gang-scheduling`` when the apiserver serves the gang API and the scheduler has the gate on."""
    served = str(runtime_config.get(NATIVE_GANG_API, "")).lower() == "true"
    gated = all(feature_gates.get(c, {}).get(NATIVE_GANG_GATE) for c in ("kube-apiserver", "kube-scheduler"))
    return ["native-gang", "gang-scheduling"] if served and gated else []
