"""OCI images built here, without a registry or docker: the one owner of every image aiconform runs.

- :mod:`harness.images.registry`: the named image definitions (``pause``, ``busybox``, ``python-base``,
  ``python-prometheus``, ``fake-gpu-plugin``) and :func:`build`, cached by a content hash of their inputs;
  :func:`static_binary_image` for a static (Go) binary FROM scratch.
- :mod:`harness.images.debian`: debootstrap base root, Debian packages and wheels installed into it (cached stages).
- :mod:`harness.images.oci`: layers and the archive (OCI layout + docker ``manifest.json`` in one tar).
- :mod:`harness.images.cache`: content keys, atomic cache entries, cleanup on failure and Ctrl-C.
- :mod:`harness.images.containerd`: :func:`import_archive` into a containerd (``ctr -n k8s.io images import``).
- :mod:`harness.images.push`: :func:`push_archive` to a registry the user names, for clusters aiconform did not
  build (``aiconform images push``; ``aiconform run --image-registry`` points :func:`image_ref` there).

Image names are ``aiconform.local/<name>:<tag>``; nothing is ever pulled, except from the registry a user names for a
cluster aiconform did not build.  ``aiconform images build|list|push`` is the CLI.  The functions the real node has
always used (:func:`pause_archive`, :func:`busybox_archive`, :func:`images_cache`, ``PAUSE_IMAGE``,
``BUSYBOX_IMAGE``, ``BUSYBOX_BINARY``) keep their names and signatures.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from harness.images.cache import images_cache
from harness.images.containerd import import_archive
from harness.images.oci import ImageConfig, LayerFile
from harness.images.push import IMAGE_REGISTRY_ENV, image_registry, parse_registry, push_archive
from harness.images.registry import (
    REGISTRY,
    REGISTRY_HOST,
    Built,
    DebianImage,
    Image,
    ScratchImage,
    build,
    get,
    static_binary_image,
    status,
)
from harness.images.static import BUSYBOX_BINARY, BUSYBOX_IMAGE, PAUSE_IMAGE, busybox_contents, is_static_elf

__all__ = [
    "BUSYBOX_BINARY", "BUSYBOX_IMAGE", "Built", "DebianImage", "IMAGE_REGISTRY_ENV", "Image", "ImageConfig",
    "LayerFile", "PAUSE_IMAGE", "REGISTRY", "REGISTRY_HOST", "ScratchImage", "build", "busybox_archive", "get",
    "image_ref", "image_registry", "images_cache", "import_archive", "is_static_elf", "parse_registry",
    "pause_archive", "probe_image", "pull_policy", "push_archive", "run_ref", "static_binary_image", "status",
]


def _quiet(line: str) -> None:
    pass


def image_ref(name: str) -> str:
    """The image name a pod spec uses for the registered image ``name``: ``aiconform.local/…`` (imported into the
    nodes), or its name in the run's registry (``aiconform run --image-registry``, harness.images.push)."""
    return run_ref(get(name).ref)


def pull_policy(ref: str) -> str:
    """``Never`` for an image imported into the nodes (``aiconform.local/…``: no registry has it, so a missing one
    fails at once as ErrImageNeverPull), ``IfNotPresent`` for one in a registry (``--image-registry``)."""
    return "Never" if ref.startswith(REGISTRY_HOST + "/") else "IfNotPresent"


TEST_IMAGE_ENV = "AICONFORM_TEST_IMAGE"


def probe_image() -> str:
    """The busybox image of probe pods (the NetworkPolicy probe, the isolation and DRA checks: ``httpd``, ``wget``,
    ``sh``): ``$AICONFORM_TEST_IMAGE`` when set, else :func:`image_ref` of ``busybox`` (the run's registry, if any)."""
    return os.environ.get(TEST_IMAGE_ENV) or image_ref("busybox")


def run_ref(local_ref: str) -> str:
    """``local_ref`` (``aiconform.local/<name>:<tag>``) as this run's pods name it (see :func:`image_ref`)."""
    registry = image_registry()
    return registry.ref(local_ref) if registry is not None else local_ref


def pause_archive(progress: Callable[[str], None] = _quiet) -> Path:
    """The pause image's archive (built and cached on first use)."""
    return build("pause", progress).archive


def busybox_archive(binary: Path = BUSYBOX_BINARY, progress: Callable[[str], None] = _quiet) -> Path:
    """The busybox image's archive (built and cached on first use); ImageBuildError naming the apt package when
    the static busybox is missing."""
    if binary == BUSYBOX_BINARY:
        return build("busybox", progress).archive
    from harness.images.cache import file_digest

    custom = ScratchImage("busybox", BUSYBOX_IMAGE, f"busybox from {binary}",
                          lambda: [file_digest(binary) if binary.is_file() else "missing"],
                          lambda: busybox_contents(binary), ImageConfig(cmd=("/bin/sh",)))
    return build(custom, progress).archive
