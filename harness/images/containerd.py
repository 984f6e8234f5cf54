"""Importing image archives into a containerd, so that no pod ever needs a pull.

Owns the ``ctr images import`` call (namespace ``k8s.io``, the one the CRI plugin and so the kubelet reads).  The
archive names its image (``aiconform.local/<name>:<tag>``); a pod spec uses that name with ``imagePullPolicy:
IfNotPresent`` or ``Never``.  Must not start or stop containerd (the real node owns that).
"""

from __future__ import annotations

from pathlib import Path

from harness import proc
from harness.errors import ClusterError, CommandError

CRI_NAMESPACE = "k8s.io"


def ctr_argv(address: Path | str, namespace: str, *args: str, ctr: str = "ctr") -> list[str]:
    return [ctr, "--address", str(address), "--namespace", namespace, *args]


def import_archive(archive: Path, address: Path | str, *, namespace: str = CRI_NAMESPACE,
                   timeout: float = 600, ctr: str = "ctr") -> None:
    """Import ``archive`` (an archive from harness.images) into the containerd listening on ``address`` with the
    ``ctr`` binary given (the real node passes the pinned containerd's own); ClusterError naming the archive when
    containerd refuses it."""
    try:
        proc.run(ctr_argv(address, namespace, "images", "import", str(archive), ctr=ctr), timeout=timeout)
    except CommandError as err:
        raise ClusterError(f"cannot import {archive.name} into containerd: {err}") from err


def image_names(address: Path | str, *, namespace: str = CRI_NAMESPACE) -> list[str]:
    """The image names containerd holds in ``namespace``."""
    out = proc.run(ctr_argv(address, namespace, "images", "list", "--quiet"), timeout=60).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]
