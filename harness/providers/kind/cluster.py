"""The ``kind`` provider: a cluster of kind nodes (Docker containers of the offline node image), tier R.

Bring-up is a list of named actions run by the provider kit (harness/providers/kit.py, which local shares): the
Docker engine (the user's where one answers, else a harness-managed dockerd: engine.py), the node image (built or
found in the engine), ``kind create cluster`` with the generated config (kind is driven through its CLI), pod
networking (network.py), the fake GPU stack as a DaemonSet (gpustack.py: the plugin image built here, ``kind
load``-ed into the GPU workers), and the profile's addons
(through :class:`KindSite`: pods on the kind nodes; a kind cluster runs no host process).  A failure or Ctrl-C undoes
what ran.

Owns one run directory ``<state root>/<name>`` (owner record, state.json, kind config, kubeconfig); ``delete`` runs
``kind delete cluster`` and removes that directory, nothing else (the engine, the kind network and the node image
stay).  Abilities: ``load_image`` (``kind load image-archive``), ``ensure_addons`` (pods on the kind nodes).  No
``upgrade_control_plane``: a kind cluster's control plane is fixed by its node image; ``aiconform upgrade`` says so.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import docker.errors
import yaml

from fake_gpu_plugin.config import InventoryConfig
from harness import addons
from harness.bins import BinaryResolver
from harness.config import Pool, Profile
from harness.contract import REAL_NODE_LABEL
from harness.errors import ClusterError, ClusterNotFound, ConfigError, KubeError
from harness.kube import KubeClient, KubeConfig, Obj
from harness.providers.base import ClusterStatus, Progress, ProviderInfo, ProviderOptions, provider_info, stderr_progress
from harness.providers.common import mark_owner, state_root, validate_cluster_name
from harness.providers.kind import gpustack, network
from harness.providers.kind.engine import Engine, ensure_engine, kind_command
from harness.providers.kind.kindconfig import control_plane_node_name, kind_config, worker_node_names
from harness.providers.kind.nodeimage import build_node_image
from harness.providers.kind.profile import kind_spec
from harness.providers.kit import Action, bring_up, cluster_lock, read_state, tear_down

PROVIDER = "kind"
NODES_READY_TIMEOUT = 180.0
DNS_READY_TIMEOUT = 120.0
CREATE_TIMEOUT = 600.0
NO_UPGRADE = ("a kind cluster has no control-plane upgrade path (its control plane is fixed by its node image); "
              "create a new cluster on the other version, or upgrade a 'local' cluster")


def gpu_specs(cluster: str, profile: Profile) -> dict[str, InventoryConfig]:
    """Node name → GPU spec of every worker with GPUs (kind names workers in profile order)."""
    spec = kind_spec(profile)
    workers = spec.workers if spec is not None else ()
    names = worker_node_names(cluster, len(workers))
    return {name: w.gpu for name, w in zip(names, workers, strict=True) if w.gpu is not None}


class KindCluster:
    """The kind cluster named ``name`` (kind's cluster name is the same)."""

    provider_name = PROVIDER
    why_not = {"upgrade_control_plane": NO_UPGRADE}
    """Abilities a kind cluster lacks, and why (base.unsupported puts the reason into the one-line error)."""

    def __init__(self, name: str = "aiconform", *, root: Path | None = None, progress: Progress = stderr_progress,
                 resolver: BinaryResolver | None = None) -> None:
        self.name = validate_cluster_name(name)
        self.root = root or state_root()
        self.dir = self.root / self.name
        self.progress = progress
        self._resolver = resolver
        self._engine: Engine | None = None

    # -- paths and state --
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def state(self) -> dict[str, Any] | None:
        return read_state(self.dir)

    def resolver(self) -> BinaryResolver:
        if self._resolver is None:
            self._resolver = BinaryResolver(progress=self.progress)
        return self._resolver

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = ensure_engine(progress=self.progress)
        return self._engine

    def kind_binary(self) -> Path:
        return self.resolver().resolve("kind").path

    def client(self) -> KubeClient:
        return KubeClient(KubeConfig.from_file(self.kubeconfig()))

    # -- status --
    def is_up(self) -> bool:
        if self.state() is None or not self.kubeconfig().is_file():
            return False
        try:
            with KubeClient.from_kubeconfig(self.kubeconfig(), None) as client:
                return client.healthz()
        except KubeError:
            return False

    def status(self) -> ClusterStatus:
        st = self.state()
        if st is None:
            raise ClusterNotFound(f"no cluster named {self.name!r}")
        return ClusterStatus(name=self.name, provider=PROVIDER, healthy=self.is_up(), kubeconfig=str(self.kubeconfig()),
                             profile=st.get("profile", ""), tier="R",
                             kubernetes_version=st.get("kubernetes_version", ""), server=st.get("server", ""),
                             components=self._node_pids(st.get("nodes", [])),
                             notes={"engine": st.get("engine", "") or "(not recorded)"})

    def _node_pids(self, nodes: list[str]) -> dict[str, int | None]:
        """Each node container's init pid on this host (None: not running)."""
        pids: dict[str, int | None] = {n: None for n in nodes}
        try:
            for node in self.engine().client.containers.list(
                    filters={"label": f"io.x-k8s.kind.cluster={self.name}"}):
                if node.name in pids:
                    pids[node.name] = int(node.attrs.get("State", {}).get("Pid") or 0) or None
        except (ClusterError, docker.errors.DockerException):
            pass
        return pids

    def info(self) -> ProviderInfo:
        st = self.state()
        if st is None:
            raise ClusterNotFound(f"no kind cluster named {self.name!r} is running")
        return provider_info(self, provider=PROVIDER, name=self.name, tier="R", facts=frozenset(st.get("facts", [])),
                             kubernetes_version=st.get("kubernetes_version", ""), profile=st.get("profile", ""),
                             kubeconfig=str(self.kubeconfig()),
                             fake="GPUs: fake_gpu_plugin as a DaemonSet on the kind workers (nodes are Docker "
                                  "containers of a node image built here)")

    # -- abilities --
    def load_image(self, archive: Path) -> None:
        """LoadsImages: ``kind load image-archive`` into every node."""
        if not archive.is_file():
            raise ConfigError(f"load_image: image archive {archive} does not exist")
        if self.state() is None:
            raise ClusterNotFound(f"no kind cluster named {self.name!r}")
        kind_command(self.kind_binary(), self.engine(), "load", "image-archive", str(archive), "--name", self.name)

    def ensure_addons(self, names: Sequence[str]) -> list[str]:
        """InstallsAddons: install the addons ``names`` this running cluster lacks, in order, as pods on its nodes
        (the one installer, through :class:`KindSite`); returns the cluster facts they add.  An addon the profile
        or an earlier call installed (``state.json``) is left alone."""
        chosen = [addons.lookup(n) for n in names]  # unknown names: one line before anything happens
        with cluster_lock(self.root, self.name, wait=300):  # parallel suites' fixtures: the second waits, then finds it
            st = self.state()
            if st is None or not self.is_up():
                raise ClusterNotFound(f"no kind cluster named {self.name!r} is up")
            have = list(st.get("addons", []))
            added: list[str] = []
            for addon in [a for a in chosen if a.name not in have]:  # recorded one by one, as local does
                facts = addons.install([addon], KindSite(self))
                have.append(addon.name)
                added += [f for f in facts if f not in added]
                st["addons"] = list(have)
                st["facts"] = sorted({*st.get("facts", []), *facts})
                self.state_file.write_text(json.dumps(st, indent=2))
            return added

    # -- create / delete --
    def create(self, profile: Profile) -> Path:
        if profile.provider != PROVIDER or kind_spec(profile) is None:
            raise ConfigError(f"profile {profile.name!r} is for provider {profile.provider!r}, not kind")
        addons.check_profile(profile, provider=PROVIDER, real_nodes=True, host_processes=False)
        return bring_up(self, PROVIDER, profile, lambda fp: _Bringup(self, profile, fp).actions())

    def delete(self) -> bool:
        return tear_down(self)

    def teardown(self) -> None:
        self.delete_kind_cluster()
        shutil.rmtree(self.dir, ignore_errors=True)

    def delete_kind_cluster(self) -> None:
        engine = self.engine()
        if engine.client.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={self.name}"}):
            self.progress(f"deleting kind cluster {self.name!r}")
            kind_command(self.kind_binary(), engine, "delete", "cluster", "--name", self.name,
                         "--kubeconfig", str(self.dir / "kind-kubeconfig.discard"), timeout=300)

    def collect_logs(self, dest: Path) -> list[Path]:
        """Per node: the node container's own log (systemd, kind's entrypoint) and the journals of the kubelet and
        containerd, read through the Docker SDK."""
        dest.mkdir(parents=True, exist_ok=True)
        out: list[Path] = []
        try:
            nodes = self.engine().client.containers.list(
                all=True, filters={"label": f"io.x-k8s.kind.cluster={self.name}"})
        except (ClusterError, docker.errors.DockerException) as err:
            self.progress(f"warning: cannot list the nodes of {self.name!r}: {err}")
            return out
        for node in nodes:
            try:
                target = dest / f"{node.name}.log"
                target.write_bytes(node.logs())
                out.append(target)
                if node.status != "running":
                    continue
                for unit in ("kubelet", "containerd"):
                    res = node.exec_run(["journalctl", "--no-pager", "-o", "short-precise", "-u", unit])
                    target = dest / f"{node.name}-{unit}.log"
                    target.write_bytes(res.output if isinstance(res.output, bytes) else b"")
                    out.append(target)
            except docker.errors.DockerException as err:
                self.progress(f"warning: logs of {node.name}: {err}")
        return out


class _Bringup:
    """The actions of one ``create`` and what they hand each other."""

    def __init__(self, cluster: KindCluster, profile: Profile, fingerprint: str) -> None:
        self.cluster = cluster
        self.profile = profile
        self.fingerprint = fingerprint
        self.kind_spec = kind_spec(profile)
        assert self.kind_spec is not None
        self.node_image = ""
        self.kubernetes = ""
        self.etcd_tag = ""
        self.coredns_tag = ""
        self.facts: list[str] = []
        self.gpus = gpu_specs(cluster.name, profile)
        self._plugin_load: Future[str] | None = None
        """``kind load`` of the plugin image, started as soon as the nodes exist (it overlaps the network step)."""
        self.nodes = [control_plane_node_name(cluster.name), *worker_node_names(cluster.name,
                                                                                 len(self.kind_spec.workers))]

    def actions(self) -> list[Action]:
        c = self.cluster
        acts = [
            Action("engine", "Docker engine: yours where one answers, else aiconform's own dockerd (started if it "
                   "is not running)", self.start_engine),
            Action("run-dir", f"owner record in {c.dir}", self.make_run_dir, self.remove_run_dir),
            Action("node-image", "offline node image: build, or find it in the engine", self.resolve_node_image),
            Action("kind", f"kind create cluster ({len(self.nodes)} nodes)", self.create_kind, self.delete_kind),
            Action("network", "CNI config per node (ptp + host-local) and routes between nodes; nodes Ready, "
                   "cluster DNS serving",
                   self.pod_network, self.wait_plugin_load),
        ]
        if self.gpus:
            acts.append(Action("gpu", f"fake GPU plugin DaemonSet on {len(self.gpus)} worker(s)", self.gpu_stack))
        if self.profile.addons:
            acts.append(Action("addons", ", ".join(self.profile.addons), self.install_addons))
        acts.append(Action("state", "write state.json", self.write_state))
        return acts

    def start_engine(self) -> None:
        engine = self.cluster.engine()  # no Docker: one line before anything is recorded
        self.cluster.progress(f"  kind nodes run on {engine.description}")

    def make_run_dir(self) -> None:
        mark_owner(self.cluster.dir, PROVIDER)

    def remove_run_dir(self) -> None:
        shutil.rmtree(self.cluster.dir, ignore_errors=True)

    def resolve_node_image(self) -> None:
        c = self.cluster
        version = self.profile.control_plane.kubernetes_version or c.resolver().versions.kubernetes_default
        if self.kind_spec is not None and self.kind_spec.node_image:
            versions = c.resolver().versions
            self.node_image = self.kind_spec.node_image
            self.kubernetes = version
            self.etcd_tag = f"v{versions.component('etcd').version}"
            self.coredns_tag = f"v{versions.component('coredns').version}"
            c.progress(f"  node image {self.node_image} (the profile's own; not built or tested here)")
            return
        img = build_node_image(c.engine(), version, resolver=c.resolver(), progress=c.progress)
        self.node_image, self.kubernetes = img.ref, img.kubernetes
        self.etcd_tag, self.coredns_tag = img.etcd_tag, img.coredns_tag

    def create_kind(self) -> None:
        c = self.cluster
        config = kind_config(self.profile, node_image=self.node_image, etcd_tag=self.etcd_tag,
                             coredns_tag=self.coredns_tag)
        path = c.dir / "kind-config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        kind_command(c.kind_binary(), c.engine(), "create", "cluster", "--name", c.name, "--config", str(path),
                     "--kubeconfig", str(c.kubeconfig()), timeout=CREATE_TIMEOUT)

    def delete_kind(self) -> None:
        self.cluster.delete_kind_cluster()

    def load_plugin_image(self) -> str:
        """Build (or find) the plugin image and ``kind load`` it into the GPU workers; returns its name."""
        from harness.images import registry

        c = self.cluster
        t0 = time.monotonic()
        built = registry.build("fake-gpu-plugin", c.progress)
        kind_command(c.kind_binary(), c.engine(), "load", "image-archive", str(built.archive), "--name", c.name,
                     "--nodes", ",".join(sorted(self.gpus)))
        c.progress(f"  {built.ref} loaded into {', '.join(sorted(self.gpus))} ({time.monotonic() - t0:.1f}s)")
        return built.ref

    def pod_network(self) -> None:
        c = self.cluster
        if self.gpus:  # the nodes exist: load the plugin image meanwhile (gpu_stack waits for it)
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kind-load")
            self._plugin_load = pool.submit(self.load_plugin_image)
            pool.shutdown(wait=False)
        with c.client() as client:
            def addressed(node: Obj) -> bool:
                return bool(node.get("spec", {}).get("podCIDR")) and _internal_ip(node) != ""

            found = client.wait_all("Node", self.nodes, addressed, timeout=NODES_READY_TIMEOUT,
                                    what="kind nodes registered with a podCIDR")
            nets = [network.NodeNet(n, _internal_ip(found[n]), found[n]["spec"]["podCIDR"]) for n in self.nodes]
            network.configure(c.engine(), nets)
            client.wait_all("Node", self.nodes, _node_ready, timeout=NODES_READY_TIMEOUT, what="kind nodes Ready")
            # CoreDNS starts only once the pod network exists: a pod created right after `up` must resolve names,
            # so the step ends when the kube-dns Service has a ready endpoint (what kube-proxy programs).
            client.wait_for("EndpointSlice", namespace="kube-system",
                            label_selector="kubernetes.io/service-name=kube-dns",
                            condition=_has_ready_endpoint, timeout=DNS_READY_TIMEOUT,
                            what="a ready CoreDNS endpoint behind the kube-dns Service")

    def gpu_stack(self) -> None:
        c = self.cluster
        ref = self._plugin_load.result() if self._plugin_load is not None else self.load_plugin_image()
        t0 = time.monotonic()
        with c.client() as client:
            gpustack.deploy(client, self.gpus, ref)
            gpustack.wait_ready(client, self.gpus)
        c.progress(f"  every GPU worker advertises its GPUs and carries its plugin's labels ({time.monotonic() - t0:.1f}s)")
        self.facts.append("device-plugin")

    def wait_plugin_load(self) -> None:
        """Undo of the network step: a load still running finishes (or fails) before the cluster is deleted."""
        if self._plugin_load is not None:
            wait([self._plugin_load])

    def install_addons(self) -> None:
        chosen = [addons.lookup(n) for n in self.profile.addons]
        self.facts += addons.install(chosen, KindSite(self.cluster, self.profile.pools))

    def write_state(self) -> None:
        c = self.cluster
        server = ""
        try:
            server = str(KubeConfig.from_file(c.kubeconfig()).server)
        except (KubeError, OSError, AttributeError):
            pass
        state = {"name": c.name, "provider": PROVIDER, "profile": self.profile.name,
                 "profile_source": self.profile.source, "fingerprint": self.fingerprint,
                 "kubernetes_version": self.kubernetes, "tier": "R", "node_image": self.node_image,
                 "nodes": self.nodes, "gpu_nodes": sorted(self.gpus), "facts": sorted(set(self.facts)),
                 "addons": list(self.profile.addons), "engine": c.engine().description,
                 "server": server, "created": time.time()}
        c.state_file.write_text(json.dumps(state, indent=2))


