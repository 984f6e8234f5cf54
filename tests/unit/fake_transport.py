"""A transport for :class:`harness.kube.KubeClient` that answers from a table and records every request.

It stands in for the HTTP layer only, so the client's own logic (discovery, paths, credentials, retries) can be
tested without a cluster.  It never decides anything a Kubernetes component decides: every answer is written by
the test that uses it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.kube import Response

Handler = Callable[[str, str, bytes | None, Mapping[str, str]], Response]


@dataclass
class Call:
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]

    @property
    def bare_path(self) -> str:
        return self.path.split("?", 1)[0]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def ok(doc: Any, status: int = 200) -> Response:
    return Response(status, "OK", {"content-type": "application/json"}, json.dumps(doc).encode())


def status(code: int, reason: str, message: str = "") -> Response:
    doc = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code}
    return Response(code, reason, {"content-type": "application/json"}, json.dumps(doc).encode())


@dataclass
class FakeTransport:
    """``routes[(method, path)]`` is a Response or a handler; anything else is a 404 Status."""

    routes: dict[tuple[str, str], Response | Handler] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    client_certs: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    closed: bool = False

    def send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        call = Call(method, path, body, dict(headers))
        self.calls.append(call)
        route = self.routes.get((method, call.bare_path))
        if route is None:
            return status(404, "NotFound", f"no route {method} {call.bare_path}")
        if isinstance(route, Response):
            return route
        return route(method, path, body, headers)

    def stream(self, path: str, headers: Mapping[str, str], timeout: float) -> tuple[Response, Iterator[bytes]]:
        self.calls.append(Call("WATCH", path, None, dict(headers)))
        return status(404, "NotFound", "no watches here"), iter(())

    def use_client_certificate(self, cert: bytes | None, key: bytes | None) -> None:
        self.client_certs.append((cert, key))

    def close(self) -> None:
        self.closed = True

    def paths(self, method: str | None = None) -> list[str]:
        return [c.bare_path for c in self.calls if method is None or c.method == method]
