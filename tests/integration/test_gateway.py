"""Tier R: the Gateway machinery.  Traefik (installed by the addon installer from the pinned module, CRDs from the
pinned gateway-api module) routes to two version-echo backends (python-base running http.server, built here) on the
real node: a 90/10 weighted split, exact header routes, and the errors a Gateway that is never Programmed or a route
that is never Accepted end in.  Every routing decision is Traefik's; the requests go to the gateway's listener on the
real node's own address.  The ``ai_inference`` scenario does the same against the real model server.

Needs root, the real node's packages and debootstrap (.ci/run installs them), and the Traefik build (cold ≈ 12 min).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from harness import gateway as gw
from harness import images
from harness.addons.traefik import NAME as TRAEFIK
from harness.config import load_profile
from harness.images import debian
from harness.kube import KubeClient
from harness.providers.local import LocalCluster, realnode
from harness.workloads import pin_to_real_node
from tests.integration.conftest import running_cluster

ECHO = """\
import json, os, socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BODY = json.dumps({"version": os.environ["VERSION"], "pod": socket.gethostname()}).encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall per answer
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""
REQUESTS = 1000
"""Bounded in count and by the loop's deadline (60 s)."""
HEADER = "x-model-version"


def _skip_reason() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "tier R needs root on Linux (a real kubelet, containerd and network interfaces)"
    missing = realnode.missing_packages() + debian.missing_tools()
    if missing:
        return f"needs packages that are not installed: apt-get install {' '.join(sorted(set(missing)))}"
    return None


pytestmark = [pytest.mark.upstream("traefik"),
              pytest.mark.realnode, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    archive = images.build("python-base").archive  # before the cluster: a cold build takes minutes
    profile = dataclasses.replace(load_profile("local-real"), name="local-real-gateway", addons=(TRAEFIK,))
    with running_cluster("gw", tmp_path_factory.mktemp("gw"), profile) as c:
        c.load_image(archive)
        yield c


@pytest.fixture(scope="module")
def namespace(client: KubeClient) -> str:
    name = f"gw-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": {"aiconform.io/test": "gateway"}}})
    client.wait_for("ServiceAccount", namespace=name, name="default", condition=bool, timeout=30)
    return name


def echo_backend(version: str) -> list[dict[str, Any]]:
    """A Deployment answering ``{"version": VERSION}`` on :8080 and its Service on :80."""
    labels = {"app": "echo", "version": version}
    deployment = pin_to_real_node({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"echo-{version}"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "echo", "image": images.image_ref("python-base"), "imagePullPolicy": "Never",
                "command": ["python3", "-c", ECHO], "env": [{"name": "VERSION", "value": version}],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}]}}},
    })
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"echo-{version}"},
               "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}}
    return [deployment, service]


@pytest.fixture(scope="module")
def backends(client: KubeClient, namespace: str) -> list[str]:
    for version in ("v1", "v2"):
        for obj in echo_backend(version):
            client.create(obj, namespace=namespace)
    client.wait_for("Deployment", namespace=namespace, timeout=90, what="both echo backends Available",
                    condition=lambda st: len(st) == 2 and all(d.get("status", {}).get("readyReplicas") == 1
                                                              for d in st.values()))
    return ["echo-v1", "echo-v2"]


def test_weighted_split_and_header_routes(client: KubeClient, namespace: str, backends: list[str]) -> None:
    """90/10 by weight within binomial tolerance over 1000 requests; the header routes send every request to the
    version they name."""
    client.create(gw.gateway("gw"), namespace=namespace)
    host = gw.route_hostname(namespace, "ab")
    client.create(gw.http_route("ab", gateway_name="gw", hostname=host, rules=[
        gw.Rule((gw.Backend("echo-v2", 80),), headers=((HEADER, "v2"),)),
        gw.Rule((gw.Backend("echo-v1", 80),), headers=((HEADER, "v1"),)),
        gw.Rule((gw.Backend("echo-v1", 80, 90), gw.Backend("echo-v2", 80, 10))),
    ]), namespace=namespace)
    programmed = gw.wait_programmed(client, namespace, "gw", timeout=60)
    gw.wait_route_accepted(client, namespace, "ab", gateway_name="gw", timeout=60)
    target = gw.Target(gw.gateway_address(client, programmed), gw.WEB_PORT, host)
    version = gw.json_field("version")
    gw.wait_routed(target, version, lambda label: label == "v2", headers={HEADER: "v2"}, timeout=30)

    split = gw.send(target, REQUESTS, version, deadline_s=60)
    lo, hi = gw.binomial_bounds(REQUESTS, 0.1)
    assert not split.errors, split.summary()
    assert set(split.counts) == {"v1", "v2"}, split.summary()
    assert lo <= split.counts["v2"] <= hi, f"v2 got {split.counts['v2']} of {REQUESTS}, outside [{lo}, {hi}]"
    for wanted in ("v1", "v2"):
        routed = gw.send(target, 100, version, headers={HEADER: wanted}, deadline_s=30)
        assert routed.counts == {wanted: 100}, routed.summary()
    print(f"\ngateway split over {REQUESTS}: {split.summary()}")  # the routing figure (pytest -s)


def test_gateway_never_programmed_and_route_never_accepted_are_platform_faults_with_traefik_logs(
    client: KubeClient, namespace: str, backends: list[str]
) -> None:
    """A listener on a port that is no Traefik entrypoint is never Programmed; a route to a missing Service never has
    its references resolved: both end in GatewayError (a PlatformFault: the check is failed) naming the Gateway
    implementation, the object, its last status and Traefik's log lines."""
    bad = gw.gateway("no-entrypoint", port=gw.WEB_PORT + 999)
    client.create(bad, namespace=namespace)
    with pytest.raises(gw.GatewayError) as never:
        gw.wait_programmed(client, namespace, "no-entrypoint", timeout=15)
    assert f"Gateway {namespace}/no-entrypoint was not Programmed" in str(never.value)
    assert f"{TRAEFIK} log: pod {TRAEFIK}-" in str(never.value)
    assert "no matching entryPoint for port" in str(never.value)  # Traefik's own reason, from the listener status
    assert str(never.value).startswith("the Gateway API implementation (GatewayClass traefik): ")

    client.create(gw.gateway("gw-missing"), namespace=namespace)
    gw.wait_programmed(client, namespace, "gw-missing", timeout=60)
    client.create(gw.http_route("missing", gateway_name="gw-missing", hostname=gw.route_hostname(namespace, "m"),
                                rules=[gw.Rule((gw.Backend("no-such-service", 80),))]), namespace=namespace)
    with pytest.raises(gw.GatewayError) as unresolved:
        gw.wait_route_accepted(client, namespace, "missing", gateway_name="gw-missing", timeout=10)
    assert "ResolvedRefs=False" in str(unresolved.value), str(unresolved.value)
    assert f"{TRAEFIK} log: pod {TRAEFIK}-" in str(unresolved.value)


def test_crds_come_from_the_pinned_gateway_api_module(client: KubeClient) -> None:
    """The Gateway API CRDs in the cluster are v1.4.0's standard channel, as the pinned module holds them."""
    crd = client.get("CustomResourceDefinition", "httproutes.gateway.networking.k8s.io")
    annotations = crd["metadata"].get("annotations", {})
    assert annotations.get("gateway.networking.k8s.io/bundle-version") == "v1.4.0"
    assert annotations.get("gateway.networking.k8s.io/channel") == "standard"
