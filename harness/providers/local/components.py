"""The local control plane's components as pure argv builders: settings in, argv lists (and config documents) out.

Every function here is pure: it reads a frozen :class:`Settings` and returns data, starts nothing and touches no
file, so each flag is unit-tested without a process.  cluster.py writes the files these name and starts the argv.
A new flag goes into the one function of its component; a new setting into :class:`Settings` (or the profile's
ControlPlane it carries).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import timescale
from harness.config import ControlPlane
from harness.flags import ComponentSettings
from harness.nodes import FAKE_NODE_IP, SIM_ANNOTATION
from harness.pki import Pki
from harness.providers.local import controlplane

KWOK_STAGES = Path(__file__).resolve().parents[2] / "kwok" / "stages.yaml"
APISERVER_SANS_DNS = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                      "kubernetes.default.svc.cluster.local")
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    def as_dict(self) -> dict[str, int]:
        """As state.json records them."""
        return {"etcd": self.etcd, "etcd-peer": self.etcd_peer, "apiserver": self.apiserver,
                "controller-manager": self.controller_manager, "scheduler": self.scheduler, "kwok": self.kwok}


@dataclass(frozen=True)
class Paths:
    """Where a cluster's files live, all under its run directory."""

    run_dir: Path

    @property
    def pki(self) -> Path:
        return self.run_dir / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.run_dir / "etcd"

    @property
    def kubeconfigs(self) -> Path:
        return self.run_dir / "kubeconfigs"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    def component_kubeconfig(self, component: str) -> Path:
        return self.kubeconfigs / f"{component}.yaml"

    @property
    def scheduler_config(self) -> Path:
        return self.kubeconfigs / "scheduler-config.yaml"


@dataclass(frozen=True)
class Settings:
    """Everything the component argv depends on."""

    paths: Paths
    ports: Ports
    control_plane: ControlPlane
    """The profile's controlPlane section (limits, CIDRs, and whatever later flags read from it)."""
    kubernetes_version: str
    bind_address: str = "127.0.0.1"
    """Where controller-manager and scheduler serve their health and metrics."""
    node_ip: str | None = None
    """The real node's own address when the cluster has one: kube-apiserver binds to it and advertises it (pods
    reach the API through the ``kubernetes`` Service); else it listens on loopback only (controlplane.py)."""
    components: ComponentSettings = ComponentSettings()
    """The profile's feature gates, runtime-config and extra flags per component, checked against the binaries
    (harness/flags.py)."""
    kwok_stages: Path = KWOK_STAGES

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.etcd}"

    @property
    def etcd_peer_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.etcd_peer}"

    @property
    def apiserver_host(self) -> str:
        return controlplane.apiserver_host(self.node_ip)

    @property
    def server(self) -> str:
        return f"https://{self.apiserver_host}:{self.ports.apiserver}"


def go_env(s: Settings, environ: Mapping[str, str]) -> dict[str, str] | None:
    """With limits lifted, Go components collect garbage half as often (GOGC=200, override with
    $AICONFORM_GOGC): on 2 cores, 5,000 pods bound at ~267/s instead of ~226/s for ~0.5 GB more resident memory
    (bench/bench_local.py; figures in docs/benchmarks.md).  None: inherit the environment unchanged."""
    if not s.control_plane.lift_limits:
        return None
    return {**environ, "GOGC": environ.get("AICONFORM_GOGC", "200")}


def etcd_argv(binary: Path, s: Settings) -> list[str]:
    return [
        str(binary),
        "--name=default",
        f"--data-dir={s.paths.etcd_data}",
        f"--listen-client-urls={s.etcd_url}",
        f"--advertise-client-urls={s.etcd_url}",
        f"--listen-peer-urls={s.etcd_peer_url}",
        f"--initial-advertise-peer-urls={s.etcd_peer_url}",
        f"--initial-cluster=default={s.etcd_peer_url}",
        "--listen-metrics-urls=",
        "--unsafe-no-fsync",  # an emulator's etcd: durability across power loss is not the point
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]


