"""The ``fake-gpu-plugin`` command (also ``python -m fake_gpu_plugin``).

Owns argument parsing, logging setup, signal handling and turning PluginError into one line and an exit code
(2 for a bad config or bad arguments).  Subcommands:

    serve     --config FILE [--node-name N] [--device-plugin-dir DIR] [--state-dir DIR] [--metrics-addr H:P|off]
              [--kubelet-root DIR] [--pod-resources-socket PATH] [--no-device-nodes] [--kubeconfig F|--in-cluster]
              [--backend fake|nvml]
    serve-dra --config FILE --node-name N --kubelet-root DIR --cdi-dir DIR --state-dir DIR
              (--kubeconfig F|--in-cluster) [--first-index I] [--no-device-nodes] [--backend fake|nvml]
              (the DRA driver, dra_plugin)
    slices    --config FILE --node-name N [--first-index I] [--backend fake|nvml]   (its ResourceSlices, JSON)
    health    --state-dir DIR (or --node-name N) --device UUID --unhealthy|--healthy
    labels    --config FILE [--format json|lines]
    validate  --config FILE
    inventory --config FILE [--node-name N] [--backend fake|nvml]   (the device ids each resource advertises, JSON)

``--backend nvml`` (``nvml_backend``) advertises the machine's real GPUs through the same plugin, and through the same
DRA driver (``serve-dra``, ``slices``: ResourceSlices of the real GPUs and MIG devices); ``--config`` is then optional
and may set only ``gpu.mig.strategy`` and ``gpu.sharing``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from fake_gpu_plugin.config import InventoryConfig, load_config
from fake_gpu_plugin.errors import ConfigError, PluginError
from fake_gpu_plugin.names import DCGM_EXPORTER_PORT

if TYPE_CHECKING:
    from fake_gpu_plugin.inventory import Inventory
    from fake_gpu_plugin.nvml_backend import NvmlBackend

log = logging.getLogger("fake_gpu_plugin")

PROG = "fake-gpu-plugin"


def default_node_name() -> str:
    return os.environ.get("NODE_NAME") or socket.gethostname()


def parse_addr(value: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``off`` or empty: no endpoint)."""
    if value in ("", "off", "none"):
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or 'off', got {value!r}")
    return (host.strip("[]") or "0.0.0.0", int(port))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="aiconform's fake GPU device plugin (the GPUs are fake; "
                                                            "the kubelet talking to it is real).")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the device plugin next to a kubelet")
    _add_source(serve)
    serve.add_argument("--node-name", default=None, help="node this plugin plays (default: $NODE_NAME or hostname)")
    serve.add_argument("--device-plugin-dir", type=Path, default=Path("/var/lib/kubelet/device-plugins"))
    serve.add_argument("--state-dir", type=Path, default=None,
                       help="host dir for device nodes, nvidia-smi, allocation files, health control "
                            "(default: /var/run/aiconform/fake-gpu/<node>)")
    serve.add_argument("--metrics-addr", type=parse_addr, default=("127.0.0.1", DCGM_EXPORTER_PORT),
                       help=f"HOST:PORT of /metrics, or 'off' (default 127.0.0.1:{DCGM_EXPORTER_PORT})")
    serve.add_argument("--kubelet-root", type=Path, default=Path("/var/lib/kubelet"),
                       help="the kubelet's --root-dir; locates the PodResources socket")
    serve.add_argument("--pod-resources-socket", type=Path, default=None,
                       help="default: <kubelet-root>/pod-resources/kubelet.sock")
    serve.add_argument("--no-device-nodes", action="store_true",
                       help="fake: do not mknod /dev/nvidia* stand-ins (no root); nvml: hand out no device nodes "
                            "(leave them to the NVIDIA container runtime); Allocate then hands out no devices")
    lookup = serve.add_mutually_exclusive_group()
    lookup.add_argument("--kubeconfig", type=Path, default=None,
                        help="read pod annotations (utilisation) from this cluster")
    lookup.add_argument("--in-cluster", action="store_true", help="read pod annotations with the pod's account")
    serve.add_argument("--label-node", action="store_true",
                       help="patch this node's GPU labels (GFD's rules, labels.py) with the --kubeconfig or "
                            "in-cluster credentials; needs get and patch on nodes")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    dra = sub.add_parser("serve-dra", help="run the DRA kubelet plugin (driver gpu.nvidia.com) next to a kubelet")
    _add_source(dra)
    dra.add_argument("--node-name", default=None, help="node this driver runs on (default: $NODE_NAME or hostname)")
    dra.add_argument("--first-index", type=int, default=0,
                     help="host index of the pool's first GPU (beside a device plugin's GPUs 0..N-1: N)")
    dra.add_argument("--kubelet-root", type=Path, default=Path("/var/lib/kubelet"),
                     help="the kubelet's --root-dir (plugins_registry/ and plugins/ live there)")
    dra.add_argument("--cdi-dir", type=Path, default=Path("/var/run/cdi"),
                     help="where the container runtime reads CDI specs")
    dra.add_argument("--state-dir", type=Path, default=None,
                     help="host dir for device nodes, nvidia-smi, prepared claims, health control "
                          "(default: /var/run/aiconform/fake-gpu/<node>-dra)")
    dra.add_argument("--no-device-nodes", action="store_true", help="do not mknod /dev/nvidia* stand-ins")
    api = dra.add_mutually_exclusive_group(required=True)
    api.add_argument("--kubeconfig", type=Path, default=None, help="publish slices and read claims as this user")
    api.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    dra.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    slices = sub.add_parser("slices", help="print the ResourceSlices the DRA driver would publish (JSON)")
    _add_source(slices)
    slices.add_argument("--node-name", default=None)
    slices.add_argument("--first-index", type=int, default=0)

    health = sub.add_parser("health", help="mark a device unhealthy or healthy in a running plugin")
    where = health.add_mutually_exclusive_group(required=True)
    where.add_argument("--state-dir", type=Path)
    where.add_argument("--node-name", help="use the default state dir of this node")
    health.add_argument("--device", required=True, help="GPU or MIG UUID (or an advertised device id)")
    state = health.add_mutually_exclusive_group(required=True)
    state.add_argument("--unhealthy", dest="healthy", action="store_false")
    state.add_argument("--healthy", dest="healthy", action="store_true")

    labels = sub.add_parser("labels", help="print the GFD-style node labels of an inventory")
    labels.add_argument("--config", required=True, type=Path)
    labels.add_argument("--format", choices=["json", "lines"], default="json")

    validate = sub.add_parser("validate", help="check an inventory config; one line and exit 2 if it is bad")
    validate.add_argument("--config", required=True, type=Path)

    inventory = sub.add_parser("inventory", help="print the devices each resource advertises (JSON)")
    _add_source(inventory)
    inventory.add_argument("--node-name", default=None)
    return parser


