"""Test doubles of the kubelet's side of the device plugin APIs, for unit tests and benchmarks only.

Owns ``FakeKubeletRegistration`` (records Register calls on ``<dir>/kubelet.sock`` and can "restart" the way the
real kubelet does: recreate kubelet.sock and delete every other socket) and ``FakePodResources`` (answers
``v1.PodResourcesLister/List`` from a table).  The plugin never imports this module; integration tests run a real
kubelet instead.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import grpc

from fake_gpu_plugin.api import deviceplugin_pb2 as pb
from fake_gpu_plugin.api import deviceplugin_pb2_grpc as pb_grpc
from fake_gpu_plugin.api import podresources_pb2 as pr
from fake_gpu_plugin.api import podresources_pb2_grpc as pr_grpc


class _Registration(pb_grpc.RegistrationServicer):
    def __init__(self, requests: queue.Queue[pb.RegisterRequest], refuse: str | None) -> None:
        self.requests = requests
        self.refuse = refuse

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.Empty:
        if self.refuse is not None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, self.refuse)
        self.requests.put(request)
        return pb.Empty()


class FakeKubeletRegistration:
    """Serves ``v1beta1.Registration`` on ``<plugin_dir>/kubelet.sock`` and queues every RegisterRequest."""

    def __init__(self, plugin_dir: Path, *, refuse: str | None = None) -> None:
        self.plugin_dir = plugin_dir
        self.socket = plugin_dir / "kubelet.sock"
        self.requests: queue.Queue[pb.RegisterRequest] = queue.Queue()
        self.refuse = refuse
        self._server: grpc.Server | None = None

    def start(self) -> None:
        server = grpc.server(ThreadPoolExecutor(max_workers=2))
        pb_grpc.add_RegistrationServicer_to_server(_Registration(self.requests, self.refuse), server)
        server.add_insecure_port(f"unix://{self.socket}")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None
        self.socket.unlink(missing_ok=True)

    def restart(self) -> None:
        """Do what a restarting kubelet does: a new kubelet.sock, every other socket in the directory deleted."""
        self.stop()
        for entry in os.scandir(self.plugin_dir):
            if entry.name.endswith(".sock"):
                os.unlink(entry.path)
        self.start()

    def next_request(self, timeout_s: float = 5.0) -> pb.RegisterRequest:
        return self.requests.get(timeout=timeout_s)

    def __enter__(self) -> FakeKubeletRegistration:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


Holding = tuple[str, str, str, str, Sequence[str]]
"""(namespace, pod, container, resource name, device ids)."""


class _Lister(pr_grpc.PodResourcesListerServicer):
    def __init__(self, table: list[Holding]) -> None:
        self.table = table

    def List(self, request: pr.ListPodResourcesRequest, context: grpc.ServicerContext) -> pr.ListPodResourcesResponse:
        pods: dict[tuple[str, str], dict[str, list[pr.ContainerDevices]]] = {}
        for ns, pod, container, resource, ids in self.table:
            pods.setdefault((ns, pod), {}).setdefault(container, []).append(
                pr.ContainerDevices(resource_name=resource, device_ids=list(ids)))
        return pr.ListPodResourcesResponse(pod_resources=[
            pr.PodResources(namespace=ns, name=pod, containers=[
                pr.ContainerResources(name=c, devices=devs) for c, devs in containers.items()])
            for (ns, pod), containers in pods.items()
        ])


class FakePodResources:
    """Serves ``v1.PodResourcesLister/List`` on ``socket`` from ``table`` (mutable while running)."""

    def __init__(self, socket: Path, table: Sequence[Holding] = ()) -> None:
        self.socket = socket
        self.table: list[Holding] = list(table)
        self._server: grpc.Server | None = None

    def __enter__(self) -> FakePodResources:
        server = grpc.server(ThreadPoolExecutor(max_workers=2))
        pr_grpc.add_PodResourcesListerServicer_to_server(_Lister(self.table), server)
        server.add_insecure_port(f"unix://{self.socket}")
        server.start()
        self._server = server
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
        self.socket.unlink(missing_ok=True)

