"""The one subprocess helper: argv lists only, deadlines always, failures as CommandError.

Owns running short commands to completion and starting long-lived daemons with pidfiles, and the one deadline loop
(:func:`poll_until`) for what has no watch (a socket, a health endpoint, API discovery, a metric).  Must not know
about Kubernetes; providers build argv lists and hand them here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from harness.errors import CommandError, WaitTimeout

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    timeout: float = 600.0,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input_text: str | None = None,
) -> Result:
    """Run ``argv`` to completion within ``timeout`` seconds.

    Raises CommandError when the command cannot start, times out, or (with ``check``) exits non-zero.
    """
    args = [str(a) for a in argv]
    if not args:
        raise ValueError("argv must not be empty")
    cwd_s = str(cwd) if cwd is not None else None
    try:
        proc = subprocess.run(
            args,
            cwd=cwd_s,
            env=dict(env) if env is not None else None,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as err:
        raise CommandError(args, None, f"{args[0]}: not found", cwd=cwd_s) from err
    except subprocess.TimeoutExpired as err:
        out = _text(err.stdout) + _text(err.stderr)
        raise CommandError(args, None, out, timed_out=True, cwd=cwd_s) from err
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stdout + proc.stderr, cwd=cwd_s)
    return Result(args, proc.returncode, proc.stdout, proc.stderr)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


@dataclass(frozen=True)
class Daemon:
    """A background process started by :func:`start_daemon`, recorded in a pidfile."""

    name: str
    pid: int
    argv: list[str]
    log: Path
    pidfile: Path


def start_daemon(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    pidfile: Path,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Daemon:
    """Start ``argv`` in its own session (so a terminal's Ctrl-C reaches only the harness), logging to ``log``.

    The pidfile holds the pid and the executable path so that :func:`stop_pidfile` never signals a reused pid.
    """
    args = [str(a) for a in argv]
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(cwd) if cwd is not None else None,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError) as err:
            raise CommandError(args, None, f"{args[0]}: {err.strerror}") from err
    pidfile.write_text(f"{proc.pid}\n{os.path.realpath(args[0])}\n")
    return Daemon(name, proc.pid, args, log, pidfile)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def read_pidfile(pidfile: Path) -> tuple[int, str] | None:
    """(pid, executable) from a pidfile, or None when it is absent or unreadable."""
    try:
        lines = pidfile.read_text().split("\n")
        return int(lines[0]), lines[1] if len(lines) > 1 else ""
    except (OSError, ValueError):
        return None


def _exe_matches(pid: int, exe: str) -> bool:
    if not exe:
        return True
    try:
        actual = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return pid_alive(pid)
    return actual.removesuffix(" (deleted)") == exe


def stop_pidfile(pidfile: Path, *, grace: float = 10.0) -> bool:
    """SIGTERM the process recorded in ``pidfile`` (and its process group), SIGKILL after ``grace`` seconds.

    Returns True when a live process was stopped.  A pid that now belongs to another program is left alone.
    The pidfile is removed either way.
    """
    rec = read_pidfile(pidfile)
    stopped = False
    if rec is not None:
        pid, exe = rec
        if pid_alive(pid) and _exe_matches(pid, exe):
            stopped = True
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while pid_alive(pid) and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.05)
            if pid_alive(pid):
                _signal_group(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while pid_alive(pid) and time.monotonic() < deadline:
                    _reap(pid)
                    time.sleep(0.05)
            _reap(pid)
    pidfile.unlink(missing_ok=True)
    return stopped


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def poll_until(predicate: Callable[[], T | None], *, timeout: float, interval: float, what: str,
               backoff: float = 1.0, max_interval: float | None = None) -> T:
    """Call ``predicate`` until it returns something truthy, and return that; WaitTimeout naming ``what`` once
    ``timeout`` seconds have passed.  For what has no watch only: a Kubernetes object is awaited with a watch.

    ``predicate`` is always called at least once, and once more at the deadline; an exception it raises (a process
    that exited: no point waiting on) ends the wait at once.  Between calls it sleeps ``interval`` seconds, which
    grows ``backoff``-fold up to ``max_interval`` (default: ``interval``), never past the deadline.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        found = predicate()
        if found:
            return found
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(min(delay, left))
        delay = min(delay * backoff, interval if max_interval is None else max_interval)
