"""The plugin's files on the host: fake device nodes, the fake nvidia-smi, per-allocation data files.

Owns the layout of the state directory (default ``/var/run/aiconform/fake-gpu/<node>``)::

    dev/nvidia<N>, dev/nvidiactl, dev/nvidia-uvm   character devices 1:3 (the same as /dev/null: harmless)
    bin/nvidia-smi                                 the POSIX-sh fake, bind-mounted read-only into containers
    alloc/<hash>                                   one data file per distinct allocation (hash of inventory + ids)
    health.json                                    the health control file (see ``health``)

Creating device nodes needs root (CAP_MKNOD); without it ``prepare`` raises HostSetupError unless device nodes are
turned off, in which case Allocate hands out no DeviceSpecs.

Real GPUs (``HostPaths.device_root`` set, normally ``/dev``): the driver's own nodes are handed out instead;
``prepare`` only checks that they exist and never creates, replaces or removes anything there.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.resources
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fake_gpu_plugin.errors import HostSetupError
from fake_gpu_plugin.inventory import Inventory, MigDevice, PhysicalGpu, Unit

log = logging.getLogger(__name__)

DEFAULT_STATE_ROOT = Path("/var/run/aiconform/fake-gpu")
_NULL_DEVICE = os.makedev(1, 3)


def default_state_dir(node_name: str) -> Path:
    return DEFAULT_STATE_ROOT / node_name


def nvidia_smi_script() -> str:
    """The text of the fake nvidia-smi (package data ``deploy/nvidia-smi``)."""
    return (importlib.resources.files("fake_gpu_plugin") / "deploy" / "nvidia-smi").read_text()


@dataclass(frozen=True)
class HostPaths:
    """Where the plugin keeps its host-side files for one node."""

    state_dir: Path
    device_root: Path | None = None
    """Where the real device nodes are (``/dev``) for real GPUs; None: the fake nodes under ``dev_dir``."""

    @property
    def dev_dir(self) -> Path:
        return self.state_dir / "dev"

    @property
    def bin_dir(self) -> Path:
        return self.state_dir / "bin"

    @property
    def alloc_dir(self) -> Path:
        return self.state_dir / "alloc"

    @property
    def nvidia_smi(self) -> Path:
        return self.bin_dir / "nvidia-smi"

    def device_node(self, name: str) -> Path:
        return (self.device_root or self.dev_dir) / name

    def allocation_file(self, inventory: Inventory, device_ids: Sequence[str]) -> Path:
        key = hashlib.sha256("\n".join([inventory.fingerprint, *device_ids]).encode()).hexdigest()[:20]
        return self.alloc_dir / key


CONTROL_NODE = "nvidiactl"
UVM_NODES = ("nvidia-uvm", "nvidia-uvm-tools")
"""Handed out where present under the device root: the fake makes ``nvidia-uvm`` only; on a real host the driver
creates both when the nvidia-uvm module loads (first CUDA use or nvidia-modprobe -u)."""


def device_node_names(inventory: Inventory) -> list[str]:
    """The nodes the fake creates."""
    return [f"nvidia{gpu.minor}" for gpu in inventory.gpus] + [CONTROL_NODE, UVM_NODES[0]]


def container_device_nodes(paths: HostPaths, units: Sequence[Unit], gpus: Sequence[PhysicalGpu]) -> list[str]:
    """Device node names (relative to the device root) a container holding ``units`` gets, in a stable order:
    ``nvidia<minor>`` per GPU involved, ``nvidiactl``, the UVM nodes that exist, each MIG device's own."""
    names = [f"nvidia{g.minor}" for g in gpus] + [CONTROL_NODE]
    names += [n for n in UVM_NODES if os.path.lexists(paths.device_node(n))]
    for unit in units:
        if isinstance(unit, MigDevice):
            names += [n for n in unit.device_nodes if n not in names]
    return names


def prepare(paths: HostPaths, inventory: Inventory, *, device_nodes: bool) -> None:
    """Create the state directory, the fake nvidia-smi and (if asked) the device nodes.  Idempotent.  Real GPUs:
    the state directory only, and a check that the driver's nodes exist."""
    try:
        for d in (paths.state_dir, paths.bin_dir, paths.alloc_dir):
            d.mkdir(parents=True, exist_ok=True)
        if paths.device_root is None:  # real GPUs: containers use the real nvidia-smi, never the fake
            script = nvidia_smi_script()
            if not paths.nvidia_smi.exists() or paths.nvidia_smi.read_text() != script:
                write_atomic(paths.nvidia_smi, script, mode=0o755)
    except OSError as err:
        raise HostSetupError(f"cannot prepare state dir {paths.state_dir}: {err.strerror}") from err
    if not device_nodes:
        return
    if paths.device_root is not None:
        wanted = [f"nvidia{gpu.minor}" for gpu in inventory.gpus] + [CONTROL_NODE]
        wanted += [n for m in inventory.mig_devices for n in m.device_nodes]
        missing = [str(paths.device_node(n)) for n in wanted if not os.path.lexists(paths.device_node(n))]
        if missing:
            raise HostSetupError(f"device node(s) {', '.join(missing)} missing: is the NVIDIA driver loaded "
                                 "(nvidia-modprobe / nvidia-smi create them)? Or pass --no-device-nodes")
        if not os.path.lexists(paths.device_node(UVM_NODES[0])):
            # Seen on an H100: without the UVM nodes cuInit fails (999) in a container; they are handed out once
            # they exist, so loading the module later is enough.
            log.warning("%s missing: containers cannot run CUDA until the nvidia-uvm module is loaded "
                        "(nvidia-modprobe -u -c=0)", paths.device_node(UVM_NODES[0]))
        return
    paths.dev_dir.mkdir(exist_ok=True)
    for name in device_node_names(inventory):
        _make_char_device(paths.device_node(name))


def _make_char_device(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == _NULL_DEVICE:
            return
        path.unlink()
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, _NULL_DEVICE)
        os.chmod(path, 0o666)
    except PermissionError as err:
        raise HostSetupError(f"cannot create device node {path}: mknod needs root (CAP_MKNOD); "
                             "run as root or pass --no-device-nodes") from err
    except OSError as err:
        if err.errno == errno.EEXIST:
            return
        raise HostSetupError(f"cannot create device node {path}: {err.strerror}") from err


def write_atomic(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` so that readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
