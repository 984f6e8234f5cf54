"""The Traefik addon's manifests and CRD source, the Gateway API objects, the request loop and the split tolerance
(no cluster; the routing itself is exercised against a real node in tests/integration/test_gateway.py)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from harness import gateway as gw
from harness.addons import AddonContext, lookup
from harness.addons.traefik import CONTROLLER_NAME, CRD_KUSTOMIZATION, GATEWAY_CLASS, PING_PORT, WEB_PORT
from harness.bins import load_versions
from harness.contract import REAL_NODE_LABEL
from harness.errors import ClusterError
from harness.facts import FACTS


def test_traefik_serves_gateways_on_the_real_nodes_own_address() -> None:
    addon = lookup("traefik")
    rendered: list[str] = []

    def upstream(path: str) -> list[dict[str, object]]:
        rendered.append(path)
        return [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                 "metadata": {"name": "httproutes.gateway.networking.k8s.io"}}]

    ctx = AddonContext(image="aiconform.local/traefik:v3.6.12", apiserver_host="172.31.255.1",
                       apiserver_port=6443, node_selector={REAL_NODE_LABEL: "true"}, upstream=upstream)
    objs = {o["kind"]: o for o in addon.manifests(ctx)}
    assert rendered == [CRD_KUSTOMIZATION] and "CustomResourceDefinition" in objs  # from the pinned module
    spec = objs["Deployment"]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert spec["nodeSelector"] == {REAL_NODE_LABEL: "true"} and spec["hostNetwork"] is True
    assert container["image"] == ctx.image and container["imagePullPolicy"] == "Never"
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env["KUBERNETES_SERVICE_HOST"]["value"] == "172.31.255.1"
    # every entrypoint binds the node's own address, never all interfaces
    addresses = [a.split("=", 1)[1] for a in container["args"] if ".address=" in a]
    assert addresses == [f"$(NODE_IP):{WEB_PORT}", f"$(NODE_IP):{PING_PORT}"]
    assert "--providers.kubernetesgateway=true" in container["args"]
    assert "--global.sendanonymoususage=false" in container["args"]
    assert container["readinessProbe"]["httpGet"]["port"] == PING_PORT
    assert objs["GatewayClass"]["spec"]["controllerName"] == CONTROLLER_NAME == "traefik.io/gateway-controller"
    rules = objs["ClusterRole"]["rules"]
    assert any("httproutes/status" in r["resources"] and "update" in r["verbs"] for r in rules)
    assert "gateway-api" in addon.facts and "gateway-api" in FACTS
    assert addon.gateway_class == GATEWAY_CLASS and addon.upstream_group == "gateway-api"


def test_traefik_and_its_gateway_api_module_are_pinned() -> None:
    versions = load_versions()
    traefik = versions.groups["traefik"]
    assert (traefik.module, traefik.version) == ("github.com/traefik/traefik/v3", "3.6.12")
    crds = versions.groups["gateway-api"]
    assert (crds.module, crds.version, crds.binaries) == ("sigs.k8s.io/gateway-api", "1.4.0", ())


def test_no_crds_in_the_module_is_an_error() -> None:
    ctx = AddonContext(image="i", apiserver_host="h", apiserver_port=1, upstream=lambda path: [{"kind": "ConfigMap"}])
    with pytest.raises(ClusterError, match="no CustomResourceDefinitions in gateway-api's config/crd"):
        lookup("traefik").manifests(ctx)


def test_gateway_listens_on_the_entrypoint_port_and_routes_by_weight_and_header() -> None:
    g = gw.gateway("g")
    assert g["spec"]["listeners"][0]["port"] == WEB_PORT and g["spec"]["gatewayClassName"] == GATEWAY_CLASS
    route = gw.http_route("r", gateway_name="g", hostname="r.ns.aiconform.test", rules=[
        gw.Rule((gw.Backend("model-v2", 80),), headers=(("x-model-version", "v2"),)),
        gw.Rule((gw.Backend("model-v1", 80, 90), gw.Backend("model-v2", 80, 10))),
    ])
    header, split = route["spec"]["rules"]
    assert header["matches"][0]["headers"] == [{"type": "Exact", "name": "x-model-version", "value": "v2"}]
    assert [(b["name"], b["weight"]) for b in split["backendRefs"]] == [("model-v1", 90), ("model-v2", 10)]
    assert "headers" not in split["matches"][0]
    assert route["spec"]["parentRefs"] == [{"name": "g"}] and route["spec"]["hostnames"] == ["r.ns.aiconform.test"]


@pytest.mark.parametrize(("n", "p", "bounds"), [(1000, 0.1, (62, 138)), (200, 0.1, (3, 37)), (100, 0.5, (30, 70))])
def test_binomial_bounds(n: int, p: float, bounds: tuple[int, int]) -> None:
    lo, hi = gw.binomial_bounds(n, p)
    assert (lo, hi) == bounds and lo <= n * p <= hi


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("Host") != "r.ns.aiconform.test":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"version": self.headers.get("x-model-version", "v1")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def test_send_counts_answers_by_label_over_one_keep_alive_connection(echo: int) -> None:
    target = gw.Target("127.0.0.1", echo, "r.ns.aiconform.test")
    tally = gw.send(target, 20, gw.json_field("version"), headers={"x-model-version": "v2"})
    assert tally.counts == {"v2": 20} and not tally.errors and tally.sent == 20
    assert 0 < tally.quantile(0.5) <= tally.quantile(0.99)
    wrong_host = gw.send(gw.Target("127.0.0.1", echo, "other.aiconform.test"), 3, gw.json_field("version"))
    assert wrong_host.counts == {"HTTP 404": 3}
    assert gw.wait_routed(target, gw.json_field("version"), lambda label: label == "v1", timeout=5) < 5


def test_a_gateway_that_never_routes_is_an_error_with_its_last_answers(echo: int) -> None:
    target = gw.Target("127.0.0.1", echo, "other.aiconform.test")
    with pytest.raises(gw.GatewayError, match=r"did not route within 1s; last answers: \['HTTP 404'"):
        gw.wait_routed(target, gw.json_field("version"), lambda label: label == "v1", timeout=1)


def test_requests_go_only_to_addresses_of_this_machine() -> None:
    assert gw.local_address("127.0.0.1") == "127.0.0.1"
    with pytest.raises(ClusterError, match="refusing to send requests to 192.0.2.7: not an address of this machine"):
        gw.local_address("192.0.2.7")  # TEST-NET-1: binding fails, nothing is sent


def test_a_gateway_that_is_never_programmed_grades_the_check_failed_naming_the_gateway_implementation() -> None:
    from harness.errors import PlatformFault
    from harness.testing.outcome import is_platform_failure

    err = gw.GatewayError("Gateway t/g was not Programmed; traefik log: ...")
    assert is_platform_failure(err) and isinstance(err, PlatformFault) and not isinstance(err, ClusterError)
    assert str(err) == ("the Gateway API implementation (GatewayClass traefik): Gateway t/g was not Programmed; "
                        "traefik log: ...")
