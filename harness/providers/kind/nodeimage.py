"""The offline kind node image, assembled by the harness: ``aiconform node-image build``.

``kind build node-image`` cannot run here (it pulls etcd, CoreDNS, pause, kindnetd and local-path images inside its
build container), so the image is put together from parts built on this machine:

1. a base image from harness/images: the cached ``debootstrap --variant=minbase bookworm`` root + systemd, runc,
   iptables, Debian's CNI plugins (one cached apt stage), and a layer with containerd 2 (versions.toml
   ``[containerd]``), kubeadm/kubelet/kubectl, kind's own node entrypoint (read from the pinned kind module),
   systemd units and the containerd config (``files/``);
2. the images kubeadm runs, built with harness/images: kube-apiserver, kube-controller-manager, kube-scheduler,
   etcd and CoreDNS FROM scratch, kube-proxy on the Debian root (it needs iptables), pause, and busybox (the image
   the tier R checks run); all named
   ``aiconform.local/<name>:<tag>`` (the kind config points kubeadm's imageRepository there);
3. a container of the base image runs containerd, each image archive is imported (``ctr -n k8s.io images import
   --no-unpack``: kind's node unpacks on first use, on its /var volume), and the container is committed.

The result is tagged ``aiconform.local/kind-node:v<k8s>-<key>`` in the harness's dockerd, where the key is a content
hash of every input (versions, binaries, files, image keys): the image store is the cache, so a second ``up`` finds
it at once.  The tag is written last, by the commit; a build that fails or is interrupted removes its container and
tags nothing, so nothing half-built is ever found.  Owns the node image only; must not create clusters.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker.errors
from docker.models.containers import Container

from harness import proc
from harness.bins import BinaryResolver, cache_root
from harness.errors import BinaryError, ClusterError, CommandError, ImageBuildError, WaitTimeout
from harness.images import cache, oci, registry, static
from harness.images.oci import ImageConfig
from harness.images.registry import REGISTRY_HOST, DebianImage, Image, static_binary_image
from harness.images.steps import Steps
from harness.providers.kind.engine import Engine

FILES = Path(__file__).with_name("files")
NODE_REPO = f"{REGISTRY_HOST}/kind-node"
FORMAT = "1"
"""Bump to rebuild every node image (a change in how it is assembled that the inputs do not show)."""
NODE_PACKAGES = ("ca-certificates", "conntrack", "containernetworking-plugins", "ethtool", "iproute2", "iptables",
                 "kmod", "procps", "runc", "socat", "systemd", "systemd-sysv", "util-linux")
"""Debian packages of the node root (one cached apt stage; kube-proxy's image reuses it for iptables and conntrack)."""
K8S_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE_BINARIES = ("kubeadm", "kubelet", "kubectl")
CONTAINERD_BINARIES = ("containerd", "ctr", "containerd-shim-runc-v2")
CONTAINERD_START_TIMEOUT = 60.0
IMAGES_MOUNT = "/aiconform-images"


@dataclass(frozen=True)
class NodeImagePlan:
    """What one node image is made of (computing it builds nothing)."""

    kubernetes: str
    base: DebianImage
    preload: tuple[Image, ...]
    etcd_tag: str
    coredns_tag: str
    key: str

    @property
    def ref(self) -> str:
        return f"{NODE_REPO}:v{self.kubernetes}-{self.key[:12]}"


@dataclass(frozen=True)
class NodeImage:
    """A node image present in the engine."""

    ref: str
    kubernetes: str
    etcd_tag: str
    coredns_tag: str
    cached: bool
    seconds: float


def kind_module_dir(resolver: BinaryResolver) -> Path:
    """The pinned kind module's source directory in the Go module cache (downloaded if needed)."""
    comp = resolver.versions.component("kind")
    if not resolver.go:
        raise BinaryError("the kind node image needs kind's entrypoint from the Go module proxy, and no Go "
                          "toolchain was found (install Go >= 1.26)")
    try:
        res = proc.run([resolver.go, "mod", "download", "-json", f"{comp.module}@v{comp.version}"],
                       env={**os.environ, "GOFLAGS": "-mod=mod"}, timeout=600, cwd=cache_root())
    except CommandError as err:
        raise BinaryError(f"cannot fetch {comp.module} v{comp.version} from the Go module proxy: {err}") from err
    return Path(json.loads(res.stdout)["Dir"])


def _generated_inputs(kubernetes: str, entrypoint: Path) -> Path:
    """Files that depend on the versions, and kind's entrypoint made executable (the module cache is read-only),
    written under the cache and content-hashed like the rest."""
    out = cache_root() / "kind" / "inputs" / f"v{kubernetes}"
    for sub in ("kind", "containerd", "bin"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    _write_if_changed(out / "kind" / "version", f"v{kubernetes}")
    config = (FILES / "etc" / "containerd" / "config.toml").read_text().replace("@SANDBOX@", static.PAUSE_IMAGE)
    _write_if_changed(out / "containerd" / "config.toml", config)
    _write_if_changed(out / "bin" / "entrypoint", entrypoint.read_text(), mode=0o755)
    return out


def _write_if_changed(path: Path, text: str, mode: int = 0o644) -> None:
    if not path.is_file() or path.read_text() != text or (path.stat().st_mode & 0o777) != mode:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)


def plan(kubernetes: str | None = None, resolver: BinaryResolver | None = None) -> NodeImagePlan:
    """Resolve (build on first use) every binary the node image needs and describe the image."""
    resolver = resolver or BinaryResolver()
    version = kubernetes or resolver.versions.kubernetes_default
    k8s = resolver.resolve_many([*K8S_IMAGES, "kube-proxy", *NODE_BINARIES], kubernetes=version)
    other = resolver.resolve_many(["etcd", "coredns", *CONTAINERD_BINARIES])
    entrypoint = kind_module_dir(resolver) / "images" / "base" / "files" / "usr" / "local" / "bin" / "entrypoint"
    if not entrypoint.is_file():
        raise BinaryError(f"kind's node entrypoint is missing from the kind module ({entrypoint})")
    generated = _generated_inputs(version, entrypoint)
    files: list[tuple[str, Path]] = [
        ("/etc/systemd/system", FILES / "etc" / "systemd" / "system"),
        ("/etc/default/kubelet", FILES / "etc" / "default" / "kubelet"),
        ("/etc/sysctl.d", FILES / "etc" / "sysctl.d"),
        ("/etc/containerd/config.toml", generated / "containerd" / "config.toml"),
        ("/kind/version", generated / "kind" / "version"),
        ("/usr/local/bin/entrypoint", generated / "bin" / "entrypoint"),
        *((f"/usr/local/bin/{b}", other[b].path) for b in CONTAINERD_BINARIES),
        *((f"/usr/bin/{b}", k8s[b].path) for b in NODE_BINARIES),
    ]
    base = DebianImage(
        "kind-node-base", f"{REGISTRY_HOST}/kind-node-base:v{version}",
        f"kind node root for Kubernetes v{version}: systemd, containerd {other['containerd'].version}, kubeadm",
        packages=NODE_PACKAGES, files=tuple(files),
        config=ImageConfig(entrypoint=("/usr/local/bin/entrypoint", "/sbin/init"),
                           env=(oci.PATH_ENV, "container=docker")))
    etcd_tag, coredns_tag = f"v{other['etcd'].version}", f"v{other['coredns'].version}"
    preload: list[Image] = [
        *(static_binary_image(n, k8s[n].path, tag=f"v{version}", dest=f"/usr/local/bin/{n}") for n in K8S_IMAGES),
        DebianImage("kube-proxy", f"{REGISTRY_HOST}/kube-proxy:v{version}", "kube-proxy on the node's Debian root",
                    packages=NODE_PACKAGES, files=(("/usr/local/bin/kube-proxy", k8s["kube-proxy"].path),),
                    config=ImageConfig(entrypoint=("/usr/local/bin/kube-proxy",), env=(oci.PATH_ENV,))),
        static_binary_image("etcd", other["etcd"].path, tag=etcd_tag, dest="/usr/local/bin/etcd"),
        static_binary_image("coredns", other["coredns"].path, tag=coredns_tag, dest="/coredns"),
        registry.get("pause"),
        registry.get("busybox"),  # the image the tier R checks run (as on the local real node)
    ]
    key = cache.content_key("kind-node", FORMAT, version, base.key(), [(i.name, i.ref, i.key()) for i in preload])
    return NodeImagePlan(version, base, tuple(preload), etcd_tag, coredns_tag, key)


def build_node_image(engine: Engine, kubernetes: str | None = None, *, resolver: BinaryResolver | None = None,
                     progress: Callable[[str], None] | None = None) -> NodeImage:
    """The node image for ``kubernetes`` (default: the pinned default), built now unless the engine has it."""
    start = time.monotonic()
    steps = Steps("kind-node", progress) if progress is not None else Steps("kind-node")
    with steps.step("binaries", "resolve, building from the Go module proxy on first use"):
        p = plan(kubernetes, resolver)
    if engine.image_exists(p.ref):
        steps.say(f"cached: {p.ref}")
        return NodeImage(p.ref, p.kubernetes, p.etcd_tag, p.coredns_tag, True, time.monotonic() - start)
    with cache.locked(p.key):
        if not engine.image_exists(p.ref):  # another process may have built it while we waited
            _assemble(engine, p, steps)
        _prune_older(engine, p, steps)
    took = time.monotonic() - start
    steps.say(f"built {p.ref} in {took:.1f} s")
    return NodeImage(p.ref, p.kubernetes, p.etcd_tag, p.coredns_tag, False, took)


def _assemble(engine: Engine, p: NodeImagePlan, steps: Steps) -> None:
    base = registry.build(p.base, steps.progress)
    archives = [registry.build(img, steps.progress) for img in p.preload]
    with steps.step("load base", base.ref):
        engine.load_archive(base.archive)
    name = f"aiconform-node-build-{os.getpid()}"
    container = None
    try:
        with steps.step("containerd", "start it in a container of the base image"):
            container = engine.client.containers.run(
                base.ref, entrypoint=["/usr/local/bin/containerd"], command=[], name=name, detach=True,
                privileged=True, network_mode="none",
                volumes={str(cache.images_cache()): {"bind": IMAGES_MOUNT, "mode": "ro"}})
            _wait_containerd(container)
        for built in archives:
            with steps.step("import", built.ref):
                _exec(container, ["ctr", "--namespace", "k8s.io", "images", "import", "--no-unpack", "--local",
                                  f"{IMAGES_MOUNT}/{built.archive.name}"])
        with steps.step("services", "enable containerd and kubelet"):
            _exec(container, ["systemctl", "enable", "containerd", "kubelet"])
        with steps.step("commit", p.ref):
            container.stop(timeout=20)
            repo, tag = p.ref.rsplit(":", 1)
            container.commit(repository=repo, tag=tag, changes=[
                'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]', "CMD []", "ENV container=docker"],
                message=f"aiconform node image for Kubernetes v{p.kubernetes}")
    except docker.errors.DockerException as err:
        raise ImageBuildError("kind-node", "assemble", str(err)) from err
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.DockerException:
                pass


def _prune_older(engine: Engine, p: NodeImagePlan, steps: Steps) -> None:
    """Remove node images of the same Kubernetes version with other keys (stale inputs); one a container still
    uses is kept (the engine refuses)."""
    prefix = f"{NODE_REPO}:v{p.kubernetes}-"
    for ref in node_images(engine):
        if ref.startswith(prefix) and ref != p.ref:
            try:
                engine.client.images.remove(ref, noprune=False)
                steps.say(f"removed the older node image {ref}")
            except docker.errors.APIError:
                pass


def _wait_containerd(container: Container) -> None:
    """containerd's socket has no watch: ask ``ctr version`` until it answers, within a deadline, failing at once
    if the container exits."""

    def answers() -> bool:
        container.reload()
        if container.status not in ("created", "running"):
            tail = container.logs(tail=5).decode(errors="replace").strip().splitlines()[-1:]
            raise ClusterError(f"containerd exited in the build container: {tail[0] if tail else '(no log)'}")
        return bool(container.exec_run(["ctr", "version"]).exit_code == 0)

    try:
        proc.poll_until(answers, timeout=CONTAINERD_START_TIMEOUT, interval=0.1, backoff=1.5, max_interval=1.0,
                        what="containerd in the build container")
    except WaitTimeout:
        raise ClusterError("containerd did not answer in the build container within "
                           f"{CONTAINERD_START_TIMEOUT:.0f}s") from None


def _exec(container: Container, argv: list[str]) -> str:
    result = container.exec_run(argv)
    out = result.output.decode(errors="replace") if isinstance(result.output, bytes) else ""
    if result.exit_code != 0:
        last = out.strip().splitlines()[-1:] if out.strip() else []
        raise ClusterError(f"{' '.join(argv)} exited with status {result.exit_code}"
                           + (f": {last[0]}" if last else ""))
    return out


def node_images(engine: Engine) -> list[str]:
    """The node images the engine holds (``aiconform.local/kind-node:*``)."""
    return sorted(t for img in engine.client.images.list(name=NODE_REPO) for t in img.tags)
