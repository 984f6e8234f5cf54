"""Kubeconfig loading: what is supported works, what is not says so in one line."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from harness.errors import KubeConfigError
from harness.kube import KubeConfig


def _doc(user: dict[str, object]) -> dict[str, object]:
    return {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443",
                                               "certificate-authority-data": base64.b64encode(b"CA").decode()}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }


def test_token_user(tmp_path: Path) -> None:
    f = tmp_path / "kc"
    f.write_text(yaml.safe_dump(_doc({"token": "abc"})))
    kc = KubeConfig.from_file(f)
    assert kc.server == "https://127.0.0.1:6443" and kc.token == "abc" and kc.ca_data == b"CA"


def test_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="does not exist"):
        KubeConfig.from_file(tmp_path / "nope")


def test_unknown_context(tmp_path: Path) -> None:
    f = tmp_path / "kc"
    f.write_text(yaml.safe_dump(_doc({"token": "x"})))
    with pytest.raises(KubeConfigError, match="no context named 'other'"):
        KubeConfig.from_file(f, context="other")


def test_not_yaml(tmp_path: Path) -> None:
    f = tmp_path / "kc"
    f.write_text("{{{")
    with pytest.raises(KubeConfigError, match="not valid YAML"):
        KubeConfig.from_file(f)
