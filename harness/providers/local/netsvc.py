"""Services and cluster DNS on the real node (tier R), and the routes that keep simulated traffic on this machine.

Owns:
- ``unreachable`` routes for the simulated pod CIDR (KWOK's fake pod IPs, ``controlPlane.podCIDR``) and the
  simulated nodes' fake InternalIP: once kube-proxy DNATs to a simulated endpoint, the packet is refused on this
  host (the sender gets EHOSTUNREACH at once) instead of following the default route off the machine;
- the Service CIDR routed onto the real node's own veth (never the default route) plus a REJECT rule (chain
  ``AICONFORM-SVC``, filter OUTPUT and FORWARD) for Service IPs kube-proxy did not DNAT: host processes (the
  apiserver calling a webhook, a load generator) use ClusterIPs as on any node, and an IP no Service holds fails at
  once;
- kube-proxy (iptables mode, the iptables backend this host already uses) as a host process with the identity
  ``system:kube-proxy`` (covered by the built-in ``system:node-proxier`` binding), health and metrics on 127.0.0.1,
  NodePorts on the node's own address only;
- CoreDNS as a host process listening only on the real node's address, answering ``cluster.local`` (and reverse
  names) from the API with a read-only identity, NXDOMAIN for every other name (nothing is forwarded); the
  ``kube-system/kube-dns`` Service (10th IP of the Service CIDR, no selector) whose hand-made EndpointSlice points at
  it, so kube-proxy DNATs pod DNS queries to the host;
- undoing all of that: KUBE-* and AICONFORM-* chains, the nft tables its iptables created, routes, sysctls.

What it will change is written into the real node's record (``realnode.json``, key ``netsvc``) *before* it is
changed, so ``down`` after a killed ``up`` removes it.  The argv/config/manifest builders are pure and unit-tested.
Knows the real node only through its record (node name, address, pod CIDR) and the host object realnode.py passes.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness import proc
from harness.errors import ClusterError, CommandError, KubeError
from harness.nodes import FAKE_NODE_IP
from harness.providers.local import linuxhost as host
from harness.providers.local.clusterview import ClusterView, NodeView

if TYPE_CHECKING:
    from harness.config import ControlPlane

COMPONENTS = ("kube-proxy", "coredns")
DNS_DOMAIN = "cluster.local"
DNS_PORT = 53
KUBE_PROXY_USER = "system:kube-proxy"  # bound to ClusterRole system:node-proxier by the apiserver's bootstrap RBAC
COREDNS_USER = "aiconform:coredns"
COREDNS_ROLE = "aiconform:coredns"
MANAGED_BY = "aiconform-netsvc"  # a label value: no slash
ROUTE_TYPE = "unreachable"
"""``unreachable`` rather than ``blackhole``: both drop the packet here, but a blackhole drops a forwarded packet
silently (a pod's connect would hang until it times out) while unreachable answers the pod with an ICMP host
unreachable from this host, so its connect fails at once.  Local senders get EHOSTUNREACH from the route lookup."""
IPTABLES_TABLES = ("filter", "nat", "mangle")
CHAIN_PREFIXES = ("KUBE-", "AICONFORM-")
SVC_CHAIN = "AICONFORM-SVC"
SYSCTLS = (
    "net.bridge.bridge-nf-call-iptables",
    "net.ipv4.conf.all.route_localnet",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_be_liberal",
    "net.netfilter.nf_conntrack_udp_timeout",
    "net.netfilter.nf_conntrack_udp_timeout_stream",
)
"""What kube-proxy may change (its config here asks it to change none of them) and what the harness sets itself
(bridge-nf-call-iptables, so a reply between two pods of the bridge passes conntrack and is un-DNATed)."""
BRIDGE_NF = "net.bridge.bridge-nf-call-iptables"
HINT_CHAINS = ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY")


@dataclass(frozen=True)
class NetSpec:
    """What the real node's Services and DNS need from the profile and the binary resolver."""

    service_cidr: str
    sim_pod_cidr: str
    """``controlPlane.podCIDR``: where KWOK takes the simulated pods' fake IPs."""
    kube_proxy: Path
    coredns: Path

    @property
    def dns_ip(self) -> str:
        return dns_service_ip(self.service_cidr)


# -- pure builders ---------------------------------------------------------------------------------------------------


def dns_service_ip(service_cidr: str) -> str:
    """The kube-dns ClusterIP: the 10th address of the Service CIDR (10.96.0.10 for 10.96.0.0/16)."""
    return str(ipaddress.ip_network(service_cidr, strict=False)[10])


def unreachable_routes(sim_pod_cidr: str) -> list[str]:
    """Destinations refused on this host once kube-proxy runs: the simulated pods' IPs, and the simulated nodes'
    InternalIP (a hostNetwork pod's IP on them) unless it is a loopback address, which never leaves anyway."""
    routes = [str(ipaddress.ip_network(sim_pod_cidr, strict=False))]
    if not ipaddress.ip_address(FAKE_NODE_IP).is_loopback:
        routes.append(str(ipaddress.ip_network(f"{FAKE_NODE_IP}/32")))
    return routes


def service_route(service_cidr: str, veth: str) -> list[str]:
    """``ip route add`` arguments for the Service CIDR: onto the node's veth (its peer has no address, so nothing
    goes further), never the default route.  Host processes pass the route lookup, kube-proxy's OUTPUT DNAT
    rewrites the destination and the packet is re-routed to the endpoint (masqueraded by kube-proxy, since the
    host is outside the cluster CIDR)."""
    return [str(ipaddress.ip_network(service_cidr, strict=False)), "dev", veth]


def svc_reject_rules(service_cidr: str) -> list[list[str]]:
    """iptables argv tails (after ``-t filter``) for the AICONFORM-SVC chain: what is still addressed to the Service
    CIDR after kube-proxy's DNAT is an IP no Service holds: rejected with host-unreachable, at once."""
    cidr = str(ipaddress.ip_network(service_cidr, strict=False))
    return [["-N", SVC_CHAIN],
            ["-A", SVC_CHAIN, "-d", cidr, "-m", "comment", "--comment", "aiconform: no Service holds this IP",
             "-j", "REJECT", "--reject-with", "icmp-host-unreachable"],
            ["-I", "OUTPUT", "1", "-j", SVC_CHAIN],
            ["-I", "FORWARD", "1", "-j", SVC_CHAIN]]


def cidr_conflict(*, service_cidr: str, sim_pod_cidr: str, real_pod_cidr: str, node_net: str) -> str | None:
    """One line naming the two ranges that overlap, or None.  The real node's own ranges must stay routable
    while the simulated and Service ranges are made unreachable."""
    named = [("controlPlane.podCIDR (simulated pods)", sim_pod_cidr), ("controlPlane.serviceCIDR", service_cidr),
             ("the real node's pod CIDR", real_pod_cidr), ("the real node's address", node_net)]
    for i, (a_name, a) in enumerate(named):
        for b_name, b in named[i + 1:]:
            if ipaddress.ip_network(a, strict=False).overlaps(ipaddress.ip_network(b, strict=False)):
                return f"{a_name} {a} overlaps {b_name} {b}"
    return None


def parse_save(text: str) -> dict[str, dict[str, list[str]]]:
    """``iptables-save`` output -> table -> {"chains": user chains, "builtins": built-in chains, "rules": -A lines}."""
    tables: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), {"chains": [], "builtins": [], "rules": []})
        elif current is None or line.startswith("#") or not line.strip():
            continue
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            current["builtins" if policy != "-" else "chains"].append(name)
        elif line.startswith("-A "):
            current["rules"].append(line)
    return tables


