"""The image cache: content keys, and entries that appear whole or not at all.

Owns ``<cache>/images/`` (``$AICONFORM_CACHE_DIR/images`` or ``~/.cache/aiconform/images``): image archives
``<name>-<key16>.tar``, stage directories ``stages/<stage>-<key16>/`` (a cached Debian root and its layer), per-key
lock files, and the temporary build directories under ``tmp/``.  Every entry is built in a temporary directory
next to its final place and renamed into place when complete; a build that fails or is interrupted (Ctrl-C,
SIGTERM) removes its temporary directory, so nothing half-built is ever found.  Must not know what an image is.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from harness import proc
from harness.bins import cache_root

FORMAT_VERSION = "2"
"""Bump to rebuild every cached image and stage (a change in how archives or roots are made)."""

T = TypeVar("T")


def images_cache() -> Path:
    return cache_root() / "images"


def content_key(*parts: Any) -> str:
    """sha256 over a canonical JSON of ``parts`` (strings, numbers, lists, dicts; bytes hashed first)."""

    def canon(obj: Any) -> Any:
        if isinstance(obj, bytes):
            return {"sha256": hashlib.sha256(obj).hexdigest()}
        if isinstance(obj, dict):
            return {str(k): canon(v) for k, v in sorted(obj.items())}
        if isinstance(obj, list | tuple):
            return [canon(v) for v in obj]
        return obj

    return hashlib.sha256(json.dumps([FORMAT_VERSION, canon(list(parts))], sort_keys=True).encode()).hexdigest()


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def tree_digest(path: Path) -> str:
    """sha256 over the relative paths, modes and contents of every file under ``path`` (skipping __pycache__)."""
    sha = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            full = Path(dirpath, name)
            rel = full.relative_to(path).as_posix()
            mode = full.lstat().st_mode
            sha.update(f"{rel}\0{mode:o}\0".encode())
            sha.update(os.readlink(full).encode() if full.is_symlink() else file_digest(full).encode())
            sha.update(b"\0")
    return sha.hexdigest()


@contextmanager
def locked(key: str) -> Iterator[None]:
    """An exclusive lock for building one cache entry (another process building the same key waits here)."""
    lock_dir = images_cache() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{key[:32]}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace (there must be none before removing it)."""
    prefix = str(path.resolve())
    out = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                out.append(point)
    return out


def remove_tree(path: Path) -> None:
    """Remove a temporary build directory; refuses (leaves it) if anything is still mounted inside."""
    if not path.exists():
        return
    if mounts_under(path):
        raise OSError(f"refusing to remove {path}: still mounted: {', '.join(mounts_under(path))}")
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():  # files a chroot made read-only for its owner
        for dirpath, dirnames, _ in os.walk(path):
            for d in dirnames:
                os.chmod(Path(dirpath, d), 0o755)
        shutil.rmtree(path, ignore_errors=True)


OWNER = ".owner"
"""The pid of the build that made a temporary directory (written first thing)."""


def sweep_stale(base: Path) -> list[Path]:
    """Remove temporary build directories whose build died without cleaning up (SIGKILL, power loss): those
    whose owner pid is gone.  A directory without an owner file yet is left alone (it is being created)."""
    removed = []
    for path in base.iterdir() if base.is_dir() else ():
        try:
            pid = int((path / OWNER).read_text().strip())
        except (OSError, ValueError):
            continue
        if not proc.pid_alive(pid) and not mounts_under(path):
            remove_tree(path)
            removed.append(path)
    return removed


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A scratch directory under ``<cache>/images/tmp`` (same file system as the cache: renames are atomic),
    removed on every exit, Ctrl-C included."""
    base = images_cache() / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    sweep_stale(base)
    path = Path(tempfile.mkdtemp(prefix=prefix + "-", dir=base))
    (path / OWNER).write_text(f"{os.getpid()}\n")
    try:
        yield path
    finally:
        remove_tree(path)


def cached_file(target: Path, key: str, build: Callable[[Path], None]) -> Path:
    """``target`` if it exists, else ``build(tmp)`` writes the file ``tmp`` and it is renamed to ``target``."""
    if target.is_file():
        return target
    with locked(key):
        if target.is_file():  # another process built it while we waited
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with temp_dir(target.name) as tmp:
            out = tmp / "out"
            build(out)
            os.replace(out, target)
    return target


def cached_dir(target: Path, key: str, build: Callable[[Path], T], *, done: str = "done.json") -> Path:
    """``target`` if it holds ``done``, else ``build(tmp)`` fills the directory ``tmp`` (it must write ``done``
    last) and it is renamed to ``target``."""
    if (target / done).is_file():
        return target
    with locked(key):
        if (target / done).is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with temp_dir(target.name) as tmp:
            work = tmp / "entry"
            work.mkdir()
            build(work)
            if not (work / done).is_file():
                raise RuntimeError(f"cache entry {target.name}: the build did not write {done}")
            if target.exists():  # a stale, incomplete entry of an older harness
                remove_tree(target)
            os.replace(work, target)
    return target
