"""The health control file: how a test or an operator marks a fake device Unhealthy (and healthy again).

Owns the file format and its atomic read-modify-write; the plugin's supervisor polls the file's identity
(inode, mtime, size) every few tens of milliseconds and pushes changes to every ListAndWatch stream.  The file lives
at ``<state-dir>/health.json`` and holds ``{"unhealthy": ["GPU-...", "MIG-...", ...]}``; marking a GPU unhealthy
also makes its MIG devices and time-slicing replicas unhealthy.

CLI: ``fake-gpu-plugin health --state-dir DIR --device UUID --unhealthy|--healthy``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from fake_gpu_plugin.errors import PluginError

HEALTH_FILE = "health.json"

FileIdentity = tuple[int, int, int]
"""(inode, mtime_ns, size): changes whenever the file is replaced or rewritten."""


def health_file(state_dir: str | Path) -> Path:
    return Path(state_dir) / HEALTH_FILE


def file_identity(path: Path) -> FileIdentity | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_unhealthy(state_dir: str | Path) -> frozenset[str]:
    """The device ids marked unhealthy; empty when the file is absent.  PluginError when it is malformed."""
    path = health_file(state_dir)
    try:
        data = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError) as err:
        raise PluginError(f"{path}: unreadable health control file: {err}") from err
    ids = data.get("unhealthy", []) if isinstance(data, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise PluginError(f"{path}: 'unhealthy' must be a list of device ids")
    return frozenset(ids)


def set_device_health(state_dir: str | Path, device: str, *, healthy: bool) -> frozenset[str]:
    """Mark ``device`` (a GPU or MIG UUID, or an advertised id) healthy or unhealthy; returns the new set."""
    if not device or any(c.isspace() for c in device):
        raise PluginError(f"device id {device!r} is not a device id")
    path = health_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        current = set(read_unhealthy(state_dir))
        if healthy:
            current.discard(device)
        else:
            current.add(device)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"unhealthy": sorted(current)}) + "\n")
        os.replace(tmp, path)
    return frozenset(current)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise writers (two CLI calls at once must not lose an update)."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
