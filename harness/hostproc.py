"""Host processes of a cluster this machine runs, and the loopback ports they listen on.

:class:`Supervisor`: daemons with a pidfile and a log each under one run directory.  Owns starting a daemon (through
harness.proc), waiting for its readiness probe with a deadline that fails fast when the process dies, the
interesting line of its log, stopping it, and listing what runs.  :func:`free_port` and :func:`check_port_free`:
where a listening component may bind on 127.0.0.1.

Neutral ground: the local provider's control plane and real node, and the addon installer's host processes (tier
S), all start theirs through it, so neither package imports the other for it.  Knows nothing about Kubernetes: a
probe is any ``() -> bool``.
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness import proc
from harness.errors import ClusterError, CommandError, PortInUse, WaitTimeout

LOG_KEYWORDS = ("error", "fatal", "panic", "in use")


class Supervisor:
    """Daemons of one run directory: ``pids/<name>.pid`` and ``logs/<name>.log``."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir

    def pidfile(self, name: str) -> Path:
        return self.dir / "pids" / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> proc.Daemon:
        try:
            return proc.start_daemon(name, argv, log=self.logfile(name), pidfile=self.pidfile(name), env=env)
        except CommandError as err:
            raise ClusterError(f"cannot start {name}: {err}") from err

    def pid(self, name: str) -> int | None:
        """The live pid of ``name``, or None."""
        rec = proc.read_pidfile(self.pidfile(name))
        return rec[0] if rec is not None and proc.pid_alive(rec[0]) else None

    def alive(self, name: str) -> bool:
        return self.pid(name) is not None

    def died(self, name: str) -> str | None:
        """A one-line reason when ``name`` was started (has a pidfile) and is no longer running, else None."""
        if self.pidfile(name).exists() and not self.alive(name):
            return f"{name} exited: {self.log_tail(name)}"
        return None

    def wait_ready(self, name: str, probe: Callable[[], bool], *, timeout: float, what: str = "") -> None:
        """Poll ``probe`` (a health endpoint or socket: no watch exists for those) until it answers, with a
        deadline; fail at once if the process exits meanwhile."""

        def answers() -> bool:
            if probe():
                return True
            if not self.alive(name):
                raise ClusterError(f"{name} exited during start-up: {self.log_tail(name)}")
            return False

        try:
            proc.poll_until(answers, timeout=timeout, interval=0.05, backoff=1.5, max_interval=0.5, what=what or name)
        except WaitTimeout:
            raise ClusterError(f"{what or name} was not ready after {timeout:.0f}s: {self.log_tail(name)}") from None

    def log_tail(self, name: str) -> str:
        """The last line of the log that looks like an error (else the last line), with the log's path."""
        log = self.logfile(name)
        try:
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "(no log)"
        interesting = [ln for ln in lines if any(w in ln.lower() for w in LOG_KEYWORDS)]
        tail = (interesting or lines)[-1:] if lines else ["(empty log)"]
        return f"{tail[0][:400]} (log: {log})"

    def stop(self, name: str) -> bool:
        """Stop ``name`` (SIGTERM, then SIGKILL); True when a live process was stopped."""
        return proc.stop_pidfile(self.pidfile(name))

    def running(self) -> dict[str, int]:
        """Every daemon with a live pid: name → pid."""
        out = {}
        piddir = self.dir / "pids"
        if piddir.is_dir():
            for pf in sorted(piddir.glob("*.pid")):
                pid = self.pid(pf.stem)
                if pid is not None:
                    out[pf.stem] = pid
        return out

    def recorded(self) -> list[str]:
        """Every daemon with a pidfile, alive or not."""
        piddir = self.dir / "pids"
        return sorted(p.stem for p in piddir.glob("*.pid")) if piddir.is_dir() else []


# -- ports on 127.0.0.1 ------------------------------------------------------------------------------------------------


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