def choose_backend(legacy_save: str, nft_save: str, default: str) -> str:
    """Which iptables backend to give kube-proxy: the one already holding Kubernetes hint chains, else the one
    holding more rules, else the system default (``iptables -V``).  Mixing both backends on one host splits the
    ruleset in two (the same choice the upstream iptables-wrappers make)."""
    legacy, nft = parse_save(legacy_save), parse_save(nft_save)

    def has_hint(tables: dict[str, dict[str, list[str]]]) -> bool:
        return any(c in t["chains"] for t in tables.values() for c in HINT_CHAINS)

    def rules(tables: dict[str, dict[str, list[str]]]) -> int:
        return sum(len(t["rules"]) for t in tables.values())

    if has_hint(legacy) != has_hint(nft):
        return "legacy" if has_hint(legacy) else "nft"
    if rules(legacy) != rules(nft):
        return "legacy" if rules(legacy) > rules(nft) else "nft"
    return default


def kube_proxy_config(*, kubeconfig: Path, node: str, node_ip: str, cluster_cidr: str, healthz_port: int,
                      metrics_port: int, masquerade_all: bool = False) -> dict[str, Any]:
    """KubeProxyConfiguration: iptables mode; listens on 127.0.0.1 only; NodePorts only on the node's address;
    changes no sysctl (conntrack limits and timeouts left as they are, no route_localnet)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node,
        "bindAddress": node_ip,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "enableProfiling": False,
        "mode": "iptables",
        "clusterCIDR": cluster_cidr,
        "detectLocalMode": "ClusterCIDR",
        "nodePortAddresses": [f"{node_ip}/32"],
        "oomScoreAdj": 0,  # leave its score alone (this VM drops CAP_SYS_RESOURCE anyway)
        "iptables": {"localhostNodePorts": False, "masqueradeAll": masquerade_all, "syncPeriod": "30s",
                     "minSyncPeriod": "0s"},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s",
                      "tcpBeLiberal": False, "udpTimeout": "0s", "udpStreamTimeout": "0s"},
        "configSyncPeriod": "15m",
    }


def corefile(*, node_ip: str, ready_port: int, kubeconfig: Path, context: str, port: int = DNS_PORT,
             domain: str = DNS_DOMAIN) -> str:
    """The Corefile: ``domain`` and reverse names from the API, bound to the node's address only; every other name
    gets NXDOMAIN here (no ``forward``: no query leaves the machine)."""
    return "\n".join([
        f"{domain}:{port} in-addr.arpa:{port} ip6.arpa:{port} {{",
        f"    bind {node_ip}",
        "    errors",
        f"    ready 127.0.0.1:{ready_port}",
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{",
        f"        kubeconfig {kubeconfig} {context}",
        "        ttl 5",
        "    }",
        "    loadbalance",
        "}",
        f".:{port} {{",
        f"    bind {node_ip}",
        "    errors",
        "    template ANY ANY {",
        "        rcode NXDOMAIN",
        "    }",
        "}",
        "",
    ])


def coredns_rbac() -> list[dict[str, Any]]:
    """Read-only access to what the ``kubernetes`` plugin watches, for the user CoreDNS's client cert names."""
    meta = {"name": COREDNS_ROLE, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}}
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta,
         "rules": [{"apiGroups": [""], "resources": ["services", "namespaces"], "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": COREDNS_ROLE},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}]},
    ]


