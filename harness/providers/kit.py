"""The provider kit: what every provider that makes its own clusters does the same way, written once.

- The action pipeline (kind's style): creating a cluster is a list of named :class:`Action` s, each printing its own
  status line, doing one thing and knowing how to undo it.  When an action fails or the user presses Ctrl-C, the
  undos of every action that ran (the failing one included: it may have half-done its work) run in reverse order,
  and the error goes on up.  An undo must be safe to run on a half-done action and on one that did nothing.
- The bring-up wrapper (:func:`bring_up`): the cluster's lock, the profile fingerprint, ``state.json``, "already up
  with this profile" (a no-op) or one line for another profile, removing the leftovers of an earlier cluster of the
  name, then the provider's actions with undo on failure.  :func:`tear_down` is its counterpart for ``delete``.

A provider brings only its own actions (and its own checks, run by the ``plan`` it hands :func:`bring_up` once the
lock is held); ``local`` and ``kind`` both go through here, and neither imports the other.  Owns no cluster: what a
run directory holds beyond ``state.json`` and the lock file is the provider's.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.config import Profile
from harness.errors import AiconformError, ClusterError, ClusterExists, ConfigError, WaitTimeout
from harness.proc import poll_until
from harness.providers.base import Progress

# -- the action pipeline ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    name: str
    """Short and stable (``etcd``, ``apiserver``): the status line and the undo messages name it."""
    title: str
    """What the status line says it does."""
    run: Callable[[], None]
    undo: Callable[[], None] | None = None


def run_actions(actions: Sequence[Action], progress: Progress) -> None:
    """Run ``actions`` in order; on any exception (KeyboardInterrupt included) undo the ones that ran, newest
    first, then re-raise."""
    started: list[Action] = []
    try:
        for i, action in enumerate(actions, 1):
            progress(f"[{i}/{len(actions)}] {action.name}: {action.title}")
            started.append(action)
            action.run()
    except BaseException:
        progress("interrupted: undoing what was done" if undoing_an_interrupt()
                 else "bring-up did not finish; undoing what was done")
        undo_actions(started, progress)
        raise


def undoing_an_interrupt() -> bool:
    """True inside the undos of a bring-up the user interrupted (Ctrl-C, or SIGTERM, which the CLI turns into one):
    an undo then keeps nothing for a post-mortem (a failed bring-up keeps its logs)."""
    return isinstance(sys.exc_info()[1], KeyboardInterrupt)


def undo_actions(started: Sequence[Action], progress: Progress) -> list[str]:
    """Undo ``started`` in reverse; an undo that fails is reported and the others still run.  Returns the failures."""
    failures = []
    for action in reversed(started):
        if action.undo is None:
            continue
        try:
            action.undo()
        except (AiconformError, OSError) as err:
            failures.append(f"{action.name}: {err}")
            progress(f"warning: undoing {action.name} failed: {err}")
    return failures


# -- the run directory: lock, state, fingerprint ----------------------------------------------------------------------


def profile_fingerprint(profile: Profile) -> str:
    """What "the same profile" means for a running cluster: every field but where it was read from."""
    data = asdict(profile)
    data.pop("source", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The ``state.json`` a finished bring-up wrote in ``run_dir``; None when there is none (or it is unreadable)."""
    try:
        data: dict[str, Any] = json.loads((run_dir / "state.json").read_text())
        return data
    except (OSError, ValueError):
        return None


def lock_file(root: Path, name: str) -> Path:
    return root / f".{name}.lock"


@contextmanager
def cluster_lock(root: Path, name: str, wait: float = 0) -> Iterator[None]:
    """The lock of cluster ``name``; held by another command: ClusterError at once, or after ``wait`` seconds of
    polling (flock has no timeout)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(lock_file(root, name), "w") as fh:

        def locked() -> bool:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        try:
            poll_until(locked, timeout=wait, interval=0.2, what=f"the lock of cluster {name!r}")
        except WaitTimeout:
            raise ClusterError(f"another aiconform command is working on cluster {name!r}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class RunDirCluster(Protocol):
    """A cluster kept in one run directory ``root/name``: what :func:`bring_up` and :func:`tear_down` need of it."""

    name: str
    root: Path
    dir: Path
    progress: Progress

    def state(self) -> dict[str, Any] | None: ...

    def is_up(self) -> bool: ...

    def kubeconfig(self) -> Path: ...

    def teardown(self) -> None:
        """Stop and remove whatever the run directory records, then the directory (lock held)."""
        ...


def bring_up(cluster: RunDirCluster, provider: str, profile: Profile,
             plan: Callable[[str], Sequence[Action]]) -> Path:
    """Bring ``cluster`` up from ``profile`` (idempotent for the same profile); returns its kubeconfig.

    Under the cluster's lock: the same profile while the cluster is up is a no-op; another profile is ClusterExists
    in one line; a run directory without a running cluster is removed (leftovers).  Then ``plan(fingerprint)``
    gives the actions (a provider's own checks run there and fail before anything starts), which run with undo on
    failure or Ctrl-C; the last action must write ``state.json`` with the fingerprint."""
    if profile.provider != provider:
        raise ConfigError(f"profile {profile.name!r} is for provider {profile.provider!r}, not {provider}")
    cluster.root.mkdir(parents=True, exist_ok=True)
    with cluster_lock(cluster.root, cluster.name):
        fp = profile_fingerprint(profile)
        st = cluster.state()
        if st is not None and cluster.is_up():
            if st.get("fingerprint") == fp:
                cluster.progress(f"cluster {cluster.name!r} is already up with profile {st.get('profile')!r}")
                return cluster.kubeconfig()
            raise ClusterExists(f"cluster {cluster.name!r} is already up with profile {st.get('profile')!r}; "
                                f"run `aiconform down --name {cluster.name}` first or pick another --name")
        if cluster.dir.exists():
            cluster.progress(f"removing leftovers of an earlier cluster {cluster.name!r}")
            cluster.teardown()
        t0 = time.monotonic()
        run_actions(plan(fp), cluster.progress)
        cluster.progress(f"cluster {cluster.name!r} is up ({time.monotonic() - t0:.1f}s)")
        return cluster.kubeconfig()


def tear_down(cluster: RunDirCluster) -> bool:
    """``delete``: the cluster's teardown under its lock; False when there was no run directory."""
    with cluster_lock(cluster.root, cluster.name):
        if not cluster.dir.exists():
            return False
        cluster.teardown()
    lock_file(cluster.root, cluster.name).unlink(missing_ok=True)
    return True
