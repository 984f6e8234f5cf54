"""Gateway API routing through the cluster's Gateway implementation (Traefik at tier R, harness/addons/traefik.py):
Gateway and HTTPRoute manifests (weighted backends, header matches), watches on the status the controller writes,
and bounded request loops to the gateway's listener on the real node's own address.

Owns building those objects, reading their status, sending requests and counting the answers.  Never decides a
route (the gateway does) and never judges a split (scenarios do, with :func:`binomial_bounds`).  A Gateway that is
never Programmed, a route never Accepted or a gateway that never routes is a :class:`GatewayError` (a PlatformFault:
the platform's Gateway API implementation does not do its job, the check ends ``failed``) carrying the controller's
own log lines.  Traffic goes only to an address of this machine (:func:`local_address`).
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.addons import lookup
from harness.addons.installer import addon_log_tail
from harness.addons.traefik import GATEWAY_CLASS, NAME, WEB_PORT
from harness.contract import REAL_NODE_LABEL
from harness.errors import AiconformError, ClusterError, PlatformFault
from harness.kube import KubeClient, Obj

API = "gateway.networking.k8s.io/v1"
HOST_SUFFIX = "aiconform.test"
"""Route hostnames are ``<something>.aiconform.test`` (a reserved-style name nothing resolves): Gateways of
concurrent checks share the entrypoint, so each route matches only its own Host header."""


class GatewayError(PlatformFault):
    """The Gateway API implementation did not program a Gateway, accept a route or route requests in time: the
    platform's fault (``harness.errors``), graded ``failed``."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the Gateway API implementation (GatewayClass {GATEWAY_CLASS})", detail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.detail,))


@dataclass(frozen=True)
class Backend:
    """A Service port a route forwards to, with its weight (Gateway API ``backendRefs``)."""

    service: str
    port: int
    weight: int = 1


@dataclass(frozen=True)
class Rule:
    """One HTTPRoute rule: requests whose headers all match (exact) go to the backends, split by weight."""

    backends: tuple[Backend, ...]
    headers: tuple[tuple[str, str], ...] = ()


def gateway(name: str, *, gateway_class: str = GATEWAY_CLASS, port: int = WEB_PORT) -> Obj:
    """A Gateway with one HTTP listener on ``port`` (Traefik serves it only when ``port`` is an entrypoint's port);
    routes from its own namespace only."""
    return {
        "apiVersion": API, "kind": "Gateway", "metadata": {"name": name},
        "spec": {"gatewayClassName": gateway_class,
                 "listeners": [{"name": "http", "protocol": "HTTP", "port": port,
                                "allowedRoutes": {"namespaces": {"from": "Same"}}}]},
    }


def http_route(name: str, *, gateway_name: str, hostname: str, rules: Sequence[Rule]) -> Obj:
    """An HTTPRoute attached to ``gateway_name`` for ``hostname``; rule order is kept (Gateway API gives a rule with
    more header matches precedence anyway)."""
    out = []
    for r in rules:
        rule: dict[str, Any] = {"backendRefs": [{"name": b.service, "port": b.port, "weight": b.weight}
                                                for b in r.backends]}
        match: dict[str, Any] = {"path": {"type": "PathPrefix", "value": "/"}}
        if r.headers:
            match["headers"] = [{"type": "Exact", "name": h, "value": v} for h, v in r.headers]
        rule["matches"] = [match]
        out.append(rule)
    return {
        "apiVersion": API, "kind": "HTTPRoute", "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": gateway_name}], "hostnames": [hostname], "rules": out},
    }


def route_hostname(namespace: str, name: str) -> str:
    return f"{name}.{namespace}.{HOST_SUFFIX}"


# -- status ------------------------------------------------------------------------------------------------------------


