"""Profile feature gates and component flags: parsing, the ``--help`` reader, the pure argv pieces, and that the
harness's own flags (which ``extraArgs`` may not override) match the argv cluster.py really builds.  No binaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.bins import pinned_kubernetes
from harness.config import parse_profile
from harness.errors import ConfigError
from harness.flags import ComponentSettings, _complaint, parse_help
from harness.pki import Pki
from harness.providers.local import components as comp
from harness.providers.local import controlplane

K8S = pinned_kubernetes("default")  # the Kubernetes version harness/versions.toml pins

HELP = """\
Usage:
  kube-apiserver [flags]

      --advertise-address ip                               The IP address on which to advertise the apiserver.
      --feature-gates colonSeparatedMultimapStringString   Comma-separated list of component:key=value pairs. Options are:
                                                           kube:AllAlpha=true|false (ALPHA - default=false)
                                                           kube:GenericWorkload=true|false (BETA - default=false)
                                                           wardle:Other=true|false (ALPHA - default=false)
  -h, --help                                               help for kube-apiserver
      --event-ttl duration                                 Amount of time to retain events. (default 1h0m0s)
"""

KUBELET_HELP = """\
      --feature-gates mapStringBool                              A set of key=value pairs. Options are:
                DynamicResourceAllocation=true|false (BETA - default=true)
      --max-open-files int                                       Number of files that can be opened.