def apiserver_argv(binary: Path, s: Settings) -> list[str]:
    pki = s.paths.pki
    cp = s.control_plane
    argv = [
        str(binary),
        f"--etcd-servers={s.etcd_url}",
        *controlplane.apiserver_address_args(s.node_ip),
        f"--secure-port={s.ports.apiserver}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--service-cluster-ip-range={cp.service_cidr}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--cert-dir={pki / 'generated'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        "--profiling=false",
        "--event-ttl=1h",
        # SO_REUSEPORT: an upgrade starts the new apiserver on the same port before it stops the old one, so the
        # API keeps answering through the swap (a single local apiserver would otherwise be down while it restarts).
        "--permit-port-sharing=true",
        *controlplane.aggregation_args(Pki(pki)),
        *controlplane.feature_gate_args(s.components.gates("kube-apiserver")),
        *controlplane.runtime_config_args(s.components.runtime_config),
    ]
    if cp.lift_limits:
        argv += ["--max-requests-inflight=0", "--max-mutating-requests-inflight=0",
                 "--enable-priority-and-fairness=false"]
    return argv + controlplane.extra_args("kube-apiserver", argv, s.components.args("kube-apiserver"))


def apiserver_service_ip(s: Settings) -> str:
    """The first address of the service range: the ``kubernetes`` Service, a SAN of the serving certificate."""
    return controlplane.first_service_ip(s.control_plane.service_cidr)


def controller_manager_argv(binary: Path, s: Settings) -> list[str]:
    kc = s.paths.component_kubeconfig("controller-manager")
    pki = s.paths.pki
    argv = [
        str(binary),
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        f"--bind-address={s.bind_address}",
        f"--secure-port={s.ports.controller_manager}",
        "--leader-elect=false",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--use-service-account-credentials=true",
        f"--cert-dir={pki / 'generated-cm'}",
        "--profiling=false",
        *controlplane.feature_gate_args(s.components.gates("kube-controller-manager")),
    ]
    if s.control_plane.lift_limits:
        argv += ["--kube-api-qps=5000", "--kube-api-burst=10000"]
    return argv + controlplane.extra_args("kube-controller-manager", argv, s.components.args("kube-controller-manager"))


def scheduler_config(s: Settings) -> dict[str, Any]:
    """The KubeSchedulerConfiguration written to ``s.paths.scheduler_config``."""
    lift = s.control_plane.lift_limits
    config: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(s.paths.component_kubeconfig("scheduler")),
                             "qps": 5000 if lift else 50, "burst": 10000 if lift else 100},
        "leaderElection": {"leaderElect": False},
    }
    if s.control_plane.time_compression is not None:  # a cluster that plays time compressed (aiconform simulate)
        timers = timescale.scheduler_timers(s.control_plane.time_compression)
        for key in ("podInitialBackoffSeconds", "podMaxBackoffSeconds"):
            config[key] = int(timers[key].value_s)
    disabled = s.control_plane.scheduler_disabled_plugins
    if disabled:  # the profile turns plugins off (controlPlane.schedulerDisabledPlugins): the default profile only
        config["profiles"] = [{"schedulerName": "default-scheduler", "plugins": {
            point: {"disabled": [{"name": n} for n in names]} for point, names in sorted(disabled.items())}}]
    return config


def scheduler_argv(binary: Path, s: Settings) -> list[str]:
    kc = s.paths.component_kubeconfig("scheduler")
    argv = [
        str(binary),
        f"--config={s.paths.scheduler_config}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        f"--bind-address={s.bind_address}",
        f"--secure-port={s.ports.scheduler}",
        f"--cert-dir={s.paths.pki / 'generated-sched'}",
        "--profiling=false",
        *controlplane.feature_gate_args(s.components.gates("kube-scheduler")),
    ]
    if s.control_plane.time_compression is not None:
        unschedulable = timescale.scheduler_timers(s.control_plane.time_compression)[
            "--pod-max-in-unschedulable-pods-duration"]
        argv.append(f"{unschedulable.setting}={timescale.duration(unschedulable.value_s)}")
    return argv + controlplane.extra_args("kube-scheduler", argv, s.components.args("kube-scheduler"))


def kwok_pod_cidr(pod_cidr: str) -> str:
    """The CIDR KWOK hands fake pod IPs from: the pod range starting one past its network address."""
    net = ipaddress.IPv4Network(pod_cidr, strict=False)
    return f"{net.network_address + 1}/{net.prefixlen}"


def kwok_argv(binary: Path, s: Settings) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={s.paths.component_kubeconfig('kwok')}",
        f"--config={s.kwok_stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={SIM_ANNOTATION[0]}={SIM_ANNOTATION[1]}",
        f"--cidr={kwok_pod_cidr(s.control_plane.pod_cidr)}",
        f"--node-ip={FAKE_NODE_IP}",
        "--node-lease-duration-seconds=40",
        f"--server-address=127.0.0.1:{s.ports.kwok}",
    ]
