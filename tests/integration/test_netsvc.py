"""Tier R Services, cluster DNS and the no-traffic-leaves routes (netsvc.py) against one ``local-real`` cluster:
real kube-proxy, CoreDNS, kubelet and containerd; pods resolve names through kube-dns and reach a ClusterIP Service
on the real node; a connection to a simulated pod fails on this host at once and sends nothing out of the
default-route interface; ``down`` leaves iptables (every backend, every table), routes and sysctls as they were.

Needs root and the real node's Debian packages (see docs/realnode.md); ``nft`` (nftables) for the leak counter and
for ``down`` to delete the nft tables iptables-nft created.  One real node per host: when another cluster holds it
the module fails at set-up with "a real node already runs on this host"; run it again later.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_profile
from harness.contract import POOL_LABEL, SIMULATED_TOLERATION
from harness.kube import KubeClient
from harness.nodes import FAKE_NODE_IP
from harness.providers.local import LocalCluster, netsvc, realnode
from harness.workloads import pin_to_real_node
from tests.integration.conftest import running_cluster
from tests.integration.test_real_node import _skip_reason, container, delete_pods, pod_log, run_pods

pytestmark = [pytest.mark.upstream("kube-router"),
              pytest.mark.realnode, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]

SAVES = ("iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save")
LEAK_TABLE = "aiconform_leak_test"


# -- host snapshots ----------------------------------------------------------------------------------------------------


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout


def host_snapshot() -> dict[str, Any]:
    """Every iptables table of every backend and family (counters and comments normalised away), every IPv4 and
    IPv6 route of every table, the nft ruleset, and the sysctls kube-proxy or the harness may change."""
    snap: dict[str, Any] = {}
    for cmd in SAVES:
        if shutil.which(cmd):  # -save without -t lists existing tables only: it never creates one
            text = _run([cmd])
            snap[cmd] = [re.sub(r"\[\d+:\d+\]", "[0:0]", ln) for ln in text.splitlines() if not ln.startswith("#")]
    snap["ip -4 route"] = sorted(_run(["ip", "-4", "route", "show", "table", "all"]).splitlines())
    snap["ip -6 route"] = sorted(ln for ln in _run(["ip", "-6", "route", "show", "table", "all"]).splitlines()
                                 if " cache" not in ln)
    if shutil.which("nft"):
        snap["nft"] = [re.sub(r"packets \d+ bytes \d+", "", ln) for ln in _run(["nft", "list", "ruleset"]).splitlines()]
    snap["sysctls"] = {k: realnode.host.read_sysctl(k) for k in netsvc.SYSCTLS}
    return snap


def refused_by_route(*args: str) -> bool:
    """``ip route get ARGS`` says the kernel refuses the destination here (an unreachable route: the lookup itself
    fails with "No route to host", or the route shown is of type unreachable)."""
    res = subprocess.run(["ip", "route", "get", *args], capture_output=True, text=True, timeout=30)
    return (res.returncode != 0 and "No route to host" in res.stderr) or res.stdout.startswith("unreachable")


def compare_after_down(before: dict[str, Any], what: str) -> None:
    """The host after ``down`` equals ``before`` in every snapshot key.  Skipped (not failed) when another session's
    real node took the host between our ``down`` and the snapshot: its links and routes would be counted as ours."""
    after = host_snapshot()
    holder = realnode._claim_holder()
    if holder is not None:
        pytest.skip(f"cluster {holder.get('cluster')!r} took this host's real node right after our down; rerun")
    for key in before:
        assert after[key] == before[key], f"{key} differs after {what}"


def default_route_dev() -> str:
    routes = json.loads(_run(["ip", "-j", "-4", "route", "show", "default"]) or "[]")
    assert routes, "this host has no default route"
    return str(routes[0]["dev"])


# -- fixtures ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ns")


@pytest.fixture(scope="module")
def before() -> dict[str, Any]:
    return host_snapshot()


@pytest.fixture(scope="module")
def cluster(before: dict[str, Any], state_root: Path) -> Iterator[LocalCluster]:
    with running_cluster("ns", state_root, load_profile("local-real")) as c:
        yield c


@pytest.fixture(scope="module")
def record(cluster: LocalCluster) -> dict[str, Any]:
    rec = realnode.load_record(cluster)
    assert rec is not None and rec.get("netsvc")
    return rec


@pytest.fixture(scope="module")
def namespace(client: KubeClient) -> str:
    name = f"ns-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    client.wait_for("ServiceAccount", namespace=name, name="default", condition=bool, timeout=30)
    return name


def real_pod(name: str, script: str, *, labels: dict[str, str] | None = None, restart: str = "Never",
             **spec: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
                         "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 0,
                                  "containers": [container("main", script)], **spec}}
    return pin_to_real_node(p)


def service(name: str, selector: dict[str, str], port: int, *, headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": selector, "ports": [{"name": "http", "port": port, "targetPort": port}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def wait_endpoints(client: KubeClient, ns: str, svc: str, count: int) -> list[str]:
    """Watch the Service's EndpointSlices until ``count`` ready addresses are published; returns them."""
    got: list[str] = []

    def ready(state: dict[str, Any]) -> bool:
        got[:] = sorted(a for s in state.values() for e in s.get("endpoints") or []
                        if (e.get("conditions") or {}).get("ready") for a in e["addresses"])
        return len(got) >= count

    client.wait_for("EndpointSlice", namespace=ns, label_selector=f"kubernetes.io/service-name={svc}",
                    api_version="discovery.k8s.io/v1", condition=ready, timeout=60,
                    what=f"{count} ready endpoints of {ns}/{svc}")
    return got


