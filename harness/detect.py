"""Detect a cluster's facts (harness/facts.py) from what its API serves: one detector per fact.

``detect_facts(client)`` answers every fact in :data:`harness.facts.FACTS` with an :class:`Evidence`: present or
not, and what was read to say so (``APIService v1beta1.custom.metrics.k8s.io Available=True``).  The detectors read
through :class:`ApiView` (discovery, lists, server-side dry runs, the apiserver's pod proxy), so their decisions can
be tested on recorded API answers; :class:`ClusterApi` is the view of a live cluster.  A fact the API cannot show
says so in its evidence (e.g. kube-scheduler's gate behind ``native-gang``).

Never installs anything a check judges: every read is a GET, every admission question a server-side dry run that
stores nothing.  The one probe that runs pods, :func:`probe_networkpolicy` (two pods and a default-deny policy, in a
namespace of its own labelled with the run id and deleted afterwards, bounded by a deadline), is opt-in.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from harness.contract import GPU_RESOURCE as GPU
from harness.contract import REAL_NODE_LABEL, SIMULATED_LABEL, SIMULATED_TAINT, SIMULATED_TAINT_TEXT
from harness.errors import AiconformError, ApiError, NotFound, WaitFailed, WaitTimeout
from harness.facts import FACTS, NATIVE_GANG_API
from harness.images import probe_image
from harness.kube import KubeClient, Obj

DETECTED, DECLARED, PROVIDER = "detected", "declared", "provider"
SOURCES = (DETECTED, DECLARED, PROVIDER)
"""Where a fact's answer comes from: detected here, declared with ``--capability``, or declared by the provider
that built the cluster."""

KWOK_ANNOTATION = (SIMULATED_TAINT["key"], SIMULATED_TAINT["value"])
"""What KWOK manages nodes by (aiconform's simulated nodes carry it as a taint, too; a foreign KWOK node may not)."""
SIMULATED_NODES_TAINTED = (f"its simulated nodes carry the taint {SIMULATED_TAINT_TEXT}, so pods nobody meant for them (a "
                           "third-party suite's, with no nodeSelector) never land there")
"""What the report says of the simulated nodes of a cluster aiconform made (the ``simulated-nodes`` fact)."""
PRODUCT_LABEL = "nvidia.com/gpu.product"
PROBE_DEADLINE_S = 60.0


@dataclass(frozen=True)
class Evidence:
    """One fact's answer: whether the cluster has it, what was read to say so, and who said it."""

    present: bool
    detail: str
    source: str = DETECTED

    def to_dict(self) -> dict[str, Any]:
        return {"present": self.present, "source": self.source, "evidence": self.detail}


def _yes(detail: str) -> Evidence:
    return Evidence(True, detail)


def _no(detail: str) -> Evidence:
    return Evidence(False, detail)


class ApiView(Protocol):
    """What the detectors read.  Each method raises :class:`~harness.errors.ApiError` when the server refuses."""

    def versions(self, group: str, kind: str) -> list[str]:
        """The ``group/version`` names that serve ``kind`` in ``group``, preferred first ([] when none does)."""
        ...

    def list(self, kind: str, api_version: str, *, label_selector: str | None = None) -> list[Obj]:
        """Every object of ``kind`` (all namespaces)."""
        ...

    def get(self, kind: str, api_version: str, name: str, namespace: str | None = None) -> Obj | None:
        """One object, None when it does not exist."""
        ...

    def dry_run_create(self, obj: Obj) -> tuple[Obj | None, str]:
        """A server-side dry-run create: (the object as it would be stored, "") or (None, the refusal message)."""
        ...

    def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        """GET ``path`` on a pod's port through the apiserver's pod proxy; the answer's text."""
        ...


class ClusterApi:
    """The :class:`ApiView` of a live cluster, through the harness's client."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def versions(self, group: str, kind: str) -> list[str]:
        return self.client.discovery.served_versions(kind, group)

    def list(self, kind: str, api_version: str, *, label_selector: str | None = None) -> list[Obj]:
        items: list[Obj] = self.client.list(kind, api_version=api_version, label_selector=label_selector)["items"]
        return items

    def get(self, kind: str, api_version: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self.client.get(kind, name, namespace, api_version=api_version)
        except NotFound:
            return None

    def dry_run_create(self, obj: Obj) -> tuple[Obj | None, str]:
        try:
            return self.client.create(copy.deepcopy(obj), dry_run=True), ""
        except ApiError as err:
            return None, err.message

    def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        text = self.client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}", raw=True)
        return str(text)


# -- helpers ------------------------------------------------------------------------------------------------------------


def _condition(obj: Obj, ctype: str) -> tuple[str, str]:
    """(status, message) of a status condition; ("Unknown", "no <type> condition") when absent."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return str(c.get("status", "Unknown")), str(c.get("message") or c.get("reason") or "")
    return "Unknown", f"no {ctype} condition"


def _name(obj: Obj) -> str:
    md = obj.get("metadata") or {}
    return f"{md['namespace']}/{md.get('name', '?')}" if md.get("namespace") else str(md.get("name", "?"))


def _line(text: str, limit: int = 240) -> str:
    one = " ".join(str(text).split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _some(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def simulated(node: Obj) -> bool:
    """A node whose kubelet is KWOK (or that the harness marked simulated)."""
    md = node.get("metadata") or {}
    return ((md.get("annotations") or {}).get(KWOK_ANNOTATION[0]) == KWOK_ANNOTATION[1]
            or (md.get("labels") or {}).get(SIMULATED_LABEL) == "true")


def node_ready(node: Obj) -> bool:
    return _condition(node, "Ready")[0] == "True"


# -- the detectors ---------------------------------------------------------------------------------------------------

Detector = Callable[[ApiView, Mapping[str, Evidence]], Evidence]
"""Reads the API (and the facts detected before it, for a fact made of others) and answers one fact."""


def detect_custom_metrics(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    from harness.addons.prometheus_adapter import GROUP

    services = [s for s in api.list("APIService", "apiregistration.k8s.io/v1")
                if (s.get("spec") or {}).get("group") == GROUP]
    if not services:
        return _no(f"no APIService registers {GROUP} with the aggregator")
    said = []
    for s in sorted(services, key=_name):
        status, message = _condition(s, "Available")
        svc = (s.get("spec") or {}).get("service") or {}
        backend = f" (Service {svc.get('namespace')}/{svc.get('name')})" if svc else ""
        if status == "True":
            return _yes(f"APIService {_name(s)} Available=True{backend}")
        said.append(f"APIService {_name(s)} Available={status}: {_line(message, 120)}")
    return _no("; ".join(said))


def detect_gateway_api(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    from harness.addons.traefik import GATEWAY_CLASS

    versions = api.versions("gateway.networking.k8s.io", "GatewayClass")
    if not versions:
        return _no("gateway.networking.k8s.io serves no GatewayClass (no Gateway API CRDs)")
    classes = api.list("GatewayClass", versions[0])
    accepted = {_name(c): c for c in classes if _condition(c, "Accepted")[0] == "True"}
    if GATEWAY_CLASS in accepted:
        controller = (accepted[GATEWAY_CLASS].get("spec") or {}).get("controllerName", "?")
        others = sorted(set(accepted) - {GATEWAY_CLASS})
        return _yes(f"GatewayClass {GATEWAY_CLASS} Accepted=True (controller {controller}, {versions[0]})"
                    + (f"; also Accepted: {_some(others)}" if others else ""))
    if accepted:
        return _no(f"GatewayClasses {_some(sorted(accepted))} are Accepted, but the checks route through class "
                   f"{GATEWAY_CLASS!r}, which is not")
    if classes:
        return _no("no GatewayClass is Accepted: " + "; ".join(
            f"{_name(c)} Accepted={_condition(c, 'Accepted')[0]}" for c in sorted(classes, key=_name)[:4]))
    return _no(f"{versions[0]} is served but there is no GatewayClass")


def _webhook_answers(api: ApiView, group: str, kind: str, probe_obj: Obj, webhook: str, what: str) -> Evidence:
    """Whether ``what``'s validating webhook ``webhook`` judges ``kind`` objects: a server-side dry run of an object
    only that webhook refuses (the installer's own probe) must come back denied by it."""
    versions = api.versions(group, kind)
    if not versions:
        return _no(f"{group} serves no {kind} ({what}'s CRDs are not installed)")
    obj = copy.deepcopy(probe_obj)
    obj["apiVersion"] = versions[0]
    _stored, refusal = api.dry_run_create(obj)
    if not refusal:
        return _no(f"{kind} is served ({versions[0]}), but a dry-run {kind} that {what}'s webhook {webhook} refuses "
                   f"was accepted: the webhook is not configured")
    if f'admission webhook "{webhook}" denied the request' in refusal:
        return _yes(f"{kind} served ({versions[0]}); {what}'s webhook {webhook} answered a server-side dry-run "
                    f"{kind} (and refused it, as it must)")
    return _no(f"{kind} is served ({versions[0]}), but the dry-run {kind} was refused before {what}'s webhook "
               f"judged it: {_line(refusal)}")


def detect_kueue(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    from harness.addons.kueue import ADDON

    assert ADDON.webhooks is not None
    probe = ADDON.webhooks.probes[0]
    return _webhook_answers(api, "kueue.x-k8s.io", probe.obj["kind"], probe.obj, probe.webhook, "Kueue")


def detect_trainer(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    from harness.addons.trainer import ADDON, invalid_trainjob

    assert ADDON.webhooks is not None
    webhook = ADDON.webhooks.probes[0].webhook
    found = _webhook_answers(api, "trainer.kubeflow.org", "TrainJob", invalid_trainjob("default"), webhook,
                             "Kubeflow Trainer")
    if found.present and not api.versions("jobset.x-k8s.io", "JobSet"):
        return _no(f"{found.detail}; but jobset.x-k8s.io serves no JobSet, which Trainer runs TrainJobs as")
    return found


def detect_native_gang(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    group = _group_of(NATIVE_GANG_API)
    missing = [k for k in ("Workload", "PodGroup") if NATIVE_GANG_API not in api.versions(group, k)]
    if missing:
        return _no(f"{NATIVE_GANG_API} does not serve {' or '.join(missing)} (the GenericWorkload gate or "
                   f"--runtime-config={NATIVE_GANG_API}=true is off in the apiserver)")
    return _yes(f"{NATIVE_GANG_API} serves Workload and PodGroup (kube-scheduler's GenericWorkload gate and "
                "GangScheduling plugin are not visible through the API: a scheduler without them fails the check)")


def detect_gang_scheduling(_api: ApiView, known: Mapping[str, Evidence]) -> Evidence:
    by = [f"{fact}: {known[fact].detail}" for fact in ("kueue", "native-gang") if known[fact].present]
    if by:
        return _yes("; ".join(by))
    return _no("neither Kueue nor the native Workload/PodGroup API answers (other gang schedulers, e.g. Volcano, are "
               "not detected: declare them with --capability gang-scheduling)")


def _dra(api: ApiView) -> tuple[list[Obj], list[Obj], str]:
    """(DeviceClasses, ResourceSlices of the GPU driver, "") or ([], [], why not)."""
    from fake_gpu_plugin.dra_devices import API_VERSION, DRIVER

    if API_VERSION not in api.versions("resource.k8s.io", "ResourceSlice"):
        return [], [], f"the apiserver serves no {API_VERSION} ResourceSlice"
    classes = api.list("DeviceClass", API_VERSION)
    slices = [s for s in api.list("ResourceSlice", API_VERSION) if (s.get("spec") or {}).get("driver") == DRIVER]
    if DRIVER not in {_name(c) for c in classes}:
        return [], [], (f"no DeviceClass {DRIVER} (DeviceClasses: {_some(sorted(_name(c) for c in classes)) or 'none'})")
    if not any((s.get("spec") or {}).get("devices") for s in slices):
        return [], [], f"DeviceClass {DRIVER} exists, but no ResourceSlice of driver {DRIVER} publishes a device"
    return classes, slices, ""


def _devices(slices: list[Obj]) -> list[Obj]:
    return [d for s in slices for d in (s.get("spec") or {}).get("devices") or []]


def detect_dra(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    from fake_gpu_plugin.dra_devices import DRIVER

    classes, slices, why = _dra(api)
    if why:
        return _no(why)
    nodes = {(s.get("spec") or {}).get("nodeName") for s in slices} - {None}
    return _yes(f"DeviceClasses {_some(sorted(_name(c) for c in classes))}; {len(slices)} ResourceSlices of driver "
                f"{DRIVER} publish {len(_devices(slices))} devices on {len(nodes)} nodes")


_PROBE_SLICE_DRIVER = "detect.aiconform.io"


def _probe_slice(body: Obj) -> Obj:
    """A ResourceSlice for a dry run only (a driver name no driver uses)."""
    from fake_gpu_plugin.dra_devices import API_VERSION

    return {"apiVersion": API_VERSION, "kind": "ResourceSlice", "metadata": {"name": "aiconform-detect-probe"},
            "spec": {"driver": _PROBE_SLICE_DRIVER, "allNodes": True,
                     "pool": {"name": "aiconform-detect-probe", "generation": 1, "resourceSliceCount": 1}, **body}}


def _dra_feature(api: ApiView, *, what: str, gate: str, used: Callable[[Obj], bool], stored: str,
                 probe: Obj, kept: Callable[[Obj], bool]) -> Evidence:
    """A DRA feature the apiserver keeps only with its gate on: shown by a published slice that uses it, else by a
    server-side dry run of a slice that uses it (the apiserver drops the fields of a gate that is off)."""
    _classes, slices, why = _dra(api)
    if why:
        return _no(why)
    users = [s for s in slices if used(s)]
    if users:
        return _yes(f"{len(users)} ResourceSlices publish {what} ({stored}, e.g. {_name(users[0])})")
    answer, refusal = api.dry_run_create(_probe_slice(probe))
    if answer is None:
        return _no(f"no published slice uses {what}, and a dry-run slice with it was refused: {_line(refusal)}")
    if kept(answer.get("spec") or {}):
        return _yes(f"no published slice uses {what} yet; a server-side dry-run ResourceSlice kept {stored} (the "
                    f"apiserver's {gate} gate is on)")
    return _no(f"the apiserver dropped {stored} from a dry-run ResourceSlice ({gate} off) and no slice publishes "
               f"{what}")


def detect_partitionable(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    counters = [{"name": "probe", "counters": {"slices": {"value": "1"}}}]
    return _dra_feature(api, what="partitionable devices", gate="DRAPartitionableDevices",
                        used=lambda s: bool((s.get("spec") or {}).get("sharedCounters")),
                        stored="sharedCounters", probe={"sharedCounters": counters},
                        kept=lambda spec: bool(spec.get("sharedCounters")))


def detect_consumable_capacity(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    return _dra_feature(api, what="devices with consumable capacity", gate="DRAConsumableCapacity",
                        used=lambda s: any(d.get("allowMultipleAllocations") for d in _devices([s])),
                        stored="allowMultipleAllocations",
                        probe={"devices": [{"name": "probe-0", "allowMultipleAllocations": True,
                                            "capacity": {"memory": {"value": "1Gi"}}}]},
                        kept=lambda spec: any(d.get("allowMultipleAllocations") for d in spec.get("devices") or []))


def detect_device_taints(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    from fake_gpu_plugin.dra_devices import API_VERSION

    rule = API_VERSION in api.versions("resource.k8s.io", "DeviceTaintRule")
    found = _dra_feature(api, what="device taints", gate="DRADeviceTaints",
                         used=lambda s: any(d.get("taints") for d in _devices([s])), stored="devices[].taints",
                         probe={"devices": [{"name": "probe-0", "taints": [
                             {"key": "aiconform.io/probe", "value": "true", "effect": "NoSchedule"}]}]},
                         kept=lambda spec: any(d.get("taints") for d in spec.get("devices") or []))
    if found.present and rule:
        return _yes(f"{found.detail}; {API_VERSION} serves DeviceTaintRule")
    return found


def detect_simulated_nodes(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    fake = [n for n in api.list("Node", "v1")
            if ((n.get("metadata") or {}).get("annotations") or {}).get(KWOK_ANNOTATION[0]) == KWOK_ANNOTATION[1]]
    ready = sorted(_name(n) for n in fake if node_ready(n))
    key = "=".join(KWOK_ANNOTATION)
    if ready:
        tainted = sum(1 for n in fake if dict(SIMULATED_TAINT) in ((n.get("spec") or {}).get("taints") or []))
        return _yes(f"{len(ready)} of {len(fake)} nodes annotated {key} are Ready (KWOK keeps them: e.g. "
                    f"{_some(ready, 3)}); {tainted} of {len(fake)} carry the taint {SIMULATED_TAINT_TEXT}"
                    + ("" if tainted == len(fake) else ": a pod with no nodeSelector may land on the others"))
    if fake:
        return _no(f"{len(fake)} nodes are annotated {key}, none Ready: nothing plays their kubelet")
    return _no(f"no node is annotated {key} (no KWOK-managed node to show a KWOK controller runs)")


def detect_device_plugin(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    found = []
    for n in api.list("Node", "v1"):
        gpus = int(str(((n.get("status") or {}).get("allocatable") or {}).get(GPU, 0) or 0))
        if simulated(n) or not node_ready(n) or gpus <= 0:
            continue
        product = ((n.get("metadata") or {}).get("labels") or {}).get(PRODUCT_LABEL, "no GPU product label")
        kubelet = ((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "?")
        found.append(f"{_name(n)} ({gpus} {GPU}, {product}, kubelet {kubelet})")
    if found:
        return _yes(f"a kubelet advertises {GPU} on {len(found)} Ready node(s): {_some(sorted(found), 3)}")
    return _no(f"no Ready node with a real kubelet has allocatable {GPU}")


def detect_prometheus(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    from harness.addons.prometheus import PORT

    pods = api.list("Pod", "v1", label_selector="app.kubernetes.io/name=prometheus")
    ready = [p for p in pods if _condition(p, "Ready")[0] == "True"]
    if not ready:
        return _no("no Ready pod labelled app.kubernetes.io/name=prometheus"
                   + (f" ({len(pods)} not Ready)" if pods else ""))
    said = []
    for p in sorted(ready, key=_name):
        md = p["metadata"]
        try:
            answer = api.proxy_get(md["namespace"], md["name"], PORT, "/-/ready")
        except ApiError as err:
            said.append(f"pod {_name(p)} did not answer /-/ready on port {PORT}: {_line(err.message, 120)}")
            continue
        where = (p.get("spec") or {}).get("nodeName", "?")
        host = ", hostNetwork" if (p.get("spec") or {}).get("hostNetwork") else ""
        return _yes(f"pod {_name(p)} on node {where}{host} answered /-/ready on port {PORT} through the API's pod "
                    f"proxy: {_line(answer, 80)}")
    return _no("; ".join(said))


def detect_model_server(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    """The reference model server's image where the cluster's nodes can get it: in the run's registry
    (``--image-registry``, asked for its manifest), else imported on a Ready real node (node status images)."""
    from harness.images import get, image_ref, image_registry
    from harness.images.push import RegistryClient, RegistryError

    ref = image_ref("model-server")
    registry = image_registry()
    if registry is not None:
        repo, tag = registry.repository(get("model-server").ref)
        try:
            digest = RegistryClient(registry, timeout=15).manifest_digest(repo, tag)
        except RegistryError as err:
            return _no(f"registry {registry.host} did not answer for {ref}: {_line(str(err), 160)}")
        if digest is None:
            return _no(f"registry {registry.host} has no {ref} (push it: aiconform images push --registry "
                       f"{registry.prefix} model-server)")
        return _yes(f"registry {registry.host} has {ref} ({digest}); the suites' pods pull it from there")
    holders = sorted(_name(n) for n in api.list("Node", "v1") if not simulated(n) and node_ready(n)
                     and any(ref in (i.get("names") or []) for i in (n.get("status") or {}).get("images") or []))
    if holders:
        return _yes(f"image {ref} is on Ready node(s) {_some(holders)} (node status images)")
    return _no(f"no Ready node with a real kubelet lists image {ref} in its status")


def detect_node_autoscaling(api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    said = []
    versions = api.versions("karpenter.sh", "NodePool")
    if versions:
        pools = api.list("NodePool", versions[0])
        ready = sorted(_name(p) for p in pools if _condition(p, "Ready")[0] == "True")
        if ready:
            return _yes(f"Karpenter marks NodePool(s) {_some(ready)} Ready ({versions[0]})")
        said.append(f"Karpenter's NodePool is served ({versions[0]}) but no NodePool is Ready"
                    + (f" ({_some(sorted(_name(p) for p in pools))})" if pools else " (none exists)"))
    status = api.get("ConfigMap", "v1", "cluster-autoscaler-status", "kube-system")
    if status is not None:
        text = str((status.get("data") or {}).get("status", ""))
        health = next((line.strip() for line in text.splitlines() if "health" in line.lower()
                       or "autoscalerstatus" in line.lower()), "")
        return _yes("cluster-autoscaler writes ConfigMap kube-system/cluster-autoscaler-status"
                    + (f" ({_line(health, 100)})" if health else ""))
    said.append("no cluster-autoscaler status ConfigMap (kube-system/cluster-autoscaler-status)")
    return _no("; ".join(said))


def detect_networkpolicy_unprobed(_api: ApiView, _known: Mapping[str, Evidence]) -> Evidence:
    return _no("not probed: only running pods under a default-deny policy shows enforcement (the probe was not "
               "asked for)")


DETECTORS: dict[str, Detector] = {
    "networkpolicy": detect_networkpolicy_unprobed,
    "native-gang": detect_native_gang,
    "kueue": detect_kueue,
    "gang-scheduling": detect_gang_scheduling,  # after kueue and native-gang: made of them
    "dra": detect_dra,
    "dra-partitionable-devices": detect_partitionable,
    "dra-consumable-capacity": detect_consumable_capacity,
    "dra-device-taints": detect_device_taints,
    "simulated-nodes": detect_simulated_nodes,
    "device-plugin": detect_device_plugin,
    "gateway-api": detect_gateway_api,
    "prometheus": detect_prometheus,
    "custom-metrics": detect_custom_metrics,
    "model-server": detect_model_server,
    "node-autoscaling": detect_node_autoscaling,
    "trainer": detect_trainer,
}
"""One detector per fact of harness/facts.py, in an order where a fact made of others comes after them."""


def detect_from(api: ApiView) -> dict[str, Evidence]:
    """Every fact answered from what ``api`` serves (the NetworkPolicy probe aside), in FACTS order.  A detector
    the server refuses to answer (an ApiError) says so as its evidence instead of failing the rest."""
    found: dict[str, Evidence] = {}
    for fact, detector in DETECTORS.items():
        try:
            found[fact] = detector(api, found)
        except ApiError as err:
            found[fact] = _no(f"the API refused a read: {_line(err.message)}")
    return {fact: found[fact] for fact in FACTS}


def detect_facts(client: KubeClient, *, probe: bool = False, run_id: str = "", image: str | None = None,
                 deadline_s: float = PROBE_DEADLINE_S) -> dict[str, Evidence]:
    """Every fact of a live cluster with its evidence.  ``probe``: also run the NetworkPolicy probe (pods in a
    namespace labelled with ``run_id``, at most ``deadline_s`` seconds)."""
    client.discovery.invalidate()  # CRDs installed since this client last looked count too
    found = detect_from(ClusterApi(client))
    if probe:
        try:
            found["networkpolicy"] = probe_networkpolicy(client, run_id=run_id, image=image, deadline_s=deadline_s)
        except ApiError as err:
            found["networkpolicy"] = _no(f"not detected: the probe could not list the nodes: {_line(err.message)}")
    return found


def merge(detected: Mapping[str, Evidence], declared: frozenset[str]) -> dict[str, Evidence]:
    """Detected facts with the user's declarations on top: a declared fact is present, marked declared, and keeps
    what detection said next to it."""
    out = dict(detected)
    for fact in declared:
        seen = detected.get(fact)
        said = f"; detection: {'present' if seen.present else 'absent'} ({seen.detail})" if seen else ""
        out[fact] = Evidence(True, f"declared with --capability {fact}{said}", DECLARED)
    return out


def declared_by_provider(facts: frozenset[str], provider: str, profile: str) -> dict[str, Evidence]:
    """The facts of a cluster the harness built: what its provider declared for the profile, every other fact
    absent."""
    by = f"provider {provider}" + (f" (profile {profile})" if profile else "")
    out = {fact: Evidence(fact in facts, f"{'declared' if fact in facts else 'not declared'} by {by}", PROVIDER)
           for fact in FACTS}
    if "simulated-nodes" in facts:
        out["simulated-nodes"] = Evidence(True, f"declared by {by}; {SIMULATED_NODES_TAINTED}", PROVIDER)
    return out


# -- the NetworkPolicy probe -----------------------------------------------------------------------------------------


def runnable_node(nodes: list[Obj]) -> str | None:
    """A node that runs pods: Ready, schedulable, not simulated, with no NoSchedule/NoExecute taint but the GPU
    one (which the probe tolerates); the real node the harness labels first."""

    def fits(n: Obj) -> bool:
        taints = [t for t in (n.get("spec") or {}).get("taints") or []
                  if t.get("effect") in ("NoSchedule", "NoExecute") and t.get("key") != GPU]
        return node_ready(n) and not simulated(n) and not (n.get("spec") or {}).get("unschedulable") and not taints

    ok = sorted((n for n in nodes if fits(n)),
                key=lambda n: (((n.get("metadata") or {}).get("labels") or {}).get(REAL_NODE_LABEL) != "true",
                               _name(n)))
    return _name(ok[0]) if ok else None


def probe_networkpolicy(client: KubeClient, *, run_id: str, image: str | None = None,
                        deadline_s: float = PROBE_DEADLINE_S) -> Evidence:
    """Whether something enforces NetworkPolicy, shown with pods: a client pod reaches a server pod; after a
    default-deny ingress policy on the server's namespace, a client's request fails.  Everything lives in one
    namespace labelled with the run id (removed by the existing provider's cleanup if this process dies) and is
    deleted at the end; the whole probe is bounded by ``deadline_s``."""
    from harness.testing import LABEL_RUN, label_value
    from harness.workloads import pod, pod_failure

    node = runnable_node(client.list("Node")["items"])
    if node is None:
        return _no("not detected: no node runs pods (every node is simulated, NotReady, cordoned or tainted)")
    image = image or probe_image()  # busybox's httpd and wget
    ns = f"aiconform-detect-{secrets.token_hex(3)}"
    end = time.monotonic() + deadline_s

    def left() -> float:
        return max(1.0, end - time.monotonic())

    place = {"kubernetes.io/hostname": node}
    try:
        client.create({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": ns, "labels": {LABEL_RUN: label_value(run_id or "detect")}}})
        client.wait_all("ServiceAccount", [f"{ns}/default"], lambda _o: True, namespace=ns, timeout=left())
        client.create(pod("server", image=image, labels={"app": "server"}, node_selector=place,
                          command=["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && httpd -f -p 8080 -h /www"]),
                      ns)
        server = client.wait_for(
            "Pod", namespace=ns, name="server", timeout=left(), what=f"the probe's server pod on node {node}",
            condition=lambda s: bool(s) and bool(_only(s)["status"].get("podIP"))
            and _only(s)["status"].get("phase") == "Running",
            failure=lambda s: pod_failure(_only(s)) if s else None)
        url = f"http://{_only(server)['status']['podIP']}:8080/"

        def request(name: str) -> str:
            client.create(pod(name, image=image, node_selector=place,
                              command=["timeout", "5", "wget", "-q", "-O-", url]), ns)
            done = client.wait_for("Pod", namespace=ns, name=name, timeout=left(), what=f"probe client {name}",
                                   condition=lambda s: bool(s) and _only(s)["status"].get("phase")
                                   in ("Succeeded", "Failed"))
            return str(_only(done)["status"]["phase"])

        if request("client-before") != "Succeeded":
            return _no(f"not detected: a probe pod on node {node} could not reach the server pod before any policy "
                       f"(pod networking), so the probe proves nothing")
        client.create({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "deny-all"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}, ns)
        applied = time.monotonic()
        for attempt in range(1, 100):
            if request(f"client-denied-{attempt}") == "Failed":
                return _yes(f"on node {node}: a pod reached the server pod, and {time.monotonic() - applied:.0f}s "
                            f"after a default-deny ingress NetworkPolicy the same request failed (attempt {attempt})")
            if time.monotonic() >= end:
                break
        return _no(f"not detected: the server pod on node {node} still answered {time.monotonic() - applied:.0f}s "
                   f"after a default-deny ingress NetworkPolicy: nothing enforces NetworkPolicy")
    except WaitFailed as err:
        return _no(f"not detected: the probe's pods could not run on node {node} (image {image}): {_line(str(err))}")
    except WaitTimeout as err:
        return _no(f"not detected: the probe did not finish in {deadline_s:.0f}s: {_line(str(err))}")
    except AiconformError as err:
        return _no(f"not detected: the probe broke: {_line(str(err))}")
    finally:
        try:
            client.delete("Namespace", ns, grace_period=0)
        except ApiError:
            pass  # labelled with the run id: the existing provider's cleanup removes it


def _only(state: Mapping[str, Obj]) -> Obj:
    """The one object a wait on one name sees."""
    return next(iter(state.values()))
