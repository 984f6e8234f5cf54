"""The training checkpoint: one ``.npz`` file holding the step and the parameters, replaced atomically.

A reader sees either the previous complete checkpoint or the new complete one, never a partial file: the data is
written to a temporary file in the same directory, flushed and fsynced, renamed over the old one, and the directory
is fsynced.  Owns the file format; must not import JAX.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE_NAME = "checkpoint.npz"
_STEP_KEY = "__step__"
_LOSS_KEY = "__loss__"


class CheckpointError(Exception):
    """A checkpoint file exists but cannot be read (corrupt, or written by something else)."""


@dataclass(frozen=True)
class Checkpoint:
    step: int
    """Number of optimisation steps already applied to ``params``."""
    loss: float
    """Loss at the last applied step."""
    params: dict[str, np.ndarray]


def path_in(directory: Path) -> Path:
    return directory / FILE_NAME


def save(directory: Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` atomically as ``<directory>/checkpoint.npz``; returns the path."""
    if any(k.startswith("__") for k in ckpt.params):
        raise ValueError("parameter names must not start with '__'")
    directory.mkdir(parents=True, exist_ok=True)
    target = path_in(directory)
    fd, tmp_name = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            arrays: dict[str, np.ndarray] = {_STEP_KEY: np.asarray(ckpt.step, dtype=np.int64),
                                             _LOSS_KEY: np.asarray(ckpt.loss, dtype=np.float64)}
            arrays.update({k: np.asarray(v) for k, v in ckpt.params.items()})
            np.savez(fh, **arrays)  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def load(directory: Path) -> Checkpoint | None:
    """The checkpoint in ``directory``, or None when there is none yet; CheckpointError when it is unreadable."""
    target = path_in(directory)
    if not target.exists():
        return None
    try:
        with np.load(target, allow_pickle=False) as data:
            step = int(data[_STEP_KEY])
            loss = float(data[_LOSS_KEY])
            params = {k: np.array(data[k]) for k in data.files if not k.startswith("__")}
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"cannot read checkpoint {target}: {err}") from err
    if step < 0:
        raise CheckpointError(f"checkpoint {target} has a negative step {step}")
    return Checkpoint(step, loss, params)