def dns_service(dns_ip: str) -> dict[str, Any]:
    """``kube-system/kube-dns``: the fixed ClusterIP the kubelet writes into pods' resolv.conf; no selector (its
    only endpoint is CoreDNS on the host, see :func:`dns_endpointslice`)."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                "app.kubernetes.io/managed-by": MANAGED_BY}},
        "spec": {"clusterIP": dns_ip, "type": "ClusterIP",
                 "ports": [{"name": "dns", "port": DNS_PORT, "protocol": "UDP", "targetPort": DNS_PORT},
                           {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP", "targetPort": DNS_PORT}]},
    }


def dns_endpointslice(node: str, node_ip: str, port: int = DNS_PORT) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kube-dns-host", "namespace": "kube-system",
                     "labels": {"kubernetes.io/service-name": "kube-dns",
                                "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [node_ip], "conditions": {"ready": True}, "nodeName": node}],
        "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": port, "protocol": "TCP"}],
    }


def pod_routes(spec: NetSpec) -> tuple[str, ...]:
    """Routes the real node's pods need besides their bridge subnet: the Service CIDR through the host, where
    kube-proxy DNATs it (pods have no default route, so anything else fails in the pod itself)."""
    return (str(ipaddress.ip_network(spec.service_cidr, strict=False)),)


def kubelet_dns(dns_ip: str) -> dict[str, Any]:
    """What the KubeletConfiguration needs so pods resolve through kube-dns."""
    return {"clusterDNS": [dns_ip], "clusterDomain": DNS_DOMAIN}


# -- iptables backends -----------------------------------------------------------------------------------------------


def _save(command: str) -> str:
    """``<command>`` (an iptables-save variant) output; empty when the binary is missing.  Never names a table, so
    it never instantiates a legacy table that does not exist yet."""
    if shutil.which(command) is None:
        return ""
    return proc.run([command], timeout=30, check=False).stdout


def detect_backend() -> str:
    """``nft`` or ``legacy``: the backend this host's rules already live in (see :func:`choose_backend`)."""
    if shutil.which("iptables-nft") is None or shutil.which("iptables-legacy") is None:
        return "nft" if shutil.which("iptables-nft") else "legacy"
    version = proc.run(["iptables", "-V"], timeout=30, check=False).stdout
    default = "legacy" if "legacy" in version else "nft"
    return choose_backend(_save("iptables-legacy-save"), _save("iptables-nft-save"), default)


