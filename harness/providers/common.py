"""What every provider that makes clusters shares: the state root, cluster names, free ports, and the owner record
that lets ``aiconform down/status/kubeconfig`` find a cluster's provider by name alone.

A provider that makes clusters keeps each one in a run directory ``<state root>/<name>`` and, before it starts
anything there, writes its registry name with :func:`mark_owner`.  Owns those conventions; starts nothing.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import random
import re
import socket
from pathlib import Path

import yaml

from harness.errors import ConfigError, PortInUse

OWNER_FILE = "provider"


def state_root() -> Path:
    env = os.environ.get("AICONFORM_STATE_DIR")
    return Path(env) if env else Path.home() / ".local" / "state" / "aiconform"


def validate_cluster_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", name):
        raise ConfigError(f"--name: must be a DNS-1123 label of at most 40 characters, got {name!r}")
    return name


LISTEN_PORTS = (20000, 32000)
"""Where listening ports of components are chosen: below the kernel's ephemeral range (Linux default 32768-60999),
so a component restarted on its port (an upgrade, a kubelet restart) never finds it taken by the source port of some
outgoing connection made meanwhile, which a port picked by ``bind(0)`` (from the ephemeral range) can be."""


def free_port() -> int:
    """A port free on 127.0.0.1 now, outside the ephemeral range when the kernel's range allows it."""
    low, high = LISTEN_PORTS
    ephemeral_low = _ephemeral_low()
    if ephemeral_low is not None and ephemeral_low <= high:
        high = ephemeral_low - 1
    rng = random.SystemRandom()
    for _ in range(64 if high - low > 1000 else 0):
        port = rng.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a narrow range: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int | None:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def check_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {port} ({what}) is already in use by another process") from None
            raise


def mark_owner(run_dir: Path, provider: str) -> None:
    """Record which provider made the cluster in ``run_dir`` (before anything of it starts)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / OWNER_FILE).write_text(provider + "\n")


def owner_of(run_dir: Path) -> str | None:
    """The provider that made the cluster in ``run_dir``; None when there is no such cluster.  Run directories
    from before owner records carry it in state.json."""
    try:
        return (run_dir / OWNER_FILE).read_text().strip() or None
    except OSError:
        pass
    try:
        provider = json.loads((run_dir / "state.json").read_text()).get("provider")
    except (OSError, ValueError, AttributeError):
        return None
    return provider if isinstance(provider, str) and provider else None


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, cluster: str) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": f"{cluster}-user", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": f"{cluster}-user"}}],
        "current-context": cluster,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    os.chmod(path, 0o600)
