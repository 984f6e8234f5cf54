"""Container images the real node needs, built here without a registry or docker: a static pause and a busybox.

Owns building docker-archive tarballs (``manifest.json`` + config + one uncompressed layer, the format
``ctr images import`` and ``docker load`` read) from files on this host, and caching them under
``~/.cache/aiconform/images``.  Must not import them anywhere (the real node does that with ``ctr``).

- ``aiconform.local/pause:3.10``: a C program compiled with ``gcc -static`` that sleeps, reaps children and exits
  on SIGTERM/SIGINT, what the kubelet's pod sandbox needs.
- ``aiconform.local/busybox:latest``: Debian's ``busybox-static`` (``/bin/busybox``) with one symlink per applet.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.bins import cache_root
from harness.errors import ClusterError, CommandError

PAUSE_IMAGE = "aiconform.local/pause:3.10"
BUSYBOX_IMAGE = "aiconform.local/busybox:latest"
BUSYBOX_BINARY = Path("/bin/busybox")
FORMAT_VERSION = "1"  # bump to rebuild every cached archive
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PAUSE_C = r"""
/* aiconform's pause: the pod sandbox's one process.  Sleeps, reaps children, exits 0 on SIGINT/SIGTERM. */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) { (void)sig; _exit(0); }
static void on_child(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
    struct sigaction stop = {0}, child = {0};
    stop.sa_handler = on_stop;
    child.sa_handler = on_child;
    child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    if (sigaction(SIGINT, &stop, NULL) || sigaction(SIGTERM, &stop, NULL) || sigaction(SIGCHLD, &child, NULL))
        return 1;
    for (;;) pause();
}
"""


@dataclass(frozen=True)
class LayerFile:
    """One entry of the image's single layer."""

    path: str
    """Path inside the image, without a leading slash."""
    data: bytes | None = None
    """File content; None for a directory or a symlink."""
    mode: int = 0o755
    link: str = ""
    """Symlink target when non-empty."""


def images_cache() -> Path:
    return cache_root() / "images"


def _layer_tar(entries: list[LayerFile]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.mtime = 0
            info.mode = e.mode
            if e.link:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, e.link, 0o777
                tar.addfile(info)
            elif e.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    return buf.getvalue()


def docker_archive(tag: str, entries: list[LayerFile], entrypoint: list[str], cmd: list[str]) -> bytes:
    """A docker-archive tarball of one image with one layer (what ``ctr images import`` reads)."""
    layer = _layer_tar(entries)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [PATH_ENV], "Entrypoint": entrypoint or None, "Cmd": cmd or None, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "aiconform (harness/images.py)"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.split(":", 1)[1] + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in ((config_name, config_bytes), (layer_name, layer),
                           ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _cached(name: str, key: str, build: Callable[[], bytes]) -> Path:
    """The archive ``<cache>/<name>-<key>.tar``, built once (atomic rename, so concurrent builders are safe)."""
    target = images_cache() / f"{name}-{key[:16]}.tar"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    data = build()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, target)
    return target


def compile_pause() -> bytes:
    """The static pause binary; ClusterError naming the apt packages when gcc or static libc is missing."""
    with tempfile.TemporaryDirectory(prefix="aiconform-pause-") as tmp:
        src, out = Path(tmp, "pause.c"), Path(tmp, "pause")
        src.write_text(PAUSE_C)
        try:
            proc.run(["gcc", "-static", "-Os", "-s", "-o", str(out), str(src)], timeout=120)
        except CommandError as err:
            raise ClusterError(
                f"cannot compile the pause image's static binary ({err}); install it with: "
                "apt-get install gcc libc6-dev"
            ) from err
        return out.read_bytes()


def pause_archive() -> Path:
    key = hashlib.sha256((FORMAT_VERSION + PAUSE_C + PAUSE_IMAGE).encode()).hexdigest()

    def build() -> bytes:
        binary = compile_pause()
        return docker_archive(PAUSE_IMAGE, [LayerFile("pause", binary)], ["/pause"], [])

    return _cached("pause", key, build)


def is_static_elf(data: bytes) -> bool:
    """True for a 64-bit ELF without a program interpreter (PT_INTERP), i.e. one that runs in an empty image."""
    if data[:5] != b"\x7fELF\x02":
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    pt_interp = 3
    return all(int.from_bytes(data[phoff + i * phentsize:phoff + i * phentsize + 4], "little") != pt_interp
               for i in range(phnum))


def busybox_applets(binary: Path = BUSYBOX_BINARY) -> list[str]:
    out = proc.run([str(binary), "--list"], timeout=30).stdout
    return sorted({a.strip() for a in out.split() if a.strip() and "/" not in a and a.strip() != "busybox"})


def busybox_archive(binary: Path = BUSYBOX_BINARY) -> Path:
    """The busybox image; ClusterError naming the apt package when the static busybox is missing."""
    if not binary.is_file():
        raise ClusterError(f"{binary} not found (needed for {BUSYBOX_IMAGE}); install it with: "
                           "apt-get install busybox-static")
    data = binary.read_bytes()
    if not is_static_elf(data):
        raise ClusterError(f"{binary} is not a static binary (the dynamic 'busybox' package?); install the static "
                           "one with: apt-get install busybox-static")
    key = hashlib.sha256(FORMAT_VERSION.encode() + BUSYBOX_IMAGE.encode() + data).hexdigest()

    def build() -> bytes:
        entries = [LayerFile(d, mode=m) for d, m in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777),
                                                      ("usr", 0o755), ("usr/local", 0o755),
                                                      ("usr/local/bin", 0o755), ("root", 0o700))]
        entries.append(LayerFile("bin/busybox", data))
        entries += [LayerFile(f"bin/{a}", link="busybox") for a in busybox_applets(binary)]
        entries.append(LayerFile("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
                                 mode=0o644))
        entries.append(LayerFile("etc/group", b"root:x:0:\nnogroup:x:65534:\n", mode=0o644))
        return docker_archive(BUSYBOX_IMAGE, entries, [], ["/bin/sh"])

    return _cached("busybox", key, build)


def scratch_binary_archive(name: str, tag: str, binary: Path, path_in_image: str) -> Path:
    """A FROM-scratch image holding one static binary as its entrypoint (the addons' images)."""
    data = binary.read_bytes()
    if not is_static_elf(data):
        raise ClusterError(f"{binary} is not a static binary; it cannot run in a FROM-scratch image")
    key = hashlib.sha256(FORMAT_VERSION.encode() + tag.encode() + path_in_image.encode() + data).hexdigest()

    def build() -> bytes:
        entries = [LayerFile("tmp", mode=0o1777)]
        parts = path_in_image.split("/")[:-1]
        entries += [LayerFile("/".join(parts[: i + 1])) for i in range(len(parts))]
        entries.append(LayerFile(path_in_image, data))
        return docker_archive(tag, entries, [f"/{path_in_image}"], [])

    return _cached(name, key, build)