def backend_command(backend: str, cmd: str = "iptables") -> str:
    """``iptables`` / ``iptables-save`` / ``iptables-restore`` of ``backend`` (absolute path)."""
    name = cmd.replace("iptables", f"iptables-{backend}", 1)
    path = shutil.which(name)
    if path is None:
        raise ClusterError(f"{name} is not installed (kube-proxy needs the host's {backend} iptables); "
                           "run: apt-get install iptables")
    return path


def make_backend_dir(backend: str, directory: Path) -> Path:
    """A directory holding ``iptables``, ``iptables-save``, ``iptables-restore`` of ``backend``: kube-proxy runs
    with it as its only PATH, so it writes into the host's backend and, finding no ip6tables, stays IPv4-only."""
    directory.mkdir(parents=True, exist_ok=True)
    for cmd in ("iptables", "iptables-save", "iptables-restore"):
        link = directory / cmd
        link.unlink(missing_ok=True)
        link.symlink_to(backend_command(backend, cmd))
    return directory


# -- host state: record, apply, undo ---------------------------------------------------------------------------------


def preflight(control_plane: ControlPlane, *, real_pod_cidr: str, node_net: str, exclude_links: tuple[str, ...]
              ) -> None:
    """Fail in one line before anything starts: ranges that overlap each other or a network of this host (a
    route added for them would cut that network off, or the network would carry simulated traffic off the
    machine), or kube-proxy chains already on the host (another kube-proxy, or one left behind)."""
    sim, svc = control_plane.pod_cidr, control_plane.service_cidr
    clash = cidr_conflict(service_cidr=svc, sim_pod_cidr=sim, real_pod_cidr=real_pod_cidr, node_net=node_net)
    if clash is not None:
        raise ClusterError(f"the real node cannot keep simulated traffic on this host: {clash}; change the profile")
    networks = host.host_networks(exclude_links=exclude_links)
    for field, cidr in (("controlPlane.podCIDR", sim), ("controlPlane.serviceCIDR", svc)):
        taken = host.overlapping(cidr, networks)
        if taken is not None:
            raise ClusterError(f"{field} {cidr} overlaps {taken} on this host (traffic to simulated pods or Services "
                               "could leave the machine); change the profile or free that range")
    backend = detect_backend()
    tables = parse_save(_save(f"iptables-{backend}-save"))
    found = sorted({c for t in tables.values() for c in t["chains"] if c.startswith(CHAIN_PREFIXES)})
    if found:
        raise ClusterError(f"this host's {backend} iptables already has kube-proxy chains ({', '.join(found[:3])}): "
                           "another kube-proxy runs here or one was left behind; remove it first")


def prepare(node: NodeView, spec: NetSpec) -> None:
    """Record what will change (routes, iptables state of the chosen backend, sysctls), then add the unreachable
    routes.  (The Service CIDR route, the REJECT chain and bridge-nf-call-iptables come in :func:`start`, all
    covered by this record.)"""
    backend = detect_backend()
    existing = set(_route_dsts())
    routes = [r for r in unreachable_routes(spec.sim_pod_cidr) if r not in existing]
    before = parse_save(_save(f"iptables-{backend}-save"))
    node.record["netsvc"] = {
        "backend": backend,
        "tables_before": sorted(before),
        "chains_before": {t: before.get(t, {}).get("chains", []) for t in IPTABLES_TABLES},
        "routes": routes,
        "service_route": None,  # set when added (start): the veth must exist first
        "sysctls": {name: host.read_sysctl(name) for name in SYSCTLS},
        "dns_ip": spec.dns_ip,
        "service_cidr": spec.service_cidr,
        "sim_pod_cidr": spec.sim_pod_cidr,
    }
    node._save()
    record_nft_tables(node.cluster.dir)
    for dst in routes:
        try:
            proc.run(["ip", "route", "add", ROUTE_TYPE, dst], timeout=30)
        except CommandError as err:
            raise ClusterError(f"cannot add the route that keeps {dst} on this host: {err}") from err
    node.progress(f"  real node: {ROUTE_TYPE} routes for {', '.join(routes)} (simulated pods and nodes are never "
                  "reached from this host)")


