"""Dynamic Resource Allocation in a local cluster: the DeviceClasses, and ResourceSlices for simulated nodes.

Owns the cluster side of DRA that no kubelet plugin provides: it checks that the apiserver serves
``resource.k8s.io/v1`` (the API is the one to say so), applies the DeviceClasses ``gpu.nvidia.com``,
``mig.nvidia.com`` and one per MIG profile in use, and publishes, for every simulated (KWOK) node of a pool with
``dra: true``, the very ResourceSlices fake_gpu_plugin's DRA driver publishes for a real node
(``fake_gpu_plugin.dra_devices``, the one owner of the format): the real kube-scheduler's DRA allocator then runs
on hundreds of nodes.  The real node's slices are its driver's (fake_gpu_plugin.dra_plugin), never written here.
Also answers how many GPUs DRA offers (tier detection, GPU totals).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fake_gpu_plugin.dra_devices import (
    API_VERSION,
    DRIVER,
    FEATURE_GATES,
    device_classes,
    features_used,
    gpu_devices_of_slices,
    resource_slices,
)
from fake_gpu_plugin.inventory import build_inventory
from harness.config import Pool, Profile, dra_configs
from harness.contract import SIMULATED_LABEL
from harness.errors import AiconformError, ClusterError, Conflict
from harness.kube import KubeClient

Progress = Callable[[str], None]

SIM_SLICE_LABEL = "aiconform.io/dra-simulated"
"""On every slice the harness publishes for a simulated node (value: the pool)."""
FEATURE_FACTS = {"partitionable": "dra-partitionable-devices", "consumable-capacity": "dra-consumable-capacity",
                 "device-taints": "dra-device-taints"}
"""DRA feature → the cluster fact a profile with it declares (harness/facts.py)."""


def served(client: KubeClient) -> bool:
    """Whether the apiserver serves resource.k8s.io/v1 (its discovery document says so)."""
    try:
        doc = client.request("GET", "/apis/resource.k8s.io")
    except AiconformError:
        return False
    return any(v.get("groupVersion") == API_VERSION for v in (doc or {}).get("versions") or [])


def require_served(client: KubeClient) -> None:
    if not served(client):
        raise ClusterError(f"the cluster's apiserver (Kubernetes {client.server_version()}) serves no {API_VERSION}: "
                           "DRA v1 is GA from Kubernetes 1.34 (and on unless runtimeConfig turns it off)")


def facts(profile: Profile) -> list[str]:
    """The facts a profile's DRA pools give its cluster (empty without DRA)."""
    used = dra_configs(profile.pools, profile.real_node)
    if not used:
        return []
    out = ["dra"]
    for _, gpu in used:
        out += [FEATURE_FACTS[f] for f in features_used(gpu) if FEATURE_FACTS[f] not in out]
    return out


def simulated_slices(pool: Pool, index: int) -> list[dict[str, Any]]:
    """The ResourceSlices of simulated node ``index`` of a DRA pool (its name as simulated_node makes it)."""
    assert pool.gpu is not None
    inventory = build_inventory(pool.gpu, f"{pool.name}-{index}")
    return resource_slices(inventory, labels={SIM_SLICE_LABEL: pool.name})


def install(client: KubeClient, profile: Profile, *, progress: Progress, workers: int = 16) -> list[str]:
    """DeviceClasses and simulated nodes' slices of ``profile``; returns the facts declared.  ClusterError when the
    apiserver serves no DRA v1 (one line, from its discovery)."""
    used = dra_configs(profile.pools, profile.real_node)
    if not used:
        return []
    require_served(client)
    classes = device_classes(gpu for _, gpu in used)
    progress(f"DRA: DeviceClasses {', '.join(c['metadata']['name'] for c in classes)}")
    for cls in classes:
        client.apply(cls)
    slices = [s for p in profile.pools if p.dra and p.gpu is not None for i in range(p.nodes)
              for s in simulated_slices(p, i)]
    if slices:
        progress(f"DRA: publishing {len(slices)} ResourceSlices for simulated nodes")
        _create_all(client, slices, workers)
    gates = sorted({FEATURE_GATES[f] for _, gpu in used for f in features_used(gpu)})
    progress(f"DRA: features in use need gates {', '.join(gates)} (on in the profile)")
    return facts(profile)


def _create_all(client: KubeClient, objs: list[dict[str, Any]], workers: int) -> None:
    def one(obj: dict[str, Any]) -> None:
        try:
            client.create_fast(obj)
        except Conflict:
            pass

    errors: list[AiconformError] = []
    with ThreadPoolExecutor(max_workers=min(workers, len(objs))) as pool:
        for fut in [pool.submit(one, o) for o in objs]:
            try:
                fut.result()
            except AiconformError as err:
                errors.append(err)
    if errors:
        raise ClusterError(f"{len(errors)} of {len(objs)} ResourceSlices could not be created; first: {errors[0]}")