def _conditions(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def _summary(conds: Mapping[str, Mapping[str, Any]]) -> str:
    return "; ".join(f"{t}={c.get('status')} ({c.get('reason', '')}: {c.get('message', '')})".replace(" (: )", "")
                     for t, c in conds.items()) or "no conditions yet"


def controller_logs(client: KubeClient, *, lines: int = 6) -> str:
    """The Gateway controller's last log lines (for errors), one line per pod."""
    return addon_log_tail(client, lookup(NAME), lines)


def wait_programmed(client: KubeClient, namespace: str, name: str, *, timeout: float = 60.0) -> Obj:
    """Watch the Gateway until it is Accepted and Programmed; GatewayError with its last status and the controller's
    log lines at the deadline, or at once when the controller says False for the Gateway's current generation.
    Returns the Gateway."""
    last: dict[str, Obj] = {}

    def done(state: dict[str, Obj]) -> bool:
        obj = state.get(f"{namespace}/{name}")
        if obj is None:
            return False
        last["gw"] = obj
        conds = _conditions(obj)
        return all(conds.get(t, {}).get("status") == "True" for t in ("Accepted", "Programmed"))

    def refused(state: dict[str, Obj]) -> str | None:
        obj = state.get(f"{namespace}/{name}")
        if obj is None:
            return None
        last["gw"] = obj
        generation = obj["metadata"].get("generation")
        for t, c in _conditions(obj).items():  # the controller's answer for this very spec, not a stale one
            if t in ("Accepted", "Programmed") and c.get("status") == "False" and c.get("observedGeneration") == generation:
                return f"{t}=False ({c.get('reason', '')}: {c.get('message', '')})"
        return None

    try:
        final = client.wait_for("Gateway", namespace=namespace, name=name, api_version=API, condition=done,
                                failure=refused, timeout=timeout,
                                what=f"Gateway {namespace}/{name} to be Programmed")
    except AiconformError as err:
        gw_obj = last.get("gw", {})
        seen = _summary(_conditions(gw_obj))
        for listener in (gw_obj.get("status") or {}).get("listeners") or []:  # the controller's reason per listener
            bad = {c.get("type", ""): c for c in listener.get("conditions") or [] if c.get("status") != "True"}
            if bad:
                seen += f"; listener {listener.get('name')}: {_summary(bad)}"
        raise GatewayError(f"Gateway {namespace}/{name} was not Programmed (waited up to {timeout:.0f}s; last status: "
                           f"{seen}): {err}; {NAME} log: {controller_logs(client)}") from err
    return final[f"{namespace}/{name}"]


def _parent_status(route: Mapping[str, Any], gateway_name: str) -> dict[str, dict[str, Any]]:
    for parent in (route.get("status") or {}).get("parents") or []:
        if (parent.get("parentRef") or {}).get("name") == gateway_name:
            return {c.get("type", ""): c for c in parent.get("conditions") or []}
    return {}


def wait_route_accepted(client: KubeClient, namespace: str, name: str, *, gateway_name: str,
                        timeout: float = 60.0) -> Obj:
    """Watch the HTTPRoute until the Gateway's controller reports it Accepted with its references resolved (the
    backend Services exist); GatewayError with its last status and the controller's log lines otherwise."""
    last: dict[str, Obj] = {}

    def done(state: dict[str, Obj]) -> bool:
        obj = state.get(f"{namespace}/{name}")
        if obj is None:
            return False
        last["route"] = obj
        conds = _parent_status(obj, gateway_name)
        return all(conds.get(t, {}).get("status") == "True" for t in ("Accepted", "ResolvedRefs"))

    try:
        final = client.wait_for("HTTPRoute", namespace=namespace, name=name, api_version=API, condition=done,
                                timeout=timeout, what=f"HTTPRoute {namespace}/{name} to be Accepted")
    except AiconformError as err:
        seen = _summary(_parent_status(last.get("route", {}), gateway_name))
        raise GatewayError(f"HTTPRoute {namespace}/{name} was not Accepted by Gateway {gateway_name} within "
                           f"{timeout:.0f}s (last status: {seen}): {err}; {NAME} log: "
                           f"{controller_logs(client)}") from err
    return final[f"{namespace}/{name}"]


def real_node_address(client: KubeClient) -> str:
    """The InternalIP of the cluster's real node (where the Gateway's entrypoint listens)."""
    nodes = client.list("Node", label_selector=f"{REAL_NODE_LABEL}=true")["items"]
    for node in nodes:
        for addr in (node.get("status") or {}).get("addresses") or []:
            if addr.get("type") == "InternalIP":
                return str(addr["address"])
    raise ClusterError(f"no real node (label {REAL_NODE_LABEL}=true) with an InternalIP: the gateway has no address")


def gateway_address(client: KubeClient, gw: Obj) -> str:
    """The address the Gateway reports, which must be the real node's own address and one of this machine's."""
    node = real_node_address(client)
    reported = [a.get("value") for a in (gw.get("status") or {}).get("addresses") or []]
    if node not in reported:
        raise GatewayError(f"Gateway {gw['metadata']['name']} reports addresses {reported}, not the real node's "
                           f"{node}")
    return local_address(node)


def local_address(address: str) -> str:
    """``address`` if it belongs to this machine (an interface the harness made, or loopback); ClusterError
    otherwise: the harness never sends traffic elsewhere."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((address, 0))
    except OSError as err:
        raise ClusterError(f"refusing to send requests to {address}: not an address of this machine ({err})") from None
    return address


# -- requests ----------------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a bounded request loop saw: answers per label, failures, latencies."""

    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.counts.values()) + len(self.errors)

    def quantile(self, q: float) -> float:
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    def summary(self) -> dict[str, Any]:
        return {"sent": self.sent, "answers": dict(sorted(self.counts.items())), "errors": len(self.errors),
                "first_errors": self.errors[:3], "wall_s": round(self.wall_s, 3),
                "p50_ms": round(self.quantile(0.5) * 1000, 2), "p99_ms": round(self.quantile(0.99) * 1000, 2)}


