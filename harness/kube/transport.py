"""How bytes reach the apiserver: the :class:`Transport` seam and :class:`HttpTransport`, keep-alive HTTPS with
one connection per thread.

Owns connections and TLS; it must not interpret an answer (the client does).
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import NamedTuple, Protocol

from harness.errors import KubeUnreachable
from harness.kube.config import KubeConfig


class Response(NamedTuple):
    """One answer of the apiserver.  ``headers`` is case-insensitive (lower-case keys in a plain dict).  A tuple,
    not a dataclass: one is built per request, thousands a second."""

    status: int
    reason: str = ""
    headers: Mapping[str, str] = {}
    body: bytes = b""


class Transport(Protocol):
    """How the client's requests reach the apiserver.  :class:`HttpTransport` in real use; a unit test passes an
    object that answers from a table and records what was asked."""

    def send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        """One request; ``path`` includes the query.  Raises KubeUnreachable when the apiserver cannot be reached."""
        ...

    def stream(self, path: str, headers: Mapping[str, str], timeout: float) -> tuple[Response, Iterator[bytes]]:
        """A streaming GET (a watch): the status line, then its lines until EOF or ``timeout`` seconds.  On an
        error status the Response carries the body and the iterator is empty."""
        ...

    def use_client_certificate(self, cert: bytes | None, key: bytes | None) -> None:
        """From now on present this client certificate (an exec plugin renewed it)."""
        ...

    def close(self) -> None: ...


class HttpTransport:
    """JSON over keep-alive HTTP(S): one connection per thread, retried on a dropped connection."""

    def __init__(self, config: KubeConfig, *, timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout
        u = urllib.parse.urlsplit(config.server)
        self._https = u.scheme == "https"
        self._host = u.hostname or "127.0.0.1"
        self._port = u.port or (443 if self._https else 80)
        self.prefix = u.path.rstrip("/")
        self._ssl = config.ssl_context() if self._https else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all_conns: list[http.client.HTTPConnection] = []
        self._generation = 0

    def use_client_certificate(self, cert: bytes | None, key: bytes | None) -> None:
        if not self._https:
            return
        ctx = self.config.ssl_context(cert, key)
        with self._lock:
            self._ssl = ctx
            self._generation += 1
        self.close()

    def _new_conn(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._https:
            assert self._ssl is not None
            if self.config.tls_server_name:
                return _NamedTLSConnection(self._host, self._port, self._ssl, self.config.tls_server_name, timeout)
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "generation", -1) != self._generation:
            conn = self._new_conn(self.timeout)
            self._local.conn = conn
            self._local.generation = self._generation
            with self._lock:
                self._all_conns.append(conn)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None
        with self._lock:
            if conn in self._all_conns:
                self._all_conns.remove(conn)

    def send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        url = self.prefix + path
        for attempt in range(3):
            conn = self._conn()
            try:
                conn.request(method, url, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (ConnectionError, http.client.HTTPException, ssl.SSLError, TimeoutError, OSError) as err:
                self._drop(conn)
                if attempt < 2 and not isinstance(err, ssl.SSLCertVerificationError | TimeoutError):
                    continue
                raise KubeUnreachable(f"{method} {self.config.server}{path.split('?')[0]}: {err}") from err
            return Response(resp.status, resp.reason, _Headers(resp.headers), payload)
        raise KubeUnreachable(f"{method} {path}: gave up after retries")  # pragma: no cover

    def stream(self, path: str, headers: Mapping[str, str], timeout: float) -> tuple[Response, Iterator[bytes]]:
        deadline = time.monotonic() + timeout
        conn = self._new_conn(timeout=max(0.5, timeout + 2))
        try:
            conn.request("GET", self.prefix + path, headers=dict(headers))
            resp = conn.getresponse()
        except (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError) as err:
            conn.close()
            raise KubeUnreachable(f"watch {path.split('?')[0]}: {err}") from err
        head = _Headers(resp.headers)
        if resp.status >= 400:
            try:
                payload = resp.read()
            finally:
                conn.close()
            return Response(resp.status, resp.reason, head, payload), iter(())

        def lines() -> Iterator[bytes]:
            try:
                while time.monotonic() < deadline:
                    if conn.sock is not None:
                        conn.sock.settimeout(max(0.05, deadline - time.monotonic()))
                    try:
                        line = resp.readline()
                    except TimeoutError:
                        return
                    except (ConnectionError, http.client.HTTPException, OSError) as err:
                        raise KubeUnreachable(f"watch {path.split('?')[0]}: {err}") from err
                    if not line:
                        return
                    yield line
            finally:
                conn.close()

        return Response(resp.status, resp.reason, head), lines()

    def close(self) -> None:
        """Close every keep-alive connection this transport opened, in any thread."""
        with self._lock:
            conns, self._all_conns = self._all_conns, []
        for conn in conns:
            conn.close()
        self._local.conn = None


class _Headers(Mapping[str, str]):
    """An HTTP answer's headers as a case-insensitive mapping, without copying them (one per request)."""

    __slots__ = ("_msg",)

    def __init__(self, msg: http.client.HTTPMessage) -> None:
        self._msg = msg

    def __getitem__(self, key: str) -> str:
        value = self._msg.get(key)
        if value is None:
            raise KeyError(key)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return iter(k.lower() for k in self._msg.keys())

    def __len__(self) -> int:
        return len(self._msg)


class _NamedTLSConnection(http.client.HTTPSConnection):
    """HTTPS to an address, verifying the certificate for another name (the kubeconfig's ``tls-server-name``)."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, server_name: str, timeout: float | None) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls = context
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_name)