def dra_gpus(client: KubeClient, *, node: str | None = None) -> int:
    """Whole GPUs the cluster offers through DRA (driver gpu.nvidia.com), on one node or everywhere; 0 where the
    API is not served."""
    try:
        items = client.list("ResourceSlice", api_version=API_VERSION)["items"]
    except AiconformError:
        return 0
    if node is not None:
        items = [s for s in items if s.get("spec", {}).get("nodeName") == node]
    return gpu_devices_of_slices(items)


def gpus_by_node(client: KubeClient) -> dict[str, int]:
    try:
        items = client.list("ResourceSlice", api_version=API_VERSION)["items"]
    except AiconformError:
        return {}
    out: dict[str, int] = {}
    for s in items:
        node = s.get("spec", {}).get("nodeName")
        if node and s.get("spec", {}).get("driver") == DRIVER:
            out[node] = out.get(node, 0) + gpu_devices_of_slices([s])
    return out


# -- workloads: claims, templates, pods that reference them -----------------------------------------------------------

Obj = dict[str, Any]


def device_request(name: str = "gpu", *, device_class: str = DRIVER, cel: tuple[str, ...] = (), count: int = 1,
                   capacity: dict[str, str] | None = None, tolerations: list[Obj] | None = None) -> Obj:
    """One request of a claim: ``count`` devices of ``device_class`` matching every CEL selector."""
    exactly: Obj = {"deviceClassName": device_class, "allocationMode": "ExactCount", "count": count}
    if cel:
        exactly["selectors"] = [{"cel": {"expression": e}} for e in cel]
    if capacity:
        exactly["capacity"] = {"requests": dict(capacity)}
    if tolerations:
        exactly["tolerations"] = tolerations
    return {"name": name, "exactly": exactly}


def claim(name: str, *requests: Obj) -> Obj:
    return {"apiVersion": API_VERSION, "kind": "ResourceClaim", "metadata": {"name": name},
            "spec": {"devices": {"requests": list(requests or [device_request()])}}}


def claim_template(name: str, *requests: Obj) -> Obj:
    return {"apiVersion": API_VERSION, "kind": "ResourceClaimTemplate", "metadata": {"name": name},
            "spec": {"spec": {"devices": {"requests": list(requests or [device_request()])}}}}


def claim_pod(name: str, *, claims: dict[str, tuple[str, str]], containers: list[tuple[str, list[str], str]],
              image: str, node_selector: dict[str, str] | None = None, off_simulated: bool = False) -> Obj:
    """A pod with ``claims`` (pod claim name → (``template``|``claim``, object name)) and ``containers`` (name,
    the pod claims it references, a shell script; an empty script: the image's default command)."""
    spec_containers = []
    for cname, refs, script in containers:
        c: Obj = {"name": cname, "image": image, "imagePullPolicy": "IfNotPresent"}
        if script:
            c["command"] = ["sh", "-c", script]
        if refs:
            c["resources"] = {"claims": [{"name": r} for r in refs]}
        spec_containers.append(c)
    pod_claims = [{"name": k, ("resourceClaimTemplateName" if kind == "template" else "resourceClaimName"): ref}
                  for k, (kind, ref) in claims.items()]
    spec: Obj = {"containers": spec_containers, "resourceClaims": pod_claims, "terminationGracePeriodSeconds": 0,
                 "tolerations": [{"operator": "Exists"}], "restartPolicy": "Always"}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if off_simulated:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": SIMULATED_LABEL, "operator": "DoesNotExist"}]}]}}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "aiconform"}}, "spec": spec}


def allocation(obj: Obj) -> list[Obj]:
    """The device results of a claim's allocation ([] while unallocated)."""
    return list(((obj.get("status") or {}).get("allocation") or {}).get("devices", {}).get("results") or [])


def pod_claim_name(pod: Obj, pod_claim: str) -> str | None:
    """The ResourceClaim a pod's claim entry resolved to (templates get a generated name)."""
    for st in (pod.get("status") or {}).get("resourceClaimStatuses") or []:
        if st.get("name") == pod_claim:
            return str(st.get("resourceClaimName")) if st.get("resourceClaimName") else None
    for c in pod.get("spec", {}).get("resourceClaims") or []:
        if c.get("name") == pod_claim and c.get("resourceClaimName"):
            return str(c["resourceClaimName"])
    return None


