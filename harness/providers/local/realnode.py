"""The real node of a ``local`` cluster (tier R): kubelet + containerd + runc + CNI, GPUs from fake_gpu_plugin.

Owns the host state one real node needs and giving all of it back:
- a containerd of our own (config, root, state and socket under ``<run dir>/realnode/containerd``; never the
  system service) with the CRI settings this VM needs (``restrict_oom_score_adj``, our pause image, cgroupfs);
- two images built here and imported with ``ctr`` (harness/images): the pause and ``aiconform.local/busybox``;
- a veth pair carrying the node's own address (``172.31.255.1/30``; made by :meth:`RealNodeHost.prepare` before
  kube-apiserver starts, which binds to it) and a CNI bridge network (``10.244.0.0/24``, one route to the node);
- the kubelet (root dir ``/var/lib/kubelet/aiconform``; the device-plugin dir ``/var/lib/kubelet/device-plugins``
  is fixed, hence one real node per host, claimed in ``/run/aiconform-realnode.json``);
- the fake GPU plugin as a host process (component ``realnode-plugin``), node labels and taints.

Two actions of the cluster's bring-up: ``host-network`` (:meth:`RealNodeHost.prepare`: checks, the host claim, the
record, the veth carrying the node's address and the CNI config) runs before etcd and the apiserver, so the control
plane may bind to the node's address; ``real-node`` (:meth:`RealNodeHost.start`: images, containerd, kubelet,
plugin) runs after KWOK.  Processes are started and watched by the cluster's Supervisor (harness/hostproc.py).

Everything changed on the host is written to ``<run dir>/realnode.json`` *before* it is changed, so that
``teardown_host`` can undo a half-finished start as well as a full one.  Must not touch anything it did not record
(other clusters, other interfaces, directories it did not create).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from fake_gpu_plugin import labels as gpu_labels
from fake_gpu_plugin.config import InventoryConfig, to_pool
from fake_gpu_plugin.inventory import resource_counts
from harness import images, proc
from harness.config import RealNode
from harness.contract import CLUSTER_LABEL, DRA_DRIVER, FAKE_GPU_LABEL, REAL_NODE_LABEL
from harness.errors import (
    AiconformError,
    ClusterError,
    CommandError,
    PrivilegeError,
    UnsupportedCapability,
    WaitFailed,
    WaitTimeout,
)
from harness.hostproc import Supervisor, free_port
from harness.kube import KubeClient, KubeConfig
from harness.providers.local import controlplane, netsvc
from harness.providers.local import linuxhost as host
from harness.providers.local.clusterview import ClusterView
from harness.workloads import REAL_NODE_IP, REAL_NODE_PREFIX, REAL_POD_CIDR

Progress = Callable[[str], None]

KUBELET_BASE = Path("/var/lib/kubelet")
KUBELET_ROOT = KUBELET_BASE / "aiconform"
DEVICE_PLUGIN_DIR = KUBELET_BASE / "device-plugins"
CNI_STATE_DIR = Path("/var/lib/cni")
CONTAINER_LOGS_DIR = Path("/var/log/containers")  # the kubelet creates it whatever its config says
CONTAINERD_RUN_DIR = Path("/run/containerd")  # containerd-shim sockets land in /run/containerd/s regardless
HOST_CLAIM = Path("/run/aiconform-realnode.json")
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
VETH, VETH_PEER = "aicf-node0", "aicf-node1"
NODE_IP, NODE_PREFIX = REAL_NODE_IP, REAL_NODE_PREFIX  # the address plan is harness.workloads' (load targets read it)
BRIDGE = "aicf-cni0"
POD_CIDR = REAL_POD_CIDR
CNI_NETWORK = "aiconform"
NODE_STATUS_UPDATE_FREQUENCY = "4s"
SYSCTLS = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
           "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward")
"""What the kubelet (the first six) and the CNI bridge plugin (ip_forward) change on start."""
COMPONENTS = ("containerd", "kubelet", "realnode-plugin", "realnode-dra")
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; containerd also makes "<socket>.ttrpc"

# What to install when something is missing: executable or path -> Debian package.
APT_PACKAGES = {  # containerd itself is the pinned v2 from harness/versions.toml, not Debian's 1.6 (no CDI)
    "runc": "runc",
    "ip": "iproute2",
    "umount": "mount",
    "iptables": "iptables",
}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- preflight -------------------------------------------------------------------------------------------------------


def missing_packages() -> list[str]:
    """Debian packages the real node needs that are not installed (checked by executable and file)."""
    missing = {pkg for exe, pkg in APT_PACKAGES.items() if shutil.which(exe) is None}
    if not all((CNI_BIN_DIR / p).is_file() for p in CNI_PLUGINS):
        missing.add("containernetworking-plugins")
    if not images.BUSYBOX_BINARY.is_file():
        missing.add("busybox-static")
    return sorted(missing)


def preflight(cluster: ClusterView | None = None) -> None:
    """Fail fast, in one line, on what a user can fix: not root, missing packages, address ranges in use, the
    host's real node already taken by another cluster (``cluster`` given)."""
    if os.geteuid() != 0:
        raise PrivilegeError("a real kubelet node (tier R) needs root; run as root or use a tier S profile")
    missing = missing_packages()
    if missing:
        raise ClusterError(f"the real node needs packages that are not installed; run: "
                           f"apt-get install {' '.join(missing)}")
    networks = host.host_networks(exclude_links=(VETH, VETH_PEER, BRIDGE))  # ours: leftovers are replaced
    taken = host.overlapping(POD_CIDR, networks) or host.overlapping(f"{NODE_IP}/{NODE_PREFIX}", networks)
    if taken is not None:
        raise ClusterError(f"the real node's networks ({POD_CIDR}, {NODE_IP}/{NODE_PREFIX}) overlap {taken} on "
                           "this host; free that range first")
    holder = _claim_holder()
    if cluster is not None and holder is not None and _held_by_other(holder, cluster):
        raise _taken_error(holder)


