"""Tier R plumbing: pods reach the API through the ``kubernetes`` Service, and the aggregation layer proxies to a
real APIService backend.  One ``local-real`` cluster for the module; every verdict comes from the real apiserver
(lease endpoint reconciler, RBAC, aggregator, availability controller) and the real kubelet/containerd.

Without kube-proxy on the node (tier R has none yet) a Service IP does not route, so the pod dials the address the
``kubernetes`` EndpointSlice publishes; once a ``kube-proxy`` component runs, the pod uses the Service IP from its
own ``KUBERNETES_SERVICE_HOST``/``PORT`` instead.  Packets to a Service IP are never sent without kube-proxy: they
would follow the host's default route off the machine.  The pod's client is ``data/apiget.go`` built FROM scratch
here (busybox's wget cannot complete a TLS handshake with the apiserver's ECDSA certificate, and never verifies
certificates): it trusts only the service-account CA and checks that the certificate names the address dialled.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from harness import images
from harness.config import load_profile, parse_profile, profile_data
from harness.errors import ServerError
from harness.kube import KubeClient
from harness.pki import Pki
from harness.providers.local import LocalCluster, realnode
from harness.providers.local.controlplane import first_service_ip
from tests.integration.conftest import running_cluster
from tests.integration.test_real_node import _skip_reason, pod, pod_log, run_pods

pytestmark = [pytest.mark.upstream("kube-router"),
              pytest.mark.realnode, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]

GROUP, VERSION = "probe.aiconform.io", "v1alpha1"
APIGET_SRC = Path(__file__).with_name("data") / "apiget.go"
EXTRA_LABEL = "aiconform.io/from-extra-args"
_BASE = profile_data("local-real")  # with what it extends merged in
PROFILE = {**_BASE,
           # the gate alone would leave the scheduler waiting forever for a PodGroup API nobody serves; the
           # profile's own gates (its DRA pool's) stay
           "controlPlane": {"featureGates": {**_BASE["controlPlane"]["featureGates"], "GenericWorkload": True},
                            "runtimeConfig": {"scheduling.k8s.io/v1beta1": True}}}
PROFILE["realNode"] = {**PROFILE["realNode"], "extraArgs": {"node-labels": f"{EXTRA_LABEL}=yes"}}
"""``local-real`` plus a feature gate (the kubelet gets it in its config file) and an extra kubelet flag."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster("api", tmp_path_factory.mktemp("api"), parse_profile(PROFILE, name="local-real-api")) as c:
        yield c


@pytest.fixture(scope="module")
def namespace(client: KubeClient) -> str:
    name = f"api-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    client.wait_for("ServiceAccount", namespace=name, name="default", condition=bool, timeout=30)
    return name