def wait_claim_allocated(client: KubeClient, namespace: str, name: str, *, timeout: float = 60.0) -> list[Obj]:
    """Watch until the claim is allocated; returns its device results."""
    final = client.wait_for("ResourceClaim", namespace=namespace, name=name, api_version=API_VERSION, timeout=timeout,
                            condition=lambda s: any(allocation(o) for o in s.values()),
                            what=f"claim {namespace}/{name} to be allocated")
    return allocation(final[f"{namespace}/{name}"])


def allocated_devices(client: KubeClient) -> list[tuple[str, str, str, str, str]]:
    """Every allocated device of every claim: (claim ns/name, driver, pool, device, shareID or '')."""
    out = []
    for c in client.list("ResourceClaim", api_version=API_VERSION)["items"]:
        key = f"{c['metadata']['namespace']}/{c['metadata']['name']}"
        out += [(key, r.get("driver", ""), r.get("pool", ""), r.get("device", ""), r.get("shareID") or "")
                for r in allocation(c)]
    return out


def slice_devices(client: KubeClient) -> dict[tuple[str, str], Obj]:
    """(pool, device) → the device as its ResourceSlice publishes it (driver gpu.nvidia.com), newest generation."""
    best: dict[str, int] = {}
    items = client.list("ResourceSlice", api_version=API_VERSION)["items"]
    for s in items:
        pool = s["spec"].get("pool", {})
        best[pool.get("name", "")] = max(best.get(pool.get("name", ""), 0), int(pool.get("generation", 0)))
    out: dict[tuple[str, str], Obj] = {}
    for s in items:
        spec = s["spec"]
        pool = spec.get("pool", {})
        if spec.get("driver") != DRIVER or int(pool.get("generation", 0)) != best.get(pool.get("name", "")):
            continue
        for dev in spec.get("devices") or []:
            out[(pool["name"], dev["name"])] = {**dev, "nodeName": spec.get("nodeName")}
    return out


def attr(device: Obj, name: str) -> Any:
    """A device attribute's value (whichever type it has)."""
    value = (device.get("attributes") or {}).get(name) or {}
    return next(iter(value.values()), None)


_BINARY = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}


def memory_mib(device: Obj) -> int:
    """A device's ``memory`` capacity in MiB (the apiserver writes quantities in canonical form: 81920Mi → 80Gi)."""
    value = str(((device.get("capacity") or {}).get("memory") or {}).get("value", "0"))
    for suffix, factor in _BINARY.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(float(value) / (1024 * 1024))


# -- `aiconform dra claim`: one claim against a running cluster, the real allocator's answer ------------------------


def try_claim(client: KubeClient, *, device_class: str, cel: tuple[str, ...], count: int, timeout: float,
              progress: Progress) -> list[Obj]:
    """Create a claim (and a pause pod holding it, so the scheduler allocates it) in a namespace of its own, watch
    until it is allocated, delete both; the device results.  ClusterError in one line with the API's own message
    when it refuses the claim (a CEL expression that does not compile) or the scheduler's when it cannot allocate
    it (a device class that does not exist, no device that fits)."""
    import secrets

    from harness.errors import ApiError, WaitFailed, WaitTimeout
    from harness.kube import unschedulable_message
    from harness.workloads import PAUSE_IMAGE

    require_served(client)
    ns = f"aiconform-dra-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        try:
            client.create(claim("try", device_request(device_class=device_class, cel=cel, count=count)), namespace=ns)
        except ApiError as err:
            raise ClusterError(f"the apiserver refused the claim: {err.message.splitlines()[0]}") from None
        client.wait_for("ServiceAccount", namespace=ns, name="default", condition=bool, timeout=30,
                        what=f"the default service account of {ns}")
        client.create(claim_pod("holder", claims={"gpu": ("claim", "try")}, containers=[("main", ["gpu"], "")],
                                image=PAUSE_IMAGE), namespace=ns)

        def failed(state: dict[str, Obj]) -> str | None:
            pod = state.get(f"{ns}/holder")
            msg = unschedulable_message(pod) if pod else None
            return f"the scheduler cannot allocate the claim: {msg}" if msg else None

        try:
            client.wait_for("Pod", namespace=ns, name="holder", failure=failed, timeout=timeout,
                            condition=lambda s: any(o.get("spec", {}).get("nodeName") for o in s.values()),
                            what="the scheduler to allocate the claim")
        except WaitFailed as err:
            raise ClusterError(str(err).split(": ", 1)[-1]) from None
        except WaitTimeout as err:
            raise ClusterError(str(err)) from None
        results = wait_claim_allocated(client, ns, "try", timeout=timeout)
        progress(f"allocated in namespace {ns} (deleted now)")
        return results
    finally:
        client.delete("Namespace", ns, grace_period=0)
