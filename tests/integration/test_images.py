"""Images built by harness/images, run by a real containerd + runc: a static binary FROM scratch and a Debian
Python image with a wheel, imported with ``ctr images import`` into a private containerd (its own socket, root and
state under a temporary directory, CRI off; never the system service) and run with ``ctr run``.  Also: a build
that fails half-way (a wheel that does not exist) names image and step and caches nothing.

Needs root, Debian's containerd and runc (as tier R does) and debootstrap; .ci/run installs them.  The Debian base
root is built once (100-180 s on 2 cores) into the shared cache and reused.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import images, proc
from harness.errors import CommandError, ImageBuildError
from harness.images import containerd, debian
from tests.integration.conftest import REGISTRY_BINARY, loopback_registry


def _skip_reason() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "running images needs root (containerd, runc; debootstrap and chroot for Debian roots)"
    missing = [pkg for exe, pkg in (("containerd", "containerd"), ("ctr", "containerd"), ("runc", "runc"))
               if shutil.which(exe) is None] + debian.missing_tools()
    if missing:
        return f"needs packages that are not installed: apt-get install {' '.join(sorted(set(missing)))}"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))

CONFIG = """version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{root}/c.sock"
"""


@pytest.fixture(scope="module")
def ctr_socket() -> Iterator[Path]:
    """A private containerd (short path: the socket path must fit 108 bytes)."""
    root = Path(f"/tmp/aic-ctr-{secrets.token_hex(3)}")
    root.mkdir()
    (root / "config.toml").write_text(CONFIG.format(root=root))
    pidfile = root / "containerd.pid"
    proc.start_daemon("containerd", [shutil.which("containerd") or "containerd", "--config", str(root / "config.toml")],
                      log=root / "containerd.log", pidfile=pidfile)
    socket = root / "c.sock"
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded: containerd answers on its socket within a second or two
            try:
                proc.run(containerd.ctr_argv(socket, "k8s.io", "version"), timeout=5)
                break
            except CommandError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield socket
    finally:
        proc.stop_pidfile(pidfile)
        for mnt in reversed(images.cache.mounts_under(root)):
            proc.run(["umount", "-l", mnt], timeout=30, check=False)
        shutil.rmtree(root, ignore_errors=True)


def ctr_run(socket: Path, ref: str, *argv: str) -> str:
    name = f"t-{secrets.token_hex(3)}"
    return proc.run(containerd.ctr_argv(socket, "k8s.io", "run", "--rm", ref, name, *argv), timeout=120).stdout


def test_static_binary_from_scratch_runs(ctr_socket: Path) -> None:
    img = images.static_binary_image("it-static-busybox", images.BUSYBOX_BINARY, dest="/bin/busybox",
                                     args=("echo", "hello from scratch"))
    built = images.build(img)
    images.import_archive(built.archive, ctr_socket)
    assert img.ref in containerd.image_names(ctr_socket)
    assert ctr_run(ctr_socket, img.ref).strip() == "hello from scratch"


def test_go_binary_from_scratch_runs(ctr_socket: Path) -> None:
    """A static Go build (the pinned etcd, CGO_ENABLED=0) as the addon installer will package controllers."""
    from harness.bins import BinaryResolver

    etcd = BinaryResolver().resolve("etcd")
    img = images.static_binary_image("it-etcd", etcd.path, dest="/usr/local/bin/etcd", args=("--version",))
    built = images.build(img)
    images.import_archive(built.archive, ctr_socket)
    assert f"etcd Version: {etcd.version}" in ctr_run(ctr_socket, img.ref)


def test_python_image_with_a_wheel_runs_offline(ctr_socket: Path) -> None:
    built = images.build("python-prometheus")
    images.import_archive(built.archive, ctr_socket)
    script = ("import importlib.util, sys, prometheus_client as pc; "
              "g = pc.Gauge('aiconform_it', 'x'); g.set(7); "
              "print('py', sys.version_info[0], sys.version_info[1], 'pip', importlib.util.find_spec('pip') is not None); "
              "print(pc.generate_latest().decode().splitlines()[-1])")
    out = ctr_run(ctr_socket, built.ref, "python3", "-c", script).strip().splitlines()
    assert out == ["py 3 11 pip False", "aiconform_it 7.0"]


def test_a_wheel_that_does_not_exist_caches_nothing() -> None:
    img = images.DebianImage("it-broken-wheel", "aiconform.local/it-broken-wheel:x", "a wheel that is not on PyPI",
                             packages=("python3",), wheels=("aiconform-no-such-wheel-xyz==9.9.9",))
    with pytest.raises(ImageBuildError, match=r"^image it-broken-wheel: step wheels failed: "):
        images.build(img)
    assert not images.status(img)["cached"]
    assert not list(images.images_cache().glob("it-broken-wheel-*"))
    assert not [p for p in (images.images_cache() / "tmp").iterdir() if p.name.startswith("it-broken-wheel")]


def test_fake_gpu_plugin_image_has_its_dependencies(ctr_socket: Path) -> None:
    """The DaemonSet image (fake_gpu_plugin/deploy/daemonset.yaml) imports the plugin with its gRPC stubs."""
    built = images.build("fake-gpu-plugin")
    images.import_archive(built.archive, ctr_socket)
    script = ("import grpc, google.protobuf, yaml, fake_gpu_plugin.plugin, fake_gpu_plugin.api.deviceplugin_pb2_grpc; "
              "print('plugin ok', grpc.__version__)")
    out = ctr_run(ctr_socket, built.ref, "python3", "-c", script)
    assert out.strip() == "plugin ok 1.85.3"
    assert "serve" in ctr_run(ctr_socket, built.ref, "python3", "-m", "fake_gpu_plugin", "--help")


@pytest.mark.skipif(not REGISTRY_BINARY.exists(), reason="needs Debian's registry: apt-get install docker-registry")
def test_pushed_image_is_pulled_by_containerd_and_runs(ctr_socket: Path, tmp_path: Path) -> None:
    """`aiconform images push` into a real registry (the distribution registry on 127.0.0.1): a second push sends no
    blob, containerd pulls the image from there under the registry's name, and it runs."""
    cli = str(Path(sys.executable).parent / "aiconform")
    with loopback_registry(tmp_path) as reg:
        target = f"{reg.address}/it-{secrets.token_hex(2)}"
        first = proc.run([cli, "images", "push", "--registry", target, "busybox"], timeout=300)
        ref = f"{target}/busybox:latest"
        assert first.stdout.startswith(f"{ref}  sha256:") and "(2 blob(s) sent" in first.stdout, first.stdout
        again = proc.run([cli, "images", "push", "--registry", target, "busybox"], timeout=300).stdout
        assert "(0 blob(s) sent, 0.0 MB; 2 already there)" in again, again
        assert again.split()[1] == first.stdout.split()[1]  # the same manifest digest
        proc.run(containerd.ctr_argv(ctr_socket, "k8s.io", "images", "pull", "--plain-http", ref), timeout=120)
        assert ref in containerd.image_names(ctr_socket)
        assert ctr_run(ctr_socket, ref, "echo", "pulled from the registry").strip() == "pulled from the registry"
        assert f"/v2/{target.split('/', 1)[1]}/busybox/manifests/latest" in reg.log.read_text()
        refused = subprocess.run([cli, "images", "push", "--registry", "ftp://x", "busybox"], capture_output=True,
                                 text=True, timeout=60)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "http:// or https://" in refused.stderr
