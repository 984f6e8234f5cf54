"""The plugin process: every resource server of one node, the health control file, kubelet restarts, metrics.

Owns orchestration and nothing else: ``FakeGpuPlugin.start()`` prepares the host files, starts one
``ResourceServer`` per resource name, registers each, starts the metrics endpoint and a supervisor thread that
every ``poll_interval_s`` (default 50 ms):
- re-reads the health control file when its (inode, mtime, size) changed and pushes changed device lists to
  every open ListAndWatch stream;
- notices a kubelet restart, i.e. our socket vanished or was replaced, or ``kubelet.sock``'s (inode, ctime)
  changed (the new kubelet recreates it with the SAME inode on ext4, so the inode alone is not enough), then
  recreates the socket and registers again;
- retries a failed registration every ``register_retry_s`` while ``kubelet.sock`` exists.
``stop()`` removes the sockets.  Signals are the CLI's business, not this class's.

Health has one path: the unhealthy set is the control file's ids plus, when a ``HealthSource`` is given (the nvml
backend's Xid watcher), that source's ids, read at the same supervisor tick; any change is pushed the same way.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from fake_gpu_plugin.allocate import Allocator
from fake_gpu_plugin.errors import PluginError, RegistrationError
from fake_gpu_plugin.health import FileIdentity, file_identity, health_file, read_unhealthy
from fake_gpu_plugin.hostfiles import HostPaths, default_state_dir, prepare
from fake_gpu_plugin.inventory import Inventory
from fake_gpu_plugin.metrics import AnnotationLookup, MetricsExporter, MetricsServer
from fake_gpu_plugin.names import DCGM_EXPORTER_PORT
from fake_gpu_plugin.server import ResourceServer
from fake_gpu_plugin.service import DeviceListFeed, DevicePluginService, device_list

log = logging.getLogger(__name__)

DEFAULT_DEVICE_PLUGIN_DIR = Path("/var/lib/kubelet/device-plugins")
DEFAULT_KUBELET_ROOT = Path("/var/lib/kubelet")
DEFAULT_DEV_ROOT = Path("/dev")


class HealthSource(Protocol):
    """A second source of unhealthy device ids besides the control file (e.g. NVML Xid events)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def unhealthy(self) -> frozenset[str]:
        """GPU/MIG UUIDs this source holds unhealthy now (cheap: called every supervisor tick)."""
        ...


@dataclass(frozen=True)
class PluginSettings:
    """How and where one plugin process runs (the inventory itself comes from ``InventoryConfig``)."""

    node_name: str
    """The node this plugin plays; seeds the device UUIDs."""
    device_plugin_dir: Path = DEFAULT_DEVICE_PLUGIN_DIR
    """Directory of the kubelet's ``kubelet.sock``; the plugin's sockets are created there."""
    state_dir: Path | None = None
    """Host directory for device nodes, nvidia-smi, allocation files, health file; None: the default per node."""
    device_nodes: bool = True
    """Create /dev/nvidia* stand-ins (needs root) and hand them out in Allocate."""
    metrics_addr: tuple[str, int] | None = ("127.0.0.1", DCGM_EXPORTER_PORT)
    """Where /metrics listens; None: no metrics endpoint."""
    pod_resources_socket: Path | None = DEFAULT_KUBELET_ROOT / "pod-resources" / "kubelet.sock"
    """The kubelet's PodResources socket, read by the metrics exporter; None: no pod attribution."""
    socket_prefix: str = "aiconform-fakegpu"
    """File name prefix of the plugin's sockets."""
    kubelet_socket_name: str = "kubelet.sock"
    poll_interval_s: float = 0.05
    """Supervisor period: latency of health flips and of re-registration after a kubelet restart."""
    register_timeout_s: float = 5.0
    register_retry_s: float = 1.0
    """Pause between attempts while the kubelet refuses or does not answer."""
    dev_root: Path = DEFAULT_DEV_ROOT
    """Where the real device nodes are; used only for real GPUs (an inventory that is not fake)."""

    @property
    def resolved_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else default_state_dir(self.node_name)

    @property
    def kubelet_socket(self) -> Path:
        return self.device_plugin_dir / self.kubelet_socket_name


