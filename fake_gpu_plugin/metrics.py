"""The DCGM-named metrics endpoint of the fake GPUs (Prometheus text format, ``GET /metrics``).

Owns turning the inventory, the kubelet's record of who holds which device (PodResources API) and each holder's
utilisation into the series dcgm-exporter would publish, so dashboards, alerts and HPA pipelines built for DCGM
read them unchanged.  One series per unit (a GPU, or a MIG device with GPU_I_PROFILE/GPU_I_ID labels) and holder;
labels ``gpu, UUID, device, modelName, Hostname`` plus ``pod, namespace, container`` when a container holds it.

What drives the values (all deterministic, see README):
- utilisation (%): 0 when no container holds the unit; else the holder pod's ``aiconform.io/gpu-utilization``
  annotation (0-100) when an annotation lookup is configured and the pod has it; else
  ``DEFAULT_ALLOCATED_UTILIZATION``;
- FB_USED (MiB) = memory * util / 100 / holders (time-sliced holders split the memory); FB_FREE = memory - sum used;
- GPU_TEMP (C) = 30 + util * 0.5; POWER_USAGE (W) = idle + (max - idle) * util / 100 with max the model's power
  limit times the unit's share of compute slices and idle 15% of max.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fake_gpu_plugin.config import COMPUTE_SLICES
from fake_gpu_plugin.errors import HostSetupError, PluginError
from fake_gpu_plugin.inventory import Inventory, MigDevice, Unit, parent_gpu
from fake_gpu_plugin.names import UTILIZATION_ANNOTATION
from fake_gpu_plugin.podresources import DeviceHolder, list_device_holders

log = logging.getLogger(__name__)

DEFAULT_ALLOCATED_UTILIZATION = 100
"""Utilisation of a held unit whose pod gives no annotation (or when no lookup is configured)."""

AnnotationLookup = Callable[[str, str], Mapping[str, str]]
"""``(namespace, pod) -> the pod's annotations``."""

_METRICS = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
)


@dataclass(frozen=True)
class Sample:
    """The five values of one series."""

    util: int
    fb_used: int
    fb_free: int
    temp: int
    power: float


class MetricsExporter:
    """Renders the metrics text for one node."""

    def __init__(self, inventory: Inventory, *, pod_resources_socket: Path | None,
                 annotation_lookup: AnnotationLookup | None = None) -> None:
        self.inventory = inventory
        self.pod_resources_socket = pod_resources_socket
        self.annotation_lookup = annotation_lookup

    def holders(self) -> tuple[dict[str, list[DeviceHolder]], bool]:
        """Unit UUID -> its holders (deduplicated per container), and whether the kubelet answered."""
        if self.pod_resources_socket is None:
            return {}, False
        try:
            listed = list_device_holders(self.pod_resources_socket, resources=self.inventory.resource_names)
        except PluginError as err:
            log.debug("%s", err)
            return {}, False
        by_unit: dict[str, dict[tuple[str, str, str], DeviceHolder]] = {}
        for holder in listed:
            dev = self.inventory.device(holder.device_id)
            if dev is not None:
                by_unit.setdefault(dev.unit.uuid, {}).setdefault(
                    (holder.namespace, holder.pod, holder.container), holder)
        return {uuid: list(h.values()) for uuid, h in by_unit.items()}, True

    def utilization(self, holder: DeviceHolder) -> int:
        if self.annotation_lookup is None:
            return DEFAULT_ALLOCATED_UTILIZATION
        try:
            value = self.annotation_lookup(holder.namespace, holder.pod).get(UTILIZATION_ANNOTATION)
        except (OSError, PluginError) as err:
            log.debug("annotation lookup for %s/%s failed: %s", holder.namespace, holder.pod, err)
            return DEFAULT_ALLOCATED_UTILIZATION
        if value is None:
            return DEFAULT_ALLOCATED_UTILIZATION
        try:
            return max(0, min(100, round(float(value))))
        except ValueError:
            log.debug("pod %s/%s: %s=%r is not a number", holder.namespace, holder.pod, UTILIZATION_ANNOTATION, value)
            return DEFAULT_ALLOCATED_UTILIZATION

    def render(self) -> str:
        holders, kubelet_up = self.holders()
        rows: list[tuple[str, Sample]] = []
        for unit in self.inventory.units():
            held = holders.get(unit.uuid, [])
            base = self._labels(unit)
            if not held:
                rows.append((_fmt_labels(base), _sample(unit, [0], 0)))
                continue
            utils = [self.utilization(h) for h in held]
            for i, holder in enumerate(held):
                labels = {**base, "pod": holder.pod, "namespace": holder.namespace, "container": holder.container}
                rows.append((_fmt_labels(labels), _sample(unit, utils, i)))
        out: list[str] = []
        for index, (name, help_text) in enumerate(_METRICS):
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
            for label_text, sample in rows:
                value = (sample.util, sample.fb_used, sample.fb_free, sample.temp, sample.power)[index]
                out.append(f"{name}{{{label_text}}} {_fmt_value(value)}\n")
        out.append("# HELP aiconform_fake_gpu_pod_resources_up Whether the kubelet's PodResources API answered.\n"
                   "# TYPE aiconform_fake_gpu_pod_resources_up gauge\n"
                   f"aiconform_fake_gpu_pod_resources_up {int(kubelet_up)}\n")
        return "".join(out)

    def _labels(self, unit: Unit) -> dict[str, str]:
        gpu = parent_gpu(unit)
        labels = {"gpu": str(gpu.index), "UUID": gpu.uuid, "device": f"nvidia{gpu.minor}",
                  "modelName": gpu.model.product, "Hostname": self.inventory.node_name}
        if isinstance(unit, MigDevice):
            labels |= {"GPU_I_PROFILE": unit.profile.name, "GPU_I_ID": str(unit.slot), "MIG_UUID": unit.uuid}
        return labels


def _sample(unit: Unit, utils: list[int], index: int) -> Sample:
    memory = unit.memory_mib
    holders = max(1, len(utils))
    used_each = [round(memory * u / 100 / holders) for u in utils]
    util = utils[index]
    share = unit.profile.compute_slices / COMPUTE_SLICES if isinstance(unit, MigDevice) else 1.0
    max_w = parent_gpu(unit).model.power_watts * share
    idle_w = 0.15 * max_w
    return Sample(util=util, fb_used=used_each[index], fb_free=memory - sum(used_each),
                  temp=round(30 + util * 0.5), power=round(idle_w + (max_w - idle_w) * util / 100, 3))


def _fmt_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt_value(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.3f}"


class MetricsServer:
    """Serves ``exporter.render()`` at ``http://<host>:<port>/metrics`` from a background thread."""

    def __init__(self, exporter: MetricsExporter, addr: tuple[str, int]) -> None:
        self.exporter = exporter
        handler = _handler_for(exporter)
        try:
            self._httpd = ThreadingHTTPServer(addr, handler)
        except OSError as err:
            raise HostSetupError(f"metrics address {addr[0]}:{addr[1]}: {err.strerror}") from err
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return (str(host), int(port))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fake-gpu-metrics", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", *self.address)

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()


def _handler_for(exporter: MetricsExporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics lives here")
                return
            body = exporter.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("metrics: " + format, *args)

    return Handler