def _route_dsts(route_type: str = ROUTE_TYPE) -> list[str]:
    """Destinations of ``route_type`` routes in the main table, as CIDRs."""
    out = proc.run(["ip", "-4", "route", "show", "type", route_type], timeout=30, check=False).stdout
    dsts = []
    for line in out.splitlines():
        words = line.split()
        dst = words[1] if words and words[0] == route_type and len(words) > 1 else (words[0] if words else "")
        if dst:
            dsts.append(str(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)))
    return dsts


def start(node: NodeView, spec: NetSpec) -> list[str]:
    """kube-dns Service and EndpointSlice, CoreDNS's RBAC, then kube-proxy and CoreDNS; returns the components."""
    rec = node.record
    name, node_ip = rec["node"], rec["node_ip"]
    client = node.cluster.client()
    try:
        for obj in [*coredns_rbac(), dns_service(spec.dns_ip), dns_endpointslice(name, node_ip)]:
            client.apply(obj, field_manager="aiconform-netsvc")
    except KubeError as err:
        raise ClusterError(f"cannot create the kube-dns Service and CoreDNS's RBAC: {err}") from err
    finally:
        client.close()
    _route_services(node, spec)
    _start_kube_proxy(node, spec)
    _start_coredns(node, spec)
    return list(COMPONENTS)


def _route_services(node: NodeView, spec: NetSpec) -> None:
    """The Service CIDR onto the node's veth, and the REJECT chain for IPs no Service holds (both recorded first)."""
    net = node.record["netsvc"]
    route = service_route(spec.service_cidr, node.record["veth"][0])
    net["service_route"] = route
    node._save()
    command = backend_command(net["backend"])
    try:
        proc.run(["ip", "route", "add", *route], timeout=30)
        for args in svc_reject_rules(spec.service_cidr):
            proc.run([command, "-w", "5", "-t", "filter", *args], timeout=30)
    except CommandError as err:
        raise ClusterError(f"cannot keep the Service CIDR {spec.service_cidr} on this host: {err}") from err
    node.progress(f"  real node: Service CIDR {route[0]} onto {route[2]}; IPs no Service holds are rejected")


def _kubeconfig(node: NodeView, stem: str, user: str) -> Path:
    from harness.kube import KubeConfig, write_kubeconfig

    cluster = node.cluster
    pair = cluster.pki.issue(f"{stem}-client", user, client=True)
    path = node.dir / "netsvc" / f"{stem}.kubeconfig"
    write_kubeconfig(path, KubeConfig.from_file(cluster.kubeconfig()).server, cluster.pki.ca.cert, pair.cert,
                     pair.key, cluster.name)
    return path


def _start_kube_proxy(node: NodeView, spec: NetSpec) -> None:
    from harness.hostproc import free_port

    rec, net = node.record, node.record["netsvc"]
    workdir = node.dir / "netsvc"
    bindir = make_backend_dir(net["backend"], workdir / "iptables-bin")
    masquerade_all = False
    if not host.write_sysctl(BRIDGE_NF, "1"):
        masquerade_all = True  # no br_netfilter: masquerade so same-bridge replies still come back through us
        node.progress(f"  real node: cannot set {BRIDGE_NF}=1; kube-proxy masquerades all Service traffic")
    healthz, metrics = free_port(), free_port()
    cfg = workdir / "kube-proxy.yaml"
    cfg.write_text(yaml.safe_dump(kube_proxy_config(
        kubeconfig=_kubeconfig(node, "kube-proxy", KUBE_PROXY_USER), node=rec["node"], node_ip=rec["node_ip"],
        cluster_cidr=rec["pod_cidr"], healthz_port=healthz, metrics_port=metrics, masquerade_all=masquerade_all)))
    net |= {"kube_proxy_healthz_port": healthz, "kube_proxy_metrics_port": metrics}
    node._save()
    node.progress(f"  real node: starting kube-proxy (iptables mode, {net['backend']} backend; healthz on "
                  f"127.0.0.1:{healthz})")
    net["kube_proxy_argv"] = [str(spec.kube_proxy), f"--config={cfg}", "--v=1"]
    net["kube_proxy_path"] = str(bindir)
    node._save()
    _run_kube_proxy(node)