def _add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="inventory config (YAML or JSON pool dict); required with --backend fake, optional with "
                             "nvml (then only gpu.mig.strategy and gpu.sharing)")
    parser.add_argument("--backend", choices=["fake", "nvml"], default="fake",
                        help="fake (default): GPUs played from --config; nvml: the machine's real GPUs (nvidia-ml-py)")


def open_inventory(args: argparse.Namespace, node: str) -> tuple[Inventory, NvmlBackend | None]:
    """The inventory ``--backend``/``--config`` ask for, and the NVML backend when it is real (caller closes it)."""
    from fake_gpu_plugin.inventory import build_inventory

    if args.backend == "nvml":
        from fake_gpu_plugin.nvml_backend import NvmlBackend, NvmlSettings, settings_from_file

        settings = settings_from_file(args.config) if args.config is not None else NvmlSettings()
        backend = NvmlBackend.open()
        try:
            return backend.inventory(node, settings), backend
        except BaseException:
            backend.close()
            raise
    if args.config is None:
        raise ConfigError("", "--config is required with --backend fake (the GPUs it plays)")
    return build_inventory(load_config(args.config), node, first_index=getattr(args, "first_index", 0)), None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "serve-dra":
            return _serve_dra(args)
        if args.command == "slices":
            return _slices(args)
        if args.command == "health":
            return _health(args)
        if args.command == "labels":
            return _labels(args)
        if args.command == "validate":
            return _validate(args)
        return _inventory(args)
    except PluginError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return err.exit_code


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    node = args.node_name or default_node_name()
    inventory, backend = open_inventory(args, node)
    try:
        return _run_plugin(args, node, inventory, backend)
    finally:
        if backend is not None:
            backend.close()


def _run_plugin(args: argparse.Namespace, node: str, inventory: Inventory, backend: NvmlBackend | None) -> int:
    from fake_gpu_plugin.kubeapi import KubeAnnotationLookup
    from fake_gpu_plugin.metrics import AnnotationLookup
    from fake_gpu_plugin.plugin import FakeGpuPlugin, PluginSettings

    settings = PluginSettings(
        node_name=node,
        device_plugin_dir=args.device_plugin_dir,
        state_dir=args.state_dir,
        device_nodes=not args.no_device_nodes,
        metrics_addr=args.metrics_addr,
        pod_resources_socket=args.pod_resources_socket or args.kubelet_root / "pod-resources" / "kubelet.sock",
    )
    lookup: AnnotationLookup | None = None
    if args.kubeconfig is not None:
        lookup = KubeAnnotationLookup.from_kubeconfig(args.kubeconfig)
    elif args.in_cluster:
        lookup = KubeAnnotationLookup.in_cluster()
    if args.label_node:
        _label_node(args, node, lookup)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    health = backend.health_source(inventory) if backend is not None else None
    plugin = FakeGpuPlugin(inventory, settings, annotation_lookup=lookup, health_source=health)
    try:
        plugin.start()
        log.info("ready: node %s, %s GPUs, resources %s, state dir %s", node, inventory.hardware,
                 ", ".join(plugin.servers), settings.resolved_state_dir)
        stop.wait()
    finally:
        plugin.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _label_node(args: argparse.Namespace, node: str, lookup: object) -> None:
    from fake_gpu_plugin.kubeapi import KubeAnnotationLookup
    from fake_gpu_plugin.labels import node_labels
    from fake_gpu_plugin.nodelabels import apply_node_labels

    if not isinstance(lookup, KubeAnnotationLookup):
        raise ConfigError("", "--label-node needs --kubeconfig or --in-cluster (the credentials to patch the node)")
    if args.config is None:
        raise ConfigError("", "--label-node needs --config (the GPU spec the labels describe)")
    patch = apply_node_labels(lookup, node, node_labels(load_config(args.config)))
    log.info("labelled node %s: %d label(s) changed", node, len(patch))