def _held_by_other(holder: dict[str, Any], cluster: ClusterView) -> bool:
    """Another cluster holds the real node while its run directory exists and one of its daemons still runs; a
    claim whose cluster is gone (removed, or every process dead after a crash or a reboot) is stale."""
    run_dir = Path(holder.get("run_dir", ""))
    return run_dir != cluster.dir and run_dir.is_dir() and bool(Supervisor(run_dir).running())


def crashed_holder(cluster: ClusterView) -> Path | None:
    """The run directory of another cluster whose real node crashed (the host claim is its, none of its daemons
    runs, and its record of what it changed on the host survives): what it left (routes, links, iptables chains,
    mounts, cgroups) would make this bring-up refuse, e.g. "podCIDR overlaps", until someone ran its ``down``.
    None when there is no such cluster."""
    holder = _claim_holder()
    if holder is None:
        return None
    run_dir = Path(holder.get("run_dir", ""))
    if run_dir == cluster.dir or not (run_dir / "realnode.json").is_file() or _held_by_other(holder, cluster):
        return None
    return run_dir


def _taken_error(holder: dict[str, Any]) -> ClusterError:
    return ClusterError(
        f"a real node already runs on this host (cluster {holder.get('cluster')!r}, run dir {holder.get('run_dir')}); "
        "one real node per host, since the kubelet's device-plugin dir is global: run "
        f"`aiconform down --name {holder.get('cluster')}` first")


