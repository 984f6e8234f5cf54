"""The ``local`` provider (the embedded default): a real control plane as local processes, simulated GPU node pools.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as processes bound to 127.0.0.1 with TLS and
client-certificate auth (authorization Node,RBAC); KWOK plays the kubelets of the simulated nodes (tier S).  Every
scheduling, admission and quota verdict comes from those real components.

Creating a cluster is a list of named actions (:meth:`LocalCluster.create_actions`, run by the provider kit's
``bring_up``, harness/providers/kit.py, which kind shares), each with its own status line and undo.  Component
argv come from components.py (pure); processes are started and watched by the supervisor (harness/hostproc.py),
which the real node (realnode.py) and the addons' host processes share.

Owns one run directory per cluster (``$AICONFORM_STATE_DIR/<name>`` or ``~/.local/state/aiconform/<name>``) with
pidfiles, logs, PKI and kubeconfigs; ``delete`` stops every process recorded there and removes it.  Must not touch
anything outside its run directory (the real node, when enabled, owns its own host state; see realnode.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from harness import addons
from harness.bins import CONTROL_PLANE, REAL_NODE, BinaryResolver, check_upgrade
from harness.config import Pool, Profile, load_profile, with_kubernetes
from harness.errors import (
    AiconformError,
    ClusterError,
    ClusterNotFound,
    ConfigError,
    KubeError,
    PrivilegeError,
    UnsupportedCapability,
)
from harness.facts import control_plane_facts
from harness.flags import component_settings
from harness.hostproc import Supervisor, check_port_free, free_port
from harness.kube import KubeClient, KubeConfig, write_kubeconfig
from harness.nodes import LABEL_CLUSTER, LABEL_POOL, register_nodes, simulated_node
from harness.pki import Pki
from harness.providers.base import ClusterStatus, Progress, ProviderInfo, ProviderOptions, provider_info, stderr_progress
from harness.providers.common import mark_owner, state_root, validate_cluster_name
from harness.providers.kit import (
    Action,
    bring_up,
    cluster_lock,
    profile_fingerprint,
    read_state,
    tear_down,
    undoing_an_interrupt,
)
from harness.providers.local import components as comp
from harness.providers.local import controlplane
from harness.providers.local.addonsite import LocalNodeSite, LocalSite, undo_recorded

PROVIDER = "local"
STOP_ORDER = ["coredns", "kube-proxy", "realnode-dra", "realnode-plugin", "kubelet", "containerd", "kwok",
              "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
FACTS_TIER_S = frozenset({"simulated-nodes"})
FACTS_TIER_R = FACTS_TIER_S | {"device-plugin"}
"""What a local cluster offers the checks by itself.  Not ``networkpolicy``: the real node's bridge CNI does not
enforce policies; an addon that does (kube-router) adds the fact when the profile installs it."""

__all__ = ["STOP_ORDER", "LocalCluster", "open_cluster"]


UPGRADE_ORDER = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
"""Kubernetes' version-skew order: the apiserver first, then its clients; kubelets after the control plane."""
SURGE_FLAG = "--permit-port-sharing=true"
"""An apiserver started with it is upgraded by surge (new beside old on one port), else by stop and start."""
SURGE_TRIES = 6
"""Surges of one upgrade before falling back to stop and start.  A try loses the loopback race about half the time
(10 upgrades here: 5 won at once, 3 on a later try, 2 lost 3 tries); the loss is seen in a second or two."""
LOOPBACK_RACE = "x509: certificate signed by unknown authority"
"""What the new kube-apiserver logs when its loopback client reached the old process on the shared port."""


def _https_healthz(argv: list[str]) -> bool:
    """GET /healthz of a component serving its own self-signed certificate on its ``--bind-address`` and
    ``--secure-port`` (an address of this machine: the process is ours, its certificate not worth verifying)."""
    import ssl

    flags = dict(a[2:].split("=", 1) for a in argv[1:] if a.startswith("--") and "=" in a)
    host, port = flags.get("bind-address", "127.0.0.1"), flags.get("secure-port", "")

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://{host}:{port}/healthz", timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# -- the provider ---------------------------------------------------------------------------------------------------