Classify = Callable[[int, bytes], str]
"""(HTTP status, body) → the label an answer is counted under (e.g. the model version that answered)."""


@dataclass(frozen=True)
class Target:
    """Where requests go: the gateway's listener on the node's address, and the route's Host header."""

    address: str
    port: int
    host: str


def send(target: Target, count: int, classify: Classify, *, method: str = "GET", path: str = "/",
         body: bytes | None = None, headers: Mapping[str, str] | None = None, deadline_s: float = 60.0,
         request_timeout_s: float = 10.0) -> Tally:
    """Send ``count`` requests, one at a time over a keep-alive connection, stopping at ``deadline_s``; every
    answer is counted under ``classify(status, body)``, every transport failure as an error."""
    tally = Tally()
    hdrs = {"Host": target.host, **(headers or {})}
    t0 = time.monotonic()
    conn: http.client.HTTPConnection | None = None
    try:
        for _ in range(count):
            if time.monotonic() - t0 > deadline_s:
                tally.errors.append(f"deadline of {deadline_s:.0f}s reached after {tally.sent} requests")
                break
            if conn is None:
                conn = http.client.HTTPConnection(target.address, target.port, timeout=request_timeout_s)
            t1 = time.monotonic()
            try:
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as err:
                tally.errors.append(f"{type(err).__name__}: {err}")
                conn.close()
                conn = None
                continue
            tally.latencies_s.append(time.monotonic() - t1)
            tally.counts[classify(resp.status, data)] += 1
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()
        tally.wall_s = time.monotonic() - t0
    return tally


def wait_routed(target: Target, classify: Classify, expect: Callable[[str], bool], *, timeout: float = 30.0,
                **request: Any) -> float:
    """Until the gateway answers a request with a label ``expect`` accepts (the controller applies an Accepted route
    to its data plane a moment later); returns the seconds it took.  The data plane has no watch, so this probes:
    one request at a time, at most 10 per second, until the deadline, then GatewayError with the last answers."""
    t0 = time.monotonic()
    seen: list[str] = []
    while True:
        tally = send(target, 1, classify, deadline_s=timeout, request_timeout_s=min(5.0, timeout), **request)
        labels = list(tally.counts) + tally.errors
        seen = (seen + labels)[-5:]
        if any(expect(label) for label in tally.counts):
            return time.monotonic() - t0
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            raise GatewayError(f"the gateway at {target.address}:{target.port} (Host {target.host}) did not route "
                               f"within {timeout:.0f}s; last answers: {seen}")
        time.sleep(min(0.1, left))  # probe pacing, bounded by the deadline above


def binomial_bounds(n: int, p: float, *, z: float = 4.0) -> tuple[int, int]:
    """The counts of a share-``p`` outcome over ``n`` independent trials that lie within ``z`` standard deviations
    of ``n*p`` (z = 4: a correct split falls outside with probability ≈ 6e-5).  A deterministic splitter (Traefik's
    weighted round robin) lands on ``n*p`` itself; the bounds also hold for a random one."""
    mean = n * p
    sd = math.sqrt(n * p * (1 - p))
    return max(0, math.floor(mean - z * sd)), min(n, math.ceil(mean + z * sd))


def json_field(key: str) -> Classify:
    """Classify an answer by a top-level string field of its JSON body (``status`` otherwise)."""

    def classify(status: int, body: bytes) -> str:
        if status != 200:
            return f"HTTP {status}"
        try:
            value = json.loads(body).get(key)
        except (ValueError, AttributeError):
            return "not JSON"
        return str(value) if value is not None else f"no {key}"

    return classify
