"""CDI (Container Device Interface) specs for prepared DRA claims: what the runtime injects into a container.

Owns the spec files the DRA driver writes into the CDI directory containerd reads (``cdi_spec_dirs``), one per
prepared claim, and their removal.  A spec of kind ``k8s.gpu.nvidia.com/claim`` holds one CDI device per allocated
DRA device (``<claim uid>-<device>``: its ``/dev/nvidia<minor>``) and claim-wide edits applied once whatever devices
of the claim a container gets: ``/dev/nvidiactl``, ``/dev/nvidia-uvm``, the fake ``nvidia-smi`` and its data file
(read-only bind mounts) and ``NVIDIA_VISIBLE_DEVICES`` (the units' UUIDs), ``AICONFORM_FAKE_GPU=1``.  The host side
of every device node is the plugin's harmless fake node (``hostfiles``); the container sees the NVIDIA path.

A VFIO passthrough device (``gpu-vfio-<i>``, fake_gpu_plugin.dra_devices) is a fake of the interface only: its CDI
device injects nothing but ``AICONFORM_FAKE_VFIO_<i>=<PCI address>``, and the claim adds
``AICONFORM_FAKE_VFIO_DEVICES`` (every passthrough device's PCI address); no device node (a real driver injects
``/dev/vfio/<group>``), and none of the GPU edits above unless the claim also holds GPUs or MIG devices.

The kubelet hands the CDI device names (``cdi_device_ids``) to the runtime only for the containers that reference
the claim, which is what keeps a claim's GPUs out of the pod's other containers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fake_gpu_plugin.allocate import DATA_CONTAINER_PATH, SMI_CONTAINER_PATH, render_data_file
from fake_gpu_plugin.dra_devices import pci_bus_id
from fake_gpu_plugin.hostfiles import CONTROL_NODE, UVM_NODES, HostPaths, write_atomic
from fake_gpu_plugin.inventory import Unit, parent_gpu

CDI_VERSION = "0.6.0"
VENDOR = "k8s.gpu.nvidia.com"
CLASS = "claim"
KIND = f"{VENDOR}/{CLASS}"
_SAFE = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass(frozen=True)
class ClaimDevice:
    """One allocated DRA device of a claim: the device name in the pool and its unit."""

    name: str
    unit: Unit
    passthrough: bool = False
    """The VFIO passthrough face of the GPU ``unit``."""


def spec_path(cdi_dir: Path, claim_uid: str) -> Path:
    return cdi_dir / f"{VENDOR}-{CLASS}_{_SAFE.sub('_', claim_uid)}.json"


def cdi_device_name(claim_uid: str, device: str) -> str:
    return _SAFE.sub("_", f"{claim_uid}-{device}")


def qualified(claim_uid: str, device: str) -> str:
    """The fully qualified CDI name the kubelet passes to the runtime (``vendor/class=name``)."""
    return f"{KIND}={cdi_device_name(claim_uid, device)}"


def _node(paths: HostPaths, name: str) -> dict[str, Any]:
    host = paths.device_node(name)
    out: dict[str, Any] = {"path": f"/dev/{name}", "hostPath": str(host), "permissions": "rw"}
    try:
        st = os.stat(host)
        out |= {"type": "c", "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)}
    except OSError:
        pass  # without the host node CDI fails the container start, naming the path (never a silent success)
    return out


def _gpu_units(devices: Sequence[ClaimDevice]) -> list[Unit]:
    """The GPUs and MIG devices of a claim, once each (not its passthrough devices)."""
    return list({d.unit.uuid: d.unit for d in devices if not d.passthrough}.values())


def claim_spec(claim_uid: str, devices: Sequence[ClaimDevice], paths: HostPaths, data_file: Path) -> dict[str, Any]:
    units = _gpu_units(devices)
    vfio = [d for d in devices if d.passthrough]
    vfio_env = [f"AICONFORM_FAKE_VFIO_DEVICES={','.join(pci_bus_id(parent_gpu(d.unit)) for d in vfio)}"] if vfio else []
    cdi_devices = [{"name": cdi_device_name(claim_uid, d.name), "containerEdits": {"env": [
        f"AICONFORM_FAKE_VFIO_{parent_gpu(d.unit).index}={pci_bus_id(parent_gpu(d.unit))}"]}} for d in vfio]
    if not units:
        return {"cdiVersion": CDI_VERSION, "kind": KIND, "devices": cdi_devices,
                "containerEdits": {"env": ["AICONFORM_FAKE_GPU=1", *vfio_env]}}
    common_nodes = [_node(paths, CONTROL_NODE)]
    common_nodes += [_node(paths, n) for n in UVM_NODES if os.path.lexists(paths.device_node(n))]
    mounts = [
        {"hostPath": str(paths.nvidia_smi), "containerPath": SMI_CONTAINER_PATH, "options": ["ro", "nosuid", "nodev",
                                                                                          "bind"]},
        {"hostPath": str(data_file), "containerPath": DATA_CONTAINER_PATH, "options": ["ro", "nosuid", "nodev", "bind"]},
    ]
    env = [f"NVIDIA_VISIBLE_DEVICES={','.join(u.uuid for u in units)}", "AICONFORM_FAKE_GPU=1",
           f"AICONFORM_FAKE_GPU_DEVICES={DATA_CONTAINER_PATH}", *vfio_env]
    for dev in devices:
        if dev.passthrough:
            continue
        gpu = parent_gpu(dev.unit)
        cdi_devices.append({"name": cdi_device_name(claim_uid, dev.name),
                            "containerEdits": {"deviceNodes": [_node(paths, f"nvidia{gpu.minor}")]}})
    return {"cdiVersion": CDI_VERSION, "kind": KIND, "devices": cdi_devices,
            "containerEdits": {"env": env, "deviceNodes": common_nodes, "mounts": mounts}}


def write_claim_spec(cdi_dir: Path, claim_uid: str, devices: Sequence[ClaimDevice], paths: HostPaths) -> Path:
    """Write the claim's data file (what the fake nvidia-smi shows) and its CDI spec; returns the spec's path."""
    units = _gpu_units(devices)
    gpus = list({parent_gpu(u).index: parent_gpu(u) for u in units}.values())
    data_file = claim_data_file(paths, claim_uid)
    if units:  # a claim of passthrough devices only shows no nvidia-smi
        data_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(data_file, render_data_file(units, gpus))
    cdi_dir.mkdir(parents=True, exist_ok=True)
    path = spec_path(cdi_dir, claim_uid)
    write_atomic(path, json.dumps(claim_spec(claim_uid, devices, paths, data_file), indent=1))
    return path


def claim_data_file(paths: HostPaths, claim_uid: str) -> Path:
    return paths.alloc_dir / f"claim-{_SAFE.sub('_', claim_uid)}"


def remove_claim_spec(cdi_dir: Path, claim_uid: str, paths: HostPaths) -> bool:
    """Remove the claim's spec and data file; True when a spec was there."""
    path = spec_path(cdi_dir, claim_uid)
    existed = path.exists()
    path.unlink(missing_ok=True)
    claim_data_file(paths, claim_uid).unlink(missing_ok=True)
    return existed


def our_specs(cdi_dir: Path) -> list[Path]:
    """Every spec file this driver wrote into ``cdi_dir`` (what ``down`` removes)."""
    return sorted(cdi_dir.glob(f"{VENDOR}-{CLASS}_*.json")) if cdi_dir.is_dir() else []