def _serve_dra(args: argparse.Namespace) -> int:
    from fake_gpu_plugin.dra_plugin import DraDriver, DraSettings, resource_api_served
    from fake_gpu_plugin.hostfiles import default_state_dir
    from fake_gpu_plugin.kubeapi import KubeRest

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    node = args.node_name or default_node_name()
    inventory, backend = open_inventory(args, node)  # --backend nvml: the machine's real GPUs, the same driver
    if backend is not None:
        backend.close()  # the inventory is what the driver serves; NVML health is the device plugin's (serve)
    api = KubeRest.from_kubeconfig(args.kubeconfig) if args.kubeconfig is not None else KubeRest.in_cluster()
    if not resource_api_served(api):
        raise PluginError("the cluster serves no resource.k8s.io/v1 (DRA v1 is GA since Kubernetes 1.34): "
                          "this DRA driver needs it")
    settings = DraSettings(node_name=node, kubelet_root=args.kubelet_root, cdi_dir=args.cdi_dir,
                           state_dir=args.state_dir or default_state_dir(f"{node}-dra"),
                           device_nodes=not args.no_device_nodes)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    driver = DraDriver(inventory, settings, api)
    try:
        driver.start()
        log.info("ready: DRA driver %s on node %s, %d devices, registration socket %s", settings.driver, node,
                 len(driver.devices), settings.registration_socket)
        stop.wait()
    finally:
        driver.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _slices(args: argparse.Namespace) -> int:
    from fake_gpu_plugin.dra_devices import resource_slices

    inv, backend = open_inventory(args, args.node_name or default_node_name())
    if backend is not None:
        backend.close()
    print(json.dumps(resource_slices(inv), indent=2))
    return 0


def _health(args: argparse.Namespace) -> int:
    from fake_gpu_plugin.health import set_device_health
    from fake_gpu_plugin.hostfiles import default_state_dir

    state_dir = args.state_dir or default_state_dir(args.node_name)
    unhealthy = set_device_health(state_dir, args.device, healthy=args.healthy)
    print(f"{args.device}: {'healthy' if args.healthy else 'unhealthy'} ({len(unhealthy)} unhealthy in {state_dir})")
    return 0


def _labels(args: argparse.Namespace) -> int:
    from fake_gpu_plugin.labels import node_labels

    labels = node_labels(load_config(args.config))
    if args.format == "json":
        print(json.dumps(labels, indent=2))
    else:
        for key, value in labels.items():
            print(f"{key}={value}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    config: InventoryConfig = load_config(args.config)
    mig = f", MIG {config.mig.strategy}" if config.mig.enabled else ""
    shared = f", time-slicing x{config.time_slicing.replicas}" if config.time_slicing.enabled else ""
    print(f"{args.config}: ok ({config.count} x {config.model}{mig}{shared})")
    return 0


def _inventory(args: argparse.Namespace) -> int:
    inv, backend = open_inventory(args, args.node_name or default_node_name())
    if backend is not None:
        backend.close()
    print(json.dumps(inventory_json(inv), indent=2))
    return 0


def inventory_json(inv: Inventory) -> dict[str, object]:
    """What ``inventory`` prints: the node's GPUs, MIG devices and the device ids each resource advertises."""
    return {
        "node": inv.node_name,
        "hardware": inv.hardware,
        "gpus": [{"index": g.index, "uuid": g.uuid, "numa": g.numa_node, "model": g.model.key,
                  "product": g.model.product, "memory_mib": g.memory_mib, "minor": g.minor,
                  **({"pci_bus_id": g.pci_bus_id} if g.pci_bus_id else {})} for g in inv.gpus],
        "mig_devices": [{"uuid": m.uuid, "gpu": m.parent.index, "slot": m.slot, "profile": m.profile.name,
                         "memory_mib": m.memory_mib} for m in inv.mig_devices],
        "resources": {name: [d.id for d in devs] for name, devs in inv.resources.items()},
    }


__all__ = ["main", "build_parser", "ConfigError"]