# -- bad input -------------------------------------------------------------------------------------------------------


def test_ranges_that_would_let_traffic_leave_are_refused_before_anything_starts() -> None:
    """Needs no cluster: the checks ``up`` runs before it starts anything (one ClusterError line each)."""
    from harness.config import ControlPlane
    from harness.errors import ClusterError

    kw = {"real_pod_cidr": realnode.POD_CIDR, "node_net": f"{realnode.NODE_IP}/{realnode.NODE_PREFIX}",
          "exclude_links": (realnode.VETH, realnode.VETH_PEER, realnode.BRIDGE)}
    with pytest.raises(ClusterError, match=r"controlPlane.podCIDR \(simulated pods\) 10.244.0.0/16 overlaps the real "
                                           r"node's pod CIDR"):
        netsvc.preflight(ControlPlane(pod_cidr="10.244.0.0/16"), **kw)
    uplink = json.loads(_run(["ip", "-j", "-4", "addr", "show", "dev", default_route_dev()]))[0]["addr_info"][0]
    net = ipaddress.ip_network(f"{uplink['local']}/{uplink['prefixlen']}", strict=False)
    with pytest.raises(ClusterError, match=f"controlPlane.serviceCIDR {net} overlaps .* on this host"):
        netsvc.preflight(ControlPlane(service_cidr=str(net)), **kw)


# -- processes -----------------------------------------------------------------------------------------------------------


def test_kube_proxy_and_coredns_listen_only_on_loopback_and_the_node_address(
        cluster: LocalCluster, record: dict[str, Any]) -> None:
    running = cluster.running_components()
    assert {"kube-proxy", "coredns"} <= set(running)
    out = _run(["ss", "-H", "-l", "-n", "-t", "-u", "-p"])
    addrs: dict[str, set[str]] = {"kube-proxy": set(), "coredns": set()}
    for line in out.splitlines():
        for comp, pid in running.items():
            if comp in addrs and f"pid={pid}," in line:
                addrs[comp].add(line.split()[4].rsplit(":", 1)[0])  # Netid State Recv-Q Send-Q Local ...
    assert addrs["coredns"] == {realnode.NODE_IP, "127.0.0.1"}, out  # DNS on the node, /ready on loopback
    assert addrs["kube-proxy"] == {"127.0.0.1"}, out  # healthz and metrics
    assert record["netsvc"]["backend"] in ("nft", "legacy")
    assert (cluster.dir / "realnode" / "netsvc" / "iptables-bin" / "iptables").resolve().name.startswith(
        "xtables-" + record["netsvc"]["backend"])


# -- DNS and Services from a pod ----------------------------------------------------------------------------------------