class FakeGpuPlugin:
    """All resource servers of one node.  Use as a context manager or call ``start()``/``stop()``."""

    def __init__(self, inventory: Inventory, settings: PluginSettings, *,
                 annotation_lookup: AnnotationLookup | None = None, health_source: HealthSource | None = None) -> None:
        self.inventory = inventory
        self.settings = settings
        self.paths = HostPaths(settings.resolved_state_dir,
                               device_root=None if inventory.fake else settings.dev_root)
        self.annotation_lookup = annotation_lookup
        self.health_source = health_source
        self._unhealthy: frozenset[str] = frozenset()
        self._file_unhealthy: frozenset[str] = frozenset()
        self._sourced: frozenset[str] = frozenset()
        """The last union of the control file and the health source (a direct ``set_unhealthy`` stays until it
        changes)."""
        self._health_ident: FileIdentity | None = None
        self._kubelet_ident: tuple[int, int] | None = None
        self._next_attempt: dict[str, float] = {}
        self._warned_unknown: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self.feeds: dict[str, DeviceListFeed] = {}
        self.servers: dict[str, ResourceServer] = {}
        self.metrics_server: MetricsServer | None = None
        self.exporter = MetricsExporter(inventory, pod_resources_socket=settings.pod_resources_socket,
                                        annotation_lookup=annotation_lookup)

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the host, serve every resource, register each, start metrics and the supervisor."""
        prepare(self.paths, self.inventory, device_nodes=self.settings.device_nodes)
        if self.health_source is not None:
            self.health_source.start()
        self._reload_health(initial=True)
        try:
            for resource, devices in self.inventory.resources.items():
                feed = DeviceListFeed(device_list(devices, self._unhealthy))
                allocator = Allocator(self.inventory, self.paths, resource, device_nodes=self.settings.device_nodes)
                server = ResourceServer(DevicePluginService(resource, feed, allocator),
                                        self.settings.device_plugin_dir, socket_prefix=self.settings.socket_prefix)
                self.feeds[resource], self.servers[resource] = feed, server
                server.start()
            if self.settings.metrics_addr is not None:
                metrics = MetricsServer(self.exporter, self.settings.metrics_addr)
                metrics.start()
                self.metrics_server = metrics
        except BaseException:
            self.stop()
            raise
        self._check_kubelet()
        self._supervisor = threading.Thread(target=self._supervise, name="fake-gpu-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """Stop everything and remove the plugin's sockets.  Safe to call twice."""
        self._stop.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=5)
        self._supervisor = None
        metrics = self.metrics_server
        self.metrics_server = None
        if metrics is not None:
            metrics.stop()
        with self._lock:
            for feed in self.feeds.values():
                feed.close_all()
            for server in self.servers.values():
                server.stop()
        if self.health_source is not None:
            self.health_source.stop()

    def __enter__(self) -> FakeGpuPlugin:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- state -----------------------------------------------------------------------------------------------

    @property
    def unhealthy(self) -> frozenset[str]:
        """Device ids (GPU/MIG UUIDs, advertised ids) currently marked unhealthy."""
        return self._unhealthy

    def set_unhealthy(self, unhealthy: frozenset[str]) -> None:
        """Apply a new unhealthy set and push changed device lists (the control file is the usual way in)."""
        unknown = {u.split("::")[0] for u in unhealthy} - self.inventory.known_uuids() - self._warned_unknown
        for uuid in sorted(unknown):
            log.warning("health control names %s, which this node does not have", uuid)
        self._warned_unknown |= unknown
        self._unhealthy = unhealthy
        for resource, feed in self.feeds.items():
            if feed.publish(device_list(self.inventory.resources[resource], unhealthy)):
                log.info("%s: device health changed; pushed to %d stream(s)", resource, feed.stream_count)

    # ---- supervisor ------------------------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stop.wait(self.settings.poll_interval_s):
            with self._lock:
                if self._stop.is_set():
                    return
                self._reload_health()
                self._check_kubelet()

    def _reload_health(self, *, initial: bool = False) -> None:
        ident = file_identity(health_file(self.paths.state_dir))
        if ident != self._health_ident or initial:
            self._health_ident = ident
            try:
                self._file_unhealthy = read_unhealthy(self.paths.state_dir)
            except PluginError as err:
                log.warning("%s; keeping the previous health", err)
        unhealthy = self._file_unhealthy
        if self.health_source is not None:
            unhealthy |= self.health_source.unhealthy()
        if unhealthy != self._sourced or initial:
            self._sourced = unhealthy
            self.set_unhealthy(unhealthy)

    def _check_kubelet(self) -> None:
        ident = _kubelet_identity(self.settings.kubelet_socket)
        restarted = ident != self._kubelet_ident
        if restarted:
            log.info("kubelet socket %s: %s", self.settings.kubelet_socket, "appeared or changed" if ident else "gone")
        self._kubelet_ident = ident
        now = time.monotonic()
        for resource, server in self.servers.items():
            try:
                self._tend(resource, server, kubelet_up=ident is not None, restarted=restarted, now=now)
            except PluginError as err:
                log.warning("%s: %s (retrying)", resource, err)

    def _tend(self, resource: str, server: ResourceServer, *, kubelet_up: bool, restarted: bool, now: float) -> None:
        """Recreate a vanished socket, then (re)register if needed."""
        if not server.socket_intact():
            log.info("%s: socket %s vanished (kubelet restart?); recreating", resource, server.socket_path)
            server.restart()
            self._next_attempt[resource] = 0.0
        elif restarted:
            server.registered = False
            self._next_attempt[resource] = 0.0
        if not kubelet_up or server.registered or now < self._next_attempt.get(resource, 0.0):
            return
        try:
            server.register(self.settings.kubelet_socket, timeout_s=self.settings.register_timeout_s)
        except RegistrationError as err:
            log.warning("%s (retrying in %.1fs)", err, self.settings.register_retry_s)
            self._next_attempt[resource] = now + self.settings.register_retry_s
            return
        log.info("%s: registered with the kubelet (%s)", resource, self.settings.kubelet_socket)

    def wait_registered(self, timeout_s: float) -> bool:
        """True once every resource is registered (for callers that start the kubelet first)."""
        deadline = time.monotonic() + timeout_s
        while not all(s.registered for s in self.servers.values()):
            if time.monotonic() >= deadline or self._stop.wait(0.01):
                return False
        return True


def _kubelet_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_ctime_ns)
