"""Debian roots for images: a ``debootstrap --variant=minbase`` base, Debian packages on top, wheels from PyPI.

Owns the cached stages under ``<cache>/images/stages/``: each is a directory holding ``root/`` (the complete root
file system after the stage, for the next stage to start from), ``layer.tar.gz`` (what the stage changed, as an
image layer) and ``done.json`` (written last: layer digests, sizes, the seconds it took).  The base stage (the slow
one: 100-180 s on 2 cores) is keyed by suite and variant only, so every Python image shares it; a package stage by
its base and its package list.

Commands run inside the root with ``unshare --mount --pid --fork --mount-proc`` + ``chroot``: the mounts live in a
private mount namespace and vanish with the process, so an interrupted build never leaves a mount behind.  Wheels
are downloaded on the host by pip (the host's own index settings), for the root's Python and glibc, and installed
into the root offline (``--no-index``) by a pinned pip run from its wheel, which is not left in the image: nothing
in an image reaches the network when it runs.  The Debian mirror is the host's own (its apt sources), or
``$AICONFORM_DEBIAN_MIRROR``.  Must not write archives (see harness/images/oci.py) or import them anywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness import proc
from harness.errors import CommandError, ImageBuildError
from harness.images import cache, oci
from harness.images.steps import Steps

VARIANT = "minbase"
ARCH = "amd64"
PIP_VERSION = "26.3"
"""The pip that installs wheels into a root (run from its wheel, never left in the image)."""
SUITE_FACTS = {"bookworm": {"python": "3.11", "glibc": (2, 36)}}
"""Python version and glibc of each supported suite: what wheels must be built for."""
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SKIP_CONTENTS = frozenset({"dev", "proc", "sys", "tmp"})
"""Directories whose contents never go into a layer (the runtime provides them)."""
IGNORED = frozenset({"etc/resolv.conf", "etc/hostname", "etc/hosts"})
"""Files the build touches for its own network access; the runtime mounts its own over them."""
UNSHARE = ("unshare", "--mount", "--pid", "--fork", "--kill-child")
"""A private mount and pid namespace: mounts made inside vanish with it, and killing unshare (a timeout, Ctrl-C)
kills everything below it."""
DEBOOTSTRAP_TIMEOUT = 1800.0
APT_TIMEOUT = 1200.0
PIP_TIMEOUT = 900.0


def host_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this host's apt uses (``$AICONFORM_DEBIAN_MIRROR`` first): the first ``deb`` source with
    the ``main`` component that is not a security archive, from deb822 ``*.sources`` files, then one-line lists."""
    env = os.environ.get("AICONFORM_DEBIAN_MIRROR")
    if env:
        return env
    candidates: list[str] = []
    for sources in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        try:
            text = sources.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and "main" in fields.get("Components", "").split():
                candidates += [u for u in fields.get("URIs", "").split() if not u.rstrip("/").endswith("-security")]
    for lst in (apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))):
        try:
            lines = lst.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(parts) >= 4 and parts[0] == "deb" and "main" in parts[3:]:
                if not parts[1].rstrip("/").endswith("-security"):
                    candidates.append(parts[1])
    if not candidates:
        raise ImageBuildError("debian-base", "mirror", "no Debian mirror found in /etc/apt/sources.list{,.d}; set "
                              "AICONFORM_DEBIAN_MIRROR")
    return candidates[0]


def missing_tools() -> list[str]:
    """Debian packages a Debian-root build needs on the host that are missing."""
    need = {"debootstrap": "debootstrap", "unshare": "util-linux", "chroot": "coreutils"}
    return sorted({pkg for exe, pkg in need.items() if shutil.which(exe) is None})


def _chroot_argv(root: Path, argv: Sequence[str]) -> list[str]:
    return [*UNSHARE, f"--mount-proc={root / 'proc'}", "--", "chroot", str(root), *argv]


def _chroot_env() -> dict[str, str]:
    return {"PATH": CHROOT_PATH, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8", "HOME": "/root",
            "TMPDIR": "/tmp"}


def run_in_root(root: Path, argv: Sequence[str], timeout: float) -> proc.Result:
    """Run ``argv`` inside ``root`` (its own mount and pid namespace, /proc mounted, the host's network)."""
    return proc.run(_chroot_argv(root, argv), timeout=timeout, env=_chroot_env())