def test_pod_resolves_cluster_names_and_reaches_a_clusterip_service(
        client: KubeClient, namespace: str, record: dict[str, Any]) -> None:
    web = "echo hello-through-a-service > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
    run_pods(client, namespace, [
        real_pod("web-0", web, labels={"app": "web"}, restart="Always"),
        real_pod("worker-0", web, labels={"app": "worker"}, restart="Always", hostname="worker-0",
                 subdomain="workers"),
    ], "Running")
    client.create(service("web", {"app": "web"}, 8080), namespace=namespace)
    client.create(service("workers", {"app": "worker"}, 8080, headless=True), namespace=namespace)
    web_ip = client.get("Service", "web", namespace=namespace)["spec"]["clusterIP"]
    worker_ip = client.get("Pod", "worker-0", namespace=namespace)["status"]["podIP"]
    assert ipaddress.ip_address(web_ip) in ipaddress.ip_network(load_profile("local-real").control_plane.service_cidr)
    wait_endpoints(client, namespace, "web", 1)
    wait_endpoints(client, namespace, "workers", 1)
    names = ["kubernetes.default.svc.cluster.local", f"web.{namespace}.svc.cluster.local",
             f"workers.{namespace}.svc.cluster.local", f"worker-0.workers.{namespace}.svc.cluster.local",
             "nothing-here.example"]
    # Debian's busybox-static wget segfaults on a host name (static glibc resolver) and on -T: it gets the ClusterIP
    # that nslookup must return (asserted below), and `timeout` bounds it
    script = ("exec 2>&1; cat /etc/resolv.conf; " + "; ".join(f"echo Q {n}; nslookup {n}" for n in names)
              + f"; echo WGET; timeout 10 wget -q -O- http://{web_ip}:8080/index.html; echo RC=$?; echo END")
    run_pods(client, namespace, [real_pod("client", script)], "Succeeded")
    out = pod_log(client, namespace, "client", "main")
    dns_ip = record["netsvc"]["dns_ip"]
    assert f"nameserver {dns_ip}" in out and f"search {namespace}.svc.cluster.local" in out, out

    def answer(name: str) -> str:
        return out.split(f"Q {name}\n", 1)[1].split("\nQ ", 1)[0].split("\nWGET", 1)[0]

    assert re.search(r"Address: 10\.96\.0\.1\b", answer("kubernetes.default.svc.cluster.local")), out
    assert f"Address: {web_ip}" in answer(f"web.{namespace}.svc.cluster.local"), out
    assert f"Address: {worker_ip}" in answer(f"workers.{namespace}.svc.cluster.local"), out  # headless: the pod
    assert f"Address: {worker_ip}" in answer(f"worker-0.workers.{namespace}.svc.cluster.local"), out
    nothing = answer("nothing-here.example")  # not forwarded anywhere: NXDOMAIN from CoreDNS
    assert "NXDOMAIN" in nothing and not re.search(r"^Address: ", nothing, re.M), out
    assert "hello-through-a-service" in out.split("WGET", 1)[1], out  # the name's ClusterIP, DNATed to the pod
    # and from the host, as on any node (the apiserver reaches webhook Services the same way)
    body = urllib.request.urlopen(f"http://{web_ip}:8080/index.html", timeout=10).read().decode()
    assert body.strip() == "hello-through-a-service"
    delete_pods(client, namespace, ["client"])


# -- traffic to simulated pods never leaves ------------------------------------------------------------------------------


@pytest.fixture
def leak_counter() -> Iterator[str]:
    """An nft table of this test that counts and drops anything to the simulated ranges leaving through the
    default-route interface: if the unreachable routes were missing, the counter would show it and the packet
    would still not leave the machine."""
    dev = default_route_dev()
    if shutil.which("nft") is None:
        pytest.skip("needs nft (apt-get install nftables) to count packets on the default-route interface")
    profile = load_profile("local-real").control_plane
    dsts = ", ".join([*netsvc.unreachable_routes(profile.pod_cidr), profile.service_cidr])
    rules = (f"table ip {LEAK_TABLE} {{\n chain out {{\n  type filter hook postrouting priority 0; policy accept;\n"
             f'  oifname "{dev}" ip daddr {{ {dsts} }} counter drop\n }}\n}}\n')
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True, timeout=30)
    try:
        yield LEAK_TABLE
    finally:
        subprocess.run(["nft", "delete", "table", "ip", LEAK_TABLE], check=False, timeout=30)


def leaked_packets() -> int:
    text = _run(["nft", "list", "table", "ip", LEAK_TABLE])
    m = re.search(r"counter packets (\d+)", text)
    assert m, text
    return int(m.group(1))


