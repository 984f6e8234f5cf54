"""Images of static binaries FROM scratch: aiconform's pause, busybox, and any static binary (a Go build).

Owns what goes into these images' single layer: compiling the pause (``gcc -static``; a process that sleeps,
reaps children and exits on SIGTERM/SIGINT: what the kubelet's pod sandbox needs), Debian's ``busybox-static``
(``/bin/busybox`` with one symlink per applet, plus a minimal /etc/passwd and /etc/group), and a static binary
checked to have no ELF interpreter.  The image definitions using them live in harness/images/registry.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness import proc
from harness.errors import CommandError
from harness.images.oci import LayerFile

PAUSE_IMAGE = "aiconform.local/pause:3.10"
BUSYBOX_IMAGE = "aiconform.local/busybox:latest"
BUSYBOX_BINARY = Path("/bin/busybox")

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



def compile_pause() -> bytes:
    """The static pause binary; a ValueError naming the apt packages when gcc or static libc is missing."""
    with tempfile.TemporaryDirectory(prefix="aiconform-pause-") as tmp:
        src, out = Path(tmp, "pause.c"), Path(tmp, "pause")
        src.write_text(PAUSE_C)
        try:
            proc.run(["gcc", "-static", "-Os", "-s", "-o", str(out), str(src)], timeout=120)
        except CommandError as err:
            raise ValueError(f"cannot compile the pause image's static binary ({err}); install it with: "
                             "apt-get install gcc libc6-dev") from err
        return out.read_bytes()


def pause_contents() -> list[LayerFile]:
    return [LayerFile("pause", compile_pause())]


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


def static_binary(path: Path, what: str) -> bytes:
    """The bytes of ``path``; ValueError when it is missing or not static (it would not run FROM scratch)."""
    if not path.is_file():
        raise ValueError(f"{path} not found (needed for {what})")
    data = path.read_bytes()
    if not is_static_elf(data):
        raise ValueError(f"{path} is not a static binary, so it cannot run in {what} (an image FROM scratch); "
                         "build it with CGO_ENABLED=0 or -static")
    return data


def busybox_applets(binary: Path = BUSYBOX_BINARY) -> list[str]:
    out = proc.run([str(binary), "--list"], timeout=30).stdout
    return sorted({a.strip() for a in out.split() if a.strip() and "/" not in a and a.strip() != "busybox"})


def busybox_binary(binary: Path = BUSYBOX_BINARY) -> bytes:
    """Debian's static busybox; ValueError naming the apt package when it is missing or the dynamic one."""
    if not binary.is_file():
        raise ValueError(f"{binary} not found (needed for {BUSYBOX_IMAGE}); install it with: "
                         "apt-get install busybox-static")
    try:
        return static_binary(binary, BUSYBOX_IMAGE)
    except ValueError as err:
        raise ValueError(f"{binary} is not a static binary (the dynamic 'busybox' package?); install the static "
                         "one with: apt-get install busybox-static") from err


def busybox_contents(binary: Path = BUSYBOX_BINARY) -> list[LayerFile]:
    data = busybox_binary(binary)
    entries = [LayerFile(d, mode=m) for d, m in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("usr", 0o755),
                                                  ("usr/local", 0o755), ("usr/local/bin", 0o755), ("root", 0o700))]
    entries.append(LayerFile("bin/busybox", data))
    entries += [LayerFile(f"bin/{a}", link="busybox") for a in busybox_applets(binary)]
    entries.append(LayerFile("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
                             mode=0o644))
    entries.append(LayerFile("etc/group", b"root:x:0:\nnogroup:x:65534:\n", mode=0o644))
    return entries
