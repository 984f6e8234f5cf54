"""harness/images without a container runtime: the archive's layout and digests, content keys, layer diffs, the
failure path (nothing half-built is cached) and the ``images`` CLI."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from harness import images
from harness.cli import main
from harness.errors import ImageBuildError
from harness.images import cache, oci
from harness.images.oci import ImageConfig, LayerFile


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AICONFORM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "images"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _scratch(name: str, entries: list[LayerFile], marker: str = "v1") -> images.ScratchImage:
    return images.ScratchImage(name, f"example.local/{name}:1", "a test image", lambda: [marker], lambda: entries,
                               ImageConfig(entrypoint=("/bin/tool",), cmd=("--flag",)))


TOOL = b"#!/bin/sh\necho tool\n"
ENTRIES = [LayerFile("bin", mode=0o755), LayerFile("bin/tool", TOOL), LayerFile("bin/sh", link="tool"),
           LayerFile("etc", mode=0o755), LayerFile("etc/motd", b"hello\n", mode=0o644)]


def read_archive(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def verify_archive(files: dict[str, bytes], ref: str) -> tuple[dict[str, Any], list[bytes]]:
    """Check every digest and size the OCI layout and the docker manifest claim; returns (config, raw layers)."""
    def blob(digest: str) -> bytes:
        return files["blobs/sha256/" + digest.split(":", 1)[1]]

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    [desc] = index["manifests"]
    assert desc["annotations"]["io.containerd.image.name"] == ref
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == ref.rpartition(":")[2]
    manifest_bytes = blob(desc["digest"])
    assert _sha(manifest_bytes) == desc["digest"] and len(manifest_bytes) == desc["size"]
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == oci.MEDIA_MANIFEST
    config_bytes = blob(manifest["config"]["digest"])
    assert _sha(config_bytes) == manifest["config"]["digest"] and len(config_bytes) == manifest["config"]["size"]
    config = json.loads(config_bytes)
    raw_layers = []
    for layer_desc in manifest["layers"]:
        gz = blob(layer_desc["digest"])
        assert _sha(gz) == layer_desc["digest"] and len(gz) == layer_desc["size"]
        assert layer_desc["mediaType"] == oci.MEDIA_LAYER_GZIP
        raw_layers.append(gzip.decompress(gz))
    assert config["rootfs"]["diff_ids"] == [_sha(raw) for raw in raw_layers]
    [docker] = json.loads(files["manifest.json"])
    assert docker["RepoTags"] == [ref]
    assert docker["Config"] == "blobs/sha256/" + manifest["config"]["digest"].split(":", 1)[1]
    assert docker["Layers"] == ["blobs/sha256/" + d["digest"].split(":", 1)[1] for d in manifest["layers"]]
    return config, raw_layers


def test_scratch_archive_digests_and_contents(private_cache: Path) -> None:
    built = images.build(_scratch("tool", ENTRIES), progress=lambda _: None)
    assert built.archive.parent == private_cache and not built.cached
    config, [raw] = verify_archive(read_archive(built.archive), "example.local/tool:1")
    assert config["config"]["Entrypoint"] == ["/bin/tool"] and config["config"]["Cmd"] == ["--flag"]
    assert config["os"] == "linux" and config["architecture"] == "amd64"
    with tarfile.open(fileobj=io.BytesIO(raw)) as layer:
        assert [m.name for m in layer.getmembers()] == ["bin", "bin/tool", "bin/sh", "etc", "etc/motd"]
        assert layer.extractfile("bin/tool").read() == TOOL  # type: ignore[union-attr]
        assert layer.getmember("bin/tool").mode == 0o755
        assert layer.getmember("bin/sh").issym() and layer.getmember("bin/sh").linkname == "tool"


def test_equal_inputs_give_identical_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = images.build(_scratch("tool", ENTRIES), progress=lambda _: None).archive.read_bytes()
    monkeypatch.setenv("AICONFORM_CACHE_DIR", str(tmp_path / "other"))
    again = images.build(_scratch("tool", ENTRIES), progress=lambda _: None)
    assert again.archive.read_bytes() == first


def test_second_build_is_cached() -> None:
    calls: list[int] = []

    def contents() -> list[LayerFile]:
        calls.append(1)
        return ENTRIES

    img = images.ScratchImage("counted", "example.local/counted:1", "", lambda: ["x"], contents)
    a = images.build(img, progress=lambda _: None)
    b = images.build(img, progress=lambda _: None)
    assert (a.cached, b.cached, a.archive, len(calls)) == (False, True, b.archive, 1)


@pytest.mark.skipif(not images.BUSYBOX_BINARY.is_file(), reason="Debian's busybox-static is not installed")
def test_pause_and_busybox_keep_their_names() -> None:
    config, [raw] = verify_archive(read_archive(images.busybox_archive()), images.BUSYBOX_IMAGE)
    with tarfile.open(fileobj=io.BytesIO(raw)) as layer:
        assert layer.getmember("bin/sh").issym() and layer.getmember("bin/sh").linkname == "busybox"
        assert images.is_static_elf(layer.extractfile("bin/busybox").read())  # type: ignore[union-attr]
    assert config["config"]["Cmd"] == ["/bin/sh"]
    assert images.image_ref("pause") == images.PAUSE_IMAGE == "aiconform.local/pause:3.10"


def test_static_binary_image_refuses_a_dynamic_binary(private_cache: Path) -> None:
    img = images.static_binary_image("dyn", Path(os.path.realpath(sys.executable)))
    with pytest.raises(ImageBuildError, match=r"^image dyn: step contents failed: .* is not a static binary"):
        images.build(img, progress=lambda _: None)
    assert not list(private_cache.glob("dyn-*"))
    assert not any((private_cache / "tmp").iterdir())


@pytest.mark.parametrize("exc", [ValueError("compiler exploded"), KeyboardInterrupt()])
def test_a_failing_step_leaves_nothing_cached(private_cache: Path, exc: BaseException) -> None:
    def contents() -> list[LayerFile]:
        (private_cache / "tmp").mkdir(parents=True, exist_ok=True)
        raise exc

    img = images.ScratchImage("broken", "example.local/broken:1", "", lambda: ["x"], contents)
    with pytest.raises((ImageBuildError, KeyboardInterrupt)) as info:
        images.build(img, progress=lambda _: None)
    if isinstance(exc, ValueError):
        assert str(info.value) == "image broken: step contents failed: compiler exploded"
    assert not list(private_cache.glob("broken-*"))
    assert not any((private_cache / "tmp").iterdir())
    assert not images.status(img)["cached"]


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_a_stage_that_fails_half_way_is_not_cached(private_cache: Path, exc: BaseException) -> None:
    target = private_cache / "stages" / "half"

    def build(work: Path) -> None:
        (work / "root").mkdir()
        (work / "root" / "big").write_bytes(b"x" * 1000)
        raise exc

    with pytest.raises((OSError, KeyboardInterrupt)):
        cache.cached_dir(target, "k" * 64, build)
    assert not target.exists()
    assert not any((private_cache / "tmp").iterdir())

    def good(work: Path) -> None:
        (work / "done.json").write_text("{}")

    assert (cache.cached_dir(target, "k" * 64, good) / "done.json").is_file()


def _debian(**kw: Any) -> images.DebianImage:
    base: dict[str, Any] = {"name": "py", "ref": "example.local/py:1", "description": "",
                            "packages": ("python3",), "wheels": ("prometheus-client==0.26.0",)}
    return images.DebianImage(**{**base, **kw})


def test_content_key_follows_every_input(tmp_path: Path) -> None:
    src = tmp_path / "app"
    src.mkdir()
    (src / "main.py").write_text("print(1)\n")
    img = _debian(files=(("/opt/app", src),))
    key = img.key()
    assert _debian(files=(("/opt/app", src),)).key() == key  # stable
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"junk")
    assert img.key() == key  # bytecode caches are not inputs
    others = {
        "wheel version": _debian(files=(("/opt/app", src),), wheels=("prometheus-client==0.25.0",)),
        "wheel list": _debian(files=(("/opt/app", src),), wheels=("prometheus-client==0.26.0", "PyYAML==6.0.4")),
        "packages": _debian(files=(("/opt/app", src),), packages=("python3", "curl")),
        "suite": _debian(files=(("/opt/app", src),), suite="trixie"),
        "destination": _debian(files=(("/opt/other", src),)),
        "config": _debian(files=(("/opt/app", src),), config=ImageConfig(cmd=("python3", "-V"))),
        "name": _debian(files=(("/opt/app", src),), ref="example.local/py:2"),
    }
    keys = {what: other.key() for what, other in others.items()}
    assert all(k != key for k in keys.values()), keys
    assert len(set(keys.values())) == len(keys)
    (src / "main.py").write_text("print(2)\n")
    assert img.key() != key  # file content
    (src / "main.py").write_text("print(1)\n")
    assert img.key() == key


def test_stages_are_shared_between_images() -> None:
    from harness.images import debian

    assert debian.packages_key("bookworm", ("python3",)) == debian.packages_key("bookworm", ["python3"])
    assert debian.packages_key("bookworm", ("a", "b")) == debian.packages_key("bookworm", ("b", "a"))
    assert debian.packages_key("bookworm", ("python3",)) != debian.packages_key("bookworm", ("python3", "curl"))


def test_layer_from_diff_has_changes_and_whiteouts(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for d in ("etc", "usr/lib/old", "usr/bin"):
        (root / d).mkdir(parents=True)
    (root / "etc" / "keep").write_text("same\n")
    (root / "etc" / "change").write_text("before\n")
    (root / "usr" / "bin" / "gone").write_text("x\n")
    (root / "usr" / "lib" / "old" / "a").write_text("a\n")
    (root / "etc" / "resolv.conf").write_text("")
    before = oci.snapshot(root)
    (root / "etc" / "change").write_text("after, longer\n")
    (root / "etc" / "new").write_text("new\n")
    (root / "etc" / "resolv.conf").write_text("nameserver 127.0.0.53\n")
    (root / "usr" / "bin" / "gone").unlink()
    (root / "usr" / "lib" / "old" / "a").unlink()
    (root / "usr" / "lib" / "old").rmdir()
    layer = oci.layer_from_diff(tmp_path / "l.tar.gz", root, before, ignore=frozenset({"etc/resolv.conf"}))
    raw = gzip.decompress(layer.path.read_bytes())
    assert layer.diff_id == _sha(raw) and layer.digest == _sha(layer.path.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = {m.name for m in tar.getmembers()}
        assert tar.extractfile("etc/change").read() == b"after, longer\n"  # type: ignore[union-attr]
    assert {"etc/change", "etc/new", "usr/bin/.wh.gone", "usr/lib/.wh.old"} <= names
    assert "etc/keep" not in names and "usr/lib/old/.wh.a" not in names and "etc/resolv.conf" not in names


def test_layer_from_root_keeps_skipped_dirs_empty(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    (root / "tmp" / "junk").write_text("x")
    (root / "bin").mkdir()
    (root / "bin" / "hardlink-a").write_text("same inode")
    os.link(root / "bin" / "hardlink-a", root / "bin" / "hardlink-b")
    layer = oci.layer_from_root(tmp_path / "l.tar.gz", root, frozenset({"tmp"}))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.path.read_bytes()))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "tmp" in members and "tmp/junk" not in members
    assert members["bin/hardlink-b"].islnk() and members["bin/hardlink-b"].linkname == "bin/hardlink-a"
    assert members["bin/hardlink-a"].uname == ""


def test_cli_unknown_image_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["images", "build", "pause", "no-such-image"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("aiconform: unknown image 'no-such-image'")


def test_cli_list_and_build(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    img = _scratch("tool", ENTRIES)
    monkeypatch.setitem(images.REGISTRY, "tool", img)
    assert main(["images", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("pause", "busybox", "python-base", "python-prometheus", "fake-gpu-plugin"):
        assert name in out
    row = next(line for line in out.splitlines() if line.startswith("tool "))
    assert img.key()[:16] in row and " no " in row
    assert main(["images", "build", "tool"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(images.registry.archive_path(img))
    assert "images: tool: layer done in" in captured.err
    main(["images", "list"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tool "))
    assert " yes " in row and "MB" in row


def test_cli_build_failure_names_image_and_step(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(images.REGISTRY, "dyn", images.static_binary_image("dyn", Path(sys.executable).resolve()))
    assert main(["images", "build", "dyn"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("aiconform: image dyn: step contents failed:")


def test_mirror_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.images import debian

    monkeypatch.setenv("AICONFORM_DEBIAN_MIRROR", "http://127.0.0.1:3142/debian")
    assert debian.host_mirror() == "http://127.0.0.1:3142/debian"


def test_mirror_from_the_hosts_apt_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.images import debian

    monkeypatch.delenv("AICONFORM_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://127.0.0.1/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://127.0.0.1/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
    assert debian.host_mirror(tmp_path) == "http://127.0.0.1/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text("# comment\ndeb [arch=amd64] http://127.0.0.2/debian bookworm main\n")
    assert debian.host_mirror(tmp_path) == "http://127.0.0.2/debian"
    (tmp_path / "sources.list").write_text("")
    with pytest.raises(ImageBuildError, match="AICONFORM_DEBIAN_MIRROR"):
        debian.host_mirror(tmp_path)


def test_stale_temp_dirs_of_dead_builds_are_swept(private_cache: Path) -> None:
    tmp = private_cache / "tmp"
    stale, live, young = tmp / "stale-x", tmp / "live-y", tmp / "young-z"
    for d, pid in ((stale, 2 ** 22 + 7), (live, os.getpid())):  # 2**22 + 7 is above Linux's highest pid
        (d / "entry").mkdir(parents=True)
        (d / cache.OWNER).write_text(f"{pid}\n")
    young.mkdir()  # no owner file yet: being created
    assert cache.sweep_stale(tmp) == [stale]
    assert not stale.exists() and live.exists() and young.exists()


def test_wheels_are_chosen_for_the_images_glibc_not_the_hosts() -> None:
    from harness.images import debian

    plats = debian.wheel_platforms((2, 36))
    assert "manylinux_2_36_x86_64" in plats and "manylinux_2_17_x86_64" in plats and "manylinux2014_x86_64" in plats
    assert "manylinux_2_37_x86_64" not in plats and not any(p.startswith("linux_") for p in plats)
