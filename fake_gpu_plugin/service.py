"""The ``v1beta1.DevicePlugin`` service of one resource name, and the feed of its device list.

Owns answering the kubelet's RPCs: GetDevicePluginOptions, ListAndWatch (a stream that gets the full list first and
again on every change), GetPreferredAllocation (policy in ``preferred``), Allocate (contract in ``allocate``) and
PreStartContainer (not required; answers empty).  Does not own sockets or registration (``server``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence

import grpc

from fake_gpu_plugin.allocate import Allocator
from fake_gpu_plugin.api import deviceplugin_pb2 as pb
from fake_gpu_plugin.api import deviceplugin_pb2_grpc as pb_grpc
from fake_gpu_plugin.errors import AllocationError
from fake_gpu_plugin.inventory import AdvertisedDevice, health_map
from fake_gpu_plugin.preferred import preferred_allocation
from fake_gpu_plugin.registration import plugin_options

log = logging.getLogger(__name__)

_StreamQueue = queue.SimpleQueue[pb.ListAndWatchResponse | None]


def device_list(devices: Sequence[AdvertisedDevice], unhealthy: frozenset[str]) -> pb.ListAndWatchResponse:
    health = health_map(devices, unhealthy)
    return pb.ListAndWatchResponse(devices=[
        pb.Device(ID=d.id, health=health[d.id], topology=pb.TopologyInfo(nodes=[pb.NUMANode(ID=d.numa_node)]))
        for d in devices
    ])


class DeviceListFeed:
    """The current device list of one resource and the open ListAndWatch streams that receive it."""

    def __init__(self, initial: pb.ListAndWatchResponse) -> None:
        self._lock = threading.Lock()
        self._current = initial
        self._streams: set[_StreamQueue] = set()

    @property
    def current(self) -> pb.ListAndWatchResponse:
        with self._lock:
            return self._current

    @property
    def stream_count(self) -> int:
        with self._lock:
            return len(self._streams)

    def publish(self, devices: pb.ListAndWatchResponse) -> bool:
        """Send ``devices`` to every open stream if it differs from the current list; True when it did."""
        with self._lock:
            if devices == self._current:
                return False
            self._current = devices
            for stream in self._streams:
                stream.put(devices)
            return True

    def subscribe(self) -> _StreamQueue:
        stream: _StreamQueue = queue.SimpleQueue()
        with self._lock:
            stream.put(self._current)
            self._streams.add(stream)
        return stream

    def unsubscribe(self, stream: _StreamQueue) -> None:
        with self._lock:
            self._streams.discard(stream)
        stream.put(None)

    def close_all(self) -> None:
        """End every open stream (plugin shutdown)."""
        with self._lock:
            streams, self._streams = self._streams, set()
        for stream in streams:
            stream.put(None)


class DevicePluginService(pb_grpc.DevicePluginServicer):
    """The DevicePlugin RPCs for one resource name."""

    def __init__(self, resource: str, feed: DeviceListFeed, allocator: Allocator) -> None:
        self.resource = resource
        self.feed = feed
        self.allocator = allocator

    def GetDevicePluginOptions(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.DevicePluginOptions:
        return plugin_options()

    def ListAndWatch(self, request: pb.Empty, context: grpc.ServicerContext) -> Iterator[pb.ListAndWatchResponse]:
        stream = self.feed.subscribe()
        if not context.add_callback(lambda: self.feed.unsubscribe(stream)):
            self.feed.unsubscribe(stream)
        log.info("%s: ListAndWatch stream opened", self.resource)
        while (devices := stream.get()) is not None:
            yield devices
        log.info("%s: ListAndWatch stream closed", self.resource)

    def GetPreferredAllocation(self, request: pb.PreferredAllocationRequest,
                               context: grpc.ServicerContext) -> pb.PreferredAllocationResponse:
        response = pb.PreferredAllocationResponse()
        for creq in request.container_requests:
            try:
                available = self.allocator.resolve(creq.available_deviceIDs)
                must = self.allocator.resolve(creq.must_include_deviceIDs) if creq.must_include_deviceIDs else []
            except AllocationError as err:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            ids = preferred_allocation(available, must, creq.allocation_size)
            response.container_responses.append(pb.ContainerPreferredAllocationResponse(deviceIDs=ids))
        return response

    def Allocate(self, request: pb.AllocateRequest, context: grpc.ServicerContext) -> pb.AllocateResponse:
        response = pb.AllocateResponse()
        for creq in request.container_requests:
            try:
                response.container_responses.append(self.allocator.allocate(creq.devices_ids))
            except AllocationError as err:
                log.warning("%s: Allocate %s refused: %s", self.resource, list(creq.devices_ids), err)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            except OSError as err:
                context.abort(grpc.StatusCode.INTERNAL, f"cannot write allocation data file: {err}")
        log.debug("%s: Allocate %s", self.resource, [list(c.devices_ids) for c in request.container_requests])
        return response

    def PreStartContainer(self, request: pb.PreStartContainerRequest,
                          context: grpc.ServicerContext) -> pb.PreStartContainerResponse:
        return pb.PreStartContainerResponse()
