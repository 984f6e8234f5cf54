"""Image archives: layers as gzipped tars and the archive that holds an image, written without docker or a registry.

Owns the bytes of an image archive.  One archive carries both layouts, like ``docker save`` does since Docker 25:

- the OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/<digest>``: gzipped layers, config, manifest;
  the index names the image with ``io.containerd.image.name`` and ``org.opencontainers.image.ref.name``), which
  ``ctr images import`` reads;
- a docker-archive ``manifest.json`` (``Config``, ``RepoTags``, ``Layers`` pointing at the same blobs), which
  ``docker load`` (and so ``kind load image-archive``) reads.

A layer's ``diff_id`` is the sha256 of its uncompressed tar; its digest the sha256 of the gzip stream (gzip header
mtime 0, so equal content gives equal digests).  Must not run commands or know where archives are cached.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WHITEOUT_PREFIX = ".wh."


@dataclass(frozen=True)
class LayerFile:
    """One entry of a layer built from bytes (no files on disk)."""

    path: str
    """Path inside the image, without a leading slash."""
    data: bytes | None = None
    """File content; None for a directory or a symlink."""
    mode: int = 0o755
    link: str = ""
    """Symlink target when non-empty."""


@dataclass(frozen=True)
class Layer:
    """A gzipped layer tar on disk and the two digests an image needs."""

    path: Path
    digest: str
    """``sha256:…`` of the gzip stream (the blob's name)."""
    diff_id: str
    """``sha256:…`` of the uncompressed tar (what the config's rootfs lists)."""
    size: int
    """Bytes of the gzip stream."""

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "digest": self.digest, "diff_id": self.diff_id, "size": self.size}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Layer:
        return Layer(Path(data["path"]), str(data["digest"]), str(data["diff_id"]), int(data["size"]))


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image's config."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (PATH_ENV,)
    workdir: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.out.write(view)
        self.size += len(view)
        return len(view)


class LayerWriter:
    """Writes one gzipped layer tar to ``path`` while computing its digest and diff_id in the same pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._compressed = _HashingWriter(self._fh)
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._compressed, mtime=0, compresslevel=6)
        self._raw = _HashingWriter(self._gz)  # type: ignore[arg-type]
        self.tar = tarfile.open(fileobj=self._raw, mode="w|", format=tarfile.PAX_FORMAT)

    def add_bytes(self, entry: LayerFile) -> None:
        info = tarfile.TarInfo(entry.path)
        info.mtime, info.mode = 0, entry.mode
        if entry.link:
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.link, 0o777
            self.tar.addfile(info)
        elif entry.data is None:
            info.type = tarfile.DIRTYPE
            self.tar.addfile(info)
        else:
            info.size = len(entry.data)
            self.tar.addfile(info, io.BytesIO(entry.data))

    def add_path(self, src: Path, arcname: str) -> None:
        """Add one file system entry (not recursive): file, dir, symlink, hardlink, device or fifo.  Owners are
        kept as numbers only; sockets are skipped."""
        info = self.tar.gettarinfo(str(src), arcname)
        if info is None:  # a socket
            return
        info.uname = info.gname = ""
        if info.isreg():
            with open(src, "rb") as fh:
                self.tar.addfile(info, fh)
        else:
            self.tar.addfile(info)

    def add_whiteout(self, arcname: str) -> None:
        """Mark ``arcname`` (present in a lower layer) as deleted."""
        parent, _, base = arcname.rpartition("/")
        info = tarfile.TarInfo(f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base)
        info.mtime, info.mode, info.size = 0, 0o644, 0
        self.tar.addfile(info)

    def close(self) -> Layer:
        self.tar.close()
        self._gz.close()
        self._fh.close()
        return Layer(self.path, "sha256:" + self._compressed.sha.hexdigest(), "sha256:" + self._raw.sha.hexdigest(),
                     self._compressed.size)

    def abort(self) -> None:
        for closer in (self.tar.close, self._gz.close, self._fh.close):
            try:
                closer()
            except (OSError, ValueError, tarfile.TarError):
                pass


def layer_from_entries(path: Path, entries: Iterable[LayerFile]) -> Layer:
    """A layer made of in-memory entries (scratch images: a static binary and a few files)."""
    writer = LayerWriter(path)
    try:
        for e in entries:
            writer.add_bytes(e)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


# -- layers from a root directory ---------------------------------------------------------------------------------

Signature = tuple[int, int, int, int, int, int, int, str]
"""What identifies a file system entry's state: mode, uid, gid, size, mtime_ns, ctime_ns, rdev, link target."""


def _signature(st: os.stat_result, link: str) -> Signature:
    return (st.st_mode, st.st_uid, st.st_gid, st.st_size if not stat.S_ISDIR(st.st_mode) else 0, st.st_mtime_ns,
            st.st_ctime_ns, st.st_rdev, link)