def claim_host(cluster: ClusterView) -> None:
    """Take the one-real-node-per-host claim for ``cluster``; ClusterError when another cluster holds it."""
    record = json.dumps({"cluster": cluster.name, "run_dir": str(cluster.dir), "pid": os.getpid()})
    for _ in range(2):
        try:
            fd = os.open(HOST_CLAIM, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _claim_holder()
            if holder is not None and _held_by_other(holder, cluster):
                raise _taken_error(holder) from None
            HOST_CLAIM.unlink(missing_ok=True)  # ours from a crashed start, or its run dir is gone: stale
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(record)
        return
    raise ClusterError(f"cannot claim the real node for this host ({HOST_CLAIM}); try again")


def _claim_holder() -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(HOST_CLAIM.read_text())
        return data
    except (OSError, ValueError):
        return None


def release_host(cluster: ClusterView) -> None:
    holder = _claim_holder()
    if holder is not None and holder.get("run_dir") == str(cluster.dir):
        HOST_CLAIM.unlink(missing_ok=True)


# -- config files ----------------------------------------------------------------------------------------------------


def plugin_config(node: str, gpu: InventoryConfig) -> dict[str, Any]:
    """The fake GPU plugin's config file (a pool dict) for the real node's GPU spec: the spec itself, written out."""
    return to_pool(gpu, name=node)


def _toml_str(value: str) -> str:
    return json.dumps(value)


def containerd_config(root: Path, state: Path, socket: Path, cni_conf_dir: Path, cdi_dir: Path) -> str:
    """containerd v2 config (format version 3; containerd 2.4 migrates it in memory): our own dirs and socket, CRI
    with this VM's settings, and CDI specs read from ``cdi_dir`` only (the DRA driver writes them there; the host's
    /etc/cdi and /var/run/cdi are left alone)."""
    images_plugin = "[plugins.'io.containerd.cri.v1.images']"
    runtime_plugin = "[plugins.'io.containerd.cri.v1.runtime']"
    runc = f"{runtime_plugin[:-1]}.containerd.runtimes.runc]"
    return "\n".join([
        "version = 3",
        f"root = {_toml_str(str(root))}",
        f"state = {_toml_str(str(state))}",
        'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",'
        ' "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs",'
        ' "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",'
        ' "io.containerd.nri.v1.nri"]',
        "[grpc]",
        f"  address = {_toml_str(str(socket))}",
        "[ttrpc]",
        f"  address = {_toml_str(str(socket) + '.ttrpc')}",
        "[debug]",
        '  address = ""',
        "[metrics]",
        '  address = ""',
        "[plugins.'io.containerd.internal.v1.opt']",
        f"  path = {_toml_str(str(root / 'opt'))}",
        images_plugin,
        '  snapshotter = "overlayfs"',
        f"{images_plugin[:-1]}.pinned_images]",
        f"  sandbox = {_toml_str(images.PAUSE_IMAGE)}",
        runtime_plugin,
        "  restrict_oom_score_adj = true",  # this VM drops CAP_SYS_RESOURCE (PLATFORM-NOTES)
        "  netns_mounts_under_state_dir = true",
        "  enable_selinux = false",
        f"  cdi_spec_dirs = [{_toml_str(str(cdi_dir))}]",
        f"{runtime_plugin[:-1]}.containerd]",
        '  default_runtime_name = "runc"',
        runc,
        '  runtime_type = "io.containerd.runc.v2"',
        f"{runc[:-1]}.options]",
        "  SystemdCgroup = false",
        f"  Root = {_toml_str(str(state / 'runc'))}",
        f"{runtime_plugin[:-1]}.cni]",
        f"  bin_dirs = [{_toml_str(str(CNI_BIN_DIR))}]",
        f"  conf_dir = {_toml_str(str(cni_conf_dir))}",
        "  max_conf_num = 1",
        "",
    ])


def cni_conflist(ipam_dir: Path, routes: tuple[str, ...] = ()) -> dict[str, Any]:
    """``routes``: more destinations pods reach through the bridge gateway (the host), e.g. the Service CIDR."""
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                # routes besides the pod subnet: the node address, where kube-apiserver listens (the kubernetes
                # Service's endpoint), and ``routes``; no default route, so a pod's packets cannot head off the machine
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]], "dataDir": str(ipam_dir),
                         "routes": [{"dst": f"{NODE_IP}/32"}, *({"dst": r} for r in routes)]},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(*, ca: Path, socket: Path, port: int, healthz_port: int, serving: tuple[Path, Path],
                   taints: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(serving[0]),
        "tlsPrivateKeyFile": str(serving[1]),
        "authentication": {"x509": {"clientCAFile": str(ca)}, "webhook": {"enabled": True},
                           "anonymous": {"enabled": False}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,  # this VM is cgroup v1; kubelet >= 1.35 refuses it unless told otherwise
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{socket}",
        "nodeStatusUpdateFrequency": NODE_STATUS_UPDATE_FREQUENCY,
        "nodeStatusReportFrequency": "1m",
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "0%", "nodefs.inodesFree": "0%",
                         "imagefs.available": "0%", "imagefs.inodesFree": "0%"},
        "imageGCHighThresholdPercent": 100,  # never garbage-collect our imported images (nothing can be pulled)
        "imageGCLowThresholdPercent": 99,
        "makeIPTablesUtilChains": False,
        "podLogsDir": str(KUBELET_ROOT / "pod-logs"),
        "registerWithTaints": taints,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "resolvConf": "/etc/resolv.conf",
        "maxPods": 32,
    }


# -- the host ----------------------------------------------------------------------------------------------------------


