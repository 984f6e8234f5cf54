"""The DRA kubelet plugin of the fake GPUs: registration, NodePrepareResources/NodeUnprepareResources, ResourceSlices.

Owns the driver process of one node (``DraDriver``):
- the kubelet plugin registration service (pluginregistration v1) on ``<kubelet root>/plugins_registry/
  <driver>-reg.sock``: GetInfo answers type ``DRAPlugin``, the driver name and the absolute path of the DRA socket,
  and the service it serves, ``v1.DRAPlugin``; NotifyRegistrationStatus tells whether the kubelet took it;
- the DRA node service (``k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin``) on ``<kubelet root>/plugins/<driver>/
  dra.sock``: Prepare reads each claim's allocation from the API (the request carries only namespace/name/uid),
  writes a CDI spec per claim (``cdi``) and answers the CDI device names; Unprepare removes them.  Both are
  idempotent, keep their state on disk (the kubelet does not call Prepare again after a driver restart) and time
  every call (``<state>/dra/calls.jsonl``: what the bench reads, timed inside the real kubelet's calls);
- the node's ResourceSlices (``dra_devices``), published through the API after registration, re-published when a
  device's health changes (a device taint) or when they vanish (the kubelet deletes a driver's slices at its start
  and ~30 s after losing the driver), and deleted on stop.
Health comes from the same control file as the device plugin's (``health``), read by a supervisor thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc

from fake_gpu_plugin import cdi
from fake_gpu_plugin.api import dra_pb2 as dra_pb
from fake_gpu_plugin.api import dra_pb2_grpc as dra_grpc
from fake_gpu_plugin.api import pluginregistration_pb2 as reg_pb
from fake_gpu_plugin.api import pluginregistration_pb2_grpc as reg_grpc
from fake_gpu_plugin.dra_devices import API_VERSION, DRIVER, device_index, resource_slices
from fake_gpu_plugin.errors import HostSetupError, PluginError
from fake_gpu_plugin.health import FileIdentity, file_identity, health_file, read_unhealthy
from fake_gpu_plugin.hostfiles import HostPaths, prepare, write_atomic
from fake_gpu_plugin.inventory import Inventory

log = logging.getLogger(__name__)

SERVICE_VERSIONS = ("v1.DRAPlugin",)
"""The DRA node service versions served (kubelet >= 1.34 speaks v1)."""
SLICE_LABEL = "aiconform.io/dra-node"
"""On every ResourceSlice this driver publishes: its node (what it deletes on stop)."""
RESOURCE_PATH = "/apis/resource.k8s.io/v1"


class Api(Protocol):
    def request(self, method: str, path: str, body: Any = None, *, timeout_s: float | None = None,
                content_type: str = "application/json") -> Any: ...


@dataclass(frozen=True)
class DraSettings:
    node_name: str
    kubelet_root: Path
    cdi_dir: Path
    state_dir: Path
    driver: str = DRIVER
    device_nodes: bool = True
    poll_interval_s: float = 0.05
    """Supervisor period: latency of a health flip reaching the slices."""
    resync_s: float = 5.0
    """How often the driver checks that its slices still exist."""

    @property
    def registration_socket(self) -> Path:
        return self.kubelet_root / "plugins_registry" / f"{self.driver}-reg.sock"

    @property
    def dra_socket(self) -> Path:
        return self.kubelet_root / "plugins" / self.driver / "dra.sock"

    @property
    def claims_dir(self) -> Path:
        return self.state_dir / "dra" / "claims"

    @property
    def calls_log(self) -> Path:
        return self.state_dir / "dra" / "calls.jsonl"


class _Registration(reg_grpc.RegistrationServicer):
    def __init__(self, driver: DraDriver) -> None:
        self.driver = driver

    def GetInfo(self, request: reg_pb.InfoRequest, context: grpc.ServicerContext) -> reg_pb.PluginInfo:
        s = self.driver.settings
        return reg_pb.PluginInfo(type="DRAPlugin", name=s.driver, endpoint=str(s.dra_socket),
                                 supported_versions=list(SERVICE_VERSIONS))

    def NotifyRegistrationStatus(self, request: reg_pb.RegistrationStatus,
                                 context: grpc.ServicerContext) -> reg_pb.RegistrationStatusResponse:
        self.driver.on_registration(request.plugin_registered, request.error)
        return reg_pb.RegistrationStatusResponse()


class _NodeService(dra_grpc.DRAPluginServicer):
    def __init__(self, driver: DraDriver) -> None:
        self.driver = driver

    def NodePrepareResources(self, request: dra_pb.NodePrepareResourcesRequest,
                             context: grpc.ServicerContext) -> dra_pb.NodePrepareResourcesResponse:
        t0 = time.monotonic()
        out = dra_pb.NodePrepareResourcesResponse()
        for claim in request.claims:
            try:
                devices = self.driver.prepare(claim.namespace, claim.name, claim.uid)
                out.claims[claim.uid].devices.extend(devices)
            except PluginError as err:
                log.warning("prepare %s/%s (%s): %s", claim.namespace, claim.name, claim.uid, err)
                out.claims[claim.uid].error = str(err)
        self.driver.record_call("prepare", len(request.claims), time.monotonic() - t0)
        return out

    def NodeUnprepareResources(self, request: dra_pb.NodeUnprepareResourcesRequest,
                               context: grpc.ServicerContext) -> dra_pb.NodeUnprepareResourcesResponse:
        t0 = time.monotonic()
        out = dra_pb.NodeUnprepareResourcesResponse()
        for claim in request.claims:
            try:
                self.driver.unprepare(claim.uid)
                out.claims[claim.uid].error = ""
            except (PluginError, OSError) as err:
                out.claims[claim.uid].error = str(err)
        self.driver.record_call("unprepare", len(request.claims), time.monotonic() - t0)
        return out


class DraDriver:
    """The DRA driver of one node.  Use as a context manager or call ``start()``/``stop()``."""

    def __init__(self, inventory: Inventory, settings: DraSettings, api: Api) -> None:
        self.inventory = inventory
        self.settings = settings
        self.api = api
        self.paths = HostPaths(settings.state_dir)
        self.devices = device_index(inventory)
        self.registered = threading.Event()
        self.unhealthy: frozenset[str] = frozenset()
        self.generation = 0
        self.published: list[str] = []
        self._servers: list[grpc.Server] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self._health_ident: FileIdentity | None = None
        self._last_resync = 0.0
        self._reg_ino: int | None = None

    # -- lifecycle --
    def start(self) -> None:
        prepare(self.paths, self.inventory, device_nodes=self.settings.device_nodes)
        self.settings.claims_dir.mkdir(parents=True, exist_ok=True)
        self.settings.cdi_dir.mkdir(parents=True, exist_ok=True)
        self.unhealthy = self._read_health()
        self._health_ident = file_identity(health_file(self.paths.state_dir))
        self._serve(self.settings.dra_socket, lambda srv: dra_grpc.add_DRAPluginServicer_to_server(
            _NodeService(self), srv))
        self._serve_registration()
        self._supervisor = threading.Thread(target=self._supervise, name="dra-supervisor", daemon=True)
        self._supervisor.start()

    def _serve(self, socket: Path, add: Any) -> None:
        socket.parent.mkdir(parents=True, exist_ok=True)
        socket.unlink(missing_ok=True)
        server = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="dra"))
        add(server)
        try:
            server.add_insecure_port(f"unix://{socket}")
            server.start()
        except (RuntimeError, OSError) as err:
            server.stop(grace=None)
            raise HostSetupError(f"cannot listen on {socket}: {err}") from err
        self._servers.append(server)
        log.info("serving on %s", socket)

    def _serve_registration(self) -> None:
        self._serve(self.settings.registration_socket,
                    lambda srv: reg_grpc.add_RegistrationServicer_to_server(_Registration(self), srv))
        self._reg_ino = os.stat(self.settings.registration_socket).st_ino

    def stop(self, *, delete_slices: bool = True) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        for server in self._servers:
            server.stop(grace=None).wait(5)
        self._servers.clear()
        for sock in (self.settings.registration_socket, self.settings.dra_socket):
            sock.unlink(missing_ok=True)
        try:
            self.settings.dra_socket.parent.rmdir()
        except OSError:
            pass
        if delete_slices:
            try:
                self.delete_slices()
            except PluginError as err:
                log.warning("could not delete the ResourceSlices: %s", err)

    def __enter__(self) -> DraDriver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- registration and slices --
    def on_registration(self, registered: bool, error: str) -> None:
        if not registered:
            log.error("the kubelet refused the DRA driver: %s", error)
            return
        log.info("registered with the kubelet as DRA driver %s", self.settings.driver)
        self.registered.set()
        try:
            self.publish()
        except PluginError as err:
            log.warning("publishing ResourceSlices failed (retried by the supervisor): %s", err)

    def slices(self) -> list[dict[str, Any]]:
        return resource_slices(self.inventory, unhealthy=self.unhealthy, generation=max(self.generation, 1),
                               labels={SLICE_LABEL: self.inventory.node_name})

    def publish(self, *, bump: bool = True) -> None:
        """Create or update every slice of the pool (a new pool generation when ``bump``) and delete stale ones."""
        with self._publish_lock:
            if bump or self.generation == 0:
                self.generation = max(self.generation + 1, int(time.time()))
            wanted = self.slices()
            names = {s["metadata"]["name"] for s in wanted}
            for obj in wanted:
                name = obj["metadata"]["name"]
                path = f"{RESOURCE_PATH}/resourceslices/{urllib.parse.quote(name)}"
                try:
                    current = self.api.request("GET", path)
                except PluginError as err:
                    if getattr(err, "code", None) != 404:
                        raise
                    self.api.request("POST", f"{RESOURCE_PATH}/resourceslices", obj)
                    continue
                obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self.api.request("PUT", path, obj)
            for name in self._listed() - names:
                self._delete(name)
            self.published = sorted(names)
            log.info("published %d ResourceSlice(s), pool generation %d, %d unhealthy", len(names),
                     self.generation, len(self.unhealthy))

    def _listed(self) -> set[str]:
        selector = urllib.parse.quote(f"{SLICE_LABEL}={self.inventory.node_name}")
        items = self.api.request("GET", f"{RESOURCE_PATH}/resourceslices?labelSelector={selector}").get("items") or []
        return {i["metadata"]["name"] for i in items}

    def _delete(self, name: str) -> None:
        try:
            self.api.request("DELETE", f"{RESOURCE_PATH}/resourceslices/{urllib.parse.quote(name)}")
        except PluginError as err:
            if getattr(err, "code", None) != 404:
                raise

    def delete_slices(self) -> None:
        for name in self._listed():
            self._delete(name)

    # -- prepare / unprepare --
    def prepare(self, namespace: str, name: str, uid: str) -> list[dra_pb.Device]:
        record = self.settings.claims_dir / f"{uid}.json"
        if record.exists():  # prepared before (a kubelet retry, or before a driver restart)
            return [_device_msg(d) for d in json.loads(record.read_text())["devices"]]
        claim = self.api.request(
            "GET", f"{RESOURCE_PATH}/namespaces/{urllib.parse.quote(namespace)}/resourceclaims/{urllib.parse.quote(name)}")
        if claim.get("metadata", {}).get("uid") != uid:
            raise PluginError(f"claim {namespace}/{name} has uid {claim.get('metadata', {}).get('uid')}, not {uid}")
        results = ((claim.get("status") or {}).get("allocation") or {}).get("devices", {}).get("results") or []
        mine = [r for r in results if r.get("driver") == self.settings.driver
                and r.get("pool") == self.inventory.node_name]
        if not mine:
            raise PluginError(f"claim {namespace}/{name} has no device of driver {self.settings.driver} in pool "
                              f"{self.inventory.node_name}")
        claim_devices: list[cdi.ClaimDevice] = []
        entries: list[dict[str, Any]] = []
        for r in mine:
            dev = self.devices.get(r["device"])
            if dev is None:
                raise PluginError(f"claim {namespace}/{name}: device {r['device']!r} is not one this driver publishes")
            if all(c.name != dev.name for c in claim_devices):
                claim_devices.append(cdi.ClaimDevice(dev.name, dev.unit, passthrough=dev.passthrough))
            entry: dict[str, Any] = {"requests": [r["request"]], "pool": r["pool"], "device": r["device"],
                                     "cdi": [cdi.qualified(uid, dev.name)]}
            if r.get("shareID"):
                entry["share_id"] = r["shareID"]
            entries.append(entry)
        try:
            cdi.write_claim_spec(self.settings.cdi_dir, uid, claim_devices, self.paths)
            write_atomic(record, json.dumps({"namespace": namespace, "name": name, "devices": entries}))
        except OSError as err:
            raise PluginError(f"writing the CDI spec of claim {namespace}/{name}: {err}") from err
        log.info("prepared claim %s/%s: %s", namespace, name, ", ".join(d.name for d in claim_devices))
        return [_device_msg(e) for e in entries]

    def unprepare(self, uid: str) -> None:
        cdi.remove_claim_spec(self.settings.cdi_dir, uid, self.paths)
        (self.settings.claims_dir / f"{uid}.json").unlink(missing_ok=True)
        log.info("unprepared claim %s", uid)

    def prepared_claims(self) -> list[str]:
        return sorted(p.stem for p in self.settings.claims_dir.glob("*.json"))

    def record_call(self, op: str, claims: int, seconds: float) -> None:
        line = json.dumps({"op": op, "claims": claims, "ms": round(seconds * 1000, 3), "t": time.time()})
        with self._lock:
            with open(self.settings.calls_log, "a") as fh:
                fh.write(line + "\n")

    # -- supervisor --
    def _read_health(self) -> frozenset[str]:
        known = self.inventory.known_uuids()
        return frozenset(u for u in read_unhealthy(self.paths.state_dir) if u in known)

    def _supervise(self) -> None:
        while not self._stop.wait(self.settings.poll_interval_s):
            try:
                self._tick()
            except PluginError as err:
                log.warning("supervisor: %s", err)
                self._last_resync = time.monotonic()  # retry at the next resync, not every tick

    def _tick(self) -> None:
        try:
            ino = os.stat(self.settings.registration_socket).st_ino
        except FileNotFoundError:
            ino = None
        if ino != self._reg_ino:  # someone removed our registration socket: serve it again
            log.warning("registration socket %s vanished; serving it again", self.settings.registration_socket)
            self._serve_registration()
        ident = file_identity(health_file(self.paths.state_dir))
        if ident != self._health_ident:
            self._health_ident = ident
            unhealthy = self._read_health()
            if unhealthy != self.unhealthy:
                self.unhealthy = unhealthy
                if self.registered.is_set():
                    self.publish()
        now = time.monotonic()
        if self.registered.is_set() and now - self._last_resync >= self.settings.resync_s:
            self._last_resync = now
            if not self.published or set(self.published) - self._listed():
                self.publish()


def _device_msg(entry: dict[str, Any]) -> dra_pb.Device:
    msg = dra_pb.Device(request_names=entry["requests"], pool_name=entry["pool"], device_name=entry["device"],
                        cdi_device_ids=entry["cdi"])
    if entry.get("share_id"):
        msg.share_id = entry["share_id"]
    return msg


def resource_api_served(api: Api) -> bool:
    """Whether the apiserver serves ``resource.k8s.io/v1`` (DRA v1)."""
    try:
        doc = api.request("GET", "/apis/resource.k8s.io")
    except PluginError:
        return False
    return any(v.get("groupVersion") == API_VERSION for v in doc.get("versions") or [])