def walk_root(root: Path, skip_contents: frozenset[str] = frozenset()) -> Iterator[tuple[str, Path]]:
    """Every entry under ``root`` as (relative path, absolute path), parents before children, names sorted, not
    following symlinks.  Directories named in ``skip_contents`` (relative) are listed but not entered."""
    stack: list[tuple[str, Path]] = [("", root)]
    while stack:
        rel, path = stack.pop()
        try:
            names = sorted(os.listdir(path))
        except OSError:
            continue
        children: list[tuple[str, Path]] = []
        for name in names:
            crel, cpath = (f"{rel}/{name}" if rel else name), path / name
            yield crel, cpath
            if cpath.is_dir() and not cpath.is_symlink() and crel not in skip_contents:
                children.append((crel, cpath))
        stack.extend(reversed(children))


def snapshot(root: Path, skip_contents: frozenset[str] = frozenset()) -> dict[str, Signature]:
    """The state of every entry under ``root``, to diff against later (see :func:`layer_from_diff`)."""
    out: dict[str, Signature] = {}
    for rel, path in walk_root(root, skip_contents):
        st = path.lstat()
        out[rel] = _signature(st, os.readlink(path) if stat.S_ISLNK(st.st_mode) else "")
    return out


def layer_from_root(path: Path, root: Path, skip_contents: frozenset[str] = frozenset()) -> Layer:
    """The whole tree under ``root`` as one layer (a base layer)."""
    writer = LayerWriter(path)
    try:
        for rel, src in walk_root(root, skip_contents):
            writer.add_path(src, rel)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def layer_from_diff(path: Path, root: Path, before: Mapping[str, Signature],
                    skip_contents: frozenset[str] = frozenset(), ignore: frozenset[str] = frozenset()) -> Layer:
    """The changes under ``root`` since ``before`` (a :func:`snapshot`) as one layer: new and changed entries,
    and a whiteout for each removed entry whose parent still exists.  Paths in ``ignore`` never count as changed."""
    writer = LayerWriter(path)
    try:
        seen: set[str] = set()
        for rel, src in walk_root(root, skip_contents):
            seen.add(rel)
            st = src.lstat()
            sig = _signature(st, os.readlink(src) if stat.S_ISLNK(st.st_mode) else "")
            if rel not in ignore and before.get(rel) != sig:
                writer.add_path(src, rel)
        removed = sorted(set(before) - seen)
        removed_set = set(removed)
        for rel in removed:
            if rel.rpartition("/")[0] not in removed_set:
                writer.add_whiteout(rel)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


# -- the archive -----------------------------------------------------------------------------------------------------


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(layers: Sequence[Layer], config: ImageConfig, history: str) -> dict[str, Any]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": list(config.env),
            "Entrypoint": list(config.entrypoint) or None,
            "Cmd": list(config.cmd) or None,
            "WorkingDir": config.workdir,
            "Labels": dict(config.labels) or None,
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": history} for _ in layers],
    }


def write_archive(out: Path, ref: str, layers: Sequence[Layer], config: ImageConfig, history: str) -> str:
    """Write the image archive (OCI layout + docker manifest.json, one uncompressed tar) to ``out``; returns the
    manifest digest.  ``ref`` is the full image name with its tag (``aiconform.local/x:tag``)."""
    config_bytes = _json_bytes(image_config(layers, config, history))
    config_digest = _digest(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": layer.digest, "size": layer.size} for layer in layers],
    }
    manifest_bytes = _json_bytes(manifest)
    manifest_digest = _digest(manifest_bytes)
    tag = ref.rpartition(":")[2] if ":" in ref.rpartition("/")[2] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag},
        }],
    }

    def blob(digest: str) -> str:
        return "blobs/sha256/" + digest.split(":", 1)[1]

    docker_manifest = [{"Config": blob(config_digest), "RepoTags": [ref],
                        "Layers": [blob(layer.digest) for layer in layers]}]
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))

        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mtime, info.mode = tarfile.DIRTYPE, 0, 0o755
            tar.addfile(info)
        added: set[str] = set()
        for layer in layers:
            if layer.digest in added:  # the same layer twice (e.g. an empty diff): one blob
                continue
            added.add(layer.digest)
            info = tarfile.TarInfo(blob(layer.digest))
            info.size, info.mtime, info.mode = layer.size, 0, 0o644
            with open(layer.path, "rb") as fh:
                tar.addfile(info, fh)
        add(blob(config_digest), config_bytes)
        add(blob(manifest_digest), manifest_bytes)
        add("oci-layout", _json_bytes({"imageLayoutVersion": "1.0.0"}))
        add("index.json", _json_bytes(index))
        add("manifest.json", _json_bytes(docker_manifest))
    return manifest_digest
