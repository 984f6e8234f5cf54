"""The ``local`` provider (the embedded default): a real control plane as local processes, simulated GPU node pools.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as processes bound to 127.0.0.1 with TLS and
client-certificate auth (authorization Node,RBAC); KWOK plays the kubelets of the simulated nodes (tier S).  Every
scheduling, admission and quota verdict comes from those real components.

Owns one run directory per cluster (``$AICONFORM_STATE_DIR/<name>`` or ``~/.local/state/aiconform/<name>``) with
pidfiles, logs, PKI and kubeconfigs; ``delete`` stops every process recorded there and removes it.  Must not touch
anything outside its run directory (the real node, when enabled, owns its own host state; see realnode.py).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from harness import proc
from harness.bins import CONTROL_PLANE, BinaryResolver
from harness.config import Pool, Profile
from harness.errors import (
    ClusterError,
    ClusterExists,
    ClusterNotFound,
    CommandError,
    ConfigError,
    KubeError,
    PortInUse,
)
from harness.flags import ComponentSettings, component_settings
from harness.kube import KubeClient, KubeConfig
from harness.pki import Pki
from harness.providers.base import ProviderInfo
from harness.providers.local import controlplane
from harness.providers.local.nodes import FAKE_NODE_IP, SIM_ANNOTATION, register_nodes, simulated_node

Progress = Callable[[str], None]

STOP_ORDER = ["realnode-plugin", "kubelet", "containerd", "kwok", "kube-scheduler", "kube-controller-manager",
              "kube-apiserver", "etcd"]
KWOK_STAGES = Path(__file__).resolve().parents[2] / "kwok" / "stages.yaml"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def state_root() -> Path:
    env = os.environ.get("AICONFORM_STATE_DIR")
    return Path(env) if env else Path.home() / ".local" / "state" / "aiconform"


def validate_cluster_name(name: str) -> str:
    import re

    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", name):
        raise ConfigError(f"--name: must be a DNS-1123 label of at most 40 characters, got {name!r}")
    return name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {port} ({what}) is already in use by another process") from None
            raise


def profile_fingerprint(profile: Profile) -> str:
    data = asdict(profile)
    data.pop("source", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- the provider ---------------------------------------------------------------------------------------------------


class LocalCluster:
    """A cluster of local processes named ``name``."""

    def __init__(
        self,
        name: str = "aiconform",
        *,
        root: Path | None = None,
        resolver: BinaryResolver | None = None,
        progress: Progress = _stderr,
    ) -> None:
        self.name = validate_cluster_name(name)
        self.root = root or state_root()
        self.dir = self.root / self.name
        self._resolver = resolver
        self.progress = progress
        self.pki = Pki(self.dir / "pki")
        self.settings = ComponentSettings()
        """The profile's feature gates and extra flags per component (harness/flags.py), set by create."""
        self.node_ip: str | None = None
        """The real node's address when the cluster has one: kube-apiserver binds to it and advertises it."""

    # -- paths --
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def pidfile(self, component: str) -> Path:
        return self.dir / "pids" / f"{component}.pid"

    def logfile(self, component: str) -> Path:
        return self.dir / "logs" / f"{component}.log"

    def state(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        except (OSError, ValueError):
            return None

    # -- status --
    def running_components(self) -> dict[str, int]:
        out = {}
        piddir = self.dir / "pids"
        if piddir.is_dir():
            for pf in sorted(piddir.glob("*.pid")):
                rec = proc.read_pidfile(pf)
                if rec and proc.pid_alive(rec[0]):
                    out[pf.stem] = rec[0]
        return out

    def is_up(self) -> bool:
        st = self.state()
        if st is None:
            return False
        running = self.running_components()
        if any(c not in running for c in st.get("components", [])):
            return False
        try:
            return KubeClient.from_kubeconfig(self.kubeconfig(), None).healthz()
        except KubeError:
            return False

    def info(self) -> ProviderInfo:
        st = self.state()
        if st is None:
            raise ClusterNotFound(f"no local cluster named {self.name!r} is running")
        tier = st.get("tier", "S")
        caps = {"add-nodes", "simulated-nodes", *st.get("facts", [])}
        if tier == "R":
            caps |= {"real-node", "restart-node", "device-plugin"}
        return ProviderInfo(
            provider="local",
            name=self.name,
            tier=tier,
            kubernetes_version=st.get("kubernetes_version", ""),
            capabilities=frozenset(caps),
            profile=st.get("profile", ""),
            kubeconfig=str(self.kubeconfig()),
            fake="GPUs; simulated nodes are played by KWOK" + ("; the real node's GPUs by fake_gpu_plugin" if tier == "R" else ""),
        )

    def client(self) -> KubeClient:
        return KubeClient(KubeConfig.from_file(self.kubeconfig()))

    def load_image(self, archive: Path) -> None:
        """LoadsImages: import an image archive into the real node's containerd (UnsupportedCapability without one)."""
        from harness.providers.local.realnode import RealNodeHost

        RealNodeHost.attach(self, progress=self.progress).import_image(archive)

    def restart_node(self, node: str) -> None:
        """RestartsNodes: restart the real node's kubelet (simulated nodes have none: UnsupportedCapability)."""
        from harness.providers.local.realnode import restart_node

        restart_node(self, node)

    # -- create -------------------------------------------------------------------------------------------------------

    def create(self, profile: Profile) -> Path:
        """Bring the cluster up.  Same name and profile while up: a no-op.  Ctrl-C or a failure tears down what was
        started (the caller sees the exception)."""
        if profile.provider != "local":
            raise ConfigError(f"profile {profile.name!r} is for provider {profile.provider!r}, not local")
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            fp = profile_fingerprint(profile)
            st = self.state()
            if st is not None and self.is_up():
                if st.get("fingerprint") == fp:
                    self.progress(f"cluster {self.name!r} is already up with profile {st.get('profile')!r}")
                    return self.kubeconfig()
                raise ClusterExists(
                    f"cluster {self.name!r} is already up with profile {st.get('profile')!r}; "
                    f"run `aiconform down --name {self.name}` first or pick another --name"
                )
            if self.dir.exists():
                self.progress(f"removing leftovers of an earlier cluster {self.name!r}")
                self._teardown()
            if profile.real_node.enabled and os.geteuid() != 0:
                from harness.errors import PrivilegeError

                raise PrivilegeError(
                    f"profile {profile.name!r} adds a real kubelet node (tier R), which needs root; "
                    "run as root or use a tier S profile such as 'default'"
                )
            if profile.real_node.enabled:  # packages, address ranges, one real node per host: before anything starts
                from harness.providers.local.realnode import preflight

                preflight(self)
            if profile.control_plane.apiserver_port:
                check_port_free(profile.control_plane.apiserver_port, "controlPlane.apiserverPort")
            t0 = time.monotonic()
            version, bins = self._binaries(profile)
            # the profile's gates and flags, checked against these binaries before anything starts
            self.settings = component_settings(profile, bins, version, controlplane.HARNESS_FLAGS)
            try:
                self._create(profile, fp, version, bins)
            except BaseException:
                self.progress("bring-up did not finish; stopping what was started")
                self._teardown(keep_logs_to=self.root / f"{self.name}.failed-logs")
                raise
            self.progress(f"cluster {self.name!r} is up ({time.monotonic() - t0:.1f}s)")
            return self.kubeconfig()

    def _binaries(self, profile: Profile) -> tuple[str, dict[str, Path]]:
        """The pinned Kubernetes version and the binaries the profile needs (built on first use)."""
        resolver = self._resolver or BinaryResolver(progress=self.progress)
        version = profile.control_plane.kubernetes_version or resolver.versions.kubernetes_default
        names = list(CONTROL_PLANE)
        if profile.real_node.enabled:
            names.append("kubelet")
        t_bins = time.monotonic()
        bins = {n: r.path for n, r in resolver.resolve_many(names, kubernetes=version).items()}
        if time.monotonic() - t_bins > 1:
            self.progress(f"binaries ready ({time.monotonic() - t_bins:.0f}s)")
        return version, bins

    def _create(self, profile: Profile, fingerprint: str, version: str, bins: dict[str, Path]) -> None:
        for sub in ("pids", "logs", "etcd", "kubeconfigs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        ports = {
            "etcd": free_port(),
            "etcd-peer": free_port(),
            "apiserver": profile.control_plane.apiserver_port or free_port(),
            "controller-manager": free_port(),
            "scheduler": free_port(),
            "kwok": free_port(),
        }
        (self.dir / "profile.json").write_text(json.dumps(asdict(profile), indent=2, default=str))
        self.node_ip = None
        if profile.real_node.enabled:  # the apiserver binds to the node's address: the veth exists before it starts
            from harness.providers.local.realnode import prepare_node_network

            self.node_ip = prepare_node_network(self, profile.real_node, progress=self.progress)
        host = controlplane.apiserver_host(self.node_ip)
        self.progress(f"[1/6] certificates and kubeconfigs in {self.dir}")
        self._write_pki_and_kubeconfigs(ports["apiserver"], profile)
        self.progress("[2/6] starting etcd")
        self._start_etcd(bins["etcd"], ports)
        self.progress(f"[3/6] starting kube-apiserver v{version} on https://{host}:{ports['apiserver']}")
        self._start_apiserver(bins["kube-apiserver"], ports, profile)
        client = self.client()
        self._wait_ready("kube-apiserver", lambda: client.healthz("/readyz"), timeout=60)
        self.progress("[4/6] starting kube-controller-manager, kube-scheduler and KWOK")
        self._start_controller_manager(bins["kube-controller-manager"], ports, profile)
        self._start_scheduler(bins["kube-scheduler"], ports, profile)
        self._start_kwok(bins["kwok"], ports, profile)
        components = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
        client.wait_for(
            "ServiceAccount",
            namespace="default",
            name="default",
            condition=lambda s: bool(s),
            timeout=60,
            what="the default service account (kube-controller-manager's token controller)",
        )
        tier = "S"
        if profile.real_node.enabled:
            self.progress("[5/6] starting the real node (kubelet + containerd + fake GPU plugin)")
            from harness.providers.local.realnode import RealNodeHost

            node = RealNodeHost(self, profile.real_node, bins["kubelet"], progress=self.progress,
                                feature_gates=self.settings.gates("kubelet"),
                                extra_args=self.settings.args("kubelet"))
            components += node.start()
            tier = "R"
        n_sim = sum(p.nodes for p in profile.pools)
        self.progress(f"[6/6] registering {n_sim} simulated nodes in {len(profile.pools)} pools")
        self.add_pool_nodes(client, profile.pools)
        resolver = self._resolver or BinaryResolver(progress=self.progress)
        facts = self._install_addons(profile, client, resolver) if profile.addons else []
        state = {
            "name": self.name,
            "provider": "local",
            "profile": profile.name,
            "profile_source": profile.source,
            "fingerprint": fingerprint,
            "kubernetes_version": version,
            "tier": tier,
            "ports": ports,
            "components": components,
            "facts": facts,
            "server": f"https://{host}:{ports['apiserver']}",
            "created": time.time(),
        }
        self.state_file.write_text(json.dumps(state, indent=2))

    def _install_addons(self, profile: Profile, client: KubeClient, resolver: BinaryResolver) -> list[str]:
        """Install the profile's addons on the real node; their host undo commands are recorded first, so a `down`
        after a crash mid-install still runs them."""
        from harness import addons
        from harness.providers.local.realnode import REAL_NODE_LABEL

        def record(undo: list[tuple[str, ...]]) -> None:
            (self.dir / "addons.json").write_text(json.dumps({"addons": list(profile.addons), "undo": undo}, indent=2))

        chosen = [addons.lookup(n) for n in profile.addons]
        self.progress(f"installing addons: {', '.join(profile.addons)}")
        return addons.install(chosen, client=client, load_image=self.load_image, resolver=resolver,
                              node_selector={REAL_NODE_LABEL: "true"}, progress=self.progress, record_undo=record)

    def add_pool_nodes(self, client: KubeClient, pools: tuple[Pool, ...] | list[Pool], timeout: float = 120) -> None:
        register_nodes(client, [simulated_node(p, i, self.name) for p in pools for i in range(p.nodes)], timeout=timeout)

    # -- components -----------------------------------------------------------------------------------------------

    def _write_pki_and_kubeconfigs(self, apiserver_port: int, profile: Profile) -> None:
        self.pki.create_ca()
        self.pki.create_service_account_key()
        self.pki.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"),
            ips=controlplane.apiserver_serving_ips(profile.control_plane.service_cidr, self.node_ip),
        )
        self.pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", org="system:masters", client=True)
        self.pki.create_front_proxy()
        server = f"https://{controlplane.apiserver_host(self.node_ip)}:{apiserver_port}"
        identities = {
            "admin": ("aiconform-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", None),
            "scheduler": ("system:kube-scheduler", None),
            "kwok": ("aiconform-kwok", "system:masters"),
        }
        for stem, (cn, org) in identities.items():
            pair = self.pki.issue(f"{stem}-client", cn, org=org, client=True)
            path = self.kubeconfig() if stem == "admin" else self.dir / "kubeconfigs" / f"{stem}.yaml"
            write_kubeconfig(path, server, self.pki.ca.cert, pair.cert, pair.key, self.name)

    def _go_env(self, profile: Profile) -> dict[str, str] | None:
        """With limits lifted, Go components collect garbage half as often (GOGC=200, override with
        $AICONFORM_GOGC): on 2 cores, 5,000 pods bound at ~267/s instead of ~226/s for ~0.5 GB more resident memory
        (bench/bench_local.py; figures in the README)."""
        if not profile.control_plane.lift_limits:
            return None
        return {**os.environ, "GOGC": os.environ.get("AICONFORM_GOGC", "200")}

    def _start(self, component: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        try:
            proc.start_daemon(component, argv, log=self.logfile(component), pidfile=self.pidfile(component), env=env)
        except CommandError as err:
            raise ClusterError(f"cannot start {component}: {err}") from err

    def _wait_ready(self, component: str, probe: Callable[[], bool], timeout: float) -> None:
        """Poll a process's health endpoint (no watch exists for that) with a deadline; fail fast if it exits."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while time.monotonic() < deadline:
            if probe():
                return
            rec = proc.read_pidfile(self.pidfile(component))
            if rec is None or not proc.pid_alive(rec[0]):
                raise ClusterError(f"{component} exited during start-up: {self._log_tail(component)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise ClusterError(f"{component} was not ready after {timeout:.0f}s: {self._log_tail(component)}")

    def _log_tail(self, component: str) -> str:
        try:
            lines = [ln for ln in self.logfile(component).read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "(no log)"
        interesting = [ln for ln in lines if any(w in ln.lower() for w in ("error", "fatal", "panic", "in use"))]
        tail = (interesting or lines)[-1:] if lines else ["(empty log)"]
        return f"{tail[0][:400]} (log: {self.logfile(component)})"

    def _start_etcd(self, etcd: Path, ports: dict[str, int]) -> None:
        client_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        self._start(
            "etcd",
            [
                str(etcd),
                "--name=default",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync",  # an emulator's etcd: durability across power loss is not the point
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{client_url}/health", timeout=1) as resp:
                    return b"true" in resp.read()
            except (urllib.error.URLError, OSError):
                return False

        self._wait_ready("etcd", healthy, timeout=30)

    def _start_apiserver(self, binary: Path, ports: dict[str, int], profile: Profile) -> None:
        pki = self.pki.dir
        cp = profile.control_plane
        argv = [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            *controlplane.apiserver_address_args(self.node_ip),
            f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-cluster-ip-range={cp.service_cidr}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
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
            *controlplane.aggregation_args(self.pki),
            *controlplane.feature_gate_args(self.settings.gates("kube-apiserver")),
            *controlplane.runtime_config_args(self.settings.runtime_config),
        ]
        if cp.lift_limits:
            argv += ["--max-requests-inflight=0", "--max-mutating-requests-inflight=0",
                     "--enable-priority-and-fairness=false"]
        argv += controlplane.extra_args("kube-apiserver", argv, self.settings.args("kube-apiserver"))
        self._start("kube-apiserver", argv, env=self._go_env(profile))

    def _start_controller_manager(self, binary: Path, ports: dict[str, int], profile: Profile) -> None:
        kc = self.dir / "kubeconfigs" / "controller-manager.yaml"
        pki = self.pki.dir
        argv = [
            str(binary),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['controller-manager']}",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--use-service-account-credentials=true",
            f"--cert-dir={pki / 'generated-cm'}",
            "--profiling=false",
            *controlplane.feature_gate_args(self.settings.gates("kube-controller-manager")),
        ]
        if profile.control_plane.lift_limits:
            argv += ["--kube-api-qps=5000", "--kube-api-burst=10000"]
        argv += controlplane.extra_args("kube-controller-manager", argv,
                                        self.settings.args("kube-controller-manager"))
        self._start("kube-controller-manager", argv, env=self._go_env(profile))

    def _start_scheduler(self, binary: Path, ports: dict[str, int], profile: Profile) -> None:
        kc = self.dir / "kubeconfigs" / "scheduler.yaml"
        lift = profile.control_plane.lift_limits
        config = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(kc), "qps": 5000 if lift else 50, "burst": 10000 if lift else 100},
            "leaderElection": {"leaderElect": False},
        }
        cfg = self.dir / "kubeconfigs" / "scheduler-config.yaml"
        cfg.write_text(yaml.safe_dump(config))
        argv = [
            str(binary),
            f"--config={cfg}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['scheduler']}",
            f"--cert-dir={self.pki.dir / 'generated-sched'}",
            "--profiling=false",
            *controlplane.feature_gate_args(self.settings.gates("kube-scheduler")),
        ]
        argv += controlplane.extra_args("kube-scheduler", argv, self.settings.args("kube-scheduler"))
        self._start("kube-scheduler", argv, env=self._go_env(profile))

    def _start_kwok(self, binary: Path, ports: dict[str, int], profile: Profile) -> None:
        cidr = profile.control_plane.pod_cidr
        net, bits = cidr.split("/")
        first = net.rsplit(".", 1)[0] + "." + str(int(net.rsplit(".", 1)[1]) + 1)
        self._start(
            "kwok",
            [
                str(binary),
                f"--kubeconfig={self.dir / 'kubeconfigs' / 'kwok.yaml'}",
                f"--config={KWOK_STAGES}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={SIM_ANNOTATION[0]}={SIM_ANNOTATION[1]}",
                f"--cidr={first}/{bits}",
                f"--node-ip={FAKE_NODE_IP}",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{ports['kwok']}",
            ],
            env=self._go_env(profile),
        )

    # -- delete -------------------------------------------------------------------------------------------------------

    def delete(self) -> bool:
        with self._lock():
            if not self.dir.exists():
                return False
            self._teardown()
        (self.root / f".{self.name}.lock").unlink(missing_ok=True)
        return True

    def _teardown(self, keep_logs_to: Path | None = None) -> None:
        piddir = self.dir / "pids"
        if (self.dir / "realnode.json").exists():
            from harness.providers.local.realnode import teardown_host

            teardown_host(self, progress=self.progress)
        self._undo_addons()
        if piddir.is_dir():
            known = [c for c in STOP_ORDER if (piddir / f"{c}.pid").exists()]
            others = sorted(p.stem for p in piddir.glob("*.pid") if p.stem not in STOP_ORDER)
            for comp in others + known:
                if proc.stop_pidfile(piddir / f"{comp}.pid"):
                    self.progress(f"stopped {comp}")
        if keep_logs_to is not None and (self.dir / "logs").is_dir():
            shutil.rmtree(keep_logs_to, ignore_errors=True)
            shutil.copytree(self.dir / "logs", keep_logs_to)
            self.progress(f"logs of the failed bring-up kept in {keep_logs_to}")
        shutil.rmtree(self.dir, ignore_errors=True)

    def _undo_addons(self) -> None:
        """Host changes the addons' pods made (after their containers are gone, so nothing re-creates them)."""
        try:
            record = json.loads((self.dir / "addons.json").read_text())
        except (OSError, ValueError):
            return
        from harness.addons import undo_host_changes

        undo_host_changes(record.get("undo", []), self.progress)

    def collect_logs(self, dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for log in sorted((self.dir / "logs").glob("*.log")):
            target = dest / log.name
            shutil.copyfile(log, target)
            out.append(target)
        return out

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{self.name}.lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ClusterError(f"another aiconform command is working on cluster {self.name!r}") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, cluster: str) -> None:
    import base64

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": f"{cluster}-user", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": f"{cluster}-user"}}],
        "current-context": cluster,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    os.chmod(path, 0o600)