class RealNodeHost:
    """Starts (and restarts the kubelet of) the one real node of a local cluster."""

    def __init__(self, cluster: ClusterView, spec: RealNode, kubelet: Path | None, *, progress: Progress = _stderr,
                 feature_gates: Mapping[str, bool] | None = None, extra_args: Mapping[str, str] | None = None,
                 net: netsvc.NetSpec | None = None, containerd: Path | None = None) -> None:
        self.cluster = cluster
        self.containerd = containerd
        """The pinned containerd binary (harness/versions.toml); its ``ctr`` and ``containerd-shim-runc-v2`` lie
        beside it."""
        self.spec = spec
        self.kubelet = kubelet
        self.progress = progress
        self.feature_gates = dict(feature_gates or {})
        """Gates the kubelet gets in its config's ``featureGates`` (harness/flags.py checked them)."""
        self.extra_args = dict(extra_args or {})
        """The profile's extra kubelet flags (realNode.extraArgs, checked by harness/flags.py)."""
        self.net = net
        """kube-proxy, CoreDNS and the routes that keep simulated traffic here (netsvc.py); None: none of them."""
        self.dir = cluster.dir / "realnode"
        self.record: dict[str, Any] = {}

    @classmethod
    def attach(cls, cluster: ClusterView, *, progress: Progress = _stderr) -> RealNodeHost:
        """The real node of a running cluster (from its realnode.json)."""
        record = load_record(cluster)
        if record is None:
            raise UnsupportedCapability("local", f"a real node (cluster {cluster.name!r} has none)")
        node = cls(cluster, RealNode(enabled=True, name=record["node"]), Path(record["kubelet_argv"][0]),
                   progress=progress)
        node.record = record
        return node

    # -- paths --
    @property
    def containerd_dir(self) -> Path:
        return self.dir / "containerd"

    @property
    def socket(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def cdi_dir(self) -> Path:
        """Where containerd reads CDI specs (and only there): the DRA driver writes them."""
        return self.dir / "cdi"

    @property
    def ctr(self) -> str:
        recorded = (self.record.get("containerd") or {}).get("ctr")
        if recorded:
            return str(recorded)
        return str(self.containerd.with_name("ctr")) if self.containerd is not None else "ctr"

    @property
    def plugin_state_dir(self) -> Path:
        return self.cluster.dir / "fake-gpu" / self.spec.name

    def _save(self) -> None:
        path = self.cluster.dir / "realnode.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record, indent=2))
        os.replace(tmp, path)

    # -- start: two actions of the bring-up --
    def prepare(self) -> None:
        """The host side, before the control plane starts: checks, the one-real-node claim, the record of what the
        host had, the veth carrying the node's address and the CNI config.  Undone by :func:`teardown_host`."""
        preflight(self.cluster)
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise ClusterError(f"the run dir {self.cluster.dir} is too deep for containerd's socket path "
                               f"({len(str(self.socket))} > {MAX_SOCKET_PATH} characters); use a shorter "
                               "AICONFORM_STATE_DIR")
        claim_host(self.cluster)
        self._record_host_before()
        if self.net is not None:
            netsvc.prepare(self, self.net)
        self._make_node_address()
        self._write_cni_config()

    def start(self) -> list[str]:
        """Bring the node up on a prepared host; returns the components started (each supervised by the
        cluster's Supervisor).  Undone by :func:`teardown_host`."""
        if not self.record:
            self.record = load_record(self.cluster) or {}
        archives = self._build_images()
        self._start_containerd(archives)
        self._start_kubelet()
        components = ["containerd", "kubelet"]
        if self.spec.gpu is not None and self.spec.gpu.count > 0:
            self._start_plugin(self.spec.gpu)
            components.append("realnode-plugin")
        if self.spec.dra is not None:
            self._start_dra_driver(self.spec.dra.gpu)
            components.append("realnode-dra")
        self._wait_node()
        if self.spec.dra is not None:
            self._wait_dra_slices()
        if self.net is not None:
            components += netsvc.start(self, self.net)
        return components

    def _record_host_before(self) -> None:
        """Write down, before changing anything, what exists on the host so teardown restores exactly that."""
        self.dir.mkdir(parents=True, exist_ok=True)
        existed = {str(p): p.exists() for p in (KUBELET_BASE, KUBELET_ROOT, DEVICE_PLUGIN_DIR, CNI_STATE_DIR,
                                                 CONTAINER_LOGS_DIR, CONTAINERD_RUN_DIR)}
        self.record = {
            "node": self.spec.name,
            "node_ip": NODE_IP,
            "veth": [VETH, VETH_PEER],
            "bridge": BRIDGE,
            "pod_cidr": POD_CIDR,
            "kubelet_root": str(KUBELET_ROOT),
            "containerd": {"socket": str(self.socket), "root": str(self.containerd_dir / "root"),
                           "state": str(self.containerd_dir / "state"), "ctr": self.ctr,
                           "binary": str(self.containerd or "")},
            "existed": existed,
            "sysctls": {name: host.read_sysctl(name) for name in SYSCTLS},
            "kubepods_existed": [str(p) for p in host.cgroup_dirs("kubepods")],
            "iptables_chains": host.iptables_chains(),
            "plugin_state_dir": str(self.plugin_state_dir),
            "created": time.time(),
        }
        self._save()

    def _build_images(self) -> list[Path]:
        self.progress("  real node: building the pause and busybox images (cached under "
                      f"{images.images_cache()})")
        return [images.pause_archive(), images.busybox_archive()]

    def _make_node_address(self) -> None:
        self.progress(f"  real node: veth {VETH} with the node address {NODE_IP}/{NODE_PREFIX}")
        for stale in (VETH, BRIDGE):  # leftovers of ours from a crashed run (the names are ours alone)
            host.delete_link(stale)
        try:
            host.create_veth(VETH, VETH_PEER, f"{NODE_IP}/{NODE_PREFIX}")
        except CommandError as err:
            raise ClusterError(f"cannot create the real node's veth pair: {err}") from err

    def _write_cni_config(self) -> None:
        self.progress(f"  real node: CNI bridge {BRIDGE} for {POD_CIDR}")
        conf_dir = self.dir / "cni" / "net.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "10-aiconform.conflist").write_text(
            json.dumps(cni_conflist(self.dir / "cni" / "ipam",
                                    netsvc.pod_routes(self.net) if self.net is not None else ()), indent=2))

    def _start_containerd(self, archives: list[Path]) -> None:
        self.progress(f"  real node: starting containerd ({self.socket})")
        cfg = self.containerd_dir / "config.toml"
        self.containerd_dir.mkdir(parents=True, exist_ok=True)
        self.cdi_dir.mkdir(parents=True, exist_ok=True)
        cfg.write_text(containerd_config(self.containerd_dir / "root", self.containerd_dir / "state", self.socket,
                                         self.dir / "cni" / "net.d", self.cdi_dir))
        if self.containerd is None:
            raise ClusterError("the real node was prepared without a containerd binary")
        # containerd finds containerd-shim-runc-v2 on PATH: the pinned one, beside it, first
        path = os.pathsep.join([str(self.containerd.parent), os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")])
        self.cluster.procs.start("containerd", [str(self.containerd), "--config", str(cfg)],
                                 env={**os.environ, "PATH": path})
        self.cluster.procs.wait_ready("containerd", self._ctr_ok, timeout=30, what="containerd's socket")
        for archive in archives:
            self.import_image(archive)

    def import_image(self, archive: Path) -> None:
        """Import an image archive into the node's containerd (namespace k8s.io): pods use it without a pull."""
        images.import_archive(archive, self.socket, timeout=300, ctr=self.ctr)

    def _ctr(self, *args: str, timeout: float = 60) -> proc.Result:
        return proc.run([self.ctr, "--address", str(self.socket), "--namespace", "k8s.io", *args], timeout=timeout)

    def _ctr_ok(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            self._ctr("version", timeout=10)
        except CommandError:
            return False
        return True

    def _start_kubelet(self) -> None:
        from harness.kube import write_kubeconfig

        name = self.spec.name
        pki = self.cluster.pki
        self.progress(f"  real node: starting kubelet for node {name} (root dir {KUBELET_ROOT})")
        client = pki.issue(f"kubelet-{name}-client", f"system:node:{name}", org="system:nodes", client=True)
        serving = pki.issue(f"kubelet-{name}-serving", f"system:node:{name}", org="system:nodes", server=True,
                            dns=(name,), ips=(NODE_IP,))
        server = KubeConfig.from_file(self.cluster.kubeconfig()).server
        kubeconfig = self.dir / "kubelet.kubeconfig"
        write_kubeconfig(kubeconfig, server, pki.ca.cert, client.cert, client.key, self.cluster.name)
        healthz = free_port()
        config = kubelet_config(ca=pki.ca.cert, socket=self.socket, port=free_port(), healthz_port=healthz,
                                serving=(serving.cert, serving.key),
                                taints=[t.to_api() for t in self.spec.taints])
        config = controlplane.kubelet_feature_gates(config, self.feature_gates)
        if self.net is not None:
            config |= netsvc.kubelet_dns(self.net.dns_ip)
        cfg = self.dir / "kubelet-config.yaml"
        cfg.write_text(yaml.safe_dump(config))
        if self.kubelet is None:
            raise ClusterError("the real node was prepared without a kubelet binary")
        argv = [str(self.kubelet), f"--config={cfg}", f"--kubeconfig={kubeconfig}", f"--root-dir={KUBELET_ROOT}",
                f"--hostname-override={name}", f"--node-ip={NODE_IP}", "--v=1"]
        argv += controlplane.extra_args("kubelet", argv, self.extra_args)
        self.record |= {"kubelet_argv": argv, "kubelet_healthz_port": healthz}
        self._save()
        self.cluster.procs.start("kubelet", argv)
        self._wait_kubelet_healthy()

    def _wait_kubelet_healthy(self, timeout: float = 60) -> None:
        url = f"http://127.0.0.1:{self.record['kubelet_healthz_port']}/healthz"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        self.cluster.procs.wait_ready("kubelet", healthy, timeout=timeout, what="the kubelet's /healthz")

    def _start_plugin(self, gpu: InventoryConfig) -> None:
        port = free_port()
        self.progress(f"  real node: starting the fake GPU plugin ({gpu.count} x {gpu.model}; metrics on "
                      f"127.0.0.1:{port})")
        cfg = self.dir / "fake-gpu.json"
        cfg.write_text(json.dumps(plugin_config(self.spec.name, gpu), indent=2))
        self.record |= {"plugin_config": str(cfg), "metrics_port": port}
        self._save()
        argv = [sys.executable, "-m", "fake_gpu_plugin", "serve", "--config", str(cfg),
                "--node-name", self.spec.name, "--device-plugin-dir", str(DEVICE_PLUGIN_DIR),
                "--kubelet-root", str(KUBELET_ROOT), "--state-dir", str(self.plugin_state_dir),
                "--metrics-addr", f"127.0.0.1:{port}", "--kubeconfig", str(self.cluster.kubeconfig())]
        self.cluster.procs.start("realnode-plugin", argv, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def dra_state_dir(self) -> Path:
        return self.cluster.dir / "fake-gpu" / f"{self.spec.name}-dra"

    def dra_first_index(self) -> int:
        """The DRA pool's GPUs follow the device plugin's on the host (GPUs N.. when it has N): no GPU in both."""
        return self.spec.gpu.count if self.spec.gpu is not None else 0

    def _start_dra_driver(self, gpu: InventoryConfig) -> None:
        first = self.dra_first_index()
        self.progress(f"  real node: starting the DRA driver {DRA_DRIVER} ({gpu.count} x {gpu.model}, host "
                      f"GPUs {first}..{first + gpu.count - 1}; CDI specs in {self.cdi_dir})")
        cfg = self.dir / "fake-gpu-dra.json"
        cfg.write_text(json.dumps(to_pool(gpu, name=f"{self.spec.name}-dra"), indent=2))
        self.record |= {"dra": {"config": str(cfg), "state_dir": str(self.dra_state_dir), "cdi_dir": str(self.cdi_dir),
                                "sockets": [str(KUBELET_ROOT / "plugins_registry" / f"{DRA_DRIVER}-reg.sock"),
                                            str(KUBELET_ROOT / "plugins" / DRA_DRIVER / "dra.sock")]}}
        self._save()
        argv = [sys.executable, "-m", "fake_gpu_plugin", "serve-dra", "--config", str(cfg),
                "--node-name", self.spec.name, "--first-index", str(first), "--kubelet-root", str(KUBELET_ROOT),
                "--cdi-dir", str(self.cdi_dir), "--state-dir", str(self.dra_state_dir),
                "--kubeconfig", str(self.cluster.kubeconfig())]
        self.cluster.procs.start("realnode-dra", argv, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def _wait_dra_slices(self, timeout: float = 60) -> None:
        """Watch until the driver's ResourceSlices for this node are in the API (it publishes them once the
        kubelet has registered it)."""
        name = self.spec.name
        self.progress(f"  real node: waiting for the DRA driver's ResourceSlices of {name}")

        def published(state: dict[str, Any]) -> bool:
            return any(s.get("spec", {}).get("nodeName") == name and s.get("spec", {}).get("devices")
                       for s in state.values())

        def failure(_state: dict[str, Any]) -> str | None:
            return next(filter(None, map(self.cluster.procs.died, COMPONENTS)), None)

        try:
            self.cluster.client().wait_for("ResourceSlice", api_version="resource.k8s.io/v1", condition=published,
                                           failure=failure, timeout=timeout,
                                           what=f"the DRA driver's ResourceSlices of node {name}")
        except (WaitTimeout, WaitFailed) as err:
            raise ClusterError(f"{err} (driver log: {self.cluster.logfile('realnode-dra')}, kubelet log: "
                               f"{self.cluster.logfile('kubelet')})") from err

    def node_labels(self) -> dict[str, str]:
        """The node's labels: the GPU labels of its spec (the owner every GPU node shares), then the profile's."""
        labels = {REAL_NODE_LABEL: "true", CLUSTER_LABEL: self.cluster.name}
        if self.spec.gpu is not None:
            labels |= gpu_labels.node_labels(self.spec.gpu)
        elif self.spec.dra is not None:  # DRA GPUs only: still declare the fake (tier detection reads it)
            labels[FAKE_GPU_LABEL] = "true"
        return labels | dict(self.spec.labels)

    def expected_resources(self) -> dict[str, str]:
        """What the plugin will advertise once registered: counted from the inventory it serves."""
        gpu = self.spec.gpu
        return {k: str(v) for k, v in resource_counts(gpu).items()} if gpu is not None else {}

    def _wait_node(self, timeout: float = 120) -> None:
        name = self.spec.name
        client = self.cluster.client()
        self.progress(f"  real node: waiting for node {name} to register")
        self._watch_node(client, lambda n: True, timeout, "to register")
        client.patch("Node", name, {"metadata": {"labels": self.node_labels()}})
        want = self.expected_resources()
        self.progress(f"  real node: waiting for {name} to be Ready"
                      + (f" with {', '.join(f'{k}={v}' for k, v in want.items())}" if want else ""))

        def done(node: dict[str, Any]) -> bool:
            from harness.nodes import node_ready

            alloc = node.get("status", {}).get("allocatable", {})
            return node_ready(node) and all(alloc.get(k) == v for k, v in want.items())

        self._watch_node(client, done, timeout, "to be Ready with the plugin's resources")

    def _watch_node(self, client: KubeClient, cond: Callable[[dict[str, Any]], bool], timeout: float,
                    what: str) -> None:
        def failure(_state: dict[str, Any]) -> str | None:
            return next(filter(None, map(self.cluster.procs.died, COMPONENTS)), None)

        try:
            client.wait_for("Node", name=self.spec.name, condition=lambda s: any(cond(n) for n in s.values()),
                            failure=failure, timeout=timeout, what=f"node {self.spec.name} {what}")
        except (WaitTimeout, WaitFailed) as err:
            raise ClusterError(f"{err} (kubelet log: {self.cluster.logfile('kubelet')})") from err

    # -- restart --
    def restart_kubelet(self) -> None:
        """Stop the kubelet and start it again with the same argv (pods and the plugin keep running)."""
        argv = self.record["kubelet_argv"]
        self.progress(f"restarting the kubelet of node {self.record['node']}")
        self.cluster.procs.stop("kubelet")
        self.cluster.procs.start("kubelet", list(argv))
        self._wait_kubelet_healthy()


    def upgrade_kubelet(self, binary: Path, version: str, timeout: float = 120) -> None:
        """Restart the kubelet on another binary (same flags) and watch until the node reports ``version``."""
        self.record["kubelet_argv"] = [str(binary), *self.record["kubelet_argv"][1:]]
        self._save()
        self.restart_kubelet()

        def upgraded(node: dict[str, Any]) -> bool:
            from harness.nodes import node_ready

            return node_ready(node) and node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion") == f"v{version}"

        self._watch_node(self.cluster.client(), upgraded, timeout, f"to report kubelet v{version}")

    def upgrade_kube_proxy(self, binary: Path, version: str) -> None:
        """kube-proxy on ``version``'s binary (after the kubelet: kube-proxy must not be newer than it)."""
        if self.record.get("netsvc") is None:
            return
        self.progress(f"upgrading the real node's kube-proxy to v{version}")
        netsvc.upgrade_kube_proxy(self, binary)


def load_record(cluster: ClusterView) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((cluster.dir / "realnode.json").read_text())
        return data
    except (OSError, ValueError):
        return None


def restart_node(cluster: ClusterView, node: str) -> None:
    """The ``RestartsNodes`` capability of the local provider: only the real node has a kubelet to restart."""
    record = load_record(cluster)
    if record is None or record.get("node") != node:
        raise UnsupportedCapability("local", f"restarting node {node!r} (only a real node has a kubelet; "
                                             f"this cluster's is {record.get('node') if record else None!r})")
    RealNodeHost.attach(cluster, progress=cluster.progress).restart_kubelet()


# -- teardown ----------------------------------------------------------------------------------------------------------


def teardown_host(cluster: ClusterView, *, progress: Progress = _stderr) -> list[str]:
    """Undo everything realnode.json records; returns what could not be removed (also printed as warnings).

    Order: kubelet and plugin; every container (kill the kubepods cgroups' processes, delete the tasks through
    containerd); containerd and any shim left; mounts under the kubelet root and containerd dirs; the kubepods
    cgroups; sysctls; links; iptables chains; directories the harness created; the host claim.
    """
    record = load_record(cluster)
    if record is None:
        return []
    progress(f"tearing down the real node {record.get('node')}")
    left: list[str] = []
    for step in (_stop_node_daemons, _remove_containers, netsvc.teardown, _stop_containerd, _unmount, _remove_cgroups,
                 _restore_sysctls, _remove_links, _remove_iptables, _remove_dirs):
        try:
            left += step(cluster, record)
        except (AiconformError, OSError) as err:
            left.append(f"{step.__name__.strip('_').replace('_', ' ')}: {err}")
    release_host(cluster)
    (cluster.dir / "realnode.json").unlink(missing_ok=True)
    for item in left:
        progress(f"warning: the real node left {item}")
    return left


def host_leftovers(record: dict[str, Any], run_dir: Path, pids: list[int]) -> list[str]:
    """What a torn-down real node left on the host (empty when ``down`` restored everything): ``pids`` are the
    node's daemons as they were before the teardown."""
    left = [f"process {p}" for p in pids if proc.pid_alive(p)]
    left += [f"shim/process {p}" for p in host.pids_with_arg(record["containerd"]["socket"])]
    left += [f"mount {m}" for m in host.mounts_under([Path(record["kubelet_root"]), run_dir, DEVICE_PLUGIN_DIR])]
    left += [f"link {n}" for n in [record["bridge"], *record["veth"]] if host.link_exists(n)]
    left += [f"cgroup {d}" for d in host.cgroup_dirs("kubepods") if str(d) not in record["kubepods_existed"]]
    left += [f"sysctl {k}" for k, v in record["sysctls"].items() if v is not None and host.read_sysctl(k) != v]
    left += [f"dir {p}" for p, existed in record["existed"].items() if not existed and Path(p).exists()]
    left += netsvc.leftovers(record)
    dra = record.get("dra") or {}
    left += [f"DRA socket {p}" for p in dra.get("sockets", []) if Path(p).exists()]
    left += [f"CDI spec {p}" for p in (Path(dra["cdi_dir"]).glob("*.json") if dra.get("cdi_dir") else [])]
    holder = _claim_holder()
    if holder is not None and holder.get("run_dir") == str(run_dir):
        left.append(f"host claim {HOST_CLAIM}")
    if run_dir.exists():
        left.append(f"run dir {run_dir}")
    return left


def _stop_node_daemons(cluster: ClusterView, record: dict[str, Any]) -> list[str]:
    """The DRA driver first (on SIGTERM it deletes its ResourceSlices while the apiserver still answers), then the
    kubelet and the device plugin; then whatever of the driver's CDI specs and sockets is left."""
    for comp in ("realnode-dra", "kubelet", "realnode-plugin"):
        if proc.stop_pidfile(cluster.pidfile(comp)):
            cluster.progress(f"stopped {comp}")
    left = []
    dra = record.get("dra") or {}
    for path in [*dra.get("sockets", []), *(str(p) for p in Path(dra.get("cdi_dir", "/nonexistent")).glob("*.json"))]:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as err:
            left.append(f"{path} ({err.strerror})")
    return left


def _container_pids(record: dict[str, Any]) -> list[int]:
    existed = set(record.get("kubepods_existed", []))
    return sorted({pid for d in host.cgroup_dirs("kubepods") if str(d) not in existed
                   for pid in host.cgroup_pids(d)})


def _remove_containers(cluster: ClusterView, record: dict[str, Any]) -> list[str]:
    survivors = host.kill_pids(_container_pids(record))
    socket = record["containerd"]["socket"]
    if Path(socket).exists() and _alive(cluster, "containerd"):
        ctr = [record["containerd"].get("ctr") or "ctr", "--address", socket, "--namespace", "k8s.io"]
        tasks = proc.run([*ctr, "tasks", "ls", "-q"], timeout=30, check=False).stdout.split()
        for task in tasks:
            proc.run([*ctr, "tasks", "delete", "--force", task], timeout=30, check=False)
        containers = proc.run([*ctr, "containers", "ls", "-q"], timeout=30, check=False).stdout.split()
        if containers:
            proc.run([*ctr, "containers", "delete", *containers], timeout=60, check=False)
        if tasks:
            cluster.progress(f"removed {len(tasks)} containers")
    return [f"container process {p}" for p in survivors]


def _alive(cluster: ClusterView, comp: str) -> bool:
    rec = proc.read_pidfile(cluster.pidfile(comp))
    return rec is not None and proc.pid_alive(rec[0])


def _stop_containerd(cluster: ClusterView, record: dict[str, Any]) -> list[str]:
    if proc.stop_pidfile(cluster.pidfile("containerd")):
        cluster.progress("stopped containerd")
    shims = host.pids_with_arg(record["containerd"]["socket"])
    survivors = host.kill_pids(shims + _container_pids(record))
    return [f"process {p} ({_comm(p)})" for p in survivors]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _mount_roots(cluster: ClusterView, record: dict[str, Any]) -> list[Path]:
    return [Path(record["kubelet_root"]), cluster.dir / "realnode", DEVICE_PLUGIN_DIR]


def _unmount(cluster: ClusterView, record: dict[str, Any]) -> list[str]:
    return [f"mount {m}" for m in host.unmount_all(_mount_roots(cluster, record))]


def _remove_cgroups(cluster: ClusterView, record: dict[str, Any]) -> list[str]:
    existed = set(record.get("kubepods_existed", []))
    return [f"cgroup {d}" for d in host.cgroup_dirs("kubepods")
            if str(d) not in existed and not host.remove_cgroup_tree(d)]


def _restore_sysctls(cluster: ClusterView, record: dict[str, Any]) -> list[str]:
    left = []
    for name, value in (record.get("sysctls") or {}).items():
        if value is not None and host.read_sysctl(name) != value and not host.write_sysctl(name, value):
            left.append(f"sysctl {name}={host.read_sysctl(name)} (was {value})")
    return left


def _remove_links(cluster: ClusterView, record: dict[str, Any]) -> list[str]:
    bridge = record.get("bridge", BRIDGE)
    for port in host.bridge_ports(bridge):  # host ends of pod veths whose netns outlived their pods
        host.delete_link(port)
    host.delete_link(bridge)
    for link in record.get("veth", []):
        host.delete_link(link)
    return [f"link {n}" for n in [bridge, *record.get("veth", [])] if host.link_exists(n)]


def _remove_iptables(cluster: ClusterView, record: dict[str, Any]) -> list[str]:
    before = record.get("iptables_chains") or {}
    left = []
    for table, chains in host.iptables_chains().items():
        new = [c for c in chains if c not in before.get(table, []) and c.startswith(("KUBE-", "CNI-"))]
        left += [f"iptables chain {table}/{c}" for c in host.iptables_delete_chains(table, new)]
    return left


def _remove_dirs(cluster: ClusterView, record: dict[str, Any]) -> list[str]:
    existed: dict[str, bool] = record.get("existed", {})
    mounted = host.mounts_under([KUBELET_BASE])
    if mounted:
        return [f"{KUBELET_BASE} (still mounted: {mounted[0]})"]
    for path in (KUBELET_ROOT, DEVICE_PLUGIN_DIR, KUBELET_BASE, CNI_STATE_DIR, CONTAINER_LOGS_DIR):
        if not existed.get(str(path), True):
            shutil.rmtree(path, ignore_errors=True)
    if CONTAINER_LOGS_DIR.is_dir():  # the kubelet's symlinks into our pod logs dir
        for link in CONTAINER_LOGS_DIR.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(str(KUBELET_ROOT) + "/"):
                link.unlink(missing_ok=True)
    if existed.get(str(CNI_STATE_DIR), True):  # kept the dir: remove only our network's cached results
        for cached in (CNI_STATE_DIR / "results").glob(f"{CNI_NETWORK}-*"):
            cached.unlink(missing_ok=True)
    if not existed.get(str(CONTAINERD_RUN_DIR), True):
        shutil.rmtree(CONTAINERD_RUN_DIR, ignore_errors=True)
    return [str(p) for p in (KUBELET_ROOT, CNI_STATE_DIR, CONTAINER_LOGS_DIR, CONTAINERD_RUN_DIR)
            if not existed.get(str(p), True) and p.exists()]
