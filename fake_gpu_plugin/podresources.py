"""Client of the kubelet's PodResources API v1 (``v1.PodResourcesLister/List``).

Owns one question: which pod and container hold which device ids, as the kubelet itself records it
(``<kubelet-root>/pod-resources/kubelet.sock``).  The metrics exporter attributes devices with it; nothing here
guesses an owner.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import grpc

from fake_gpu_plugin.api import podresources_pb2 as pr
from fake_gpu_plugin.api import podresources_pb2_grpc as pr_grpc
from fake_gpu_plugin.errors import PluginError


@dataclass(frozen=True)
class DeviceHolder:
    """One device id held by one container."""

    namespace: str
    pod: str
    container: str
    resource: str
    device_id: str


def list_device_holders(socket: Path, *, resources: Collection[str] | None = None,
                        timeout_s: float = 1.0) -> list[DeviceHolder]:
    """Every (container, device id) pair the kubelet reports, optionally only for ``resources``.

    PluginError when the kubelet's socket does not answer.
    """
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        try:
            reply = pr_grpc.PodResourcesListerStub(channel).List(pr.ListPodResourcesRequest(), timeout=timeout_s)
        except grpc.RpcError as err:
            code = err.code().name if isinstance(err, grpc.Call) else "UNKNOWN"
            raise PluginError(f"PodResources List on {socket} failed: {code}") from err
    holders = []
    for pod in reply.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                if resources is not None and devices.resource_name not in resources:
                    continue
                holders += [DeviceHolder(pod.namespace, pod.name, container.name, devices.resource_name, device_id)
                            for device_id in devices.device_ids]
    return holders