def _run_kube_proxy(node: NodeView) -> None:
    net = node.record["netsvc"]
    procs = node.cluster.procs
    procs.start("kube-proxy", list(net["kube_proxy_argv"]),
                env={"PATH": net["kube_proxy_path"], "HOME": os.environ.get("HOME", "/root")})
    healthz = net["kube_proxy_healthz_port"]
    procs.wait_ready("kube-proxy", lambda: _http_ok(f"http://127.0.0.1:{healthz}/healthz"), timeout=60,
                     what="kube-proxy's /healthz (rules synced)")


def upgrade_kube_proxy(node: NodeView, binary: Path) -> None:
    """Restart kube-proxy on another binary with the same config (after the kubelet, as an upgrade does); its
    iptables rules stay in place while it restarts, so Service traffic keeps flowing, and the new one re-syncs
    them before it reports healthy."""
    net = node.record["netsvc"]
    if "kube_proxy_argv" not in net:
        raise ClusterError("this real node was brought up before kube-proxy's command line was recorded; bring the "
                           "cluster up again to upgrade it")
    net["kube_proxy_argv"] = [str(binary), *net["kube_proxy_argv"][1:]]
    node._save()
    node.cluster.procs.stop("kube-proxy")
    _run_kube_proxy(node)


def _start_coredns(node: NodeView, spec: NetSpec) -> None:
    from harness.hostproc import free_port

    rec, net = node.record, node.record["netsvc"]
    ready = free_port()
    conf = node.dir / "netsvc" / "Corefile"
    conf.write_text(corefile(node_ip=rec["node_ip"], ready_port=ready,
                             kubeconfig=_kubeconfig(node, "coredns", COREDNS_USER), context=node.cluster.name))
    net["coredns_ready_port"] = ready
    node._save()
    node.progress(f"  real node: starting CoreDNS on {rec['node_ip']}:{DNS_PORT} for {DNS_DOMAIN} "
                  f"(kube-dns {spec.dns_ip})")
    node.cluster.procs.start("coredns", [str(spec.coredns), "-conf", str(conf)])
    node.cluster.procs.wait_ready("coredns", lambda: _http_ok(f"http://127.0.0.1:{ready}/ready"), timeout=60,
                                  what="CoreDNS's /ready (API synced)")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# -- teardown ----------------------------------------------------------------------------------------------------------


def teardown(cluster: ClusterView, record: dict[str, Any]) -> list[str]:
    """Stop kube-proxy and CoreDNS, then remove the KUBE-* chains and nft tables they left, the routes and the
    sysctl changes; returns what could not be undone."""
    net = record.get("netsvc")
    if not net:
        return []
    for comp in COMPONENTS:
        if cluster.procs.stop(comp):
            cluster.progress(f"stopped {comp}")
    left = _remove_chains(net)
    left += _remove_tables(net)
    for dst in net.get("routes", []):
        if dst in _route_dsts():
            proc.run(["ip", "route", "del", ROUTE_TYPE, dst], timeout=30, check=False)
    left += [f"route {ROUTE_TYPE} {d}" for d in net.get("routes", []) if d in _route_dsts()]
    route = net.get("service_route")
    if route and _has_route(route):
        proc.run(["ip", "route", "del", *route], timeout=30, check=False)
        left += [f"route {' '.join(route)}"] if _has_route(route) else []
    for name, value in (net.get("sysctls") or {}).items():
        if value is not None and host.read_sysctl(name) != value and not host.write_sysctl(name, value):
            left.append(f"sysctl {name}={host.read_sysctl(name)} (was {value})")
    return left


def _has_route(route: list[str]) -> bool:
    """Whether ``ip route add ROUTE`` (``<cidr> dev <link>``) is in the main table."""
    if not host.link_exists(route[2]):
        return False
    out = proc.run(["ip", "-4", "route", "show", "exact", route[0], "dev", route[2]], timeout=30, check=False)
    return bool(out.stdout.strip())


def _new_chains(net: dict[str, Any]) -> dict[str, list[str]]:
    tables = parse_save(_save(f"iptables-{net['backend']}-save"))
    before = net.get("chains_before", {})
    return {t: [c for c in tables.get(t, {}).get("chains", [])
                if c.startswith(CHAIN_PREFIXES) and c not in before.get(t, [])] for t in IPTABLES_TABLES}


