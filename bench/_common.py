"""What every bench script shares: a stopped bench tears its clusters down, as ``aiconform up`` does.

``timeout``, ``kill`` or Ctrl-C used to leave a bench's whole control plane running under its temporary state
directory: Python's default SIGTERM ends the process without running a single ``finally``.  Here SIGTERM, SIGINT and
SIGHUP raise KeyboardInterrupt in the main thread (the CLI's own rule, harness/cli.py), so every ``finally:
cluster.delete()`` runs; a second signal while that teardown runs is reported and ignored (SIGKILL still ends the
process, leaving things behind).  Child ``aiconform`` commands run in their own session, so a terminal's Ctrl-C
reaches only the bench, which sends each running child one SIGTERM and waits for its own teardown.

Owns no cluster logic: it only decides when the scripts' own teardown runs.  Imports nothing from harness, so a unit
test can run it in a bare interpreter.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol, TypeVar

EXIT_INTERRUPTED = 130
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
CHILD_GRACE_S = 600.0
"""How long a child ``aiconform`` gets to tear its cluster down after the bench forwards SIGTERM to it."""

_stopping = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _stopping
    name = signal.Signals(signum).name
    if _stopping:
        print(f"bench: {name} ignored: tearing down what this bench started (SIGKILL aborts that and leaves it "
              "running)", file=sys.stderr, flush=True)
        return
    _stopping = True
    print(f"bench: {name}: tearing down what this bench started", file=sys.stderr, flush=True)
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """SIGTERM, SIGINT and SIGHUP → KeyboardInterrupt once (the scripts' ``finally`` blocks tear down), then
    ignored until the process ends."""
    global _stopping
    _stopping = False
    for sig in SIGNALS:
        signal.signal(sig, _on_signal)


def run_bench(main: Callable[[], int]) -> int:
    """A bench script's entry point: ``sys.exit(run_bench(main))``.  Stopped by a signal, it says so in one line
    after the teardown and exits 130, like ``aiconform``."""
    stop_on_signals()
    try:
        return main()
    except KeyboardInterrupt:
        print("bench: interrupted; the clusters it started have been torn down", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


class _Cluster(Protocol):
    def create(self, profile: Any) -> Any: ...

    def delete(self) -> Any: ...


C = TypeVar("C", bound=_Cluster)


@contextmanager
def cluster_up(cluster: C, profile: Any) -> Iterator[C]:
    """``cluster`` created from ``profile`` for the block and deleted after it, however it ends: a failure or an
    interrupt during ``create`` is undone too (``delete`` of a half-made cluster removes what exists)."""
    try:
        cluster.create(profile)
        yield cluster
    finally:
        cluster.delete()


@contextmanager
def child(argv: list[str], grace_s: float = CHILD_GRACE_S, **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """``subprocess.Popen(argv, **popen)`` in a session of its own; if the block ends while the child still runs
    (an interrupt, an error, a timeout), the child gets one SIGTERM and ``grace_s`` to finish its teardown, then
    SIGKILL.  Children are ``aiconform`` commands, which turn SIGTERM into their own teardown."""
    proc = subprocess.Popen(argv, start_new_session=True, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.communicate(timeout=grace_s)  # reads its pipes meanwhile: a full pipe must not stall its teardown
            except subprocess.TimeoutExpired:
                print(f"bench: {argv[0]} (pid {proc.pid}) did not end {grace_s:.0f} s after SIGTERM; killing it",
                      file=sys.stderr, flush=True)
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def run_child(argv: list[str], timeout: float, **popen: Any) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(argv, capture_output=True, text=True, timeout=timeout)`` through :func:`child`: a timeout
    or an interrupt stops the child with SIGTERM (its teardown runs) instead of SIGKILL."""
    with child(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen) as proc:
        out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
