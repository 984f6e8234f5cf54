"""Pinned upstream binaries: resolve from $AICONFORM_BIN_DIR or the per-version cache, download an official release
(checksum verified), or build from the Go module proxy.

Owns where binaries live and how they get there.  Must not start them (providers do) and never writes into the
repository: the cache is ``$AICONFORM_CACHE_DIR`` or ``~/.cache/aiconform``.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import proc
from harness.errors import BinaryError, ChecksumError, CommandError, ConfigError

VERSIONS_FILE = Path(__file__).with_name("versions.toml")

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Component:
    """One upstream project whose binaries are pinned together (kubernetes, etcd, kwok)."""

    group: str
    """Name of the group in versions.toml, e.g. ``kubernetes``."""
    version: str
    """Pinned version without the leading ``v``."""
    module: str
    """Go module that holds the commands."""
    binaries: tuple[str, ...]
    packages: dict[str, str]
    """Binary name → Go package path of its ``main``."""
    release_url: str = ""
    """Template of the official release URL; placeholders {version} {os} {arch} {name}."""
    checksum_url: str = ""
    """Template of the checksum file: a bare hex digest, or ``<hex>  <file>`` lines."""
    archive_member: str = ""
    """When the release is a .tar.gz: template of the member path of the binary."""
    build_tags: str = ""
    replace: dict[str, str] = field(default_factory=dict)
    """Module → ``module version`` replace directives for the scratch module: for a dependency version the module
    proxy refuses (403), a served, API-compatible one.  Each is a deviation from upstream's go.mod: say why in
    versions.toml."""
    toolchain: str = ""
    """``GOTOOLCHAIN`` for the build (e.g. ``go1.27.3``) when the module needs a newer Go than the machine's; the go
    command fetches that approved toolchain through the module proxy."""
    build: str = "scratch"
    """``scratch``: a scratch module requires the pinned one (the default).  ``in-module``: the pinned module is
    downloaded, copied writable and built inside itself, for modules whose own go.mod has replace directives that a
    consumer module would not see (``go install`` refuses those)."""
    sources: dict[str, str] = field(default_factory=dict)
    """Binary → a directory under harness/ holding a ``main`` package of this repository that imports the pinned
    module (e.g. CoreDNS with only the plugins used here): copied into the scratch module and built there; the
    binary's package is then ``aiconform.local/build/<binary>``.  The cached binary is rebuilt when the source
    changes (a digest beside it)."""


@dataclass(frozen=True)
class Versions:
    """The parsed versions.toml."""

    kubernetes_default: str
    kubernetes_previous: str
    groups: dict[str, Component] = field(default_factory=dict)

    def component(self, group: str, version: str | None = None) -> Component:
        base = self.groups[group]
        if version is None or version == base.version:
            return base
        return Component(**{**base.__dict__, "version": version})

    def owner_of(self, binary: str) -> str:
        for name, comp in self.groups.items():
            if binary in comp.binaries:
                return name
        raise BinaryError(f"unknown binary {binary!r}; known: {', '.join(sorted(self.all_binaries()))}")

    def all_binaries(self) -> list[str]:
        return [b for c in self.groups.values() for b in c.binaries]


def load_versions(path: Path = VERSIONS_FILE) -> Versions:
    """Parse versions.toml; a broken file is a BinaryError naming the field."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise BinaryError(f"cannot read {path}: {err}") from err
    groups: dict[str, Component] = {}
    try:
        k8s = data["kubernetes"]
        for name, sec in data.items():
            version = sec["default"] if name == "kubernetes" else sec["version"]
            groups[name] = Component(
                group=name,
                version=str(version).lstrip("v"),
                module=sec["module"],
                binaries=tuple(sec["binaries"]),
                packages=dict(sec["packages"]),
                release_url=sec.get("release_url", ""),
                checksum_url=sec.get("checksum_url", ""),
                archive_member=sec.get("archive_member", ""),
                build_tags=sec.get("build_tags", ""),
                replace=dict(sec.get("replace", {})),
                toolchain=str(sec.get("toolchain", "")),
                build=str(sec.get("build", "scratch")),
                sources=dict(sec.get("sources", {})),
            )
            if groups[name].build not in BUILD_MODES:
                raise BinaryError(f"{path}: [{name}] build must be one of {', '.join(BUILD_MODES)}, "
                                  f"not {groups[name].build!r}")
        return Versions(str(k8s["default"]).lstrip("v"), str(k8s["previous"]).lstrip("v"), groups)
    except KeyError as err:
        raise BinaryError(f"{path}: missing field {err.args[0]!r}") from err