def _with_network(root: Path) -> None:
    shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")


def _neutral_etc(root: Path) -> None:
    """The files the build filled for itself, emptied (the runtime mounts its own)."""
    (root / "etc" / "resolv.conf").unlink(missing_ok=True)
    (root / "etc" / "resolv.conf").write_text("")
    (root / "etc" / "hostname").write_text("localhost\n")


def _clean_apt(root: Path) -> None:
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/cache/apt/archives/partial/*", "var/log/apt/*", "var/cache/debconf/*-old"):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)


def _copy_root(src: Path, dest: Path) -> None:
    proc.run(["cp", "-a", "--reflink=auto", str(src), str(dest)], timeout=600)


def _du_bytes(path: Path) -> int:
    return int(proc.run(["du", "-sb", "--one-file-system", str(path)], timeout=300).stdout.split()[0])


def _read_done(stage_dir: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((stage_dir / "done.json").read_text())
    return data


def stage_layer(stage_dir: Path) -> oci.Layer:
    done = _read_done(stage_dir)
    layer = done["layer"]
    assert isinstance(layer, dict)
    return oci.Layer(stage_dir / "layer.tar.gz", str(layer["digest"]), str(layer["diff_id"]), int(layer["size"]))


def _finish_stage(work: Path, layer: oci.Layer, seconds: float, extra: dict[str, object]) -> None:
    done = {"layer": {"digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size},
            "seconds": round(seconds, 1), "root_bytes": _du_bytes(work / "root"), **extra}
    (work / "done.json").write_text(json.dumps(done, indent=2))


# -- stages ----------------------------------------------------------------------------------------------------------


def base_key(suite: str) -> str:
    return cache.content_key("debian-base", suite, VARIANT, ARCH)


def base_stage(suite: str, steps: Steps, *, quiet: bool = False) -> Path:
    """The cached ``debootstrap --variant=minbase SUITE`` root and its layer (built once, shared by every image)."""
    if suite not in SUITE_FACTS:
        raise ImageBuildError(steps.image, "debootstrap", f"unsupported suite {suite!r}; known: {sorted(SUITE_FACTS)}")
    key = base_key(suite)
    target = cache.images_cache() / "stages" / f"debian-{suite}-{VARIANT}-{key[:16]}"
    if (target / "done.json").is_file():
        if not quiet:
            steps.say(f"debian base cached ({target.name})")
        return target

    def build(work: Path) -> None:
        start = time.monotonic()
        root = work / "root"
        if os.geteuid() != 0:
            raise ImageBuildError(steps.image, "debootstrap", "a Debian root needs root (debootstrap, chroot); run "
                                  "as root, or build only the scratch images")
        missing = missing_tools()
        if missing:
            raise ImageBuildError(steps.image, "debootstrap", "missing on this host; install with: apt-get install "
                                  + " ".join(missing))
        mirror = host_mirror()
        with steps.step("debootstrap", f"{suite} --variant={VARIANT} from {mirror}; 100-180 s on 2 cores"):
            try:
                proc.run([*UNSHARE, "--", "debootstrap", f"--variant={VARIANT}",
                          f"--arch={ARCH}", suite, str(root), mirror], timeout=DEBOOTSTRAP_TIMEOUT,
                         env={**_chroot_env(), "PATH": os.environ.get("PATH", CHROOT_PATH)})
            except CommandError as err:
                log = root / "debootstrap" / "debootstrap.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
                raise ImageBuildError(steps.image, "debootstrap", f"{err}{' / ' + tail[0] if tail else ''}") from err
            _clean_apt(root)
            _neutral_etc(root)
        with steps.step("base layer", "tar + gzip of the root"):
            layer = oci.layer_from_root(work / "layer.tar.gz", root, SKIP_CONTENTS)
        _finish_stage(work, layer, time.monotonic() - start, {"suite": suite, "variant": VARIANT})

    return cache.cached_dir(target, key, build)


def packages_key(suite: str, packages: Sequence[str]) -> str:
    return cache.content_key("debian-packages", base_key(suite), sorted(packages))


def packages_stage(suite: str, packages: Sequence[str], steps: Steps) -> Path:
    """The base root with ``packages`` installed by apt (no recommends), and the layer of that change."""
    key = packages_key(suite, packages)
    slug = "-".join(sorted(packages))[:40]
    target = cache.images_cache() / "stages" / f"apt-{suite}-{slug}-{key[:16]}"
    if (target / "done.json").is_file():
        steps.say(f"packages {' '.join(sorted(packages))} cached ({target.name})")
        return target
    base = base_stage(suite, steps)

    def build(work: Path) -> None:
        start = time.monotonic()
        root = work / "root"
        with steps.step("copy base root"):
            _copy_root(base / "root", root)
            before = oci.snapshot(root, SKIP_CONTENTS)
        with steps.step("apt-get install", " ".join(sorted(packages))):
            _with_network(root)
            try:
                run_in_root(root, ["apt-get", "update", "-qq"], APT_TIMEOUT)
                run_in_root(root, ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *sorted(packages)],
                            APT_TIMEOUT)
                run_in_root(root, ["apt-get", "clean"], APT_TIMEOUT)
            finally:
                _neutral_etc(root)
            _clean_apt(root)
        with steps.step("packages layer", "diff against the base root"):
            layer = oci.layer_from_diff(work / "layer.tar.gz", root, before, SKIP_CONTENTS, IGNORED)
        _finish_stage(work, layer, time.monotonic() - start, {"suite": suite, "packages": sorted(packages)})

    return cache.cached_dir(target, key, build)


# -- wheels and files (the image's own top layer) -------------------------------------------------------------------


def wheel_platforms(glibc: tuple[int, int]) -> list[str]:
    major, minor = glibc
    return [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)] + ["manylinux2014_x86_64"]


def download_wheels(suite: str, requirements: Sequence[str], dest: Path) -> None:
    """Wheels for ``requirements`` (and their dependencies) built for the suite's Python and glibc, into ``dest``,
    by the host's pip (its index settings); binary wheels only, so nothing is compiled."""
    facts = SUITE_FACTS[suite]
    pyver = str(facts["python"])
    glibc = facts["glibc"]
    assert isinstance(glibc, tuple)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-cache-dir",
            "--only-binary=:all:", "--dest", str(dest), "--python-version", pyver, "--implementation", "cp",
            "--abi", "cp" + pyver.replace(".", ""), "--abi", "abi3", "--abi", "none"]
    for plat in wheel_platforms(glibc):
        argv += ["--platform", plat]
    proc.run([*argv, *requirements], timeout=PIP_TIMEOUT)


def install_wheels(root: Path, suite: str, requirements: Sequence[str], scratch: Path) -> list[str]:
    """Download and install ``requirements`` into ``root``'s /usr/local (offline inside the root); returns the
    wheel file names installed."""
    wheels = root / "tmp" / "aiconform-wheels"
    pip_dir = root / "tmp" / "aiconform-pip"
    wheels.mkdir(parents=True)
    pip_dir.mkdir(parents=True)
    download_wheels(suite, requirements, wheels)
    proc.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-cache-dir",
              "--only-binary=:all:", "--no-deps", "--dest", str(pip_dir), f"pip=={PIP_VERSION}"], timeout=PIP_TIMEOUT)
    pip_wheel = next(pip_dir.glob("pip-*.whl"), None)
    if pip_wheel is None:
        raise ValueError(f"pip {PIP_VERSION} did not download")
    try:
        run_in_root(root, ["python3", f"/tmp/aiconform-pip/{pip_wheel.name}/pip", "install", "--no-index",
                           "--find-links", "/tmp/aiconform-wheels", "--break-system-packages",
                           "--root-user-action=ignore", "--no-cache-dir", "--disable-pip-version-check",
                           *requirements], PIP_TIMEOUT)
    finally:
        names = sorted(p.name for p in wheels.glob("*.whl"))
        shutil.rmtree(wheels, ignore_errors=True)
        shutil.rmtree(pip_dir, ignore_errors=True)
    return names


def copy_into_root(root: Path, dest: str, src: Path) -> None:
    """Copy a host file or directory (without __pycache__) to ``dest`` inside ``root``, owned by root."""
    target = root / dest.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                        dirs_exist_ok=True)
    else:
        shutil.copy2(src, target)
    if os.geteuid() == 0:
        os.lchown(target, 0, 0)
        for dirpath, dirnames, filenames in os.walk(target) if target.is_dir() else ():
            for name in [*dirnames, *filenames]:
                os.lchown(Path(dirpath, name), 0, 0)
