"""Regenerates the gRPC stubs in ``fake_gpu_plugin/api/`` from the ``.proto`` files in ``fake_gpu_plugin/proto/``.

Owns code generation only.  Run ``python -m fake_gpu_plugin.gen_stubs`` (needs the ``dev`` extra: grpcio-tools)
after editing a ``.proto``; the generated files are committed so the plugin runs without grpcio-tools.  grpcio-tools
writes ``import x_pb2`` in the ``_grpc`` modules; this script rewrites that to a package-relative import so the stubs
import as ``fake_gpu_plugin.api.x_pb2_grpc``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROTO_DIR = PACKAGE_DIR / "proto"
API_DIR = PACKAGE_DIR / "api"
PROTOS = ("deviceplugin.proto", "podresources.proto", "dra.proto", "pluginregistration.proto")

# Generated code follows protoc's style, not ours; the marker keeps linters (which also read .pyi files) off it.
_NOQA = "# ruff: noqa\n"
_ABSOLUTE_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def generate() -> list[Path]:
    """Run protoc for every proto and fix the imports; returns the files written."""
    try:
        from grpc_tools import protoc
    except ImportError:
        raise SystemExit("error: grpcio-tools is not installed (pip install 'aiconform[dev]')") from None
    import importlib.resources

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    for name in PROTOS:
        argv = [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={API_DIR}",
            f"--pyi_out={API_DIR}",
            f"--grpc_python_out={API_DIR}",
            str(PROTO_DIR / name),
        ]
        if protoc.main(argv) != 0:
            raise SystemExit(f"error: protoc failed for {name}")
    written = []
    for name in PROTOS:
        stem = name.removesuffix(".proto")
        grpc_module = API_DIR / f"{stem}_pb2_grpc.py"
        text = grpc_module.read_text()
        grpc_module.write_text(_ABSOLUTE_IMPORT.sub(r"from . import \1 as \2", text))
        written += [API_DIR / f"{stem}_pb2.py", API_DIR / f"{stem}_pb2.pyi", grpc_module]
    for path in written:
        text = path.read_text()
        if not text.startswith(_NOQA):
            path.write_text(_NOQA + text)
    return written


def main() -> int:
    for path in generate():
        print(path.relative_to(PACKAGE_DIR.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