"""


def test_parse_help_reads_flags_and_kube_gates() -> None:
    opts = parse_help(HELP)
    assert opts.flags == {"advertise-address", "feature-gates", "help", "event-ttl"}
    assert opts.gates == {"GenericWorkload": "BETA - default=false"}  # AllAlpha and other components' gates skipped
    kubelet = parse_help(KUBELET_HELP)
    assert kubelet.gates == {"DynamicResourceAllocation": "BETA - default=true"}
    assert "max-open-files" in kubelet.flags


def test_complaint_is_the_binarys_own_words() -> None:
    assert _complaint('E1127 06:43 run.go:72] "command failed" err="unrecognized feature gate: Bogus"') == \
        "unrecognized feature gate: Bogus"
    assert _complaint("Error: unknown flag: --nope\nUsage: ...") == "unknown flag: --nope"


def test_profile_carries_gates_runtime_config_and_extra_args() -> None:
    p = parse_profile({
        "controlPlane": {
            "featureGates": {"GenericWorkload": True},
            "runtimeConfig": {"scheduling.k8s.io/v1beta1": True},
            "extraArgs": {"kube-controller-manager": {"horizontal-pod-autoscaler-sync-period": "5s", "v": 2}},
        },
        "realNode": {"enabled": True, "extraArgs": {"max-open-files": 4096, "serialize-image-pulls": False}},
    })
    cp = p.control_plane
    assert cp.feature_gates == {"GenericWorkload": True}
    assert cp.runtime_config == {"scheduling.k8s.io/v1beta1": "true"}
    assert cp.extra_args == {"kube-controller-manager": {"horizontal-pod-autoscaler-sync-period": "5s", "v": "2"}}
    assert p.real_node.extra_args == {"max-open-files": "4096", "serialize-image-pulls": "false"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"controlPlane": {"featureGates": {"GenericWorkload": "yes"}}},
         "controlPlane.featureGates.GenericWorkload: must be true or false, got 'yes'"),
        ({"controlPlane": {"featureGates": {"generic-workload": True}}},
         "controlPlane.featureGates.generic-workload: not a feature gate name"),
        ({"controlPlane": {"extraArgs": {"kube-proxy": {"v": 2}}}},
         "controlPlane.extraArgs.kube-proxy: unknown component"),
        ({"controlPlane": {"extraArgs": {"kube-apiserver": {"--v": 2}}}},
         "controlPlane.extraArgs.kube-apiserver.--v: not a flag name (write it without dashes"),
        ({"controlPlane": {"runtimeConfig": {"not a group": True}}},
         "controlPlane.runtimeConfig.not a group: not an API group/version"),
        ({"realNode": {"extraArgs": {"max-pods": [1]}}}, "realNode.extraArgs.max-pods: must be a string"),
    ],
)
def test_bad_gate_and_flag_fields_name_themselves(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        parse_profile(data)
    assert message in str(err.value)


def test_service_ip_and_serving_addresses() -> None:
    assert controlplane.first_service_ip("10.96.0.0/16") == "10.96.0.1"
    assert controlplane.first_service_ip("172.20.0.0/24") == "172.20.0.1"
    assert controlplane.apiserver_serving_ips("10.96.0.0/16", None) == ("127.0.0.1", "10.96.0.1")
    assert controlplane.apiserver_serving_ips("10.100.0.0/16", "172.31.255.1") == \
        ("127.0.0.1", "10.100.0.1", "172.31.255.1")
    with pytest.raises(ConfigError, match="controlPlane.serviceCIDR"):
        controlplane.first_service_ip("10.96.0.0/33")


def test_tier_s_listens_on_loopback_only_and_tier_r_on_the_node_address() -> None:
    assert controlplane.apiserver_address_args(None) == [
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"]
    assert controlplane.apiserver_address_args("172.31.255.1") == [
        "--bind-address=172.31.255.1", "--advertise-address=172.31.255.1", "--endpoint-reconciler-type=lease"]
    assert not any("0.0.0.0" in a for a in controlplane.apiserver_address_args("172.31.255.1"))


def test_extra_args_refuse_the_harness_flags() -> None:
    argv = ["kube-apiserver", "--etcd-servers=http://127.0.0.1:1", "--v"]
    assert controlplane.extra_args("kube-apiserver", argv, {"audit-log-maxage": "3"}) == ["--audit-log-maxage=3"]
    with pytest.raises(ConfigError, match="--etcd-servers is set by the harness"):
        controlplane.extra_args("kube-apiserver", argv, {"etcd-servers": "http://x"})
    with pytest.raises(ConfigError, match="--secure-port is set by the harness"):  # reserved even if not in argv
        controlplane.extra_args("kube-apiserver", argv, {"secure-port": "1"})
    assert controlplane.feature_gate_args({"B": False, "A": True}) == ["--feature-gates=A=true,B=false"]
    assert controlplane.feature_gate_args({}) == []
    assert controlplane.runtime_config_args({"scheduling.k8s.io/v1beta1": "true"}) == \
        ["--runtime-config=scheduling.k8s.io/v1beta1=true"]


def test_aggregation_args_point_at_the_front_proxy_pki(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.create_ca()
    pair = pki.create_front_proxy()
    args = dict(a[2:].split("=", 1) for a in controlplane.aggregation_args(pki))
    assert Path(args["proxy-client-cert-file"]) == pair.cert and Path(args["proxy-client-key-file"]) == pair.key
    assert Path(args["requestheader-client-ca-file"]) == pki.front_proxy_ca.cert
    assert args["requestheader-allowed-names"] == "front-proxy-client"
    assert args["enable-aggregator-routing"] == "true"
    from cryptography import x509

    client = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    front_ca = x509.load_pem_x509_certificate(pki.front_proxy_ca.cert.read_bytes())
    cluster_ca = x509.load_pem_x509_certificate(pki.ca.cert.read_bytes())
    assert client.issuer == front_ca.subject != cluster_ca.subject  # a CA of its own, not the cluster CA
    client.verify_directly_issued_by(front_ca)


@pytest.mark.parametrize("node_ip", [None, "172.31.255.1"])
def test_harness_flags_cover_every_flag_cluster_builds(node_ip: str | None) -> None:
    """HARNESS_FLAGS (what extraArgs may not touch) is exactly checked against the argv the components build."""
    gates = {"GenericWorkload": True}
    settings = comp.Settings(
        paths=comp.Paths(Path("/run/flags")),
        ports=comp.Ports(etcd=1, etcd_peer=5, apiserver=2, controller_manager=3, scheduler=4, kwok=6),
        control_plane=parse_profile({}).control_plane, kubernetes_version=K8S, node_ip=node_ip,
        components=ComponentSettings(feature_gates={c: gates for c in controlplane.HARNESS_FLAGS},
                                     runtime_config={"scheduling.k8s.io/v1beta1": "true"}))
    seen = {"kube-apiserver": comp.apiserver_argv(Path("kube-apiserver"), settings),
            "kube-controller-manager": comp.controller_manager_argv(Path("kube-controller-manager"), settings),
            "kube-scheduler": comp.scheduler_argv(Path("kube-scheduler"), settings)}
    for name, argv in seen.items():
        missing = controlplane.flag_names(argv) - controlplane.HARNESS_FLAGS[name]
        assert not missing, f"{name} sets flags extraArgs could override: {sorted(missing)}"
    assert "--enable-aggregator-routing=true" in seen["kube-apiserver"]
    assert "--runtime-config=scheduling.k8s.io/v1beta1=true" in seen["kube-apiserver"]
    assert all("--feature-gates=GenericWorkload=true" in argv for argv in seen.values())


def test_an_api_version_the_kubernetes_version_does_not_serve_is_refused_up_front() -> None:
    """The gang profiles' scheduling.k8s.io/v1beta1 on the previous pinned minor (v1.36 serves v1alpha2): one line
    before anything starts, not an apiserver that never becomes ready (it waited 60 s, then failed)."""
    from harness.config import load_profile
    from harness.flags import component_settings

    previous = pinned_kubernetes("previous")
    with pytest.raises(ConfigError, match=rf"^controlPlane.runtimeConfig.scheduling.k8s.io/v1beta1: Kubernetes "
                                          rf"v{previous} does not serve scheduling.k8s.io/v1beta1 \(first served in "
                                          r"v1.37\); aiconform's native gang scheduling needs it"):
        component_settings(load_profile("conformance-s"), {}, previous, {})
    off = parse_profile({"controlPlane": {"runtimeConfig": {"scheduling.k8s.io/v1beta1": "false"}}}, name="off")
    assert component_settings(off, {}, previous, {}).runtime_config == {"scheduling.k8s.io/v1beta1": "false"}
