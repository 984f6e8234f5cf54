"""Helpers shared by the unit tests of addons (no cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.addons.base import HostContext


def host_context(tmp_path: Path, **fields: Any) -> HostContext:
    """A tier S addon's host context under ``tmp_path``: a binary and a kubeconfig (their names as content), a cert
    dir with a serving pair (``tls.crt``/``tls.key`` holding their names), workdir ``wd``; ``fields`` set the rest
    (``webhook_port``, ``health_port``, ``time_compression``)."""
    (tmp_path / "certs").mkdir()
    for f in ("tls.crt", "tls.key"):
        (tmp_path / "certs" / f).write_text(f)
    (tmp_path / "bin").write_text("binary")
    (tmp_path / "kc").write_text("kubeconfig")
    return HostContext(binary=tmp_path / "bin", kubeconfig=tmp_path / "kc", workdir=tmp_path / "wd",
                       cert_dir=tmp_path / "certs", **fields)
