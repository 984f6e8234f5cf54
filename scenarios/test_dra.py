"""DRA suite: GPUs handed out through Dynamic Resource Allocation (``resource.k8s.io/v1``, driver ``gpu.nvidia.com``).

Every allocation asserted here is the real kube-scheduler's DRA allocator's; at tier R the real kubelet calls the
DRA driver (NodePrepareResources) and containerd injects the CDI devices it names.  Devices are found through the
ResourceSlices in the API (attributes ``productName``, ``uuid``, ``minor``, capacity ``memory``), so the checks run
on any cluster whose GPU driver publishes NVIDIA's attribute names; a check whose hardware is absent is skipped with
that reason.  Checks that pick one device and hold it, or whose sandbox nodes every check sees, are ``exclusive``.
"""

from __future__ import annotations

import os
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from fake_gpu_plugin.config import parse_gpu
from fake_gpu_plugin.dra_devices import DRIVER, PCI_BUS_ID, VFIO_CLASS, VFIO_TYPE, resource_slices
from fake_gpu_plugin.inventory import build_inventory
from harness.config import Pool, Taint
from harness.contract import POOL_LABEL, SIMULATED_TOLERATION, declares_fake_gpus, is_simulated
from harness.dra import (
    allocated_devices,
    allocation,
    attr,
    claim,
    claim_pod,
    claim_template,
    device_request,
    memory_mib,
    pod_claim_name,
    slice_devices,
    wait_claim_allocated,
)
from harness.errors import KubeError, NotFound, PlatformFault, WaitTimeout
from harness.images import probe_image
from harness.kube import KubeClient, is_bound, unschedulable_message
from harness.nodes import register_nodes, simulated_node
from harness.testing import LABEL_RUN, ClusterHandle, Evidence, Tenant, create_run_namespace, label_value, release_tenant
from harness.workloads import PAUSE_IMAGE, logs_until, real_node_selector, wait_bound, wait_unschedulable

A = f'device.attributes["{DRIVER}"]'
MEM = f'device.capacity["{DRIVER}"].memory'
IMAGE = probe_image()
SCRIPT = ("nvidia-smi -L 2>&1; echo ---; ls /dev/ 2>&1 | grep -i nvidia; echo ---; env | grep NVIDIA_VISIBLE; "
          "echo ---; nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>&1; echo END; exec sleep 3600")
UUID = re.compile(r"UUID: ((?:GPU|MIG)-[0-9a-fA-F-]+)")


def _gpus(kube: KubeClient) -> dict[tuple[str, str], dict[str, Any]]:
    """Whole GPUs published through DRA: (pool, device) → device."""
    return {k: d for k, d in slice_devices(kube).items() if attr(d, "type") == "gpu"}