class KindSite:
    """A kind cluster as an addon site (harness/addons/site.py): real nodes only (AddonSite + RealNodes), their
    images ``kind load``-ed; no host process (an addon that needs one is refused before bring-up) and no cluster CA
    of the harness's (an addon that serves webhooks is refused by the installer)."""

    provider = PROVIDER
    node_selector = {REAL_NODE_LABEL: "true"}
    host_metrics: dict[str, str] = {}
    time_compression: float | None = None
    """kind's control plane keeps its own timers: time compression is the local provider's (aiconform simulate)."""

    def __init__(self, cluster: KindCluster, pools: tuple[Pool, ...] = ()) -> None:
        self._kind = cluster
        self.cluster = cluster.name
        self.pools = pools
        self.progress = cluster.progress

    def client(self) -> KubeClient:
        return self._kind.client()

    def resolver(self) -> BinaryResolver:
        return self._kind.resolver()

    def ca(self) -> None:
        return None

    def record_undo(self, commands: list[addons.UndoCommand]) -> None:
        """Host changes of the addons' pods die with the node containers: nothing to keep."""

    def load_image(self, archive: Path) -> None:
        self._kind.load_image(archive)


def _internal_ip(node: Obj) -> str:
    for addr in node.get("status", {}).get("addresses", []) or []:
        if addr.get("type") == "InternalIP":
            return str(addr.get("address", ""))
    return ""


def _has_ready_endpoint(slices: dict[str, Obj]) -> bool:
    return any((ep.get("conditions") or {}).get("ready") for s in slices.values() for ep in s.get("endpoints") or [])


def _node_ready(node: Obj) -> bool:
    return any(cond.get("type") == "Ready" and cond.get("status") == "True"
               for cond in node.get("status", {}).get("conditions", []) or [])


def open_cluster(name: str, options: ProviderOptions) -> KindCluster:
    """Registry entry point."""
    if options.kubeconfig is not None:
        raise ConfigError("provider 'kind' makes its own clusters; a kubeconfig is for provider 'existing'")
    return KindCluster(name, root=options.root, progress=options.progress)