def api_endpoint(client: KubeClient) -> tuple[str, int]:
    """The address and port the ``kubernetes`` Service's EndpointSlice publishes (lease reconciler)."""
    slices = client.request("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                            params={"labelSelector": "kubernetes.io/service-name=kubernetes"})["items"]
    assert len(slices) == 1, slices
    (ep,) = slices[0]["endpoints"]
    (port,) = slices[0]["ports"]
    return ep["addresses"][0], int(port["port"])


def listening_addresses(pid: int) -> set[str]:
    """IPv4/IPv6 addresses that process ``pid`` has listening TCP sockets on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target).startswith("socket:["):
            inodes.add(str(target)[8:-1])
    out = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(fields[1].split(":")[0][:width])
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            out.add(socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6, words))
    return out


# -- 1. the API from pods ----------------------------------------------------------------------------------------------


def test_apiserver_listens_on_the_node_address_and_publishes_it(cluster: LocalCluster, client: KubeClient) -> None:
    port = cluster.state()["ports"]["apiserver"]  # type: ignore[index]
    assert api_endpoint(client) == (realnode.NODE_IP, port)
    svc = client.get("Service", "kubernetes", "default")
    assert svc["spec"]["clusterIP"] == first_service_ip(load_profile("local-real").control_plane.service_cidr)
    assert client.request("GET", "/api/v1/namespaces/default/endpoints/kubernetes")["subsets"][0]["addresses"] == \
        [{"ip": realnode.NODE_IP}]


def test_nothing_listens_outside_loopback_and_the_node_address(cluster: LocalCluster) -> None:
    allowed = {"127.0.0.1", "::1", realnode.NODE_IP}
    for comp, pid in cluster.running_components().items():
        addrs = listening_addresses(pid)
        assert addrs <= allowed, f"{comp} listens on {sorted(addrs - allowed)}"
    assert listening_addresses(cluster.running_components()["kube-apiserver"]) == {realnode.NODE_IP}


def test_serving_certificate_is_valid_for_node_address_and_service_ip(cluster: LocalCluster) -> None:
    port = cluster.state()["ports"]["apiserver"]  # type: ignore[index]
    ctx = ssl.create_default_context(cafile=str(cluster.pki.ca.cert))  # verifies the chain and the IP SAN
    with socket.create_connection((realnode.NODE_IP, port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=realnode.NODE_IP) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    sans = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    ips = {str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)}
    assert {realnode.NODE_IP, "10.96.0.1"} <= ips
    assert "kubernetes.default.svc" in sans.value.get_values_for_type(x509.DNSName)


@pytest.fixture(scope="module")
def apiget_image(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """data/apiget.go built with ``go build`` (static, standard library only) into an image FROM scratch through
    harness.images (cached by content) and imported into the real node's containerd: an in-cluster client that
    verifies the apiserver's certificate as client-go does."""
    go = shutil.which("go")
    assert go is not None, "building the test client needs Go (as building the pinned binaries does)"
    out = tmp_path_factory.mktemp("apiget")
    shutil.copyfile(APIGET_SRC, out / "apiget.go")
    subprocess.run([go, "build", "-trimpath", "-ldflags=-s -w", "-o", "apiget", "apiget.go"], cwd=out,
                   env={**os.environ, "CGO_ENABLED": "0"}, check=True, capture_output=True, timeout=600)
    built = images.build(images.static_binary_image("apiget", out / "apiget", tag="test"), lambda _line: None)
    record = realnode.load_record(cluster)
    assert record is not None
    images.import_archive(built.archive, record["containerd"]["socket"])
    return built.ref


def test_pod_lists_nodes_through_the_kubernetes_service(cluster: LocalCluster, client: KubeClient,
                                                        namespace: str, apiget_image: str) -> None:
    """A pod on the real node lists Nodes with its service-account token, verifying the apiserver's certificate
    for the address it dials; RBAC decides (the same request without the token is refused)."""
    client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": f"{namespace}-node-reader"},
                   "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]})
    client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": f"{namespace}-node-reader"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                               "name": f"{namespace}-node-reader"},
                   "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]})
    if "kube-proxy" in cluster.running_components():  # the Service IP routes: dial it as in-cluster clients do
        target = "service"
    else:  # no kube-proxy: the address the kubernetes Service's EndpointSlice publishes
        host, port = api_endpoint(client)
        target = f"{host}:{port}"
    containers = [{"name": auth, "image": apiget_image, "imagePullPolicy": "IfNotPresent",
                   "args": [target, "/api/v1/nodes", auth]} for auth in ("token", "anonymous")]
    run_pods(client, namespace, [pod("lister", containers)], "Succeeded", timeout=90)
    status, body = pod_log(client, namespace, "lister", "token").split("\n", 1)
    assert status == "STATUS 200", (status, body)
    names = {n["metadata"]["name"] for n in json.loads(body.rsplit("\nEND", 1)[0])["items"]}
    assert "aiconform-real-0" in names and len(names) > 1, names  # the real node and the simulated ones
    anonymous = pod_log(client, namespace, "lister", "anonymous").split("\n", 1)[0]
    assert anonymous in ("STATUS 401", "STATUS 403"), anonymous


def test_kubelet_gets_the_profiles_gates_and_extra_flags(cluster: LocalCluster, client: KubeClient) -> None:
    record = realnode.load_record(cluster)
    assert record is not None
    config = yaml.safe_load((cluster.dir / "realnode" / "kubelet-config.yaml").read_text())
    # the profile's gates that the pinned kubelet lists (GenericWorkload; the DRA pool's beta gates; GA ones it hides)
    assert config["featureGates"]["GenericWorkload"] is True
    assert config["featureGates"].items() <= PROFILE["controlPlane"]["featureGates"].items()
    assert f"--node-labels={EXTRA_LABEL}=yes" in record["kubelet_argv"]
    assert client.get("Node", "aiconform-real-0")["metadata"]["labels"].get(EXTRA_LABEL) == "yes"


# -- 2. the aggregation layer ------------------------------------------------------------------------------------------


class Backend:
    """A small extension apiserver the test runs on the real node's address: TLS with a certificate for its Service
    name, client certificates required and checked against the front-proxy CA; serves discovery for one version and
    one resource, and records the front proxy's request headers."""

    def __init__(self, pki: Pki, front_proxy_ca: Path, service_dns: str) -> None:
        pki.create_ca(cn="probe-backend-ca")
        pair = pki.issue("backend", service_dns, server=True, dns=(service_dns,), ips=(realnode.NODE_IP,))
        self.ca = pki.ca.cert
        self.seen: list[dict[str, Any]] = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pair.cert, pair.key)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(front_proxy_ca))
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]
                cn = dict(x[0] for x in peer["subject"]).get("commonName") if peer else None
                backend.seen.append({"path": self.path, "client_cn": cn,
                                     "user": self.headers.get("X-Remote-User"),
                                     "groups": self.headers.get_all("X-Remote-Group") or []})
                path = self.path.split("?", 1)[0]
                if path == f"/apis/{GROUP}/{VERSION}":
                    self._json({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
                                "resources": [{"name": "widgets", "singularName": "widget", "namespaced": False,
                                               "kind": "Widget", "verbs": ["get", "list"]}]})
                elif path == f"/apis/{GROUP}/{VERSION}/widgets":
                    self._json({"kind": "WidgetList", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {},
                                "items": [{"kind": "Widget", "apiVersion": f"{GROUP}/{VERSION}",
                                           "metadata": {"name": "from-the-backend"},
                                           "seenUser": self.headers.get("X-Remote-User")}]})
                else:
                    self.send_error(404)

            def _json(self, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
                pass

        self.server = ThreadingHTTPServer((realnode.NODE_IP, 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def get_through_aggregator(client: KubeClient, path: str, timeout: float = 15) -> Any:
    """GET ``path``; the aggregator's proxy handler learns of the Available condition a moment after the status
    shows it and answers 503 until then (nothing to watch for that: a bounded retry)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.request("GET", path)
        except ServerError as err:
            if err.status != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_apiservice_becomes_available_and_proxies_with_the_front_proxy_identity(
        cluster: LocalCluster, client: KubeClient, namespace: str, tmp_path: Path) -> None:
    svc = "probe-api"
    backend = Backend(Pki(tmp_path / "backend-pki"), cluster.pki.front_proxy_ca.cert, f"{svc}.{namespace}.svc")
    name = f"{VERSION}.{GROUP}"
    try:
        client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc},
                       "spec": {"ports": [{"name": "https", "port": 443, "targetPort": backend.port}]}},
                      namespace=namespace)
        client.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": f"{svc}-1", "labels": {"kubernetes.io/service-name": svc}},
                       "addressType": "IPv4",
                       "endpoints": [{"addresses": [realnode.NODE_IP], "conditions": {"ready": True}}],
                       "ports": [{"name": "https", "port": backend.port, "protocol": "TCP"}]}, namespace=namespace)
        client.create({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name},
                       "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 1000,
                                "versionPriority": 15,
                                "service": {"namespace": namespace, "name": svc, "port": 443},
                                "caBundle": base64.b64encode(backend.ca.read_bytes()).decode()}})

        def available(state: dict[str, Any]) -> bool:
            conds = state.get(name, {}).get("status", {}).get("conditions", [])
            return any(c["type"] == "Available" and c["status"] == "True" for c in conds)

        client.wait_for("APIService", name=name, condition=available, timeout=60,
                        what=f"APIService {name} to be Available", api_version="apiregistration.k8s.io/v1")
        widgets = get_through_aggregator(client, f"/apis/{GROUP}/{VERSION}/widgets")
        assert [w["metadata"]["name"] for w in widgets["items"]] == ["from-the-backend"]
        assert widgets["items"][0]["seenUser"] == "aiconform-admin"
        proxied = [s for s in backend.seen if s["path"].startswith(f"/apis/{GROUP}/{VERSION}/widgets")]
        assert proxied and proxied[-1]["client_cn"] == "front-proxy-client"
        assert proxied[-1]["user"] == "aiconform-admin" and "system:masters" in proxied[-1]["groups"]
    finally:
        client.delete("APIService", name, api_version="apiregistration.k8s.io/v1")
        backend.close()