def cache_root() -> Path:
    env = os.environ.get("AICONFORM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "aiconform"


def go_platform() -> tuple[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return sys.platform if sys.platform != "linux2" else "linux", arch


@dataclass(frozen=True)
class Resolved:
    name: str
    version: str
    path: Path
    source: str
    """``bin-dir``, ``cache``, ``download`` or ``build``."""


class BinaryResolver:
    """Finds or fetches each pinned binary.  ``download`` is ``auto`` (try releases, then build) or ``never``."""

    def __init__(
        self,
        versions: Versions | None = None,
        *,
        cache_dir: Path | None = None,
        bin_dir: Path | None = None,
        download: str | None = None,
        go: str | None = None,
        progress: Progress = _stderr,
        download_timeout: float = 30.0,
    ) -> None:
        self.versions = versions or load_versions()
        self.cache_dir = cache_dir or cache_root()
        env_bin = os.environ.get("AICONFORM_BIN_DIR")
        self.bin_dir = bin_dir if bin_dir is not None else (Path(env_bin) if env_bin else None)
        mode = download or os.environ.get("AICONFORM_DOWNLOAD", "auto")
        if mode not in ("auto", "never"):
            raise BinaryError(f"AICONFORM_DOWNLOAD must be 'auto' or 'never', not {mode!r}")
        self.download_mode = mode
        self.go = go if go is not None else _find_go()
        self.progress = progress
        self.download_timeout = download_timeout

    # -- public -------------------------------------------------------------------------------------------------

    def resolve(self, name: str, *, kubernetes: str | None = None) -> Resolved:
        group = self.versions.owner_of(name)
        version = kubernetes if (group == "kubernetes" and kubernetes) else None
        return self.resolve_many([name], kubernetes=version)[name]

    def resolve_many(self, names: Iterable[str], *, kubernetes: str | None = None) -> dict[str, Resolved]:
        """Resolve several binaries; binaries of one group missing from the cache are built in one go."""
        wanted = list(dict.fromkeys(names))
        out: dict[str, Resolved] = {}
        missing: dict[str, list[str]] = {}
        for name in wanted:
            group = self.versions.owner_of(name)
            comp = self.versions.component(group, kubernetes if group == "kubernetes" else None)
            found = self._find_local(comp, name)
            if found is not None:
                out[name] = found
            else:
                missing.setdefault(group, []).append(name)
        for group, names_ in missing.items():
            comp = self.versions.component(group, kubernetes if group == "kubernetes" else None)
            out.update(self._fetch(comp, names_))
        return {n: out[n] for n in wanted}

    def cached_path(self, comp: Component, name: str) -> Path:
        """Keyed by group and version only.  Build flags that do not change what a binary does (``-trimpath``,
        ``-s -w``, one ``go build`` or several) never invalidate a cached binary; the version stamps follow from the
        version, and a binary built from a source of this repository carries its source digest beside it."""
        return self.cache_dir / "bin" / f"{comp.group}-v{comp.version}" / name

    # -- lookup ---------------------------------------------------------------------------------------------------

    def _find_local(self, comp: Component, name: str) -> Resolved | None:
        if self.bin_dir is not None:
            cand = self.bin_dir / name
            if _is_exe(cand):
                return Resolved(name, comp.version, cand, "bin-dir")
        cand = self.cached_path(comp, name)
        if _is_exe(cand) and (name not in comp.sources or _read(_digest_file(cand)) == source_digest(comp, name)):
            return Resolved(name, comp.version, cand, "cache")
        return None

    def _fetch(self, comp: Component, names: list[str]) -> dict[str, Resolved]:
        errors: list[str] = []
        out: dict[str, Resolved] = {}
        can_fetch = bool(self.go) or (self.download_mode == "auto" and bool(comp.release_url))
        # A resolver that can neither build nor download only looks: it must not wait (minutes, cold) for the lock of
        # another process's build of this group, only to find the binaries still missing.
        with _locked(self.cache_dir / "locks" / f"{comp.group}-v{comp.version}.lock") if can_fetch else nullcontext():
            todo = []
            for name in names:  # another process may have fetched it while we waited for the lock
                found = self._find_local(comp, name)
                if found is not None:
                    out[name] = found
                else:
                    todo.append(name)
            if not todo:
                return out
            if self.download_mode == "auto" and comp.release_url:
                try:
                    for name in todo:
                        out[name] = self.download(comp, name)
                    return out
                except ChecksumError:
                    raise
                except BinaryError as err:
                    errors.append(str(err))
                    self.progress(f"download failed ({err}); falling back to a build from the Go module proxy")
            if self.go:
                out.update(self.build(comp, [n for n in todo if n not in out]))
                return out
        how = (
            f"no Go toolchain found to build {comp.module} v{comp.version}"
            + (f" and the download failed ({errors[-1]})" if errors else " and downloads are off (AICONFORM_DOWNLOAD=never)")
        )
        raise BinaryError(
            f"cannot obtain {', '.join(names)} v{comp.version}: {how}; put the binaries in a directory and set "
            f"AICONFORM_BIN_DIR to it, or install Go >= 1.26 (`go` on PATH)"
        )

    # -- download -------------------------------------------------------------------------------------------------

    def download(self, comp: Component, name: str) -> Resolved:
        """Download one binary from its official release and verify the published SHA-256 before caching it."""
        os_, arch = go_platform()
        fmt = {"version": comp.version, "os": os_, "arch": arch, "name": name}
        url = comp.release_url.format(**fmt)
        if not comp.checksum_url:
            raise BinaryError(f"no checksum URL pinned for {comp.group}; refusing an unverified download")
        sums_url = comp.checksum_url.format(**fmt)
        self.progress(f"downloading {name} v{comp.version} from {url}")
        payload = self._get(url)
        sums = self._get(sums_url).decode(errors="replace")
        file_name = url.rsplit("/", 1)[-1]
        expected = _expected_digest(sums, file_name)
        if expected is None:
            raise ChecksumError(f"{sums_url} lists no checksum for {file_name}")
        actual = hashlib.sha256(payload).hexdigest()
        if actual != expected:
            raise ChecksumError(
                f"checksum mismatch for {file_name}: published {expected}, downloaded {actual}; nothing was installed"
            )
        if comp.archive_member:
            member = comp.archive_member.format(**fmt)
            payload = _extract_member(payload, member, url)
        dest = self.cached_path(comp, name)
        _install_bytes(payload, dest)
        return Resolved(name, comp.version, dest, "download")

    def _get(self, url: str) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=self.download_timeout) as resp:  # noqa: S310 (pinned https URLs)
                data: bytes = resp.read()
                return data
        except urllib.error.HTTPError as err:
            raise BinaryError(f"GET {url}: HTTP {err.code}") from err
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            raise BinaryError(f"GET {url}: {reason}") from err

    # -- build ------------------------------------------------------------------------------------------------------

    def build(self, comp: Component, names: list[str]) -> dict[str, Resolved]:
        """Build binaries with ``go`` in a scratch module under the cache, all of one module in one ``go build``.

        One invocation per module shares every compiled package between the binaries (kube-apiserver,
        -controller-manager, -scheduler, kubelet and kube-proxy have most of k8s.io/kubernetes in common) and lets
        go run their links side by side.  The progress line says how long the last build of the same binaries took
        on this machine (``build-times.json`` in the cache), or the README's cold figure before the first one.

        For k8s.io/kubernetes the scratch go.mod replaces every ``k8s.io/<staging>`` module with ``v0.X.Y``, since
        the kubernetes go.mod points them at ./staging paths that a module consumer cannot see.
        """
        if not self.go:
            raise BinaryError("no Go toolchain on PATH")
        times = BuildTimes(self.cache_dir, warn=self.progress)
        what = f"{', '.join(names)} v{comp.version}"
        self.progress(f"building {what} from the Go module proxy ({times.estimate(comp, names)})")
        t0 = time.monotonic()
        work = self.cache_dir / "build" / f"{comp.group}-v{comp.version}"
        work.mkdir(parents=True, exist_ok=True)
        env = build_env(comp)
        if comp.build == "in-module":
            work = self._module_copy(comp, work, env)
        else:
            self._write_scratch_module(comp, work, env)
        bin_dir = self.cached_path(comp, names[0]).parent
        bin_dir.mkdir(parents=True, exist_ok=True)
        out: dict[str, Resolved] = {}
        for batch in build_batches(comp, names):
            staging = Path(tempfile.mkdtemp(dir=bin_dir, prefix=".build-"))
            try:
                try:
                    proc.run(build_argv(self.go, comp, batch, staging, self._ldflags(comp)), cwd=work, env=env,
                             timeout=5400)
                except CommandError as err:
                    raise BinaryError(f"building {', '.join(batch)} v{comp.version} failed: {err}") from err
                for name in batch:
                    built = staging / go_exe_name(comp.packages[name])
                    if not built.is_file():
                        raise BinaryError(f"building {name} v{comp.version}: go build wrote no {built.name} "
                                          f"(found: {', '.join(sorted(p.name for p in staging.iterdir())) or 'nothing'})")
                for name in batch:  # every binary of the batch was built: install them all
                    dest = self.cached_path(comp, name)
                    built = staging / go_exe_name(comp.packages[name])
                    os.chmod(built, 0o755)
                    if name in comp.sources:
                        _digest_file(dest).write_text(source_digest(comp, name))
                    os.replace(built, dest)
                    out[name] = Resolved(name, comp.version, dest, "build")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        seconds = time.monotonic() - t0
        times.record(comp, names, seconds)
        self.progress(f"built {what} in {seconds:.0f} s -> {bin_dir}")
        return out

    def _module_copy(self, comp: Component, work: Path, env: dict[str, str]) -> Path:
        """A writable copy of the pinned module (the module cache is read-only), made once per version."""
        src = work / "src"
        if (work / ".ready").exists() and src.is_dir():
            return src
        self.progress(f"downloading {comp.module} v{comp.version} to build it inside itself")
        try:
            res = proc.run([self.go, "mod", "download", "-json", f"{comp.module}@v{comp.version}"], cwd=work,
                           env=env, timeout=1800)
            info = json.loads(res.stdout)
        except (CommandError, ValueError) as err:
            raise BinaryError(f"cannot fetch {comp.module} v{comp.version} from the Go module proxy: {err}") from err
        if info.get("Error") or not info.get("Dir"):
            raise BinaryError(f"cannot fetch {comp.module} v{comp.version}: {info.get('Error', 'no Dir')}")
        tmp = work / ".src.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(info["Dir"], tmp, symlinks=True)
        for root, dirs, files in os.walk(tmp):
            for entry in dirs + files:
                p = Path(root) / entry
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | 0o200)
        tmp.chmod(tmp.stat().st_mode | 0o200)
        os.replace(tmp, src)
        (work / ".ready").write_text("in-module\n")
        return src

    def _ldflags(self, comp: Component) -> str:
        """The version stamps of ``comp``'s binaries (``-X`` flags); build_argv adds ``-s -w``."""
        flags: list[str] = []
        if comp.group == "kubernetes":
            major, minor, *_ = comp.version.split(".")
            base = "k8s.io/component-base/version"
            flags += [
                f"-X {base}.gitVersion=v{comp.version}",
                f"-X {base}.gitMajor={major}",
                f"-X {base}.gitMinor={minor}",
                f"-X {base}.gitTreeState=clean",
                "-X k8s.io/client-go/pkg/version.gitVersion=v" + comp.version,
            ]
        elif comp.group == "kwok":
            flags.append(f"-X sigs.k8s.io/kwok/pkg/consts.Version=v{comp.version}")
        elif comp.group == "containerd":
            flags.append(f"-X {comp.module}/version.Version=v{comp.version}")
        elif comp.group == "traefik":  # else it says "dev" in its logs and version output
            flags.append(f"-X github.com/traefik/traefik/v3/pkg/version.Version={comp.version}")
        return " ".join(flags)

    def _write_scratch_module(self, comp: Component, work: Path, env: dict[str, str]) -> None:
        """Write go.mod and tools.go and ``go mod tidy`` them, once per package set: ``.ready`` lists the packages
        the module was tidied for, so a binary added to versions.toml (kube-proxy) re-tidies an existing module."""
        gomod = work / "go.mod"
        marker = work / ".ready"
        for binary in comp.sources:  # this repository's main packages, refreshed on every build
            dest = work / binary
            dest.mkdir(exist_ok=True)
            for f in source_files(comp, binary):
                shutil.copyfile(f, dest / f.name)
        wanted = sorted(p for b, p in comp.packages.items() if b not in comp.sources)
        if gomod.exists() and marker.exists():
            if scratch_packages(marker.read_text()) == wanted:
                return
            if (work / "tools.go").exists():  # tidied for another package set: keep go.mod, add the imports
                self._tidy(comp, work, env, wanted)
                return
        lines = ["module aiconform.local/build", "", "go 1.26", "", f"require {comp.module} v{comp.version}", ""]
        if comp.group == "kubernetes":
            minor_ver = "0." + comp.version.split(".", 1)[1]
            for staging in self._kubernetes_staging_modules(comp, work, env):
                lines.append(f"replace {staging} => {staging} v{minor_ver}")
        for module, target in sorted(comp.replace.items()):
            lines.append(f"replace {module} => {target}")
        gomod.write_text("\n".join(lines) + "\n")
        self._tidy(comp, work, env, wanted)

    def _tidy(self, comp: Component, work: Path, env: dict[str, str], packages: list[str]) -> None:
        imports = "\n".join(f'import _ "{p}"' for p in packages)
        (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\n{imports}\n")
        self.progress(f"resolving Go modules for {comp.module} v{comp.version}")
        try:
            proc.run([self.go, "mod", "tidy"], cwd=work, env=env, timeout=1800)
        except CommandError as err:
            raise BinaryError(f"go mod tidy for {comp.module} v{comp.version} failed: {err}") from err
        (work / ".ready").write_text("\n".join(packages) + "\n")

    def _kubernetes_staging_modules(self, comp: Component, work: Path, env: dict[str, str]) -> list[str]:
        try:
            res = proc.run(
                [self.go, "mod", "download", "-json", f"{comp.module}@v{comp.version}"], cwd=work, env=env, timeout=900
            )
        except CommandError as err:
            raise BinaryError(f"cannot fetch {comp.module} v{comp.version} from the Go module proxy: {err}") from err
        info = json.loads(res.stdout)
        text = Path(info["GoMod"]).read_text()
        return staging_modules_from_gomod(text)


BUILD_MODES = ("scratch", "in-module")
SOURCES_ROOT = Path(__file__).resolve().parent
"""``sources`` directories of versions.toml are relative to the harness package."""


def source_files(comp: Component, binary: str) -> list[Path]:
    d = SOURCES_ROOT / comp.sources[binary]
    files = sorted(d.glob("*.go"))
    if not files:
        raise BinaryError(f"[{comp.group}] sources.{binary}: no .go files in {d}")
    return files


def source_digest(comp: Component, binary: str) -> str:
    h = hashlib.sha256()
    for f in source_files(comp, binary):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _digest_file(binary: Path) -> Path:
    return binary.with_name(f".{binary.name}.source")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


BUILD_GOGC = "400"
"""GOGC of the compiler and linker processes a build runs (unless GOGC is set already): less time collecting garbage
for more memory.  A cold compile of KWOK here: wall 0.92 and CPU 0.89 of GOGC=100's, peak 1.01 GiB instead of 0.93
(docs/cold-ci.md)."""


def build_env(comp: Component) -> dict[str, str]:
    """The environment of every ``go`` command for ``comp``: static binaries, module updates allowed, a lazier
    garbage collector for the compiler (:data:`BUILD_GOGC`), and the pinned toolchain when the module needs a newer
    Go than this machine's."""
    env = {"GOGC": BUILD_GOGC, **os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    if comp.toolchain:
        env["GOTOOLCHAIN"] = comp.toolchain
    return env


def scratch_packages(marker: str) -> list[str]:
    """The packages a scratch module's ``.ready`` marker says it was tidied for (``ok`` from older versions of
    this code: unknown, so none)."""
    return sorted(ln.strip() for ln in marker.splitlines() if "/" in ln)


def go_exe_name(package: str) -> str:
    """The file name ``go build -o DIR`` gives a main package: the last element of its import path, or the one
    before it when that is a major-version suffix (``go.etcd.io/etcd/server/v3`` → ``server``)."""
    parts = package.rstrip("/").split("/")
    last = parts[-1]
    if len(parts) > 1 and len(last) > 1 and last[0] == "v" and last[1:].isdigit():
        return parts[-2]
    return last


def build_batches(comp: Component, names: list[str]) -> list[list[str]]:
    """``names`` split into as few ``go build`` invocations as possible: one, unless two packages would write the
    same file name into the output directory (``-o DIR`` names each binary after its package)."""
    batches: list[list[str]] = []
    for name in names:
        exe = go_exe_name(comp.packages[name])
        home = next((b for b in batches if all(go_exe_name(comp.packages[n]) != exe for n in b)), None)
        if home is None:
            batches.append([name])
        else:
            home.append(name)
    return batches


def build_argv(go: str, comp: Component, names: list[str], out_dir: Path, ldflags: str = "") -> list[str]:
    """One ``go build`` of every named binary of ``comp`` into ``out_dir``: ``-trimpath`` (no local paths in the
    binary; reproducible) and ``-ldflags=-s -w`` (no symbol table, no DWARF: a smaller binary and a shorter link)
    followed by ``ldflags`` (the version stamps)."""
    argv = [go, "build", "-trimpath", "-o", str(out_dir) + os.sep]
    if comp.build_tags:
        argv.append(f"-tags={comp.build_tags}")
    argv += ["-ldflags", " ".join(["-s", "-w", *([ldflags] if ldflags else [])])]
    for name in names:
        pkg = comp.packages[name]
        if comp.build == "in-module":
            pkg = "./" + pkg.removeprefix(comp.module).lstrip("/") if pkg != comp.module else "."
        argv.append(pkg)
    return argv


def staging_modules_from_gomod(text: str) -> list[str]:
    """The ``k8s.io/*`` modules that k8s.io/kubernetes's go.mod maps to ``./staging`` directories."""
    mods = []
    for line in text.splitlines():
        parts = line.split()
        if "=>" in parts and parts[0] == "replace":
            parts = parts[1:]
        if len(parts) >= 3 and parts[1] == "=>" and parts[2].startswith("./staging/") and parts[0].startswith("k8s.io/"):
            mods.append(parts[0])
    return sorted(set(mods))


def _expected_digest(sums: str, file_name: str) -> str | None:
    lines = [ln.strip() for ln in sums.splitlines() if ln.strip()]
    if len(lines) == 1 and len(lines[0].split()) == 1 and len(lines[0]) == 64:
        return lines[0].lower()
    for ln in lines:
        parts = ln.split()
        if len(parts) >= 2 and parts[-1].lstrip("*").rsplit("/", 1)[-1] == file_name and len(parts[0]) == 64:
            return parts[0].lower()
    return None


def _extract_member(payload: bytes, member: str, url: str) -> bytes:
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
            fh = tar.extractfile(member)
            if fh is None:
                raise BinaryError(f"{url}: {member} is not a file")
            return fh.read()
    except (tarfile.TarError, KeyError) as err:
        raise BinaryError(f"{url}: cannot extract {member}: {err}") from err


def _install_bytes(payload: bytes, dest: Path, mode: int = 0o755) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)
    os.chmod(tmp, mode)
    os.replace(tmp, dest)


def _is_exe(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _find_go() -> str:
    """``$AICONFORM_GO`` (a path, or ``none`` to never build), else ``go`` on PATH or in the usual places."""
    forced = os.environ.get("AICONFORM_GO")
    if forced:
        return "" if forced == "none" else forced
    found = shutil.which("go")
    if found:
        return found
    for cand in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go"):
        if _is_exe(Path(cand)):
            return cand
    return ""


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- version skew ---------------------------------------------------------------------------------------------------


def _version(v: str, what: str) -> tuple[int, int, int]:
    parts = v.removeprefix("v").split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"{what}: not a Kubernetes version (MAJOR.MINOR.PATCH): {v!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


PIN_NAMES = ("default", "previous")


def pinned_kubernetes(version: str, versions: Versions | None = None) -> str:
    """``default`` / ``previous`` → the Kubernetes version versions.toml pins under that name (so a profile or a
    CI lane never repeats a pin); any other value is returned without its ``v``."""
    if version in PIN_NAMES:
        v = versions or load_versions()
        return v.kubernetes_default if version == "default" else v.kubernetes_previous
    return version.removeprefix("v")


def check_upgrade(current: str, target: str, pinned: tuple[str, ...]) -> bool:
    """Whether going from ``current`` to ``target`` is an upgrade to do (False: already there); ConfigError for a
    downgrade, a skipped minor, or a version not in ``pinned``."""
    cur, tgt = _version(current, "current version"), _version(target, "upgrade version")
    if tgt == cur:
        return False
    if tgt < cur:
        raise ConfigError(f"refusing to downgrade the control plane from v{current} to v{target}")
    if tgt[0] != cur[0] or tgt[1] > cur[1] + 1:
        raise ConfigError(f"refusing to upgrade from v{current} to v{target}: it skips a minor version; upgrade "
                          f"to v{cur[0]}.{cur[1] + 1} first")
    if target not in pinned:
        raise ConfigError(f"v{target} is not a pinned Kubernetes version (harness/versions.toml pins "
                          f"{', '.join('v' + p for p in pinned)})")
    return True



CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
REAL_NODE = ["kubelet", "kube-proxy", "coredns", "containerd", "ctr", "containerd-shim-runc-v2"]
"""What a real node (tier R) runs besides the control plane: the kubelet, kube-proxy and CoreDNS for Services and
cluster DNS (harness/providers/local/netsvc.py), and the pinned containerd v2 (CDI, for DRA) with its ctr and shim."""

COLD_BUILD_SECONDS = {
    "kube-apiserver": 530, "kube-controller-manager": 115, "kube-scheduler": 10, "kubelet": 25, "kube-proxy": 10,
    "kubectl": 20, "kubeadm": 10, "etcd": 60, "kwok": 80, "coredns": 55, "containerd": 45, "ctr": 5,
    "containerd-shim-runc-v2": 5, "kube-router": 125, "trainer-controller-manager": 65, "jobset-controller": 70,
    "karpenter-kwok": 115, "kueue": 170, "kind": 5, "actionlint": 5, "prometheus-adapter": 90, "prometheus": 120,
    "traefik": 295,
}
"""Seconds of a cold build of each binary on 2 cores under load, from the README's cold-CI budget table
(kube-apiserver: 527 s on a fresh machine, issue 23): the estimate a progress line gives until this machine has
measured a build of the same binaries.  A binary not listed counts as 120 s."""

UNLISTED_COLD_SECONDS = 120
COLD_RESOLUTION_SECONDS = 60
"""Added once per build to the table's figures, which leave out module resolution (``go mod tidy``/download): a
small module measured 130 s cold here (actionlint, empty build cache, load 6.7) against the table's 3 s."""
BUILD_TIMES_FILE = "build-times.json"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


class BuildTimes:
    """The wall time of every build this machine has done, in ``<cache>/build-times.json``: one entry per group,
    version and set of binaries (``kubernetes 1.37.2 kube-apiserver,kube-controller-manager``) with the seconds,
    the UTC time it finished, the 1-minute load average when it started and the CPU count.  It only feeds progress
    lines: a missing or unreadable file means "nothing measured yet", never an error."""

    def __init__(self, cache_dir: Path, warn: Progress = _stderr) -> None:
        self.path = cache_dir / BUILD_TIMES_FILE
        self.warn = warn
        self.lock = cache_dir / "locks" / "build-times.lock"
        self._load = os.getloadavg()[0]

    def entries(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        builds = data.get("builds") if isinstance(data, dict) else None
        return {k: v for k, v in builds.items() if isinstance(v, dict) and isinstance(v.get("seconds"), int | float)} \
            if isinstance(builds, dict) else {}

    @staticmethod
    def key(comp: Component, names: Iterable[str]) -> str:
        return f"{comp.group} {comp.version} {','.join(sorted(names))}"

    def record(self, comp: Component, names: Iterable[str], seconds: float) -> None:
        try:
            with _locked(self.lock):
                builds = self.entries()
                builds[self.key(comp, names)] = {
                    "seconds": round(seconds, 1),
                    "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "load1": round(self._load, 2),
                    "cpus": os.cpu_count(),
                }
                _install_bytes(json.dumps({"builds": builds}, indent=1, sort_keys=True).encode() + b"\n", self.path,
                               mode=0o644)
        except OSError as err:  # a read-only cache still gets its binaries; only the estimate is lost
            self.warn(f"warning: could not record the build time in {self.path}: {err}")

    def estimate(self, comp: Component, names: Iterable[str]) -> str:
        """``about N min, measured <date>`` from the last build of these binaries at this version; else the slowest
        recorded build of the same binaries at another version (a new pin builds cold again, like that one did);
        else the sum of the README's cold figures."""
        names = sorted(names)
        builds = self.entries()
        exact = builds.get(self.key(comp, names))
        if exact is not None:
            return f"about {_duration(exact['seconds'])}, measured {str(exact.get('measured', '?'))[:10]}"
        suffix = f" {','.join(names)}"
        others = [(k.split()[1], v) for k, v in builds.items() if k.startswith(f"{comp.group} ") and k.endswith(suffix)]
        if others:
            version, slowest = max(others, key=lambda kv: float(kv[1]["seconds"]))
            return (f"about {_duration(slowest['seconds'])}, as v{version} took when measured "
                    f"{str(slowest.get('measured', '?'))[:10]}")
        cold = COLD_RESOLUTION_SECONDS + sum(COLD_BUILD_SECONDS.get(n, UNLISTED_COLD_SECONDS) for n in names)
        return f"about {_duration(cold)} cold by the README's table; not measured on this machine yet"
