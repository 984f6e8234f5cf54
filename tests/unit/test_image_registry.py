"""Images from a registry the user names, and where real-node pods go, on a cluster aiconform did not build."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.contract import REAL_NODE_LABEL
from harness.errors import ConfigError
from harness.images.push import (
    IMAGE_REGISTRY_ENV,
    Registry,
    archive_manifest,
    docker_credentials,
    image_registry,
    parse_challenge,
    parse_registry,
)
from harness.workloads import NODE_SELECTOR_ENV, parse_node_selector, pin_to_real_node, real_node_selector


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:5000/aiconform", Registry("127.0.0.1:5000", "aiconform", True)),
    ("localhost:5000", Registry("localhost:5000", "", True)),
    ("[::1]:5000/a/b", Registry("[::1]:5000", "a/b", True)),
    ("registry.example.com/team/", Registry("registry.example.com", "team", False)),
    ("http://10.0.0.5:5000/x", Registry("10.0.0.5:5000", "x", True)),
    ("https://127.0.0.1:5443", Registry("127.0.0.1:5443", "", False)),
])
def test_a_registry_is_host_path_and_plain_http_only_for_loopback_or_http(text: str, want: Registry) -> None:
    assert parse_registry(text) == want


@pytest.mark.parametrize(("text", "says"), [
    ("ftp://host/x", "http:// or https://"), ("", "HOST[:PORT][/PATH]"), ("host:port:5/x", "HOST[:PORT][/PATH]"),
    ("host/Team", "not a repository name"),
])
def test_a_bad_registry_is_one_line_naming_the_part(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_registry(text)


def test_image_names_move_into_the_registry_with_their_tags() -> None:
    reg = parse_registry("127.0.0.1:5000/ac")
    assert reg.ref("aiconform.local/model-server:v1") == "127.0.0.1:5000/ac/model-server:v1"
    assert reg.repository("aiconform.local/model-server:v1") == ("ac/model-server", "v1")
    assert parse_registry("r.example").repository("aiconform.local/busybox") == ("busybox", "latest")


def test_the_run_registry_renames_every_image_and_unset_keeps_the_imported_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import images

    monkeypatch.delenv(IMAGE_REGISTRY_ENV, raising=False)
    assert image_registry() is None and images.image_ref("busybox") == "aiconform.local/busybox:latest"
    monkeypatch.setenv(IMAGE_REGISTRY_ENV, "127.0.0.1:5000/ac")
    assert images.image_ref("busybox") == "127.0.0.1:5000/ac/busybox:latest"
    assert images.run_ref("aiconform.local/pause:3.10") == "127.0.0.1:5000/ac/pause:3.10"


def test_credentials_come_from_the_docker_config_file(tmp_path: Path) -> None:
    auth = base64.b64encode(b"robot:s3cret:with:colons").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"https://r.example": {"auth": auth}}}))
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert docker_credentials("r.example", env) == ("robot", "s3cret:with:colons")
    assert docker_credentials("other.example", env) is None
    assert docker_credentials("r.example", {"DOCKER_CONFIG": str(tmp_path / "none")}) is None


def test_a_bearer_challenge_is_read_into_its_parameters() -> None:
    scheme, params = parse_challenge('Bearer realm="https://auth.example/token",service="r.example",scope="x"')
    assert scheme == "bearer" and params == {"realm": "https://auth.example/token", "service": "r.example", "scope": "x"}
    assert parse_challenge('Basic realm="Registry"') == ("basic", {"realm": "Registry"})


def test_the_manifest_and_its_blobs_are_read_from_a_built_archive(tmp_path: Path) -> None:
    from harness.images.oci import ImageConfig, LayerFile, layer_from_entries, write_archive

    layer = layer_from_entries(tmp_path / "l.tar.gz", [LayerFile("hello.txt", b"hi\n")])
    out = tmp_path / "img.tar"
    digest = write_archive(out, "aiconform.local/t:1", [layer], ImageConfig(cmd=("/hello",)), "test")
    raw, blobs = archive_manifest(out)
    import hashlib

    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    assert [b.digest for b in blobs][1:] == [layer.digest] and blobs[0].media_type.endswith("config.v1+json")


def test_real_node_pods_follow_the_runs_node_selector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NODE_SELECTOR_ENV, raising=False)
    assert real_node_selector() == {REAL_NODE_LABEL: "true"}
    monkeypatch.setenv(NODE_SELECTOR_ENV, "nvidia.com/gpu.present=true,pool=a100")
    pod = pin_to_real_node({"kind": "Pod", "spec": {"nodeSelector": {"zone": "a"}}})
    assert pod["spec"]["nodeSelector"] == {"zone": "a", "nvidia.com/gpu.present": "true", "pool": "a100"}
    monkeypatch.setenv(NODE_SELECTOR_ENV, "")  # a cluster with no simulated node: nothing to keep pods off
    assert real_node_selector() == {}
    assert parse_node_selector("none") == {}
    with pytest.raises(ValueError, match="'pool' is not key=value"):
        parse_node_selector("a=b,pool")


@pytest.mark.parametrize(("argv", "says"), [
    (["run", "--image-registry", "127.0.0.1:5000/x"], "are for an existing cluster (with --kubeconfig)"),
    (["run", "--kubeconfig", "/nonexistent/kc", "--image-registry", "ftp://x"], "http:// or https://"),
    (["run", "--kubeconfig", "/nonexistent/kc", "--node-selector", "pool"], "--node-selector: 'pool' is not key=value"),
    (["images", "push", "--registry", "r.example", "no-such-image"], "unknown image 'no-such-image'"),
])
def test_bad_placement_options_are_one_line_before_anything_runs(argv: list[str], says: str) -> None:
    res = subprocess.run([sys.executable, "-m", "harness.cli", *argv], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and says in res.stderr, res.stderr