def test_connections_to_simulated_pods_fail_at_once_and_send_nothing_out(
        client: KubeClient, namespace: str, record: dict[str, Any], leak_counter: str) -> None:
    sim = [{"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"sim-{i}", "labels": {"app": "sim"}},
            "spec": {"nodeSelector": {POOL_LABEL: "cpu"}, "terminationGracePeriodSeconds": 0,
                     "tolerations": [dict(SIMULATED_TOLERATION)],
                     "containers": [{"name": "main", "image": "aiconform.local/pause:3.10"}]}} for i in range(2)]
    run_pods(client, namespace, sim, "Running")
    client.create(service("sim", {"app": "sim"}, 80), namespace=namespace)
    sim_ips = wait_endpoints(client, namespace, "sim", 2)
    sim_net = ipaddress.ip_network(record["netsvc"]["sim_pod_cidr"])
    assert all(ipaddress.ip_address(ip) in sim_net for ip in sim_ips), sim_ips
    cluster_ip = client.get("Service", "sim", namespace=namespace)["spec"]["clusterIP"]

    # The kernel's own answer first (nothing is sent before it says so): refused here, for the host and for a pod;
    # Service IPs go to the node's veth, never the default route.
    for dst in sim_ips:
        assert refused_by_route(dst), dst
    assert FAKE_NODE_IP.startswith("127."), "the simulated nodes' InternalIP must never route off this machine"
    for dst in (cluster_ip, "10.96.255.254"):
        assert f"dev {realnode.VETH} " in _run(["ip", "route", "get", dst]), dst

    # From the host: refused by the route lookup (a simulated pod) or the REJECT rule (an IP no Service holds), well
    # before the 10 s socket timeout.
    for ip in [*sim_ips, "10.96.255.254"]:
        t0 = time.monotonic()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(OSError) as err:
            s.settimeout(10)
            s.connect((ip, 80))
        assert err.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH), err.value
        assert time.monotonic() - t0 < 5

    # From a pod on the real node: through the Service (kube-proxy DNATs to a simulated pod) and to a pod IP.
    script = (f"exec 2>&1; time timeout 10 wget -q -O- http://{cluster_ip}/; echo RC=$?; "
              f"time timeout 10 wget -q -O- http://{sim_ips[0]}/; echo RC=$?; "
              "time timeout 10 wget -q -O- http://10.96.255.254/; echo RC=$?; echo END")
    run_pods(client, namespace, [real_pod("prober", script)], "Succeeded", timeout=90)
    out = pod_log(client, namespace, "prober", "main")
    assert out.count("RC=1") == 3, out
    # via the Service: kube-proxy DNATs to a simulated pod and this host answers host-unreachable; to the pod IP
    # itself: the pod has no route to the simulated range at all
    via_service, direct, unheld = out.split("RC=")[:3]
    assert "No route to host" in via_service or "Host is unreachable" in via_service, out
    assert "Network is unreachable" in direct or "No route to host" in direct, out
    assert "No route to host" in unheld or "Host is unreachable" in unheld, out  # AICONFORM-SVC's REJECT
    assert "timed out" not in out, out
    assert leaked_packets() == 0
    # and what the prober's packets met after kube-proxy's DNAT: the same route, for traffic from the pod bridge
    assert refused_by_route(sim_ips[0], "from", "10.244.0.9", "iif", realnode.BRIDGE)
    delete_pods(client, namespace, ["prober"])


# -- down ------------------------------------------------------------------------------------------------------------------


def test_down_leaves_iptables_routes_and_sysctls_as_found(
        cluster: LocalCluster, record: dict[str, Any], before: dict[str, Any], state_root: Path) -> None:
    during = host_snapshot()
    backend_save = f"iptables-{record['netsvc']['backend']}-save"
    assert any(":KUBE-SERVICES" in ln for ln in during[backend_save])  # kube-proxy really wrote rules there
    assert any(ln.startswith("unreachable") for ln in during["ip -4 route"])
    pids = [pid for comp, pid in cluster.running_components().items()
            if comp in realnode.COMPONENTS + netsvc.COMPONENTS]
    assert len(pids) == len(realnode.COMPONENTS) + len(netsvc.COMPONENTS)
    env = {**os.environ, "AICONFORM_STATE_DIR": str(state_root)}
    cli = str(Path(sys.executable).parent / "aiconform")
    subprocess.run([cli, "down", "--name", cluster.name], env=env, check=True, capture_output=True, timeout=120)
    assert realnode.host_leftovers(record, cluster.dir, pids) == []
    compare_after_down(before, "down")


def test_down_after_a_killed_up_restores_the_host(cluster: LocalCluster, state_root: Path) -> None:
    """``up`` SIGKILLed right after it started kube-proxy (routes, chains, daemons in place, no state.json): ``down``
    undoes it from the real node's record.  Runs after the module's cluster is down (one real node per host)."""
    assert not cluster.dir.exists(), "runs after test_down_leaves_iptables_routes_and_sysctls_as_found"
    before = host_snapshot()
    env = {**os.environ, "AICONFORM_STATE_DIR": str(state_root), "PYTHONUNBUFFERED": "1"}
    cli = str(Path(sys.executable).parent / "aiconform")
    name = f"nk-{secrets.token_hex(2)}"
    up = subprocess.Popen([cli, "up", "--profile", "local-real", "--name", name], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert up.stderr is not None
        for line in up.stderr:  # bounded by up's own deadlines
            if "starting kube-proxy" in line:
                break
        time.sleep(0.3)  # kube-proxy is being started: its pidfile, rules and the routes are there or coming
        up.send_signal(signal.SIGKILL)
    finally:
        up.wait(timeout=60)
    assert up.returncode == -signal.SIGKILL
    during = host_snapshot()
    assert any(ln.startswith("unreachable") for ln in during["ip -4 route"])  # it had changed the host
    subprocess.run([cli, "down", "--name", name], env=env, check=True, capture_output=True, timeout=180)
    compare_after_down(before, "down of a killed up")
