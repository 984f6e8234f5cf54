"""What a container gets for its devices: the Allocate response of one resource.

Owns the container-facing contract of the fake GPU:
- env ``NVIDIA_VISIBLE_DEVICES``: the allocated units' UUIDs (GPU or MIG; replicas of one unit appear once), in
  request order; ``AICONFORM_FAKE_GPU=1`` declares the fake; ``AICONFORM_FAKE_GPU_DEVICES`` points at the data file;
- devices: ``/dev/nvidia<N>`` for each GPU involved (a MIG device brings its parent) plus ``/dev/nvidiactl`` and
  ``/dev/nvidia-uvm``, host side the harmless nodes of ``hostfiles``, permissions ``rw``;
- mounts (read-only): the fake nvidia-smi at ``/usr/local/bin/nvidia-smi`` (on the default PATH of busybox and
  Debian images) and the per-allocation data file at ``/etc/aiconform-fake-gpu/devices``.
It never decides which devices a container gets; the kubelet did that.

Real GPUs (``Inventory.fake`` false, the nvml backend) go through the same code: ``NVIDIA_VISIBLE_DEVICES`` holds the
real UUIDs and the devices are the driver's own nodes (``hostfiles.container_device_nodes``: ``/dev/nvidia<minor>``,
``/dev/nvidiactl``, ``/dev/nvidia-uvm``, ``/dev/nvidia-uvm-tools`` where present, a MIG device's
``/dev/nvidia-caps/nvidia-cap<N>``); nothing fake is declared or mounted (no ``AICONFORM_FAKE_GPU*``, no fake
nvidia-smi, no data file).
"""

from __future__ import annotations

from collections.abc import Sequence

from fake_gpu_plugin.api import deviceplugin_pb2 as pb
from fake_gpu_plugin.errors import AllocationError
from fake_gpu_plugin.hostfiles import HostPaths, container_device_nodes, write_atomic
from fake_gpu_plugin.inventory import AdvertisedDevice, Inventory, MigDevice, PhysicalGpu, Unit

SMI_CONTAINER_PATH = "/usr/local/bin/nvidia-smi"
DATA_CONTAINER_PATH = "/etc/aiconform-fake-gpu/devices"
DATA_HEADER = "# aiconform fake GPU allocation (fake hardware)\n# kind|index|uuid|name|memory_mib|profile\n"


class Allocator:
    """Builds ContainerAllocateResponses for one resource name."""

    def __init__(self, inventory: Inventory, paths: HostPaths, resource: str, *, device_nodes: bool) -> None:
        self.inventory = inventory
        self.paths = paths
        self.resource = resource
        self.device_nodes = device_nodes

    def resolve(self, device_ids: Sequence[str]) -> list[AdvertisedDevice]:
        """The advertised devices behind ``device_ids``; AllocationError for an id this resource never advertised."""
        out = []
        for device_id in device_ids:
            dev = self.inventory.device(device_id)
            if dev is None or dev.resource != self.resource:
                raise AllocationError(f"unknown device {device_id!r} for resource {self.resource}")
            out.append(dev)
        if not out:
            raise AllocationError(f"empty device list for resource {self.resource}")
        return out

    def check_request_size(self, device_ids: Sequence[str]) -> None:
        slicing = self.inventory.config.time_slicing
        if slicing.enabled and slicing.fail_requests_greater_than_one and len(device_ids) > 1:
            raise AllocationError(
                f"request for '{self.resource}: {len(device_ids)}' too large: maximum request size for shared "
                "resources is 1 (sharing.timeSlicing.failRequestsGreaterThanOne is set)")

    def allocate(self, device_ids: Sequence[str]) -> pb.ContainerAllocateResponse:
        self.check_request_size(device_ids)
        devices = self.resolve(device_ids)
        units = _unique_units(devices)
        gpus = _unique_gpus(units)
        resp = pb.ContainerAllocateResponse(envs={"NVIDIA_VISIBLE_DEVICES": ",".join(u.uuid for u in units)})
        if self.inventory.fake:
            data_file = self._data_file(device_ids, units, gpus)
            resp.envs.update({"AICONFORM_FAKE_GPU": "1", "AICONFORM_FAKE_GPU_DEVICES": DATA_CONTAINER_PATH})
            resp.mounts.extend([
                pb.Mount(container_path=SMI_CONTAINER_PATH, host_path=str(self.paths.nvidia_smi), read_only=True),
                pb.Mount(container_path=DATA_CONTAINER_PATH, host_path=str(data_file), read_only=True),
            ])
        if self.device_nodes:
            names = container_device_nodes(self.paths, units, gpus)
            resp.devices.extend(
                pb.DeviceSpec(container_path=f"/dev/{n}", host_path=str(self.paths.device_node(n)), permissions="rw")
                for n in names)
        return resp

    def _data_file(self, device_ids: Sequence[str], units: list[Unit], gpus: list[PhysicalGpu]) -> str:
        # Content is a function of the name (hash of inventory + ids), so an existing file is always right.  Files
        # are kept: the kubelet reuses a checkpointed Allocate response when it restarts a container.
        path = self.paths.allocation_file(self.inventory, device_ids)
        if not path.exists():
            write_atomic(path, render_data_file(units, gpus))
        return str(path)


def render_data_file(units: Sequence[Unit], gpus: Sequence[PhysicalGpu]) -> str:
    """The data file the fake nvidia-smi reads: the GPUs as the container sees them (index 0..n-1)."""
    lines = [DATA_HEADER]
    for index, gpu in enumerate(gpus):
        model = gpu.model
        lines.append(f"gpu|{index}|{gpu.uuid}|{model.product}|{model.memory_mib}|\n")
        migs = [u for u in units if isinstance(u, MigDevice) and u.parent.index == gpu.index]
        for local, mig in enumerate(migs):
            lines.append(f"mig|{local}|{mig.uuid}|{model.product}|{mig.memory_mib}|{mig.profile.name}\n")
    return "".join(lines)


def _unique_units(devices: Sequence[AdvertisedDevice]) -> list[Unit]:
    seen: dict[str, Unit] = {}
    for dev in devices:
        seen.setdefault(dev.unit.uuid, dev.unit)
    return list(seen.values())


def _unique_gpus(units: Sequence[Unit]) -> list[PhysicalGpu]:
    seen: dict[int, PhysicalGpu] = {}
    for unit in units:
        gpu = unit.parent if isinstance(unit, MigDevice) else unit
        seen.setdefault(gpu.index, gpu)
    return list(seen.values())
