"""The local control plane's argv builders: pure functions of the settings, checked without a process."""

from __future__ import annotations

from pathlib import Path

from harness.bins import pinned_kubernetes
from harness.config import ControlPlane
from harness.providers.local import components as comp

K8S = pinned_kubernetes("default")  # the Kubernetes version harness/versions.toml pins

BIN = Path("/bins/x")


def settings(lift: bool = True, **kw: str) -> comp.Settings:
    return comp.Settings(
        paths=comp.Paths(Path("/run/c1")),
        ports=comp.Ports(etcd=2379, etcd_peer=2380, apiserver=6443, controller_manager=10257, scheduler=10259,
                         kwok=10247),
        control_plane=ControlPlane(lift_limits=lift),
        kubernetes_version=K8S,
        **kw,  # type: ignore[arg-type]
    )


def flags(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv[1:] if "=" in a)


def test_every_component_is_an_argv_list_of_strings_starting_with_its_binary() -> None:
    s = settings()
    for build in (comp.etcd_argv, comp.apiserver_argv, comp.controller_manager_argv, comp.scheduler_argv,
                  comp.kwok_argv):
        argv = build(BIN, s)
        assert argv[0] == str(BIN)
        assert all(isinstance(a, str) and a.startswith("--") for a in argv[1:])
        assert len({a.split("=", 1)[0] for a in argv}) == len(argv), f"{build.__name__} repeats a flag"


def test_apiserver_talks_to_etcd_and_serves_tls_with_node_and_rbac() -> None:
    f = flags(comp.apiserver_argv(BIN, settings()))
    assert f["etcd-servers"] == "http://127.0.0.1:2379"
    assert f["secure-port"] == "6443"
    assert f["bind-address"] == "127.0.0.1" and f["advertise-address"] == "127.0.0.1"
    assert f["endpoint-reconciler-type"] == "none"  # the apiserver refuses a loopback endpoint
    assert f["tls-cert-file"] == "/run/c1/pki/apiserver.crt"
    assert f["client-ca-file"] == "/run/c1/pki/ca.crt"
    assert f["authorization-mode"] == "Node,RBAC"
    assert f["enable-admission-plugins"] == "NodeRestriction"
    assert f["service-cluster-ip-range"] == "10.96.0.0/16"


def test_apiserver_binds_to_the_real_nodes_address_when_there_is_one() -> None:
    f = flags(comp.apiserver_argv(BIN, settings(node_ip="172.31.255.1")))
    assert f["bind-address"] == "172.31.255.1" and f["advertise-address"] == "172.31.255.1"
    assert f["endpoint-reconciler-type"] == "lease"  # keeps the kubernetes Service's endpoint real
    assert settings(node_ip="172.31.255.1").server == "https://172.31.255.1:6443"


def test_lifted_limits_reach_the_apiserver_controller_manager_and_scheduler() -> None:
    lifted, kept = settings(lift=True), settings(lift=False)
    assert flags(comp.apiserver_argv(BIN, lifted))["max-requests-inflight"] == "0"
    assert "max-requests-inflight" not in flags(comp.apiserver_argv(BIN, kept))
    assert flags(comp.controller_manager_argv(BIN, lifted))["kube-api-qps"] == "5000"
    assert "kube-api-qps" not in flags(comp.controller_manager_argv(BIN, kept))
    assert comp.scheduler_config(lifted)["clientConnection"]["qps"] == 5000
    assert comp.scheduler_config(kept)["clientConnection"]["qps"] == 50
    assert comp.go_env(lifted, {"PATH": "/bin"}) == {"PATH": "/bin", "GOGC": "200"}
    assert comp.go_env(lifted, {"AICONFORM_GOGC": "400"})["GOGC"] == "400"  # type: ignore[index]
    assert comp.go_env(kept, {"PATH": "/bin"}) is None


def test_etcd_keeps_its_data_in_the_run_dir_and_listens_on_loopback() -> None:
    f = flags(comp.etcd_argv(BIN, settings()))
    assert f["data-dir"] == "/run/c1/etcd"
    assert f["listen-client-urls"] == "http://127.0.0.1:2379"
    assert f["initial-cluster"] == "default=http://127.0.0.1:2380"


def test_components_use_their_own_identities() -> None:
    s = settings()
    assert flags(comp.controller_manager_argv(BIN, s))["kubeconfig"] == "/run/c1/kubeconfigs/controller-manager.yaml"
    assert flags(comp.scheduler_argv(BIN, s))["config"] == "/run/c1/kubeconfigs/scheduler-config.yaml"
    assert comp.scheduler_config(s)["clientConnection"]["kubeconfig"] == "/run/c1/kubeconfigs/scheduler.yaml"
    assert flags(comp.kwok_argv(BIN, s))["kubeconfig"] == "/run/c1/kubeconfigs/kwok.yaml"


def test_kwok_manages_only_annotated_nodes_and_hands_out_fake_pod_ips() -> None:
    f = flags(comp.kwok_argv(BIN, settings()))
    assert f["manage-all-nodes"] == "false"
    assert f["manage-nodes-with-annotation-selector"] == "kwok.x-k8s.io/node=fake"
    assert f["cidr"] == "10.128.0.1/12"
    assert f["node-ip"] == "127.0.0.10"  # loopback: whatever dials a simulated node stays on this machine
    assert comp.kwok_pod_cidr("10.244.0.0/16") == "10.244.0.1/16"


def test_the_kubernetes_service_address_is_the_first_of_the_service_range() -> None:
    assert comp.apiserver_service_ip(settings()) == "10.96.0.1"