class LocalCluster:
    """A cluster of local processes named ``name``.

    Abilities: ``add_nodes`` (simulated nodes of a profile pool), ``load_image`` and ``restart_node`` (the real
    node only; on a cluster without one they raise UnsupportedCapability saying so), ``upgrade_control_plane``.
    """

    def __init__(
        self,
        name: str = "aiconform",
        *,
        root: Path | None = None,
        resolver: BinaryResolver | None = None,
        progress: Progress = stderr_progress,
    ) -> None:
        self.name = validate_cluster_name(name)
        self.root = root or state_root()
        self.dir = self.root / self.name
        self._resolver = resolver
        self.progress = progress
        self.paths = comp.Paths(self.dir)
        self.pki = Pki(self.paths.pki)
        self.procs = Supervisor(self.dir)
        self._profile: Profile | None = None

    # -- paths --
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    def kubeconfig(self) -> Path:
        return self.paths.admin_kubeconfig

    def pidfile(self, component: str) -> Path:
        return self.procs.pidfile(component)

    def logfile(self, component: str) -> Path:
        return self.procs.logfile(component)

    def state(self) -> dict[str, Any] | None:
        return read_state(self.dir)

    # -- status --
    def running_components(self) -> dict[str, int]:
        return self.procs.running()

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

    def status(self) -> ClusterStatus:
        st = self.state()
        running = self.running_components()
        if st is None and not running:
            raise ClusterNotFound(f"no cluster named {self.name!r}")
        recorded = (st or {}).get("components", running)
        return ClusterStatus(
            name=self.name,
            provider=PROVIDER,
            healthy=self.is_up(),
            kubeconfig=str(self.kubeconfig()),
            profile=(st or {}).get("profile", ""),
            tier=(st or {}).get("tier", ""),
            kubernetes_version=(st or {}).get("kubernetes_version", ""),
            server=(st or {}).get("server", ""),
            components={**{c: running.get(c) for c in reversed(STOP_ORDER) if c in recorded},
                        **{c: pid for c, pid in running.items() if c.startswith("addon-")}},
        )

    def info(self) -> ProviderInfo:
        st = self.state()
        if st is None:
            raise ClusterNotFound(f"no local cluster named {self.name!r} is running")
        tier = st.get("tier", "S")
        return provider_info(
            self,
            provider=PROVIDER,
            name=self.name,
            tier=tier,
            facts=(FACTS_TIER_R if tier == "R" else FACTS_TIER_S) | frozenset(st.get("facts", [])),
            kubernetes_version=st.get("kubernetes_version", ""),
            profile=st.get("profile", ""),
            kubeconfig=str(self.kubeconfig()),
            fake="GPUs; simulated nodes are played by KWOK" + ("; the real node's GPUs by fake_gpu_plugin" if tier == "R" else ""),
        )

    def client(self) -> KubeClient:
        return KubeClient(KubeConfig.from_file(self.kubeconfig()))

    # -- abilities ----------------------------------------------------------------------------------------------------

    def add_nodes(self, pool: str, count: int) -> list[str]:
        """AddsNodes: ``count`` more simulated nodes of the profile's pool ``pool``, numbered after the last one;
        returns their names once KWOK has made them Ready."""
        spec = self._pool(pool)
        if count < 1:
            raise ConfigError(f"add_nodes: count must be >= 1, got {count}")
        client = self.client()
        taken = client.list("Node", label_selector=f"{LABEL_POOL}={pool},{LABEL_CLUSTER}={self.name}")["items"]
        indices = [int(s) for n in taken if (s := n["metadata"]["name"].rsplit("-", 1)[-1]).isdigit()]
        first = max(indices, default=-1) + 1
        nodes = [simulated_node(spec, i, self.name) for i in range(first, first + count)]
        register_nodes(client, nodes)
        return [n["metadata"]["name"] for n in nodes]

    def _pool(self, pool: str) -> Pool:
        profile = self._running_profile()
        pools = {p.name: p for p in profile.pools}
        if pool not in pools:
            raise ConfigError(f"add_nodes: profile {profile.name!r} has no pool {pool!r}; its pools: "
                              f"{', '.join(pools) or 'none'}")
        return pools[pool]

    def _running_profile(self) -> Profile:
        """The profile the running cluster was made from: the one this object created it with, else reloaded from
        its file (refused when the file changed since)."""
        st = self.state()
        if st is None:
            raise ClusterNotFound(f"no local cluster named {self.name!r} is running")
        if self._profile is not None and profile_fingerprint(self._profile) == st.get("fingerprint"):
            return self._profile
        source = st.get("profile_source") or ""
        if not source:
            raise ClusterError(f"cluster {self.name!r} was made from an inline profile that is not at hand; "
                               "add nodes through the LocalCluster object that created it")
        # as brought up: `--kubernetes VERSION` (with_kubernetes) set the version the profile file does not name
        profile = with_kubernetes(load_profile(source), st.get("profile_kubernetes") or None)
        if profile_fingerprint(profile) != st.get("fingerprint"):
            raise ClusterError(f"profile {source} changed since cluster {self.name!r} was brought up; its pools "
                               "may no longer be the cluster's")
        return profile

    def load_image(self, archive: Path) -> None:
        """LoadsImages: import an image archive into the real node's containerd (``ctr -n k8s.io images import``).
        A cluster without a real node runs no containers: UnsupportedCapability."""
        from harness.providers.local.realnode import RealNodeHost, load_record

        if load_record(self) is None:
            raise UnsupportedCapability(
                PROVIDER, f"loading images into cluster {self.name!r}: it has no real node (tier S; simulated nodes "
                "run no containers); use a profile with realNode.enabled such as 'local-real'")
        if not archive.is_file():
            raise ConfigError(f"load_image: image archive {archive} does not exist")
        RealNodeHost.attach(self, progress=self.progress).import_image(archive)

    def restart_node(self, node: str) -> None:
        """RestartsNodes: restart the real node's kubelet (simulated nodes have none: UnsupportedCapability)."""
        from harness.providers.local.realnode import restart_node

        restart_node(self, node)

    def upgrade_control_plane(self, version: str) -> None:
        """UpgradesControlPlane: restart kube-apiserver, then kube-controller-manager, then kube-scheduler on
        ``version``'s binaries with the same flags (etcd and its data untouched), then the real node's kubelet, then its kube-proxy.
        Refused in one line: a downgrade, a skipped minor, a version not pinned in versions.toml.  A component
        whose new version does not become healthy is restarted on its old binary and the upgrade stops there
        (the message says which components run which version)."""
        resolver = self._resolver or BinaryResolver(progress=self.progress)
        with cluster_lock(self.root, self.name):
            st = self.state()
            if st is None or not self.is_up():
                raise ClusterNotFound(f"no local cluster named {self.name!r} is up")
            if "argv" not in st:
                raise ClusterError(f"cluster {self.name!r} was brought up before its component flags were recorded; "
                                   "bring it up again to upgrade it")
            current = st["kubernetes_version"]
            target = version.removeprefix("v")
            pinned = (resolver.versions.kubernetes_previous, resolver.versions.kubernetes_default)
            if not check_upgrade(current, target, pinned):
                self.progress(f"cluster {self.name!r} already runs Kubernetes v{current}")
                return
            real = "kubelet" in st.get("components", [])
            proxy = real and "kube-proxy" in self.procs.recorded()
            names = list(UPGRADE_ORDER) + (["kubelet"] if real else []) + (["kube-proxy"] if proxy else [])
            bins = {n: r.path for n, r in resolver.resolve_many(names, kubernetes=target).items()}
            env = {**os.environ, "GOGC": st["gogc"]} if st.get("gogc") else None
            api = self.client()
            probes = {"kube-apiserver": lambda: api.healthz("/readyz"),
                      "kube-controller-manager": lambda: _https_healthz(st["argv"]["kube-controller-manager"]),
                      "kube-scheduler": lambda: _https_healthz(st["argv"]["kube-scheduler"])}
            done: list[str] = []
            for component in UPGRADE_ORDER:
                old = st["argv"][component]
                self.progress(f"upgrading {component} v{current} -> v{target}")
                try:
                    if component == "kube-apiserver" and SURGE_FLAG in old:
                        self._surge_apiserver([str(bins[component]), *old[1:]], env, target, probes[component])
                    else:
                        self._restart_on(component, [str(bins[component]), *old[1:]], env, probes[component])
                except ClusterError as err:
                    self._restart_on(component, old, env, probes[component])
                    raise ClusterError(
                        f"upgrade to v{target} stopped at {component} ({err}); {component} is back on v{current}; "
                        f"upgraded: {', '.join(done) or 'nothing'}") from err
                st["argv"][component] = [str(bins[component]), *old[1:]]
                done.append(component)
                self.state_file.write_text(json.dumps(st, indent=2))
            st["kubernetes_version"] = target
            self.state_file.write_text(json.dumps(st, indent=2))
            if real:
                from harness.providers.local.realnode import RealNodeHost

                self.progress(f"upgrading the real node's kubelet v{current} -> v{target}")
                host = RealNodeHost.attach(self, progress=self.progress)
                host.upgrade_kubelet(bins["kubelet"], target)
                if proxy:
                    host.upgrade_kube_proxy(bins["kube-proxy"], target)
            self.progress(f"cluster {self.name!r} runs Kubernetes v{target}")

    def _surge_apiserver(self, argv: list[str], env: dict[str, str] | None, version: str,
                         probe: Callable[[], bool], timeout: float = 90) -> None:
        """Start the new kube-apiserver beside the old one on the same port (SO_REUSEPORT), wait until a fresh
        connection finds it ready and on ``version``, then stop the old one: the API keeps answering through the
        swap.

        The new process's own loopback client dials that shared port too, and the kernel may hand the connection to
        the old process, whose in-memory loopback certificate the new one does not trust; a post-start hook that
        loses that race (the service IP repair) kills the new process a minute later.  So a new process whose log
        shows the race is started again at once, :data:`SURGE_TRIES` times; after that the old one is stopped and
        the new one started alone (the API is unanswered for those seconds, the upgrade still happens).  A new
        process that never gets ready otherwise is stopped and the old one keeps serving (ClusterError)."""
        surge = "kube-apiserver.surge"
        for attempt in range(1, SURGE_TRIES + 1):
            if self._surge_once(surge, argv, env, version, timeout):
                return
            lost = self.procs.logfile(surge)  # kept for a look; the next try starts a fresh log
            lost.replace(lost.with_name(f"{surge}.lost-{attempt}.log"))
            self.progress(f"the new kube-apiserver's loopback reached the old one on the shared port "
                          f"(try {attempt} of {SURGE_TRIES})")
        self.progress("stopping the old kube-apiserver and starting the new one alone")
        self._restart_on("kube-apiserver", argv, env, probe)

    def _surge_once(self, surge: str, argv: list[str], env: dict[str, str] | None, version: str,
                    timeout: float) -> bool:
        """One surge; False when the new process lost the loopback race (it is stopped again)."""
        self.procs.start(surge, argv, env=env)
        log = self.procs.logfile(surge)

        def lost_race() -> bool:
            try:
                return LOOPBACK_RACE in log.read_text(errors="replace")
            except OSError:
                return False

        def new_one_ready() -> bool:
            if lost_race():
                return True  # settled below
            client = KubeClient.from_kubeconfig(self.kubeconfig())  # a fresh connection: either process may take it
            try:
                return client.server_version() == f"v{version}" and client.healthz("/readyz")
            except AiconformError:
                return False
            finally:
                client.close()

        try:
            self.procs.wait_ready(surge, new_one_ready, timeout=timeout, what=f"kube-apiserver v{version}")
        except ClusterError:
            self.procs.stop(surge)
            if lost_race():
                return False
            raise
        if lost_race():
            self.procs.stop(surge)
            return False
        self.procs.stop("kube-apiserver")
        # the new process takes the component's name: its pidfile, and its log (the old log kept beside it)
        old_log = self.procs.logfile("kube-apiserver")
        if old_log.exists():
            old_log.replace(old_log.with_name(f"kube-apiserver.before-v{version}.log"))
        log.replace(old_log)
        self.procs.pidfile(surge).replace(self.procs.pidfile("kube-apiserver"))
        api = self.client()
        try:
            self.procs.wait_ready("kube-apiserver", lambda: api.healthz("/readyz"), timeout=timeout,
                                  what=f"kube-apiserver v{version} alone")
        finally:
            api.close()
        return True

    def _restart_on(self, component: str, argv: list[str], env: dict[str, str] | None,
                    probe: Callable[[], bool]) -> None:
        self.procs.stop(component)
        self.procs.start(component, argv, env=env)
        self.procs.wait_ready(component, probe, timeout=90)

    def ensure_addons(self, names: Sequence[str]) -> list[str]:
        """InstallsAddons: make sure the addons ``names`` (harness.addons registry) are installed on this running
        cluster, installing the missing ones in order through the one installer (pods on the real node at tier R,
        host processes at tier S); returns the cluster facts they add.  Idempotent: an addon already installed
        (by the profile or an earlier call) whose host process or workload still runs is left alone."""
        chosen = [addons.lookup(n) for n in names]  # unknown names: one line before anything happens
        # fixtures of parallel suites may ask at once: the second waits, then finds it
        with cluster_lock(self.root, self.name, wait=300):
            st = self.state()
            if st is None or not self.is_up():
                raise ClusterNotFound(f"no local cluster named {self.name!r} is up")
            real = st.get("tier") == "R"
            for a in chosen:
                if a.needs_real_node and not real:
                    raise ConfigError(f"addon {a.name} runs on the real node; cluster {self.name!r} has none "
                                      "(tier S); use a profile with realNode.enabled such as 'local-real'")
            addons.preflight(chosen)
            have = [n for n in st.get("addons", []) if self._addon_running(addons.lookup(n), real)]
            todo = [a.name for a in chosen if a.name not in have]
            if not todo:
                return []
            added: list[str] = []
            for name in todo:  # recorded one by one: a later failure leaves the earlier ones installed and known
                facts = self._install_addons((name,), real=real, already=tuple(have),
                                             pools=self._profile.pools if self._profile is not None else (),
                                             time_compression=(self._profile.control_plane.time_compression
                                                               if self._profile is not None else None))
                have.append(name)
                added += [f for f in facts if f not in added]
                st["addons"] = list(have)
                st["facts"] = [*st.get("facts", []), *[f for f in facts if f not in st.get("facts", [])]]
                self.state_file.write_text(json.dumps(st, indent=2))
            return added

    def _addon_running(self, addon: addons.Addon, real: bool) -> bool:
        if not real:
            return self.procs.alive(addons.host_process_name(addon))
        if addon.workload is None:  # image or manifests only: nothing runs to be found; loading and applying again is harmless
            return False
        kind, namespace, name = addon.workload
        with self.client() as client:
            try:
                client.get(kind, name, namespace)
                return True
            except KubeError:
                return False

    def addon_site(self, *, real: bool, pools: Sequence[Pool] = (), recorded: Sequence[str] = (),
                   resolver: BinaryResolver | None = None, record: bool = True,
                   time_compression: float | None = None) -> LocalSite:
        """This cluster as an addon site (harness/addons/site.py): host processes under its supervisor, and at tier
        R (``real``) its real node's containerd; ``recorded`` names the addons ``addons.json`` lists;
        ``time_compression`` the profile's (the addons' timers scale by it)."""
        resolver = resolver or self._resolver or BinaryResolver(progress=self.progress)
        if not real:
            return LocalSite(self, resolver=resolver, pools=pools, recorded=recorded, record=record,
                             time_compression=time_compression)
        from harness.contract import REAL_NODE_LABEL
        from harness.providers.local.realnode import load_record

        port = (load_record(self) or {}).get("metrics_port")  # the fake GPU plugin's metrics
        return LocalNodeSite(self, resolver=resolver, load_image=self.load_image, pools=pools, recorded=recorded,
                             record=record, time_compression=time_compression, node_selector={REAL_NODE_LABEL: "true"},
                             host_metrics={"fake-gpu-plugin": f"127.0.0.1:{port}"} if port else {})

    def _install_addons(self, names: Sequence[str], *, real: bool, already: Sequence[str] = (),
                        pools: Sequence[Pool] = (), time_compression: float | None = None) -> list[str]:
        """Install ``names`` through harness.addons; host undo commands go to ``addons.json`` (run at teardown)."""
        site = self.addon_site(real=real, pools=pools, recorded=[*already, *names], time_compression=time_compression)
        return addons.install([addons.lookup(n) for n in names], site)

    # -- create -------------------------------------------------------------------------------------------------------

    def create(self, profile: Profile) -> Path:
        """Bring the cluster up (the kit's bring_up: lock, same profile while up a no-op, leftovers removed).
        Ctrl-C or a failure undoes what was done (the caller sees the exception)."""
        kubeconfig = bring_up(self, PROVIDER, profile, lambda fp: self._plan(profile, fp))
        self._profile = profile
        return kubeconfig

    def _plan(self, profile: Profile, fingerprint: str) -> list[Action]:
        """The checks that need no process (root, host packages, addresses, ports, flags against the binaries),
        then the actions."""
        if profile.real_node.enabled and os.geteuid() != 0:
            raise PrivilegeError(
                f"profile {profile.name!r} adds a real kubelet node (tier R), which needs root; "
                "run as root or use a tier S profile such as 'default'"
            )
        if profile.real_node.enabled:  # packages, address ranges, one real node per host: before anything starts
            from harness.providers.local import netsvc, realnode

            crashed = realnode.crashed_holder(self)
            if crashed is not None:  # what `aiconform down` of that cluster would do, before the checks it would fail
                self.progress(f"the real node of cluster {crashed.name!r} ({crashed}) crashed: none of its daemons "
                              "runs; undoing what it left on this host first")
                LocalCluster(crashed.name, root=crashed.parent, progress=self.progress).teardown()
            realnode.preflight(self)
            netsvc.preflight(profile.control_plane, real_pod_cidr=realnode.POD_CIDR,
                             node_net=f"{realnode.NODE_IP}/{realnode.NODE_PREFIX}",
                             exclude_links=(realnode.VETH, realnode.VETH_PEER, realnode.BRIDGE))
        if profile.addons:
            addons.preflight([addons.lookup(n) for n in profile.addons])
        if profile.control_plane.apiserver_port:
            check_port_free(profile.control_plane.apiserver_port, "controlPlane.apiserverPort")
        settings = self.checked_settings(profile)  # bad gates or flags: one line, before anything starts
        return self.create_actions(profile, settings, fingerprint)

    def settings_for(self, profile: Profile) -> comp.Settings:
        """Ports (free ones unless the profile fixes the apiserver's), paths and versions for a new cluster."""
        cp = profile.control_plane
        version = cp.kubernetes_version or (self._resolver or BinaryResolver()).versions.kubernetes_default
        ports = comp.Ports(etcd=free_port(), etcd_peer=free_port(), apiserver=cp.apiserver_port or free_port(),
                           controller_manager=free_port(), scheduler=free_port(), kwok=free_port())
        node_ip = None
        if profile.real_node.enabled:  # kube-apiserver binds to and advertises the real node's own address
            from harness.providers.local.realnode import NODE_IP

            node_ip = NODE_IP
        return comp.Settings(paths=self.paths, ports=ports, control_plane=cp, kubernetes_version=version,
                             node_ip=node_ip)

    def checked_settings(self, profile: Profile) -> comp.Settings:
        """settings_for, plus the profile's feature gates and component flags checked against the very binaries
        that will run (built now on first use): ConfigError naming the field and the component otherwise."""
        addons.check_profile(profile, provider=PROVIDER, real_nodes=profile.real_node.enabled, host_processes=True)
        s = self.settings_for(profile)
        resolver = self._resolver or BinaryResolver(progress=self.progress)
        names = list(CONTROL_PLANE) + (["kubelet"] if profile.real_node.enabled else [])
        bins = {n: r.path for n, r in resolver.resolve_many(names, kubernetes=s.kubernetes_version).items()}
        checked = component_settings(profile, bins, s.kubernetes_version, controlplane.HARNESS_FLAGS)
        return dataclasses.replace(s, components=checked)

    def create_actions(self, profile: Profile, s: comp.Settings, fingerprint: str) -> list[Action]:
        """The bring-up, as named actions in order (see harness/providers/kit.py for how they run and undo)."""
        up = _BringUp(self, profile, s, fingerprint)
        stop = up.stopper
        real = profile.real_node.enabled
        n_sim = sum(p.nodes for p in profile.pools)
        actions = [
            Action("run-dir", f"run directory {self.dir}", up.make_run_dir, up.remove_run_dir),
            Action("binaries", f"Kubernetes v{s.kubernetes_version} binaries", up.resolve_binaries),
            Action("pki", "CA, certificates and kubeconfigs", up.write_pki, up.remove_pki),
        ]
        if real:
            from harness.providers.local.realnode import BRIDGE, NODE_IP, NODE_PREFIX, VETH

            actions.append(Action("host-network", f"the real node's veth {VETH} ({NODE_IP}/{NODE_PREFIX}) and CNI "
                                  f"bridge {BRIDGE} config", up.prepare_real_node_host, up.teardown_real_node))
        actions += [
            Action("etcd", f"etcd on {s.etcd_url}", up.start_etcd, up.remove_etcd),
            Action("apiserver", f"kube-apiserver v{s.kubernetes_version} on {s.server}", up.start_apiserver,
                   stop("kube-apiserver")),
            Action("controller-manager", "kube-controller-manager", up.start_controller_manager,
                   stop("kube-controller-manager")),
            Action("scheduler", "kube-scheduler", up.start_scheduler, stop("kube-scheduler")),
            Action("kwok", "KWOK (the kubelets of simulated nodes)", up.start_kwok, stop("kwok")),
            Action("service-account", "waiting for the default service account (the token controller)",
                   up.wait_default_service_account),
        ]
        if real:
            actions.append(Action("real-node", "kubelet + containerd + fake GPU plugin", up.start_real_node,
                                  up.teardown_real_node))
        actions += [
            Action("simulated-nodes", f"registering {n_sim} simulated nodes in {len(profile.pools)} pools",
                   up.register_simulated_nodes),
        ]
        from harness.config import dra_configs

        if dra_configs(profile.pools, profile.real_node):
            actions.append(Action("dra", "DRA DeviceClasses and simulated nodes' ResourceSlices", up.install_dra))
        if profile.addons:  # their host changes are undone by the run dir's teardown (addons.json)
            actions.append(Action("addons", f"installing {', '.join(profile.addons)}", up.install_addons))
        actions += [
            Action("state", f"recording the cluster in {self.state_file}", up.write_state,
                   lambda: self.state_file.unlink(missing_ok=True)),
        ]
        return actions

    # -- components used by the actions ------------------------------------------------------------------------------

    def write_pki_and_kubeconfigs(self, s: comp.Settings) -> None:
        self.pki.create_ca()
        self.pki.create_service_account_key()
        self.pki.create_front_proxy()
        self.pki.issue("apiserver", "kube-apiserver", server=True, dns=comp.APISERVER_SANS_DNS,
                       ips=controlplane.apiserver_serving_ips(s.control_plane.service_cidr, s.node_ip))
        self.pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", org="system:masters", client=True)
        identities = {
            "admin": ("aiconform-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", None),
            "scheduler": ("system:kube-scheduler", None),
            "kwok": ("aiconform-kwok", "system:masters"),
        }
        for stem, (cn, org) in identities.items():
            pair = self.pki.issue(f"{stem}-client", cn, org=org, client=True)
            path = self.kubeconfig() if stem == "admin" else s.paths.component_kubeconfig(stem)
            write_kubeconfig(path, s.server, self.pki.ca.cert, pair.cert, pair.key, self.name)

    # -- delete -------------------------------------------------------------------------------------------------------

    def delete(self) -> bool:
        return tear_down(self)

    def teardown(self, keep_logs_to: Path | None = None) -> None:
        """Stop everything the run directory records (the real node's host changes first), then remove it."""
        if (self.dir / "realnode.json").exists():
            from harness.providers.local.realnode import teardown_host

            teardown_host(self, progress=self.progress)
        self._undo_addons()
        from harness.providers.local.netsvc import remove_created_nft_tables

        for item in remove_created_nft_tables(self.dir):  # after the addons' undo, which may create empty ones
            self.progress(f"warning: left {item}")
        recorded = self.procs.recorded()
        for name in [c for c in recorded if c not in STOP_ORDER] + [c for c in STOP_ORDER if c in recorded]:
            if self.procs.stop(name):
                self.progress(f"stopped {name}")
        if keep_logs_to is not None and (self.dir / "logs").is_dir():
            shutil.rmtree(keep_logs_to, ignore_errors=True)
            shutil.copytree(self.dir / "logs", keep_logs_to)
            self.progress(f"logs of the failed bring-up kept in {keep_logs_to}")
        shutil.rmtree(self.dir, ignore_errors=True)

    def _undo_addons(self) -> None:
        """Host changes the addons' pods made, undone after their containers are gone (nothing re-creates them)."""
        addons.undo_host_changes(undo_recorded(self.dir), self.progress)

    def collect_logs(self, dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for log in sorted((self.dir / "logs").glob("*.log")):
            target = dest / log.name
            shutil.copyfile(log, target)
            out.append(target)
        return out


class _BringUp:
    """What the actions of one ``create`` share: the profile, settings, resolved binaries, what has started."""

    def __init__(self, cluster: LocalCluster, profile: Profile, settings: comp.Settings, fingerprint: str) -> None:
        self.cluster = cluster
        self.profile = profile
        self.s = settings
        self.fingerprint = fingerprint
        self.bins: dict[str, Path] = {}
        self.components: list[str] = []
        self.argv: dict[str, list[str]] = {}
        self.tier = "S"
        self.facts: list[str] = []
        self.env = comp.go_env(settings, os.environ)
        self._host: Any = None  # realnode.RealNodeHost, imported only for a real node

    @property
    def procs(self) -> Supervisor:
        return self.cluster.procs

    def stopper(self, component: str) -> Callable[[], None]:
        """The undo of starting ``component``."""

        def stop() -> None:
            self.procs.stop(component)

        return stop

    def make_run_dir(self) -> None:
        mark_owner(self.cluster.dir, PROVIDER)  # first, so `down` finds this cluster whatever happens next
        for sub in ("pids", "logs", "etcd", "kubeconfigs"):
            (self.cluster.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.cluster.dir / "profile.json").write_text(json.dumps(asdict(self.profile), indent=2, default=str))

    def remove_run_dir(self) -> None:
        """The last undo: stop whatever is still recorded, keep the logs beside the run dir (unless the user
        interrupted the bring-up: then nothing stays), remove it."""
        keep = None if undoing_an_interrupt() else self.cluster.root / f"{self.cluster.name}.failed-logs"
        self.cluster.teardown(keep_logs_to=keep)

    def resolve_binaries(self) -> None:
        resolver = self.cluster._resolver or BinaryResolver(progress=self.cluster.progress)
        names = list(CONTROL_PLANE) + (list(REAL_NODE) if self.profile.real_node.enabled else [])  # + kube-proxy, coredns
        t0 = time.monotonic()
        resolved = resolver.resolve_many(names, kubernetes=self.s.kubernetes_version)
        self.bins = {n: r.path for n, r in resolved.items()}
        if time.monotonic() - t0 > 1:
            self.cluster.progress(f"binaries ready ({time.monotonic() - t0:.0f}s)")

    def write_pki(self) -> None:
        self.cluster.write_pki_and_kubeconfigs(self.s)

    def remove_pki(self) -> None:
        shutil.rmtree(self.s.paths.pki, ignore_errors=True)
        shutil.rmtree(self.s.paths.kubeconfigs, ignore_errors=True)
        self.s.paths.admin_kubeconfig.unlink(missing_ok=True)

    def _start(self, component: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.procs.start(component, argv, env=env)
        self.components.append(component)
        self.argv[component] = argv

    def start_etcd(self) -> None:
        self._start("etcd", comp.etcd_argv(self.bins["etcd"], self.s))
        url = f"{self.s.etcd_url}/health"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    return b"true" in resp.read()
            except (urllib.error.URLError, OSError):
                return False

        self.procs.wait_ready("etcd", healthy, timeout=30)

    def remove_etcd(self) -> None:
        self.procs.stop("etcd")
        shutil.rmtree(self.s.paths.etcd_data, ignore_errors=True)

    def start_apiserver(self) -> None:
        self._start("kube-apiserver", comp.apiserver_argv(self.bins["kube-apiserver"], self.s), env=self.env)
        client = self.cluster.client()
        self.procs.wait_ready("kube-apiserver", lambda: client.healthz("/readyz"), timeout=60)

    def start_controller_manager(self) -> None:
        argv = comp.controller_manager_argv(self.bins["kube-controller-manager"], self.s)
        self._start("kube-controller-manager", argv, env=self.env)

    def start_scheduler(self) -> None:
        self.s.paths.scheduler_config.write_text(yaml.safe_dump(comp.scheduler_config(self.s)))
        self._start("kube-scheduler", comp.scheduler_argv(self.bins["kube-scheduler"], self.s), env=self.env)

    def start_kwok(self) -> None:
        self._start("kwok", comp.kwok_argv(self.bins["kwok"], self.s), env=self.env)

    def wait_default_service_account(self) -> None:
        def failure(_state: dict[str, Any]) -> str | None:
            return self.procs.died("kube-controller-manager")

        self.cluster.client().wait_for(
            "ServiceAccount", namespace="default", name="default", condition=lambda st: bool(st), failure=failure,
            timeout=60, what="the default service account (kube-controller-manager's token controller)")

    def prepare_real_node_host(self) -> None:
        from harness.providers.local.netsvc import NetSpec
        from harness.providers.local.realnode import RealNodeHost

        cp = self.profile.control_plane
        net = NetSpec(service_cidr=cp.service_cidr, sim_pod_cidr=cp.pod_cidr, kube_proxy=self.bins["kube-proxy"],
                      coredns=self.bins["coredns"])
        self._host = RealNodeHost(self.cluster, self.profile.real_node, self.bins["kubelet"],
                                  progress=self.cluster.progress,
                                  feature_gates=self.s.components.gates("kubelet"),
                                  extra_args=self.s.components.args("kubelet"), net=net,
                                  containerd=self.bins["containerd"])
        self._host.prepare()

    def start_real_node(self) -> None:
        self.components += self._host.start()
        self.tier = "R"

    def teardown_real_node(self) -> None:
        from harness.providers.local.realnode import teardown_host

        teardown_host(self.cluster, progress=self.cluster.progress)

    def register_simulated_nodes(self) -> None:
        nodes = [simulated_node(p, i, self.cluster.name) for p in self.profile.pools for i in range(p.nodes)]
        register_nodes(self.cluster.client(), nodes, timeout=120)

    def install_dra(self) -> None:
        from harness import dra

        self.facts += [f for f in dra.install(self.cluster.client(), self.profile, progress=self.cluster.progress)
                       if f not in self.facts]

    def install_addons(self) -> None:
        self.facts += [f for f in self.cluster._install_addons(
            self.profile.addons, real=self.profile.real_node.enabled, pools=self.profile.pools,
            time_compression=self.profile.control_plane.time_compression)
                       if f not in self.facts]

    def write_state(self) -> None:
        state = {
            "name": self.cluster.name,
            "provider": PROVIDER,
            "profile": self.profile.name,
            "profile_source": self.profile.source,
            "profile_kubernetes": self.profile.control_plane.kubernetes_version,
            "fingerprint": self.fingerprint,
            "kubernetes_version": self.s.kubernetes_version,
            "tier": self.tier,
            "ports": self.s.ports.as_dict(),
            "components": self.components,
            "facts": self.facts + [f for f in control_plane_facts(self.s.components.feature_gates,
                                                                  self.s.components.runtime_config)
                                   if f not in self.facts],
            "addons": list(self.profile.addons),
            "argv": self.argv,
            "gogc": (self.env or {}).get("GOGC"),
            "server": self.s.server,
            "created": time.time(),
        }
        self.cluster.state_file.write_text(json.dumps(state, indent=2))


def open_cluster(name: str, options: ProviderOptions) -> LocalCluster:
    """Registry entry point."""
    if options.kubeconfig is not None:
        raise ConfigError("provider 'local' makes its own clusters; a kubeconfig is for provider 'existing'")
    return LocalCluster(name, root=options.root, progress=options.progress)
