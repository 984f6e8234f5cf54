"""The addon registry, its manifests and the profile's ``addons`` field (no cluster; the install itself is exercised
against a real node in tests/integration/test_real_node.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from harness.addons import AddonContext, known_addons, lookup
from harness.config import Profile, parse_profile
from harness.contract import REAL_NODE_LABEL
from harness.errors import ConfigError

REAL = {"enabled": True, "name": "real-0", "gpu": {"model": "A100-SXM4-80GB", "count": 1}}


def test_network_policy_enforcer_is_pinned_to_real_nodes_and_never_pulled() -> None:
    addon = lookup("kube-router")
    ctx = AddonContext(image="aiconform.local/kube-router:v2.10.0", apiserver_host="10.1.2.3",
                       apiserver_port=6443, node_selector={REAL_NODE_LABEL: "true"})
    objs = {o["kind"]: o for o in addon.manifests(ctx)}
    spec = objs["DaemonSet"]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert spec["nodeSelector"] == {REAL_NODE_LABEL: "true"}
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
    """The profile keeps the names; the addon registry judges them before the provider starts anything."""
    from harness.addons import check_profile

    def as_local(profile: Profile) -> None:  # what the local provider asks before bring-up
        check_profile(profile, provider="local", real_nodes=profile.real_node.enabled, host_processes=True)

    profile = parse_profile({"realNode": REAL, "addons": ["kube-router", "kube-router"]})
    assert profile.addons == ("kube-router",)
    as_local(profile)
    with pytest.raises(ConfigError,
                       match=r"addons\[0\]: unknown addon 'calico'; known addons: jobset, karpenter, kube-router, kueue"):
        as_local(parse_profile({"realNode": REAL, "addons": ["calico"]}))
    with pytest.raises(ConfigError, match=r"addons\[0\]: kube-router runs on the real node"):
        as_local(parse_profile({"addons": ["kube-router"]}))
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


def _hook(name: str, path: str, service: str = "jobset-webhook-service") -> dict:
    return {"name": name, "clientConfig": {"service": {"name": service, "namespace": "jobset-system", "path": path}}}


def _webhook_manifests() -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "jobset-system"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "jobset-webhook-server-cert",
                                                            "namespace": "jobset-system"}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "v"}, "webhooks": [_hook("vjobset.kb.io", "/validate"), _hook("other", "/x", "else")]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": "m"}, "webhooks": [_hook("mjobset.kb.io", "/mutate")]},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "c"},
         "spec": {"conversion": {"strategy": "Webhook", "webhook": {"clientConfig": _hook("", "/convert")["clientConfig"]}}}},
    ]


def test_webhooks_get_the_ca_bundle_and_the_installer_owns_the_secret() -> None:
    import base64

    from harness.addons import wire_webhooks

    hooks = lookup("jobset").webhooks
    assert hooks is not None
    out = wire_webhooks(_webhook_manifests(), hooks, b"CA", url_base=None)
    by_kind = {o["kind"]: o for o in out}
    assert "Secret" not in by_kind  # the installer writes the serving Secret itself
    bundle = base64.b64encode(b"CA").decode()
    vwc = by_kind["ValidatingWebhookConfiguration"]["webhooks"]
    assert vwc[0]["clientConfig"]["caBundle"] == bundle and vwc[0]["clientConfig"]["service"]["path"] == "/validate"
    assert "caBundle" not in vwc[1]["clientConfig"]  # another component's Service is not ours to trust
    assert by_kind["MutatingWebhookConfiguration"]["webhooks"][0]["clientConfig"]["caBundle"] == bundle
    conv = by_kind["CustomResourceDefinition"]["spec"]["conversion"]["webhook"]["clientConfig"]
    assert conv["caBundle"] == bundle


def test_host_mode_points_webhooks_at_the_loopback_url() -> None:
    from harness.addons import wire_webhooks

    hooks = lookup("jobset").webhooks
    assert hooks is not None
    out = wire_webhooks(_webhook_manifests(), hooks, b"CA", url_base="https://127.0.0.1:40123")
    vwc = next(o for o in out if o["kind"] == "ValidatingWebhookConfiguration")
    assert vwc["webhooks"][0]["clientConfig"] == {"url": "https://127.0.0.1:40123/validate",
                                                  "caBundle": "Q0E="}
    crd = next(o for o in out if o["kind"] == "CustomResourceDefinition")
    assert crd["spec"]["conversion"]["webhook"]["clientConfig"]["url"] == "https://127.0.0.1:40123/convert"


def test_jobset_runs_upstream_manifests_with_the_harness_owning_certificates() -> None:
    import yaml

    addon = lookup("jobset")
    upstream = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "jobset-manager-config",
                                                               "namespace": "jobset-system"},
         "data": {"controller_manager_config.yaml": "internalCertManagement: {enable: true}\n"}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "jobset-controller-manager", "namespace": "jobset-system"},
         "spec": {"template": {"spec": {"securityContext": {"runAsNonRoot": True}, "containers": [
             {"name": "manager", "image": "controller:latest", "args": ["--config=/c.yaml"]}]}}}},
    ]
    seen = []
    ctx = AddonContext(image="aiconform.local/jobset:v0.12.0", apiserver_host="10.0.0.1", apiserver_port=6443,
                       node_selector={REAL_NODE_LABEL: "true"},
                       upstream=lambda path: seen.append(path) or [dict(o) for o in upstream])
    objs = {o["kind"]: o for o in addon.manifests(ctx)}
    assert seen == ["config/default"]  # upstream's kustomization, rendered from the pinned module
    cfg = yaml.safe_load(objs["ConfigMap"]["data"]["controller_manager_config.yaml"])
    assert cfg["internalCertManagement"]["enable"] is False
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["image"] == ctx.image and c["imagePullPolicy"] == "Never"
    assert pod["nodeSelector"] == {REAL_NODE_LABEL: "true"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert "--metrics-bind-address=0" in c["args"]
    image = addon.image(Path("/cache/jobset-controller"), "0.12.0")
    assert image.ref == "aiconform.local/jobset:v0.12.0"


def test_jobset_host_process_serves_webhooks_on_loopback_only(tmp_path: Path) -> None:
    import yaml

    from harness.addons import HostContext

    addon = lookup("jobset")
    assert addon.host is not None and not addon.needs_real_node
    h = HostContext(binary=Path("/cache/jobset-controller"), kubeconfig=tmp_path / "kc", workdir=tmp_path,
                    cert_dir=tmp_path / "certs", webhook_port=41000, health_port=41001)
    spec = addon.host(h)
    assert spec.argv[0] == "/cache/jobset-controller" and "--metrics-bind-address=0" in spec.argv
    cfg = yaml.safe_load(dict(spec.files)["config.yaml"])
    assert cfg["webhook"] == {"port": 41000, "host": "127.0.0.1", "certDir": str(tmp_path / "certs")}
    assert cfg["health"]["healthProbeBindAddress"] == "127.0.0.1:41001"
    assert cfg["internalCertManagement"]["enable"] is False and cfg["leaderElection"]["leaderElect"] is False
    assert dict(spec.env)["KUBECONFIG"] == str(tmp_path / "kc")


def test_profile_may_ask_for_jobset_at_tier_s() -> None:
    assert parse_profile({"addons": ["jobset"]}).addons == ("jobset",)


def test_upstream_manifests_are_read_with_the_sections_toolchain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The module cache read for an addon's upstream YAML runs go with the pinned section's environment
    (GOTOOLCHAIN for a module that needs a newer Go), like its build."""
    import json
    import subprocess

    from harness.addons import installer
    from harness.bins import BinaryResolver, Component, load_versions

    (tmp_path / "crd.yaml").write_text("kind: CustomResourceDefinition\n---\n")
    seen: list[dict[str, str]] = []

    def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        seen.append(dict(kw["env"]))  # type: ignore[call-overload]
        return subprocess.CompletedProcess(argv, 0, json.dumps({"Dir": str(tmp_path)}), "")

    monkeypatch.setattr(installer.proc, "run", run)
    versions = load_versions()
    versions.groups["newgo"] = Component(group="newgo", version="1.0.0", module="example.com/newgo",
                                         binaries=("newgo",), packages={"newgo": "example.com/newgo"},
                                         toolchain="go1.27.3")
    render = installer._upstream_renderer(BinaryResolver(versions, go="/usr/bin/go-test"), "newgo")
    assert render("crd.yaml") == [{"kind": "CustomResourceDefinition"}]
    assert seen[0]["GOTOOLCHAIN"] == "go1.27.3"


def test_an_apiservice_backed_by_the_addons_service_gets_the_ca_bundle() -> None:
    from harness.addons import Webhooks, wire_webhooks

    hooks = Webhooks(service="adapter", namespace="monitoring", secret="adapter-tls")
    mine = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.custom.metrics.k8s.io"},
            "spec": {"service": {"name": "adapter", "namespace": "monitoring"}, "insecureSkipTLSVerify": True}}
    other = copy.deepcopy(mine)
    other["spec"]["service"]["name"] = "someone-else"
    out = wire_webhooks([mine, other], hooks, b"CA", url_base=None)
    assert out[0]["spec"] == {"service": {"name": "adapter", "namespace": "monitoring"}, "caBundle": "Q0E="}
    assert out[1]["spec"]["insecureSkipTLSVerify"] is True and "caBundle" not in out[1]["spec"]