def _free(kube: KubeClient, devices: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    held = {(pool, dev) for _, drv, pool, dev, _ in allocated_devices(kube) if drv == DRIVER}
    return {k: d for k, d in devices.items() if k not in held and not d.get("taints")
            and not d.get("allowMultipleAllocations")}


def _uuid_cel(uuid: str) -> str:
    return f'{A}.uuid == "{uuid}"'


def _version(device: dict[str, Any], name: str) -> str | None:
    """A device attribute's value if it is published as a ``version`` (what CEL's semver comparisons need)."""
    value = ((device.get("attributes") or {}).get(name) or {}).get("version")
    return str(value) if value else None


def _semver_key(version: str) -> tuple[int, ...]:
    """``535.104.05`` → (535, 104, 5), ``12.4`` → (12, 4, 0): major, minor, patch (pre-release and build dropped)."""
    parts = [int(p) for p in re.split(r"[-+]", version, maxsplit=1)[0].split(".")]
    return tuple((parts + [0, 0, 0])[:3])


def _logs(kube: KubeClient, t: Tenant, manifest: dict[str, Any], timeout: float = 90) -> dict[str, str]:
    """Run a pod whose containers print and stay; each container's output once it printed END (pod log API)."""
    name = manifest["metadata"]["name"]
    t.create(manifest)

    def failed(s: dict[str, dict[str, Any]]) -> str | None:
        obj = next(iter(s.values()), None)
        if obj is None:
            return None
        msg = unschedulable_message(obj)
        if msg:
            return f"pod {name} is Unschedulable: {msg}"
        for cs in obj.get("status", {}).get("containerStatuses", []) or []:
            reason = (cs.get("state", {}).get("waiting") or {}).get("reason", "")
            if reason in ("ErrImagePull", "ImagePullBackOff", "CreateContainerError", "RunContainerError"):
                return f"container {cs['name']}: {reason}: {(cs['state']['waiting'] or {}).get('message', '')}"
        return None

    kube.wait_for("Pod", namespace=t.name, name=name, timeout=timeout, failure=failed, what=f"pod {name} to run",
                  condition=lambda s: bool(s) and next(iter(s.values()))["status"].get("phase") == "Running")
    return logs_until(kube, t.name, name, [c["name"] for c in manifest["spec"]["containers"]])


def _node_selector(handle: ClusterHandle) -> dict[str, str] | None:
    return real_node_selector() if handle.tier == "R" else None


# -- tier R: what a container sees ----------------------------------------------------------------------------------


@pytest.mark.aiconform(requirement="secure_accelerator_access", tier="R", capabilities=("dra",), exclusive=True)
def test_claimed_gpu_is_visible_only_to_the_claiming_container(
    kube: KubeClient, tenant: Tenant, evidence: Evidence, aiconform_cluster: ClusterHandle
) -> None:
    """A claim from a template gets one GPU; in a two-container pod only the container that references the claim
    sees it (its /dev/nvidia<minor>, nvidia-smi and NVIDIA_VISIBLE_DEVICES name the allocated device's UUID); the
    other container, and a pod without any claim, see no GPU at all."""
    tenant.create(claim_template("one-gpu", device_request()))
    pod = claim_pod("claimer", claims={"gpu": ("template", "one-gpu")},
                    containers=[("main", ["gpu"], SCRIPT), ("sidecar", [], SCRIPT)], image=IMAGE,
                    node_selector=_node_selector(aiconform_cluster), off_simulated=True)
    logs = _logs(kube, tenant, pod)
    live = kube.get("Pod", "claimer", tenant.name)
    claim_name = pod_claim_name(live, "gpu")
    assert claim_name, live.get("status")
    results = allocation(kube.get("ResourceClaim", claim_name, tenant.name, api_version="resource.k8s.io/v1"))
    assert len(results) == 1, results
    device = slice_devices(kube)[(results[0]["pool"], results[0]["device"])]
    uuid, minor = attr(device, "uuid"), attr(device, "minor")
    lonely = _logs(kube, tenant, claim_pod("no-claim", claims={}, containers=[("main", [], SCRIPT)], image=IMAGE,
                                           node_selector=_node_selector(aiconform_cluster), off_simulated=True))
    evidence["allocated"] = {"device": results[0]["device"], "pool": results[0]["pool"], "uuid": uuid, "minor": minor}
    evidence["claiming_container"] = logs["main"].strip()[:400]
    evidence["sidecar"] = logs["sidecar"].strip()[:300]
    evidence["pod_without_claim"] = lonely["main"].strip()[:300]
    advertised, seen = _version(device, "driverVersion"), logs["main"].split("---")[3].replace("END", "").strip()
    evidence["driver_version"] = {"advertised_in_slice": advertised, "nvidia_smi_in_container": seen}
    main_dev = logs["main"].split("---")[1].split()
    assert UUID.findall(logs["main"]) == [uuid], logs["main"]
    assert [d for d in main_dev if re.fullmatch(r"nvidia\d+", d)] == [f"nvidia{minor}"], main_dev
    assert f"NVIDIA_VISIBLE_DEVICES={uuid}" in logs["main"], logs["main"]
    if advertised:  # the driver the container talks to is the one its slice advertised (driver_runtime_management)
        assert re.fullmatch(r"\d+(\.\d+)*", seen) and _semver_key(seen) == _semver_key(advertised), \
            f"the slice advertises driverVersion {advertised}, nvidia-smi in the container says {seen!r}"
    for who, out in (("sidecar", logs["sidecar"]), ("pod without a claim", lonely["main"])):
        assert not UUID.findall(out), f"{who} sees a GPU: {out}"
        assert not re.search(r"\bnvidia\d+\b", out.split("---")[1]), f"{who} sees a GPU device node: {out}"
        assert "NVIDIA_VISIBLE_DEVICES" not in out, f"{who} got NVIDIA_VISIBLE_DEVICES: {out}"


# -- allocation by the scheduler ------------------------------------------------------------------------------------


@pytest.mark.aiconform(requirement="dra_support", tier="S", capabilities=("dra",), exclusive=True)
def test_shared_claim_serves_two_pods_with_one_device(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """One ResourceClaim referenced by two pods: both run on the same node, the claim is reserved for both and
    holds one device."""
    free = _free(kube, _gpus(kube))
    if not free:
        pytest.skip("no free whole GPU published through DRA")
    tenant.create(claim("shared", device_request()))
    for name in ("user-a", "user-b"):
        tenant.create(claim_pod(name, claims={"gpu": ("claim", "shared")}, containers=[("main", ["gpu"], "")],
                                image=PAUSE_IMAGE))
    placed = wait_bound(kube, tenant.name, ["user-a", "user-b"], timeout=60, fail_fast=False)
    obj = kube.get("ResourceClaim", "shared", tenant.name, api_version="resource.k8s.io/v1")
    reserved = sorted(r["name"] for r in obj.get("status", {}).get("reservedFor") or [])
    evidence["nodes"] = {n: p.node for n, p in placed.items()}
    evidence["allocation"] = allocation(obj)
    evidence["reserved_for"] = reserved
    assert placed["user-a"].node == placed["user-b"].node
    assert reserved == ["user-a", "user-b"]
    assert len(allocation(obj)) == 1


@pytest.mark.aiconform(requirement="dra_support", tier="S", capabilities=("dra",), exclusive=True)
def test_cel_selects_devices_by_product_and_memory(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """CEL selectors on the published attributes: a claim for a product gets that product; a claim for at least
    the largest memory on offer gets a device that large; a claim for more memory than any device stays
    unallocated."""
    everything = _gpus(kube)
    free = _free(kube, everything)
    if not free:
        pytest.skip("no free whole GPU published through DRA")
    products = sorted({attr(d, "productName") for d in free.values()})
    product = products[-1]
    biggest = max(memory_mib(d) for d in free.values())
    beyond = max(memory_mib(d) for d in everything.values()) + 1
    tenant.create(claim("by-product", device_request(cel=(f'{A}.productName == "{product}"',))))
    tenant.create(claim("by-memory", device_request(cel=(f'{MEM}.compareTo(quantity("{biggest}Mi")) >= 0',))))
    tenant.create(claim("too-big", device_request(cel=(f'{MEM}.compareTo(quantity("{beyond}Mi")) >= 0',))))
    for name in ("by-product", "by-memory", "too-big"):
        tenant.create(claim_pod(f"p-{name}", claims={"gpu": ("claim", name)}, containers=[("main", ["gpu"], "")],
                                image=PAUSE_IMAGE))
    wait_bound(kube, tenant.name, ["p-by-product", "p-by-memory"], timeout=60)
    reason = wait_unschedulable(kube, tenant.name, "p-too-big", timeout=60)
    devices = slice_devices(kube)
    got = {}
    for name in ("by-product", "by-memory"):
        r = wait_claim_allocated(kube, tenant.name, name)
        got[name] = devices[(r[0]["pool"], r[0]["device"])]
    evidence["product"] = product
    evidence["memory_mib_at_least"] = biggest
    evidence["by_product"] = attr(got["by-product"], "productName")
    evidence["by_memory"] = got["by-memory"]["capacity"]["memory"]["value"]
    evidence["too_big_reason"] = reason
    assert attr(got["by-product"], "productName") == product
    assert memory_mib(got["by-memory"]) >= biggest
    assert not allocation(kube.get("ResourceClaim", "too-big", tenant.name, api_version="resource.k8s.io/v1"))
    assert "claim" in reason, reason


@pytest.mark.aiconform(requirement="dra_support", tier="S", capabilities=("dra",))
def test_unsatisfiable_claim_stays_pending_with_the_schedulers_reason(
    kube: KubeClient, tenant: Tenant, evidence: Evidence
) -> None:
    """A claim no device can satisfy (a product nobody publishes; more devices than any node has) leaves its pod
    Pending, with the scheduler's own reason, and the claim unallocated."""
    per_node: dict[str, int] = {}
    for d in _gpus(kube).values():
        per_node[d["nodeName"] or ""] = per_node.get(d["nodeName"] or "", 0) + 1
    if not per_node:
        pytest.skip("no whole GPU published through DRA")
    tenant.create(claim("ghost", device_request(cel=(f'{A}.productName == "NVIDIA B300 (not in this cluster)"',))))
    tenant.create(claim("too-many", device_request(count=max(per_node.values()) + 1)))
    for name in ("ghost", "too-many"):
        tenant.create(claim_pod(f"p-{name}", claims={"gpu": ("claim", name)}, containers=[("main", ["gpu"], "")],
                                image=PAUSE_IMAGE))
    reasons = {n: wait_unschedulable(kube, tenant.name, f"p-{n}", timeout=60) for n in ("ghost", "too-many")}
    evidence["reasons"] = reasons
    for name, reason in reasons.items():
        assert "cannot allocate all claims" in reason, reason
        assert not allocation(kube.get("ResourceClaim", name, tenant.name, api_version="resource.k8s.io/v1"))


@pytest.mark.aiconform(requirement="dra_support", tier="S", capabilities=("dra", "dra-device-taints"),
                       exclusive=True, destructive=True)
def test_tainted_device_is_not_allocated(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """A device tainted NoSchedule (a DeviceTaintRule, as an operator marks a GPU unhealthy) is not allocated to a
    claim that asks for exactly it; once the taint is gone the same claim gets it."""
    free = _free(kube, _gpus(kube))
    if not free:
        pytest.skip("no free whole GPU published through DRA")
    (pool, name), device = sorted(free.items())[0]
    rule = f"aiconform-unhealthy-{secrets.token_hex(3)}"
    try:
        kube.create({"apiVersion": "resource.k8s.io/v1", "kind": "DeviceTaintRule", "metadata": {"name": rule},
                     "spec": {"deviceSelector": {"driver": DRIVER, "pool": pool, "device": name},
                              "taint": {"key": "gpu.nvidia.com/unhealthy", "value": "true", "effect": "NoSchedule"}}})
    except NotFound:
        pytest.skip("the apiserver serves no DeviceTaintRule (DRADeviceTaintRules off)")
    try:
        tenant.create(claim("exact", device_request(cel=(_uuid_cel(str(attr(device, "uuid"))),))))
        tenant.create(claim_pod("p-exact", claims={"gpu": ("claim", "exact")}, containers=[("main", ["gpu"], "")],
                                image=PAUSE_IMAGE))
        reason = wait_unschedulable(kube, tenant.name, "p-exact", timeout=60)
        assert not allocation(kube.get("ResourceClaim", "exact", tenant.name, api_version="resource.k8s.io/v1"))
    finally:
        kube.delete("DeviceTaintRule", rule, api_version="resource.k8s.io/v1")
    results = wait_claim_allocated(kube, tenant.name, "exact", timeout=60)
    evidence["device"] = {"pool": pool, "device": name, "uuid": attr(device, "uuid")}
    evidence["while_tainted"] = reason
    evidence["after_untaint"] = results
    assert [(r["pool"], r["device"]) for r in results] == [(pool, name)]


@pytest.mark.aiconform(requirement="dra_support", tier="S", capabilities=("dra",), exclusive=True)
def test_deleting_the_pod_frees_its_device(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """A pod's claim from a template holds one exact device; a second pod asking for that device waits; deleting
    the first pod deletes its claim (deallocated) and the second pod gets the device."""
    free = _free(kube, _gpus(kube))
    if not free:
        pytest.skip("no free whole GPU published through DRA")
    (pool, name), device = sorted(free.items())[0]
    tenant.create(claim_template("that-gpu", device_request(cel=(_uuid_cel(str(attr(device, "uuid"))),))))
    for p in ("first", "second"):
        tenant.create(claim_pod(p, claims={"gpu": ("template", "that-gpu")}, containers=[("main", ["gpu"], "")],
                                image=PAUSE_IMAGE))
        if p == "first":
            wait_bound(kube, tenant.name, ["first"], timeout=60)
    waiting = wait_unschedulable(kube, tenant.name, "second", timeout=60)
    first_claim = pod_claim_name(kube.get("Pod", "first", tenant.name), "gpu")
    kube.delete("Pod", "first", tenant.name, grace_period=0)
    placed = wait_bound(kube, tenant.name, ["second"], timeout=60, fail_fast=False)
    second_claim = pod_claim_name(kube.get("Pod", "second", tenant.name), "gpu")
    assert second_claim
    results = wait_claim_allocated(kube, tenant.name, second_claim)
    holders = [c for c, drv, p, d, _ in allocated_devices(kube) if (drv, p, d) == (DRIVER, pool, name)]
    evidence["device"] = {"pool": pool, "device": name}
    evidence["second_waited"] = waiting
    evidence["second_bound_s"] = round(placed["second"].seconds, 2)
    evidence["holders_after"] = holders
    assert [(r["pool"], r["device"]) for r in results] == [(pool, name)]
    assert holders == [f"{tenant.name}/{second_claim}"], f"first claim {first_claim} still holds it: {holders}"


@pytest.mark.aiconform(requirement="gpu_sharing", tier="S", capabilities=("dra", "dra-consumable-capacity"),
                       exclusive=True)
def test_time_sliced_device_is_shared_up_to_its_shares(kube: KubeClient, tenant: Tenant, evidence: Evidence) -> None:
    """A device published with multiple allocations allowed (consumable capacity ``shares``) is allocated to as
    many claims as it has shares, each with its own share id, and no more."""
    shared = {k: d for k, d in slice_devices(kube).items() if d.get("allowMultipleAllocations")
              and "shares" in (d.get("capacity") or {}) and not d.get("taints")}
    held = {(p, d) for _, drv, p, d, _ in allocated_devices(kube) if drv == DRIVER}
    shared = {k: d for k, d in shared.items() if k not in held}
    if not shared:
        pytest.skip("no free shared (consumable capacity) device published through DRA")
    (pool, name), device = sorted(shared.items())[0]
    shares = int(device["capacity"]["shares"]["value"])
    names = [f"share-{i}" for i in range(shares + 1)]
    for n in names:
        tenant.create(claim(n, device_request(cel=(_uuid_cel(str(attr(device, "uuid"))),))))
        tenant.create(claim_pod(f"p-{n}", claims={"gpu": ("claim", n)}, containers=[("main", ["gpu"], "")],
                                image=PAUSE_IMAGE))
    wait_bound(kube, tenant.name, [f"p-{n}" for n in names[:-1]], timeout=60, fail_fast=False)
    reason = wait_unschedulable(kube, tenant.name, f"p-{names[-1]}", timeout=60)
    got = [wait_claim_allocated(kube, tenant.name, n)[0] for n in names[:-1]]
    evidence["device"] = {"pool": pool, "device": name, "shares": shares}
    evidence["share_ids"] = [r.get("shareID") for r in got]
    evidence["over_the_limit"] = reason
    assert {(r["pool"], r["device"]) for r in got} == {(pool, name)}
    assert len({r.get("shareID") for r in got}) == shares and all(r.get("shareID") for r in got)


# -- driver versions through DRA: a DeviceClass demands a minimum driver --------------------------------------------


def _min_driver_class(name: str, minimum: str, run_id: str) -> dict[str, Any]:
    """A DeviceClass of whole GPUs whose driver is at least ``minimum`` (a device without the attribute is no match,
    not a CEL error that would abort the allocation)."""
    cel = (f'device.driver == "{DRIVER}" && {A}.type == "gpu" && has({A}.driverVersion) && '
           f'{A}.driverVersion.compareTo(semver("{minimum}")) >= 0')
    return {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
            "metadata": {"name": name, "labels": {LABEL_RUN: label_value(run_id)}},
            "spec": {"selectors": [{"cel": {"expression": cel}}]}}


@pytest.mark.aiconform(requirement="driver_runtime_management", tier="S", capabilities=("dra",), exclusive=True)
def test_device_class_demanding_a_minimum_driver_allocates_only_where_the_driver_meets_it(
    kube: KubeClient, tenant: Tenant, evidence: Evidence, aiconform_cluster: ClusterHandle
) -> None:
    """The GPUs' driver version is published through DRA (``driverVersion``, a version value) and enforced by the
    scheduler: a DeviceClass demanding at least the newest driver a free GPU has gets a claim a GPU with that driver;
    a DeviceClass demanding a driver newer than any node's leaves its claim unallocated and its pod Pending with the
    scheduler's own reason.  No GPU advertising a driver version is the platform lacking the mechanism."""
    everything = _gpus(kube)
    if not everything:
        pytest.skip("no whole GPU published through DRA")
    advertised = {k: v for k, d in everything.items() if (v := _version(d, "driverVersion"))}
    if not advertised:
        other = sorted({str(attr(d, "driverVersion")) for d in everything.values()} - {"None"})
        raise PlatformFault(f"the DRA driver {DRIVER}", (
            f"none of its {len(everything)} GPUs advertises driverVersion as a version value"
            + (f" (published otherwise: {', '.join(other)})" if other else "")
            + ": a DeviceClass cannot demand a minimum driver version"))
    free = {k: advertised[k] for k in _free(kube, everything) if k in advertised}
    if not free:
        pytest.skip("no free whole GPU that advertises its driver version")
    floor = max(free.values(), key=_semver_key)
    beyond = f"{_semver_key(max(advertised.values(), key=_semver_key))[0] + 1}.0.0"
    suffix = secrets.token_hex(3)
    classes = {"meets": f"aiconform-driver-min-{suffix}", "too-new": f"aiconform-driver-too-new-{suffix}"}
    try:
        for case, minimum in (("meets", floor), ("too-new", beyond)):
            kube.create(_min_driver_class(classes[case], minimum, aiconform_cluster.run_id))
            tenant.create(claim(case, device_request(device_class=classes[case])))
            tenant.create(claim_pod(f"p-{case}", claims={"gpu": ("claim", case)}, containers=[("main", ["gpu"], "")],
                                    image=PAUSE_IMAGE))
        # not fail-fast: a pod tried before the scheduler's informer saw its new DeviceClass is retried on its add
        placed = wait_bound(kube, tenant.name, ["p-meets"], timeout=60, fail_fast=False)
        reason = wait_unschedulable(kube, tenant.name, "p-too-new", timeout=60, containing="cannot allocate all claims")
        results = wait_claim_allocated(kube, tenant.name, "meets")
        too_new = allocation(kube.get("ResourceClaim", "too-new", tenant.name, api_version="resource.k8s.io/v1"))
    finally:
        for name in classes.values():
            try:
                kube.delete("DeviceClass", name, api_version="resource.k8s.io/v1")
            except NotFound:
                pass
    got = slice_devices(kube)[(results[0]["pool"], results[0]["device"])]
    evidence["advertised_driver_versions"] = dict(Counter(advertised.values()))
    evidence["device_classes"] = {"meets": f">= {floor}", "too_new": f">= {beyond}"}
    evidence["allocated"] = {"pool": results[0]["pool"], "device": results[0]["device"], "node": placed["p-meets"].node,
                             "driverVersion": _version(got, "driverVersion"),
                             "cudaDriverVersion": _version(got, "cudaDriverVersion")}
    evidence["too_new_reason"] = reason
    assert _semver_key(_version(got, "driverVersion") or "0") >= _semver_key(floor), got.get("attributes")
    assert not too_new, f"a claim demanding driver >= {beyond} was allocated: {too_new}"


# -- virtualized accelerators: a GPU offered for VFIO passthrough, never also handed out whole ---------------------


VFIO_SCRIPT = "env | grep -i vfio; echo ---; ls /dev/vfio 2>&1; echo END; exec sleep 3600"


def _is_fake(kube: KubeClient, node: str) -> bool:
    """Whether the node's GPUs are aiconform's fakes (a simulated node, or fake_gpu_plugin's label)."""
    obj = kube.get("Node", node)
    return is_simulated(obj) or declares_fake_gpus(obj)


def _passthrough_pairs(kube: KubeClient) -> list[tuple[tuple[str, str], dict[str, Any], tuple[str, str]]]:
    """Free, untainted vfio devices with their GPU published whole (same pool, same uuid) and free too:
    (vfio key, vfio device, whole-GPU key)."""
    devices = slice_devices(kube)
    held = {(p, d) for _, drv, p, d, _ in allocated_devices(kube) if drv == DRIVER}
    whole = {(k[0], attr(d, "uuid")): k for k, d in _free(kube, _gpus(kube)).items()}
    out = []
    for key, dev in sorted(devices.items()):
        if attr(dev, "type") == VFIO_TYPE and key not in held and not dev.get("taints"):
            sibling = whole.get((key[0], attr(dev, "uuid")))
            if sibling:
                out.append((key, dev, sibling))
    return out


@pytest.mark.aiconform(requirement="virtualized_accelerator", tier="S", capabilities=("dra",), exclusive=True)
def test_passthrough_gpu_is_allocated_and_never_handed_out_whole_meanwhile(
    kube: KubeClient, tenant: Tenant, evidence: Evidence
) -> None:
    """A GPU offered for VFIO passthrough through DRA (a device of ``type`` vfio, DeviceClass
    ``vfio.gpu.nvidia.com``, as NVIDIA's driver offers it behind ``PassthroughSupport``): a claim for it is allocated
    by the scheduler; while that claim holds it, a claim for the same physical GPU as a whole ``gpu`` device (same
    uuid, same pool) stays unallocated with the scheduler's own reason; once the first pod is gone, the second gets
    the GPU.  On a node with a real kubelet the pod must run: its driver prepared the claim and the runtime started
    the container with what the driver named (its view of the device is recorded).  No passthrough device published
    anywhere is the platform lacking virtualized accelerators."""
    vfio = {k: d for k, d in slice_devices(kube).items() if attr(d, "type") == VFIO_TYPE}
    if not vfio:
        raise PlatformFault(f"the DRA driver {DRIVER}", (
            f"publishes no VFIO passthrough device (type {VFIO_TYPE}, DeviceClass {VFIO_CLASS}) on any node: no "
            "accelerator is offered for virtualized use through DRA"))
    pairs = _passthrough_pairs(kube)
    if not pairs:
        pytest.skip(f"no free passthrough device whose GPU is published whole and free ({len(vfio)} published)")
    (pool, name), device, (gpu_pool, gpu_name) = pairs[0]
    uuid = str(attr(device, "uuid"))
    tenant.create(claim_template("passthrough", device_request("vm", device_class=VFIO_CLASS,
                                                               cel=(_uuid_cel(uuid),))))
    node_name = str(device.get("nodeName") or "")
    simulated = not node_name or is_simulated(kube.get("Node", node_name))
    if simulated:
        tenant.create(claim_pod("vm", claims={"vm": ("template", "passthrough")}, containers=[("main", ["vm"], "")],
                                image=PAUSE_IMAGE))
        node_name = wait_bound(kube, tenant.name, ["vm"], timeout=60)["vm"].node
    else:  # prepared by the node's DRA driver, started by its runtime with the CDI devices the driver named
        seen = _logs(kube, tenant, claim_pod("vm", claims={"vm": ("template", "passthrough")}, image=IMAGE,
                                             containers=[("main", ["vm"], VFIO_SCRIPT)]))["main"]
        evidence["prepared_container_sees"] = seen.replace("END", "").strip()[:400]
    vm_claim = pod_claim_name(kube.get("Pod", "vm", tenant.name), "vm")
    assert vm_claim
    got = wait_claim_allocated(kube, tenant.name, vm_claim)
    tenant.create(claim("whole", device_request(cel=(_uuid_cel(uuid),))))
    tenant.create(claim_pod("whole", claims={"gpu": ("claim", "whole")}, containers=[("main", ["gpu"], "")],
                            image=PAUSE_IMAGE))
    waiting = wait_unschedulable(kube, tenant.name, "whole", timeout=60, containing="cannot allocate all claims")
    meanwhile = allocation(kube.get("ResourceClaim", "whole", tenant.name, api_version="resource.k8s.io/v1"))
    evidence["passthrough"] = {
        "pool": pool, "device": name, "class": VFIO_CLASS, "uuid": uuid, "node": node_name,
        "pciBusID": attr(device, PCI_BUS_ID), "allocated": [(r["pool"], r["device"]) for r in got],
        "what": ("a fake of the interface, not of the hardware: the device is published and allocated as NVIDIA's "
                 "driver publishes a GPU for VFIO passthrough; nothing is bound to vfio-pci")
        if _is_fake(kube, node_name)
        else "published by the cluster's own DRA driver"}
    evidence["whole_gpu_meanwhile"] = {"device": gpu_name, "allocation": meanwhile, "reason": waiting}
    assert [(r["pool"], r["device"]) for r in got] == [(pool, name)], got
    assert not meanwhile, f"the GPU {uuid} was handed out whole while it is held for passthrough: {meanwhile}"
    kube.delete("Pod", "vm", tenant.name, grace_period=0)
    wait_bound(kube, tenant.name, ["whole"], timeout=60, fail_fast=False)
    after = wait_claim_allocated(kube, tenant.name, "whole")
    evidence["whole_gpu_after"] = [(r["pool"], r["device"]) for r in after]
    assert [(r["pool"], r["device"]) for r in after] == [(gpu_pool, gpu_name)], after


# -- property: random slices x random claims, the real allocator against a model ------------------------------------

EXAMPLES = int(os.environ.get("AICONFORM_DRA_EXAMPLES", os.environ.get("AICONFORM_EXAMPLES", "4")))
SANDBOX_TAINT = "aiconform.io/sandbox"
MODELS = ("A100-SXM4-80GB", "H100-SXM5-80GB", "T4")


@dataclass(frozen=True)
class ClaimCase:
    count: int
    product: str | None
    min_memory_mib: int | None

    def cel(self) -> tuple[str, ...]:
        out = []
        if self.product:
            out.append(f'{A}.productName == "{self.product}"')
        if self.min_memory_mib:
            out.append(f'{MEM}.compareTo(quantity("{self.min_memory_mib}Mi")) >= 0')
        return tuple(out)

    def matches(self, device: dict[str, Any]) -> bool:
        if self.product and attr(device, "productName") != self.product:
            return False
        return not (self.min_memory_mib and memory_mib(device) < self.min_memory_mib)


def _violations(kube: KubeClient, ns: str, pool_name: str, claims: list[ClaimCase], n_nodes: int) -> list[str]:
    """Where the real allocator's state breaks the model: a device in two claims, an allocation that does not
    match its claim's selectors, an unallocated claim that fits on a node given what is allocated."""
    objs = {c["metadata"]["name"]: c for c in kube.list("ResourceClaim", ns, api_version="resource.k8s.io/v1")["items"]}
    devices = {k: d for k, d in slice_devices(kube).items() if k[0].startswith(pool_name)}
    out: list[str] = []
    taken: dict[tuple[str, str], str] = {}
    for name, obj in sorted(objs.items()):
        for r in allocation(obj):
            key = (r["pool"], r["device"])
            if key in taken:
                out.append(f"device {key} allocated to {taken[key]} and {name}")
            taken[key] = name
            case = claims[int(name[1:])]
            if key not in devices or not case.matches(devices[key]):
                out.append(f"{name} ({case}) got {key}, which does not match it")
    for name, obj in sorted(objs.items()):
        if allocation(obj):
            continue
        case = claims[int(name[1:])]
        for i in range(n_nodes):
            node_pool = f"{pool_name}-{i}"
            free = [k for k, d in devices.items() if k[0] == node_pool and k not in taken and case.matches(d)]
            if len(free) >= case.count:
                out.append(f"{name} ({case}) is unallocated but fits on {node_pool}: {free}")
    return out


def _products() -> list[str]:
    return [build_inventory(parse_gpu({"model": m}), "x").gpus[0].model.product for m in MODELS]


nodes_st = st.lists(st.tuples(st.sampled_from(MODELS), st.integers(1, 3)), min_size=1, max_size=3)
claims_st = st.lists(st.builds(ClaimCase, st.integers(1, 3), st.one_of(st.none(), st.sampled_from(_products())),
                               st.one_of(st.none(), st.sampled_from([16384, 46068, 81559, 81920]))),
                     min_size=1, max_size=6)


@pytest.mark.aiconform(requirement="aiconform.property_invariants", tier="S",
                       capabilities=("dra", "simulated-nodes"), exclusive=True)
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(nodes=nodes_st, claims=claims_st)
def test_random_slices_and_claims_never_double_allocate(
    kube: KubeClient, aiconform_cluster: ClusterHandle, nodes: list[tuple[str, int]], claims: list[ClaimCase]
) -> None:
    """Random DRA nodes (model x count, slices published for sandbox nodes) and random claims (count, product,
    memory): the real allocator never gives one device to two claims, every allocation matches its claim's
    selectors, and a claim left unallocated fits on no node given what is allocated (the model)."""
    sid = secrets.token_hex(3)
    ns, pool_name = f"draprop-{sid}", f"draprop-{sid}"
    taint = Taint(key=SANDBOX_TAINT, value=sid, effect="NoSchedule")
    run_label = {LABEL_RUN: label_value(aiconform_cluster.run_id)}
    node_objs, slices = [], []
    for i, (model, count) in enumerate(nodes):
        spec = parse_gpu({"model": model, "count": count})
        pool = Pool(name=pool_name, nodes=1, gpu=spec, labels=run_label, taints=(taint,), dra=True)
        node_objs.append(simulated_node(pool, i, "sandbox"))
        slices += resource_slices(build_inventory(spec, f"{pool_name}-{i}"), labels=run_label)
    note("slices:\n" + yaml.safe_dump_all(slices, sort_keys=False))
    note(f"claims: {claims}")
    create_run_namespace(kube, ns, aiconform_cluster.run_id)
    try:
        register_nodes(kube, node_objs, timeout=60, workers=4)
        for s in slices:
            kube.create(s)
        kube.wait_for("ServiceAccount", namespace=ns, name="default", condition=bool, timeout=30)
        for i, c in enumerate(claims):
            kube.create(claim(f"c{i}", device_request(count=c.count, cel=c.cel())), namespace=ns)
            pod = claim_pod(f"p{i}", claims={"gpu": ("claim", f"c{i}")}, containers=[("main", ["gpu"], "")],
                            image=PAUSE_IMAGE, node_selector={POOL_LABEL: pool_name})
            pod["spec"]["tolerations"] = [{"key": SANDBOX_TAINT, "operator": "Equal", "value": sid,
                                           "effect": "NoSchedule"}, dict(SIMULATED_TOLERATION)]
            kube.create(pod, namespace=ns)
        wanted = {f"{ns}/p{i}" for i in range(len(claims))}

        def settled(state: dict[str, dict[str, Any]]) -> bool:
            # the scheduler may call a pod Unschedulable while others' allocations are in flight and retry it
            # later: settled once every pod is bound or Unschedulable and the model agrees with what is there
            if not wanted <= {k for k, p in state.items() if is_bound(p) or unschedulable_message(p)}:
                return False
            return not _violations(kube, ns, pool_name, claims, len(nodes))

        try:
            kube.wait_for("Pod", namespace=ns, timeout=30, condition=settled,
                          what=f"every pod of {ns} bound or Unschedulable as the model says")
        except WaitTimeout:
            pass  # the assertion below names what the real allocator and the model disagree on
        problems = _violations(kube, ns, pool_name, claims, len(nodes))
        assert not problems, "; ".join(problems)
    finally:
        release_tenant(kube, ns)
        for s in slices:
            try:
                kube.delete("ResourceSlice", s["metadata"]["name"], api_version="resource.k8s.io/v1")
            except KubeError:
                pass
        for n in node_objs:
            try:
                kube.delete("Node", n["metadata"]["name"])
            except KubeError:
                pass
