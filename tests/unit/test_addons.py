"""The addon registry, its manifests and the profile's ``addons`` field (no cluster; the install itself is exercised
against a real node in tests/integration/test_real_node.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.addons import AddonContext, known_addons, lookup
from harness.config import parse_profile
from harness.errors import ConfigError

REAL = {"enabled": True, "name": "real-0", "gpu": {"model": "A100-SXM4-80GB", "count": 1}}


def test_network_policy_enforcer_is_pinned_to_real_nodes_and_never_pulled() -> None:
    addon = lookup("kube-router")
    ctx = AddonContext(image="aiconform.local/kube-router:v2.10.0", apiserver_host="10.1.2.3",
                       apiserver_port=6443, node_selector={"aiconform.io/real-node": "true"})
    objs = {o["kind"]: o for o in addon.manifests(ctx)}
    spec = objs["DaemonSet"]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert spec["nodeSelector"] == {"aiconform.io/real-node": "true"}
    assert spec["hostNetwork"] is True
    assert container["image"] == ctx.image and container["imagePullPolicy"] == "Never"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBERNETES_SERVICE_HOST"] == "10.1.2.3" and env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert "privileged" not in container["securityContext"]  # this VM refuses privileged containers
    binding = objs["ClusterRoleBinding"]
    assert binding["subjects"][0]["name"] == objs["ServiceAccount"]["metadata"]["name"]
    assert "--run-firewall=true" in container["args"] and "--run-router=false" in container["args"]
    assert "--health-port=0" in container["args"]  # its listeners would otherwise bind every interface
    assert "networkpolicy" in addon.facts
    assert addon.host_undo(Path("/cache/kube-router")) == (("/cache/kube-router", "--cleanup-config"),)
    image = addon.image(Path("/cache/kube-router"), "2.10.0")
    assert image.ref == "aiconform.local/kube-router:v2.10.0" and {"iptables", "ipset"} <= set(image.packages)


def test_profile_addons_are_validated() -> None:
    profile = parse_profile({"realNode": REAL, "addons": ["kube-router"]})
    assert profile.addons == ("kube-router",)
    with pytest.raises(ConfigError, match=r"addons\[0\]: unknown addon 'calico'; known addons: kube-router"):
        parse_profile({"realNode": REAL, "addons": ["calico"]})
    with pytest.raises(ConfigError, match=r"addons\[0\]: kube-router runs on the real node"):
        parse_profile({"addons": ["kube-router"]})
    with pytest.raises(ConfigError, match="addons: must be a list"):
        parse_profile({"realNode": REAL, "addons": "kube-router"})


def test_every_addon_binary_is_pinned() -> None:
    from harness.bins import load_versions

    versions = load_versions()
    for addon in known_addons().values():
        assert not addon.binary or versions.owner_of(addon.binary)


def test_a_missing_host_tool_is_one_line_naming_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness.addons import preflight
    from harness.errors import ClusterError

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(ClusterError, match=r"addon kube-router needs host packages .*: apt-get install ipset iptables"):
        preflight([lookup("kube-router")])
