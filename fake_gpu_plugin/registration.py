"""The client side of the kubelet's ``v1beta1.Registration`` service.

Owns one call: Register a resource's endpoint with the kubelet listening on ``<device-plugin-dir>/kubelet.sock``.
Knows nothing about when to call it (``plugin`` decides) and keeps no channel open between calls.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from fake_gpu_plugin.api import deviceplugin_pb2 as pb
from fake_gpu_plugin.api import deviceplugin_pb2_grpc as pb_grpc
from fake_gpu_plugin.errors import RegistrationError

API_VERSION = "v1beta1"


def plugin_options() -> pb.DevicePluginOptions:
    """What this plugin offers the kubelet (also answered by GetDevicePluginOptions)."""
    return pb.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=True)


def register(kubelet_socket: Path, *, endpoint: str, resource_name: str, timeout_s: float) -> None:
    """Register ``resource_name`` served on ``endpoint`` (a socket file name in the kubelet's plugin directory)."""
    request = pb.RegisterRequest(version=API_VERSION, endpoint=endpoint, resource_name=resource_name,
                                 options=plugin_options())
    with grpc.insecure_channel(f"unix://{kubelet_socket}") as channel:
        try:
            pb_grpc.RegistrationStub(channel).Register(request, timeout=timeout_s)
        except grpc.RpcError as err:
            code = err.code().name if isinstance(err, grpc.Call) else "UNKNOWN"
            details = err.details() if isinstance(err, grpc.Call) else str(err)
            raise RegistrationError(f"registering {resource_name} with the kubelet at {kubelet_socket} failed: "
                                    f"{code}: {details}") from err
