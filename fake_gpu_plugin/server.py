"""One resource name's endpoint: a gRPC server on its own unix socket and its registration with the kubelet.

Owns the socket's lifecycle (create, notice it vanished, recreate, remove on stop) and registering it.  One
``ResourceServer`` per resource name, each with its own socket and Register call, as the kubelet expects;
``plugin`` decides when to (re)start and (re)register them.
"""

from __future__ import annotations

import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from fake_gpu_plugin.api import deviceplugin_pb2_grpc as pb_grpc
from fake_gpu_plugin.errors import HostSetupError
from fake_gpu_plugin.registration import register
from fake_gpu_plugin.service import DevicePluginService

log = logging.getLogger(__name__)

UNIX_PATH_MAX = 107


def socket_name(prefix: str, resource: str) -> str:
    """``<prefix>-nvidia.com_mig-1g.10gb.sock`` for ``nvidia.com/mig-1g.10gb``: one file name per resource."""
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9._-]', '_', resource)}.sock"


class ResourceServer:
    """Serves ``service`` on ``<plugin_dir>/<socket name>`` and registers it with the kubelet."""

    def __init__(self, service: DevicePluginService, plugin_dir: Path, *, socket_prefix: str,
                 max_workers: int = 8) -> None:
        self.service = service
        self.resource = service.resource
        self.endpoint = socket_name(socket_prefix, self.resource)
        self.socket_path = plugin_dir / self.endpoint
        if len(str(self.socket_path)) > UNIX_PATH_MAX:
            raise HostSetupError(f"socket path {self.socket_path} is longer than {UNIX_PATH_MAX} bytes")
        self.max_workers = max_workers
        self.registered = False
        self.registrations = 0
        self._server: grpc.Server | None = None
        self._socket_ino: int | None = None

    def start(self) -> None:
        """Listen on the socket (replacing a stale file of that name)."""
        if self._server is not None:
            return
        try:
            self.socket_path.unlink(missing_ok=True)
        except OSError as err:
            raise HostSetupError(f"cannot remove stale socket {self.socket_path}: {err.strerror}") from err
        server = grpc.server(ThreadPoolExecutor(max_workers=self.max_workers,
                                                thread_name_prefix=f"dp-{self.resource}"))
        pb_grpc.add_DevicePluginServicer_to_server(self.service, server)
        try:
            server.add_insecure_port(f"unix://{self.socket_path}")
            server.start()
            self._socket_ino = os.stat(self.socket_path).st_ino
        except (RuntimeError, OSError) as err:
            server.stop(grace=None)
            raise HostSetupError(f"cannot listen on {self.socket_path}: {err}") from err
        self._server = server
        log.info("%s: serving on %s", self.resource, self.socket_path)

    def stop(self) -> None:
        """Stop serving (open streams end) and remove the socket if it is still ours."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=None).wait(5)
        if self._socket_ino is not None and self.socket_intact():
            self.socket_path.unlink(missing_ok=True)
        self._socket_ino = None
        self.registered = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def socket_intact(self) -> bool:
        """False once the socket file we listen on was removed or replaced (the kubelet restarted)."""
        try:
            return os.stat(self.socket_path).st_ino == self._socket_ino
        except FileNotFoundError:
            return False

    def register(self, kubelet_socket: Path, *, timeout_s: float) -> None:
        register(kubelet_socket, endpoint=self.endpoint, resource_name=self.resource, timeout_s=timeout_s)
        self.registered = True
        self.registrations += 1
        log.info("%s: registered with the kubelet (%s)", self.resource, self.endpoint)
