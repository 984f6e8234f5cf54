"""Test doubles of the kubelet's side of the device plugin APIs, for unit tests and benchmarks only.

Owns ``FakeKubeletRegistration`` (records Register calls on ``<dir>/kubelet.sock`` and can "restart" the way the
real kubelet does: recreate kubelet.sock and delete every other socket) and ``FakePodResources`` (answers
``v1.PodResourcesLister/List`` from a table), plus ``RecordedNvml``, a ``pynvml``-shaped object that replays NVML
answers recorded on a real machine (``nvml_backend.record_nvml``) and delivers injected NVML events.  The plugin
never imports this module; integration tests run a real kubelet instead.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any

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



# ---- NVML ----------------------------------------------------------------------------------------------------------


class _NvmlError(Exception):
    """pynvml.NVMLError's shape: the NVML return code in ``value``."""

    def __init__(self, value: int, message: str = "") -> None:
        super().__init__(message or f"NVML error {value}")
        self.value = value


@dataclass(frozen=True)
class _Handle:
    index: int
    slot: int | None = None


def _replay(answer: Mapping[str, Any], what: str) -> Any:
    if "error" in answer:
        raise _NvmlError(int(answer["error"] if answer["error"] is not None else 999), answer.get("message") or what)
    return _namespaced(answer["value"])


def _namespaced(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _namespaced(v) for k, v in value.items()})
    return value


class RecordedNvml:
    """Answers NVML calls from a recording (``nvml_backend.record_nvml``'s JSON); ``push_event`` feeds the event set.

    Only the calls the recording holds are answered (anything else is an AttributeError, so a backend that starts
    asking NVML something new fails its tests until the recording says what a real GPU answers)."""

    NVMLError = _NvmlError
    NVML_SUCCESS = 0
    NVML_ERROR_INVALID_ARGUMENT = 2
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NOT_FOUND = 6
    NVML_ERROR_TIMEOUT = 10
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_FUNCTION_NOT_FOUND = 13
    NVML_ERROR_GPU_IS_LOST = 15
    NVML_DEVICE_MIG_ENABLE = 1
    nvmlEventTypeSingleBitEccError = 0x1
    nvmlEventTypeDoubleBitEccError = 0x2
    nvmlEventTypeXidCriticalError = 0x8

    def __init__(self, recording: Mapping[str, Any], *, init_error: int | None = None) -> None:
        self.recording = recording
        self.init_error = init_error
        self.initialised = 0
        self.registered: list[tuple[int, int]] = []
        self._events: queue.Queue[SimpleNamespace | _NvmlError] = queue.Queue()
        self._sets_open = 0
        self._lock = threading.Lock()

    # lifecycle
    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise _NvmlError(self.init_error, "NVML Shared Library Not Found")
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    # devices
    def nvmlDeviceGetCount(self) -> int:
        return int(_replay(self.recording["system"]["nvmlDeviceGetCount"], "nvmlDeviceGetCount"))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        if not 0 <= index < len(self.recording["devices"]):
            raise _NvmlError(self.NVML_ERROR_INVALID_ARGUMENT, f"no GPU {index}")
        return _Handle(index)

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, slot: int) -> _Handle:
        for entry in self.recording["devices"][handle.index]["mig_devices"]:
            if entry["slot"] == slot:
                if "error" in entry:
                    raise _NvmlError(int(entry["error"]), entry.get("message", ""))
                return _Handle(handle.index, slot)
        raise _NvmlError(self.NVML_ERROR_NOT_FOUND, f"no MIG device in slot {slot}")

    def _answer(self, call: str, handle: _Handle) -> Any:
        device = self.recording["devices"][handle.index]
        if handle.slot is not None:
            device = next(m for m in device["mig_devices"] if m["slot"] == handle.slot)
        if call not in device:
            raise AttributeError(f"the recording holds no answer to {call} for {handle}")
        return _replay(device[call], call)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("nvmlDevice"):
            return lambda handle, *rest: self._answer(name, handle)
        if name.startswith("nvmlSystem"):
            return lambda: _replay(self.recording["system"][name], name)
        raise AttributeError(name)

    # events
    def nvmlEventSetCreate(self) -> object:
        with self._lock:
            self._sets_open += 1
        return object()

    def nvmlEventSetFree(self, event_set: object) -> None:
        with self._lock:
            self._sets_open -= 1

    def nvmlDeviceRegisterEvents(self, handle: _Handle, mask: int, event_set: object) -> None:
        recorded = self.recording.get("events", {}).get("nvmlDeviceRegisterEvents", [])
        if handle.index < len(recorded) and "error" in recorded[handle.index]:
            _replay(recorded[handle.index], "nvmlDeviceRegisterEvents")
        self.registered.append((handle.index, mask))

    def nvmlEventSetWait(self, event_set: object, timeout_ms: int) -> SimpleNamespace:
        try:
            item = self._events.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            raise _NvmlError(self.NVML_ERROR_TIMEOUT, "Timeout") from None
        if isinstance(item, _NvmlError):
            raise item
        return item

    def push_event(self, gpu_index: int, xid: int, *, gpu_instance: int = 0xFFFFFFFF,
                   compute_instance: int = 0xFFFFFFFF, event_type: int | None = None) -> None:
        """Deliver one event to the next ``nvmlEventSetWait``, as the driver does for an Xid on that GPU."""
        self._events.put(SimpleNamespace(
            device=_Handle(gpu_index), eventData=xid, gpuInstanceId=gpu_instance, computeInstanceId=compute_instance,
            eventType=self.nvmlEventTypeXidCriticalError if event_type is None else event_type))

    def push_wait_error(self, code: int) -> None:
        """Make the next ``nvmlEventSetWait`` fail with ``code`` (e.g. GPU lost)."""
        self._events.put(_NvmlError(code, f"NVML error {code}"))

    @property
    def event_sets_open(self) -> int:
        with self._lock:
            return self._sets_open