def _remove_chains(net: dict[str, Any]) -> list[str]:
    if shutil.which(f"iptables-{net['backend']}") is None:
        return []
    command = f"iptables-{net['backend']}"
    left = []
    for table, chains in _new_chains(net).items():
        left += [f"iptables chain {table}/{c}" for c in host.iptables_delete_chains(table, chains, command=command)]
    return left


def _remove_tables(net: dict[str, Any]) -> list[str]:
    """Delete the nft tables iptables-nft created for kube-proxy when nothing is left in them (needs ``nft``)."""
    if net.get("backend") != "nft":
        return []
    now = parse_save(_save("iptables-nft-save"))
    created = [t for t in now if t not in net.get("tables_before", []) and not now[t]["rules"]
               and not now[t]["chains"]]
    nft = shutil.which("nft")
    if nft is None:
        return [f"empty nft table ip {t} (install nftables so down can delete it)" for t in created]
    for table in created:
        proc.run([nft, "delete", "table", "ip", table], timeout=30, check=False)
    return [f"nft table ip {t}" for t in created if t in parse_save(_save("iptables-nft-save"))]


NFT_RECORD = "netsvc-nft.json"
"""In the run dir: the nft tables (every family) that existed before ``up``, for :func:`remove_created_nft_tables`,
which runs after the addons' undo (it outlives realnode.json, which teardown_host removes)."""


def nft_table_names() -> list[str]:
    """``<family> <name>`` of every nft table ([] without ``nft``)."""
    nft = shutil.which("nft")
    if nft is None:
        return []
    out = proc.run([nft, "list", "tables"], timeout=30, check=False).stdout
    return sorted(" ".join(ln.split()[1:3]) for ln in out.splitlines() if ln.startswith("table "))


def nft_table_is_empty(listing: str) -> bool:
    """Whether ``nft list table`` output holds only base chains with policy accept: no rule, set or map (a table
    iptables-nft or a cleanup tool created and left behind, with no effect on any packet)."""
    for raw in listing.splitlines():
        line = raw.strip()
        if not line or line == "}" or line.startswith(("table ", "chain ")):
            continue
        if line.startswith("type ") and line.endswith("policy accept;"):
            continue
        return False
    return True


def record_nft_tables(run_dir: Path) -> None:
    (run_dir / NFT_RECORD).write_text(json.dumps({"before": nft_table_names()}))


def remove_created_nft_tables(run_dir: Path) -> list[str]:
    """Delete the nft tables that did not exist before ``up`` and hold nothing now (iptables-nft creates tables on
    first use and never removes them; so do cleanup tools such as ``kube-router --cleanup-config``, which the
    addons' undo runs after the real node's teardown).  Returns tables that were created and still hold rules."""
    try:
        before = set(json.loads((run_dir / NFT_RECORD).read_text())["before"])
    except (OSError, ValueError, KeyError):
        return []
    nft = shutil.which("nft")
    left = []
    for table in nft_table_names():
        if table in before or nft is None:
            continue
        family, name = table.split()
        listing = proc.run([nft, "list", "table", family, name], timeout=30, check=False).stdout
        if nft_table_is_empty(listing):
            proc.run([nft, "delete", "table", family, name], timeout=30, check=False)
        else:
            left.append(f"nft table {table} (holds rules)")
    return left


def leftovers(record: dict[str, Any]) -> list[str]:
    """What a torn-down real node's Services and DNS left on the host (empty when ``down`` restored everything)."""
    net = record.get("netsvc")
    if not net:
        return []
    left = [f"route {ROUTE_TYPE} {d}" for d in net.get("routes", []) if d in _route_dsts()]
    route = net.get("service_route")
    left += [f"route {' '.join(route)}"] if route and _has_route(route) else []
    left += [f"iptables chain {t}/{c}" for t, chains in _new_chains(net).items() for c in chains]
    if net.get("backend") == "nft":
        left += [f"nft table ip {t}" for t in parse_save(_save("iptables-nft-save"))
                 if t not in net.get("tables_before", [])]
    left += [f"sysctl {k}" for k, v in (net.get("sysctls") or {}).items()
             if v is not None and host.read_sysctl(k) != v]
    return left

