"""A small, fast Kubernetes API client: kubeconfig loading (and writing one for a client certificate), credentials,
API discovery, keep-alive HTTPS, watch-based waits, apply/delete.

Owns talking to a kube-apiserver.  It speaks JSON over the stdlib's http.client with one keep-alive connection per
thread, which is what lets the harness create thousands of pods a second on two cores.  It must never decide
anything a Kubernetes component decides: it only sends requests and reads answers.

Three seams, each replaceable on its own:
- credentials (:class:`Credentials`): a static token or client certificate, a ``tokenFile`` re-read as it
  rotates, an exec credential plugin (EKS, GKE and AKS kubeconfigs) re-run before its credential expires, an OIDC
  ``id-token``.  The official ``kubernetes`` client is configured from the same :class:`KubeConfig` object
  (``harness/testing/clients.py``), so both clients speak as the same identity.
- the transport (:class:`Transport`): how bytes reach the apiserver.  :class:`HttpTransport` by default; unit
  tests hand the client a transport that answers from a table, so nothing here needs a cluster to be tested.
- discovery (:class:`Discovery`): kind → resource path from the server's own API discovery (CRDs included),
  cached, and refreshed when a kind is missing (a CRD created mid-run resolves).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import yaml

from harness import proc
from harness.errors import (
    ApiError,
    CommandError,
    KubeConfigError,
    KubeUnreachable,
    NotFound,
    TooManyRequests,
    WaitFailed,
    WaitTimeout,
    api_error_for,
)

Obj = dict[str, Any]

# -- credentials ----------------------------------------------------------------------------------------------------

EXEC_INFO_ENV = "KUBERNETES_EXEC_INFO"
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
REFRESH_BEFORE_EXPIRY_S = 60.0
"""An expiring credential is renewed this long before it expires (or at half its life, if that is shorter)."""
TOKEN_FILE_RECHECK_S = 60.0
"""A ``tokenFile`` is re-read at most this often, so a rotated token is picked up (client-go does the same)."""
EXEC_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Credential:
    """What identifies the client to the apiserver right now: a bearer token and/or a client certificate."""

    token: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    expires_at: float | None = None
    """Unix time after which the apiserver will refuse it; None: it does not expire as far as we know."""

    def has_client_cert(self) -> bool:
        return bool(self.client_cert_data and self.client_key_data)


class Credentials(Protocol):
    """A source of the current :class:`Credential`; renews it when it is about to expire."""

    def current(self) -> Credential:
        """The credential to use for the next request (cached until it nears expiry)."""
        ...

    def invalidate(self) -> None:
        """Forget the cached credential (the apiserver answered 401): the next :meth:`current` renews it."""
        ...


@dataclass(frozen=True)
class StaticCredentials:
    """A token and/or client certificate written in the kubeconfig itself."""

    credential: Credential

    def current(self) -> Credential:
        return self.credential

    def invalidate(self) -> None:
        return None


class TokenFileCredentials:
    """``tokenFile``: the file is re-read every :data:`TOKEN_FILE_RECHECK_S` and after a 401, so rotation works."""

    def __init__(self, path: Path, where: str) -> None:
        self.path = path
        self._where = where
        self._lock = threading.Lock()
        self._cached: Credential | None = None
        self._read_at = 0.0

    def current(self) -> Credential:
        with self._lock:
            if self._cached is None or time.monotonic() - self._read_at > TOKEN_FILE_RECHECK_S:
                try:
                    token = self.path.read_text().strip()
                except OSError as err:
                    raise KubeConfigError(f"{self._where}: cannot read tokenFile {self.path}: {err.strerror}") from err
                if not token:
                    raise KubeConfigError(f"{self._where}: tokenFile {self.path} is empty")
                self._cached, self._read_at = Credential(token=token), time.monotonic()
            return self._cached

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None


class OidcCredentials:
    """``auth-provider: oidc``: the ``id-token`` is the bearer token.  aiconform does not talk to identity providers,
    so an expired id-token is an error that says to log in again (kubectl's oidc-login and kubelogin renew it)."""

    def __init__(self, id_token: str, where: str) -> None:
        self._where = where
        self._credential = Credential(token=id_token, expires_at=_jwt_expiry(id_token))

    def current(self) -> Credential:
        exp = self._credential.expires_at
        if exp is not None and exp <= time.time():
            raise KubeConfigError(
                f"{self._where}: the OIDC id-token expired at {_iso(exp)}; aiconform does not refresh OIDC tokens: "
                "log in again (e.g. with your oidc-login/kubelogin plugin) or use an exec plugin user"
            )
        return self._credential

    def invalidate(self) -> None:
        return None


@dataclass(frozen=True)
class ExecPluginSpec:
    """The ``user.exec`` section of a kubeconfig, paths already resolved."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = EXEC_API_VERSIONS[0]
    install_hint: str = ""
    provide_cluster_info: bool = False
    interactive_mode: str = "IfAvailable"
    cluster_info: Mapping[str, Any] = field(default_factory=dict)
    cwd: Path | None = None


class ExecCredentials:
    """An exec credential plugin (aws eks get-token, gke-gcloud-auth-plugin, kubelogin, …), run the way client-go runs
    it: the argv from the kubeconfig, its ``env`` added to ours, ``KUBERNETES_EXEC_INFO`` describing the request,
    no terminal.  The ExecCredential's ``status.token`` or ``clientCertificateData``/``clientKeyData`` is cached until
    shortly before ``expirationTimestamp``, then the plugin runs again; a 401 also makes it run again."""

    def __init__(
        self, spec: ExecPluginSpec, where: str, *, timeout: float = EXEC_TIMEOUT_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.spec = spec
        self._where = where
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: Credential | None = None
        self._renew_at = 0.0
        self.runs = 0
        """How many times the plugin has run (renewals are visible to tests and benchmarks)."""

    def current(self) -> Credential:
        with self._lock:
            if self._cached is None or self._clock() >= self._renew_at:
                self._cached = self._run()
                self._renew_at = _renew_time(self._cached.expires_at, self._clock())
            return self._cached

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def _run(self) -> Credential:
        spec = self.spec
        if spec.interactive_mode == "Always":
            raise KubeConfigError(f"{self._where}: exec plugin {spec.command!r} needs a terminal (interactiveMode "
                                  "Always); aiconform runs plugins without one")
        exe = spec.command if os.sep in spec.command else shutil.which(spec.command)
        if exe is None or not os.access(exe, os.X_OK):
            hint = " ".join(spec.install_hint.split())
            raise KubeConfigError(f"{self._where}: exec plugin command {spec.command!r} not found"
                                  + (f"; {hint}" if hint else ""))
        info: Obj = {"apiVersion": spec.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        if spec.provide_cluster_info:
            info["spec"]["cluster"] = dict(spec.cluster_info)
        env = {**os.environ, **dict(spec.env), EXEC_INFO_ENV: json.dumps(info)}
        argv = [exe, *spec.args]
        try:
            res = proc.run(argv, timeout=self._timeout, env=env, cwd=spec.cwd, check=False, input_text="")
        except CommandError as err:
            if err.timed_out:
                raise KubeConfigError(
                    f"{self._where}: exec plugin {spec.command!r} gave no credential within {self._timeout:.0f}s "
                    f"(does it want an interactive login? run it once in a terminal: {err.shell_line()})") from err
            raise KubeConfigError(f"{self._where}: exec plugin {spec.command!r} could not start") from err
        self.runs += 1
        if res.returncode != 0:
            last = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:]
            raise KubeConfigError(f"{self._where}: exec plugin {spec.command!r} exited with status {res.returncode}"
                                  + (f": {last[0][:300]}" if last else ""))
        try:
            doc = json.loads(res.stdout)
        except ValueError:
            raise KubeConfigError(f"{self._where}: exec plugin {spec.command!r} printed no ExecCredential JSON") from None
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            raise KubeConfigError(f"{self._where}: exec plugin {spec.command!r} printed no ExecCredential")
        if doc.get("apiVersion") != spec.api_version:
            raise KubeConfigError(f"{self._where}: exec plugin {spec.command!r} answered {doc.get('apiVersion')!r}, "
                                  f"the kubeconfig asks for {spec.api_version!r}")
        status = doc.get("status")
        if not isinstance(status, dict):
            raise KubeConfigError(f"{self._where}: exec plugin {spec.command!r}: the ExecCredential has no status")
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if bool(cert) != bool(key):
            raise KubeConfigError(f"{self._where}: exec plugin {spec.command!r} gave a client certificate without its "
                                  "key (or a key without its certificate)")
        token = status.get("token") or None
        if not token and not cert:
            raise KubeConfigError(f"{self._where}: exec plugin {spec.command!r} gave neither a token nor a client "
                                  "certificate")
        expires = None
        if status.get("expirationTimestamp"):
            expires = _parse_time(str(status["expirationTimestamp"]), f"{self._where}: exec plugin expirationTimestamp")
        return Credential(token=str(token) if token else None,
                          client_cert_data=str(cert).encode() if cert else None,
                          client_key_data=str(key).encode() if key else None,
                          expires_at=expires)


def _renew_time(expires_at: float | None, now: float) -> float:
    if expires_at is None:
        return float("inf")
    return expires_at - min(REFRESH_BEFORE_EXPIRY_S, max(0.0, (expires_at - now) / 2))


def _parse_time(text: str, what: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise KubeConfigError(f"{what} {text!r} is not an RFC 3339 time") from None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (not verified: the apiserver does that), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


# -- kubeconfig -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeConfig:
    """Everything needed to reach one apiserver as one user.  Built from a kubeconfig file, never from os.environ.

    Static credentials sit in ``token``/``client_cert_*``; a ``tokenFile``, exec plugin or OIDC user is a
    ``credentials`` source that renews itself.  :meth:`credential` is what a request uses either way.
    """

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    source: str = ""
    context: str = ""
    tls_server_name: str | None = None
    credentials: Credentials | None = field(default=None, compare=False, repr=False)
    auth_kind: str = "token"
    """How the user authenticates: token, tokenFile, client-certificate, exec, oidc or none (for messages)."""
    _static: Credential = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_static", Credential(self.token, self.client_cert_data, self.client_key_data))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], context: str | None = None) -> KubeConfig:
        p = Path(path)
        try:
            doc = yaml.safe_load(p.read_text())
        except FileNotFoundError:
            raise KubeConfigError(f"kubeconfig {p} does not exist") from None
        except OSError as err:
            raise KubeConfigError(f"cannot read kubeconfig {p}: {err.strerror}") from err
        except yaml.YAMLError as err:
            raise KubeConfigError(f"kubeconfig {p} is not valid YAML") from err
        if not isinstance(doc, dict):
            raise KubeConfigError(f"kubeconfig {p} is not a kubeconfig (no mapping at top level)")
        return cls.from_dict(doc, base_dir=p.resolve().parent, context=context, source=str(p))

    @classmethod
    def from_dict(
        cls, doc: Mapping[str, Any], *, base_dir: Path = Path("."), context: str | None = None, source: str = ""
    ) -> KubeConfig:
        """Relative file paths (certificates, tokenFile, an exec command with a path separator) resolve against
        ``base_dir``, the kubeconfig's own directory, as client-go resolves them."""
        where = source or "kubeconfig"

        def named(section: str, name: str) -> dict[str, Any]:
            for item in doc.get(section) or []:
                if isinstance(item, dict) and item.get("name") == name:
                    inner = item.get(section[:-1]) or {}
                    if not isinstance(inner, dict):
                        break
                    return inner
            raise KubeConfigError(f"{where}: no {section[:-1]} named {name!r}")

        def resolve(value: str) -> Path:
            fp = Path(os.path.expanduser(value))
            return fp if fp.is_absolute() else base_dir / fp

        ctx_name = context or doc.get("current-context")
        if not ctx_name:
            raise KubeConfigError(f"{where}: no current-context set and no context given")
        ctx = named("contexts", ctx_name)
        cluster = named("clusters", ctx.get("cluster", ""))
        user_name = str(ctx.get("user") or "")
        user = named("users", user_name) if user_name else {}
        server = cluster.get("server")
        if not server or not str(server).startswith(("https://", "http://")):
            raise KubeConfigError(f"{where}: cluster {ctx.get('cluster')!r} has no https:// server")
        who = f"{where}: user {user_name!r}"

        def blob(data_key: str, file_key: str, holder: Mapping[str, Any]) -> bytes | None:
            if holder.get(data_key):
                try:
                    return base64.b64decode(holder[data_key], validate=True)
                except ValueError as err:
                    raise KubeConfigError(f"{where}: {data_key} is not base64") from err
            if holder.get(file_key):
                fp = resolve(str(holder[file_key]))
                try:
                    return fp.read_bytes()
                except OSError as err:
                    raise KubeConfigError(f"{where}: cannot read {file_key} {fp}: {err.strerror}") from err
            return None

        ca_data = blob("certificate-authority-data", "certificate-authority", cluster)
        insecure = bool(cluster.get("insecure-skip-tls-verify", False))
        cert = blob("client-certificate-data", "client-certificate", user)
        key = blob("client-key-data", "client-key", user)
        token = str(user["token"]) if user.get("token") else None
        creds: Credentials | None = None
        kind = "token" if token else "client-certificate" if cert else "none"
        if user.get("exec"):
            spec = _exec_spec(user["exec"], who, base_dir=base_dir, server=str(server), ca_data=ca_data,
                              insecure=insecure, cluster=cluster)
            creds, kind = ExecCredentials(spec, who), "exec"
        elif user.get("auth-provider"):
            creds, kind = _auth_provider(user["auth-provider"], who), "oidc"
        elif user.get("tokenFile"):  # client-go: the file's token takes precedence over a token beside it
            creds, kind = TokenFileCredentials(resolve(str(user["tokenFile"])), who), "tokenFile"
        return cls(
            server=str(server).rstrip("/"),
            ca_data=ca_data,
            insecure=insecure,
            token=token,
            client_cert_data=cert,
            client_key_data=key,
            source=source,
            context=str(ctx_name),
            tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
            credentials=creds,
            auth_kind=kind,
        )

    def credential(self) -> Credential:
        """The credential for the next request: static, or from the renewing source (which may run a plugin)."""
        if self.credentials is not None:
            cred = self.credentials.current()
            if cred.has_client_cert() or not (self.client_cert_data and self.client_key_data):
                return cred
            # a token source beside a certificate written in the kubeconfig: both go out, as in client-go
            return Credential(cred.token, self.client_cert_data, self.client_key_data, cred.expires_at)
        return self._static

    def with_token(self, token: str) -> KubeConfig:
        """The same cluster as another identity (e.g. a tenant's service account)."""
        return KubeConfig(self.server, self.ca_data, self.insecure, token, None, None, self.source, self.context,
                          self.tls_server_name)

    def ssl_context(self, cert: bytes | None = None, key: bytes | None = None) -> ssl.SSLContext:
        """TLS settings for this cluster, with the client certificate ``cert``/``key`` (default: the static one)."""
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            try:
                ctx.load_verify_locations(cadata=self.ca_data.decode())
            except (ssl.SSLError, ValueError) as err:
                raise KubeConfigError(f"{self.source or 'kubeconfig'}: the certificate authority is not PEM") from err
        if cert is None and key is None:
            cert, key = self.client_cert_data, self.client_key_data
        if cert and key:
            # ssl wants files; write them to a private temp dir once per context.
            with tempfile.TemporaryDirectory(prefix="aiconform-kc-") as tmp:
                cert_path = Path(tmp, "c.pem")
                key_path = Path(tmp, "k.pem")
                cert_path.write_bytes(cert)
                key_path.touch(mode=0o600)
                key_path.write_bytes(key)
                try:
                    ctx.load_cert_chain(str(cert_path), str(key_path))
                except ssl.SSLError as err:
                    raise KubeConfigError(f"{self.source or 'kubeconfig'}: the client certificate or key is not "
                                          "valid PEM (or they do not match)") from err
        return ctx


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, cluster: str) -> None:
    """Write a kubeconfig (mode 0600) for a client-certificate identity of the cluster ``cluster`` at ``server``."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": f"{cluster}-user", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": f"{cluster}-user"}}],
        "current-context": cluster,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    os.chmod(path, 0o600)


def _exec_spec(
    section: Any, who: str, *, base_dir: Path, server: str, ca_data: bytes | None, insecure: bool,
    cluster: Mapping[str, Any],
) -> ExecPluginSpec:
    if not isinstance(section, dict) or not section.get("command"):
        raise KubeConfigError(f"{who}: exec has no command")
    api_version = str(section.get("apiVersion") or "")
    if api_version not in EXEC_API_VERSIONS:
        raise KubeConfigError(f"{who}: exec apiVersion {api_version!r} is not one of {', '.join(EXEC_API_VERSIONS)}")
    command = str(section["command"])
    if os.sep in command and not os.path.isabs(command):
        command = str(base_dir / command)  # client-go: a relative path with a separator is relative to the kubeconfig
    env: list[tuple[str, str]] = []
    for item in section.get("env") or []:
        if not isinstance(item, dict) or "name" not in item:
            raise KubeConfigError(f"{who}: exec env entries need a name and a value")
        env.append((str(item["name"]), str(item.get("value", ""))))
    info: Obj = {"server": server, "insecure-skip-tls-verify": insecure}
    if ca_data:
        info["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    if cluster.get("tls-server-name"):
        info["tls-server-name"] = cluster["tls-server-name"]
    for ext in cluster.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == "client.authentication.k8s.io/exec":
            info["config"] = ext.get("extension")
    return ExecPluginSpec(
        command=command,
        args=tuple(str(a) for a in section.get("args") or ()),
        env=tuple(env),
        api_version=api_version,
        install_hint=str(section.get("installHint") or ""),
        provide_cluster_info=bool(section.get("provideClusterInfo")),
        interactive_mode=str(section.get("interactiveMode") or "IfAvailable"),
        cluster_info=info,
        cwd=base_dir,
    )


def _auth_provider(section: Any, who: str) -> Credentials:
    name = section.get("name") if isinstance(section, dict) else None
    if name != "oidc":
        raise KubeConfigError(
            f"{who}: auth-provider {name!r} was removed from Kubernetes clients; use its exec plugin instead "
            "(gke-gcloud-auth-plugin for gcp, kubelogin for azure)"
        )
    config = section.get("config") or {}
    id_token = config.get("id-token") if isinstance(config, dict) else None
    if not id_token:
        raise KubeConfigError(f"{who}: auth-provider oidc has no id-token; log in first (e.g. with kubelogin)")
    return OidcCredentials(str(id_token), who)


# -- transport ------------------------------------------------------------------------------------------------------


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


# -- discovery ------------------------------------------------------------------------------------------------------

_DISCOVERY_ACCEPT = ", ".join((
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
    "application/json",
))


@dataclass(frozen=True)
class ResourceInfo:
    """Where a kind lives: ``/api/v1/pods`` or ``/apis/<group>/<version>/<plural>``, namespaced or not."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def base(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        p = self.base
        if self.namespaced and namespace:
            p += f"/namespaces/{namespace}"
        p += f"/{self.plural}"
        if name:
            p += f"/{name}"
        return p


@dataclass
class _Index:
    by_gvk: dict[tuple[str, str], ResourceInfo] = field(default_factory=dict)
    by_kind: dict[str, list[ResourceInfo]] = field(default_factory=dict)
    """kind → its resources in preference order: the core group first, then groups in the server's order, each
    group's preferred version first (kubectl's order)."""

    def add(self, info: ResourceInfo) -> None:
        if (info.api_version, info.kind) not in self.by_gvk:
            self.by_gvk[(info.api_version, info.kind)] = info
            self.by_kind.setdefault(info.kind, []).append(info)


class Discovery:
    """The server's API discovery, cached.  One aggregated-discovery request each for ``/api`` and ``/apis``
    (Kubernetes ≥ 1.26), or the per-group documents on older servers.  A kind that is not in the cache makes it
    reload once (a CRD created since), then :class:`~harness.errors.NotFound`."""

    def __init__(self, get: Callable[[str, str], Any]) -> None:
        """``get(path, accept)`` returns the decoded JSON answer (the client's own request function)."""
        self._get = get
        self._lock = threading.Lock()
        self._index: _Index | None = None
        self._generation = 0
        self.loads = 0
        """How many times discovery was (re)loaded."""

    def lookup(self, kind: str, api_version: str | None = None) -> ResourceInfo:
        """The resource of ``kind`` in ``api_version`` (default: the preferred one, core group first)."""
        index, generation = self._index, self._generation
        if index is None:
            index, generation = self._reload(-1)
        found = _find(index, kind, api_version)
        if found is None:
            found = _find(self._reload(generation)[0], kind, api_version)
        if found is None:
            found = self._from_crds(kind, api_version)
        if found is None:
            where = f" in {api_version}" if api_version else " in any API group"
            raise NotFound(404, "NotFound", f"the server has no kind {kind}{where} (API discovery)")
        return found

    def served_versions(self, kind: str, group: str) -> list[str]:
        """Every ``group/version`` of ``group`` (``""``: the core group) that serves ``kind``, preferred first; []
        when none does.  Reads the cached discovery (loaded once if not yet)."""
        index = self._index or self._reload(-1)[0]
        return [i.api_version for i in index.by_kind.get(kind, [])
                if (i.api_version.rpartition("/")[0] if "/" in i.api_version else "") == group]

    def _from_crds(self, kind: str, api_version: str | None) -> ResourceInfo | None:
        """A kind of an Established CRD that discovery does not list yet.  The apiserver publishes a new CRD in
        discovery asynchronously: right after Established, 4 of 30 lookups missed it on this machine.  The CRD
        itself says where its objects live, so read it (needs read access to CRDs; without it: not found)."""
        try:
            crds = self._get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/json")
        except ApiError:
            return None
        for crd in crds.get("items") or []:
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            established = any(c.get("type") == "Established" and c.get("status") == "True"
                              for c in (crd.get("status") or {}).get("conditions") or [])
            if names.get("kind") != kind or not established:
                continue
            served = [v for v in spec.get("versions") or [] if v.get("served")]
            if api_version:
                served = [v for v in served if f"{spec.get('group')}/{v.get('name')}" == api_version]
            else:
                served.sort(key=lambda v: not v.get("storage"))  # the storage version first
            if served:
                info = ResourceInfo(f"{spec['group']}/{served[0]['name']}", kind, str(names.get("plural")),
                                    spec.get("scope") == "Namespaced")
                with self._lock:
                    if self._index is not None:
                        self._index.add(info)
                return info
        return None

    def invalidate(self) -> None:
        """Forget what was discovered; the next lookup reloads."""
        with self._lock:
            self._index = None

    def _reload(self, seen_generation: int) -> tuple[_Index, int]:
        with self._lock:
            if self._index is not None and self._generation != seen_generation:
                return self._index, self._generation  # another thread reloaded since we looked
            index = _Index()
            self._load_core(index)
            self._load_groups(index)
            self.loads += 1
            self._generation += 1
            self._index = index
            return index, self._generation

    def _load_core(self, index: _Index) -> None:
        doc = self._get("/api", _DISCOVERY_ACCEPT)
        if doc.get("kind") == "APIGroupDiscoveryList":
            _add_aggregated(index, doc)
            return
        for version in doc.get("versions") or ["v1"]:
            _add_legacy(index, str(version), self._get(f"/api/{version}", "application/json"))

    def _load_groups(self, index: _Index) -> None:
        doc = self._get("/apis", _DISCOVERY_ACCEPT)
        if doc.get("kind") == "APIGroupDiscoveryList":
            _add_aggregated(index, doc)
            return
        for group in doc.get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("groupVersion")
            versions = [v.get("groupVersion") for v in group.get("versions") or [] if v.get("groupVersion")]
            for gv in sorted(versions, key=lambda v: v != preferred):
                try:
                    _add_legacy(index, gv, self._get(f"/apis/{gv}", "application/json"))
                except ApiError:
                    continue  # an aggregated API that is down (503) hides only its own kinds


def _find(index: _Index, kind: str, api_version: str | None) -> ResourceInfo | None:
    if api_version:
        return index.by_gvk.get((api_version, kind))
    found = index.by_kind.get(kind)
    return found[0] if found else None


def _add_aggregated(index: _Index, doc: Mapping[str, Any]) -> None:
    for group in doc.get("items") or []:
        name = (group.get("metadata") or {}).get("name") or ""
        for version in group.get("versions") or []:  # the server lists the preferred version first
            gv = f"{name}/{version['version']}" if name else str(version["version"])
            for res in version.get("resources") or []:
                kind = (res.get("responseKind") or {}).get("kind")
                if kind and res.get("resource"):
                    index.add(ResourceInfo(gv, kind, res["resource"], res.get("scope") == "Namespaced"))


def _add_legacy(index: _Index, gv: str, doc: Mapping[str, Any]) -> None:
    for res in doc.get("resources") or []:
        name = res.get("name", "")
        if res.get("kind") and name and "/" not in name:
            index.add(ResourceInfo(gv, res["kind"], name, bool(res.get("namespaced"))))


# -- the client -----------------------------------------------------------------------------------------------------


class KubeClient:
    """JSON over keep-alive HTTPS.  Thread-safe: each thread gets its own connection.

    ``transport`` replaces the HTTP layer (unit tests); ``discovery`` shares another client's discovery cache.
    """

    def __init__(
        self,
        config: KubeConfig,
        *,
        timeout: float = 30.0,
        user_agent: str = "aiconform/0.1",
        transport: Transport | None = None,
        discovery: Discovery | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.user_agent = user_agent
        self.transport: Transport = transport or HttpTransport(config, timeout=timeout)
        self.discovery = discovery or Discovery(self._discovery_get)
        self._cert_in_use: bytes | None = config.client_cert_data

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> KubeClient:
        return cls(KubeConfig.from_file(path, context))

    def for_config(self, config: KubeConfig) -> KubeClient:
        """A client for the same cluster as another identity (``config.with_token(...)``), sharing this client's
        discovery cache (discovery is the same for every identity), so it costs no discovery requests."""
        return KubeClient(config, timeout=self.timeout, user_agent=self.user_agent, discovery=self.discovery)

    def _discovery_get(self, path: str, accept: str) -> Any:
        return self.request("GET", path, accept=accept)

    # -- transport ------------------------------------------------------------------------------------------------

    def _headers(self, content_type: str | None, accept: str = "application/json") -> dict[str, str]:
        h = {"Accept": accept, "User-Agent": self.user_agent}
        cred = self.config.credential()
        if cred.client_cert_data is not self._cert_in_use and cred.has_client_cert():
            self.transport.use_client_certificate(cred.client_cert_data, cred.client_key_data)
            self._cert_in_use = cred.client_cert_data
        if cred.token:
            h["Authorization"] = f"Bearer {cred.token}"
        if content_type:
            h["Content-Type"] = content_type
        return h

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        raw: bool = False,
        discard_body: bool = False,
        accept: str = "application/json",
    ) -> Any:
        """Send one request; returns the decoded JSON (or text with ``raw``).  Errors map to ApiError subclasses.

        ``discard_body`` asks the server for protobuf (cheaper for the apiserver to encode) and returns None on
        success: for bulk creates whose answer nobody reads.  Errors still come back as JSON Status objects.
        A 401 with a renewable credential (exec plugin, tokenFile) renews it and retries once.
        """
        url = path
        if params:
            query = urllib.parse.urlencode({k: _qv(v) for k, v in params.items() if v is not None})
            url += "?" + query if query else ""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if discard_body:
            accept = "application/vnd.kubernetes.protobuf, application/json"
        renewed = False
        for attempt in range(3):
            headers = self._headers(content_type if data is not None else None, accept)
            resp = self.transport.send(method, url, data, headers)
            if resp.status == 429 and attempt < 2:
                time.sleep(min(float(resp.headers.get("retry-after") or 1), 5.0))
                continue
            if resp.status == 401 and not renewed and self.config.credentials is not None:
                self.config.credentials.invalidate()
                renewed = True
                continue
            if resp.status >= 400:
                if discard_body and "protobuf" in resp.headers.get("content-type", ""):
                    raise api_error_for(resp.status, resp.reason, resp.body.decode("ascii", "replace")[-200:])
                raise _api_error(resp.status, resp.body, resp.headers.get("retry-after"))
            if discard_body:
                return None
            if raw:
                return resp.body.decode(errors="replace")
            return json.loads(resp.body) if resp.body else {}
        raise KubeUnreachable(f"{method} {path}: gave up after retries")  # pragma: no cover

    def close(self) -> None:
        """Close every keep-alive connection this client opened, in any thread."""
        self.transport.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths ----------------------------------------------------------------------------------------------------

    def resource_info(self, api_version: str | None, kind: str) -> tuple[str, str, bool]:
        """(apiVersion, plural, namespaced) for a kind, from API discovery (``api_version`` None: preferred)."""
        info = self.discovery.lookup(kind, api_version)
        return info.api_version, info.plural, info.namespaced

    def resource(self, kind: str, api_version: str | None = None) -> ResourceInfo:
        """Where ``kind`` lives, from API discovery; a CRD created since the last lookup is found on the miss."""
        return self.discovery.lookup(kind, api_version)

    def path(self, api_version: str | None, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        return self.discovery.lookup(kind, api_version).path(namespace, name)

    def kind_path(self, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        return self.path(None, kind, namespace, name)

    # -- verbs ------------------------------------------------------------------------------------------------------

    def get(self, kind: str, name: str, namespace: str | None = None, *, api_version: str | None = None) -> Obj:
        return self.request("GET", self.path(api_version, kind, namespace, name))  # type: ignore[no-any-return]

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        api_version: str | None = None,
    ) -> Obj:
        params = {"labelSelector": label_selector, "fieldSelector": field_selector}
        return self.request("GET", self.path(api_version, kind, namespace), params=params)  # type: ignore[no-any-return]

    def create(self, obj: Obj, namespace: str | None = None, *, dry_run: bool = False) -> Obj:
        ns = namespace or obj.get("metadata", {}).get("namespace")
        params = {"dryRun": "All"} if dry_run else None
        return self.request("POST", self.path(obj["apiVersion"], obj["kind"], ns), obj, params=params)  # type: ignore[no-any-return]

    def create_fast(self, obj: Obj, namespace: str | None = None) -> None:
        """Create without reading the stored object back (bulk creates of nodes and pods)."""
        ns = namespace or obj.get("metadata", {}).get("namespace")
        self.request("POST", self.path(obj["apiVersion"], obj["kind"], ns), obj, discard_body=True)

    def replace_status(self, obj: Obj) -> Obj:
        md = obj["metadata"]
        path = self.path(obj["apiVersion"], obj["kind"], md.get("namespace"), md["name"]) + "/status"
        return self.request("PUT", path, obj)  # type: ignore[no-any-return]

    def patch(
        self,
        kind: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str = "",
        api_version: str | None = None,
    ) -> Obj:
        ctype = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "json": "application/json-patch+json",
        }[patch_type]
        path = self.path(api_version, kind, namespace, name)
        if subresource:
            path += f"/{subresource}"
        return self.request("PATCH", path, patch, content_type=ctype)  # type: ignore[no-any-return]

    def apply(self, obj: Obj, *, field_manager: str = "aiconform", force: bool = True) -> Obj:
        """Server-side apply of one object."""
        md = obj["metadata"]
        path = self.path(obj["apiVersion"], obj["kind"], md.get("namespace"), md["name"])
        params = {"fieldManager": field_manager, "force": "true" if force else None}
        return self.request(  # type: ignore[no-any-return]
            "PATCH", path, obj, params=params, content_type="application/apply-patch+yaml"
        )

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        grace_period: int | None = None,
        propagation: str = "Background",
        missing_ok: bool = True,
        api_version: str | None = None,
    ) -> Obj | None:
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        try:
            return self.request("DELETE", self.path(api_version, kind, namespace, name), body)  # type: ignore[no-any-return]
        except NotFound:
            if missing_ok:
                return None
            raise

    def delete_collection(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        grace_period: int | None = None,
        api_version: str | None = None,
    ) -> None:
        path = self.path(api_version, kind, namespace)
        self.request("DELETE", path, params={"labelSelector": label_selector, "gracePeriodSeconds": grace_period})

    def healthz(self, endpoint: str = "/readyz") -> bool:
        try:
            return self.request("GET", endpoint, raw=True).strip() == "ok"  # type: ignore[no-any-return]
        except (KubeUnreachable, ApiError):
            return False

    def server_version(self) -> str:
        return str(self.request("GET", "/version").get("gitVersion", ""))

    # -- watches ----------------------------------------------------------------------------------------------------

    def watch(
        self,
        path: str,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout: float = 60.0,
    ) -> Iterator[tuple[str, Obj]]:
        """Yield (type, object) events from a watch on a collection path, until ``timeout`` seconds pass.

        Uses a dedicated connection.  BOOKMARK events are skipped; an ERROR event raises the ApiError it carries.
        """
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "timeoutSeconds": max(1, int(timeout) + 1),
            "allowWatchBookmarks": "true",
        }
        url = path + "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        resp, lines = self.transport.stream(url, self._headers(None), timeout)
        if resp.status == 401 and self.config.credentials is not None:  # renew an expired credential once
            self.config.credentials.invalidate()
            resp, lines = self.transport.stream(url, self._headers(None), timeout)
        if resp.status >= 400:
            raise _api_error(resp.status, resp.body, None)
        try:
            for line in lines:
                ev = json.loads(line)
                etype = ev.get("type", "")
                obj = ev.get("object", {})
                if etype == "BOOKMARK":
                    continue
                if etype == "ERROR":
                    raise api_error_for(int(obj.get("code", 500)), obj.get("reason", ""), obj.get("message", ""), obj)
                yield etype, obj
        finally:
            close = getattr(lines, "close", None)
            if close is not None:
                close()

    def wait_for(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        name: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        condition: Callable[[dict[str, Obj]], bool],
        failure: Callable[[dict[str, Obj]], str | None] | None = None,
        timeout: float = 60.0,
        what: str = "",
        api_version: str | None = None,
    ) -> dict[str, Obj]:
        """Watch objects until ``condition(objects_by_name)`` holds.

        ``failure`` returns a message when a failure condition is seen (Job Failed, pod Unschedulable): the wait
        then ends at once with WaitFailed.  At the deadline, WaitTimeout says what was awaited and last seen.
        Lists, then watches from the list's resourceVersion; re-lists on a 410 Gone.  ``condition`` sees every
        object at every event: for thousands of objects use :meth:`wait_all`.
        """
        desc = what or f"{kind} {namespace + '/' if namespace else ''}{name or label_selector or field_selector or ''}"
        return self._watch_until(
            kind, namespace=namespace, name=name, label_selector=label_selector, field_selector=field_selector,
            done=lambda state, _changed: _check(state, condition, failure, desc), timeout=timeout, desc=desc,
            api_version=api_version,
        )

    def wait_all(
        self,
        kind: str,
        keys: Iterable[str],
        predicate: Callable[[Obj], bool],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout: float = 60.0,
        what: str = "",
        api_version: str | None = None,
    ) -> dict[str, Obj]:
        """Watch until ``predicate`` holds for every object in ``keys`` (``name``, or ``namespace/name`` for
        namespaced kinds).  Each event re-judges only the object it changed, so waiting for thousands of nodes
        costs time linear in the events, not quadratic."""
        wanted = set(keys)
        satisfied: set[str] = set()

        def done(state: dict[str, Obj], changed: str | None) -> bool:
            if changed is None:  # a (re-)list: judge everything once
                satisfied.clear()
                satisfied.update(k for k in wanted if k in state and predicate(state[k]))
            elif changed in wanted:
                if changed in state and predicate(state[changed]):
                    satisfied.add(changed)
                else:
                    satisfied.discard(changed)
            return len(satisfied) == len(wanted)

        desc = what or f"{len(wanted)} {kind} objects"
        return self._watch_until(kind, namespace=namespace, label_selector=label_selector, done=done,
                                 timeout=timeout, desc=desc, api_version=api_version)

    def _watch_until(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        name: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        done: Callable[[dict[str, Obj], str | None], bool],
        timeout: float,
        desc: str,
        api_version: str | None = None,
    ) -> dict[str, Obj]:
        """List, then watch from the list's resourceVersion, until ``done(state, changed_key)`` holds
        (``changed_key`` is None right after a list); re-lists on a 410 Gone; WaitTimeout at the deadline."""
        coll = self.path(api_version, kind, namespace)
        fsel = ",".join(f for f in (f"metadata.name={name}" if name else "", field_selector or "") if f) or None
        deadline = time.monotonic() + timeout
        state: dict[str, Obj] = {}
        while True:
            listing = self.request("GET", coll, params={"labelSelector": label_selector, "fieldSelector": fsel})
            state = {_key(o): o for o in listing.get("items", [])}
            rv = listing.get("metadata", {}).get("resourceVersion")
            if done(state, None):
                return state
            try:
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {desc}; last seen: {_summary(state)}")
                    for etype, obj in self.watch(
                        coll, resource_version=rv, label_selector=label_selector, field_selector=fsel,
                        timeout=remaining,
                    ):
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        key = _key(obj)
                        if etype == "DELETED":
                            state.pop(key, None)
                        else:
                            state[key] = obj
                        if done(state, key):
                            return state
            except ApiError as err:
                if err.status == 410:
                    continue
                raise


def _check(
    state: dict[str, Obj],
    condition: Callable[[dict[str, Obj]], bool],
    failure: Callable[[dict[str, Obj]], str | None] | None,
    desc: str,
) -> bool:
    if failure is not None:
        msg = failure(state)
        if msg:
            raise WaitFailed(f"while waiting for {desc}: {msg}")
    return condition(state)


def _key(obj: Obj) -> str:
    md = obj.get("metadata", {})
    return f"{md.get('namespace', '')}/{md.get('name', '')}" if md.get("namespace") else str(md.get("name", ""))


def _summary(state: dict[str, Obj]) -> str:
    if not state:
        return "nothing"
    parts = []
    for k, o in list(state.items())[:5]:
        st = o.get("status", {})
        parts.append(f"{k} ({st.get('phase') or _conds(st) or 'no status'})")
    more = f" and {len(state) - 5} more" if len(state) > 5 else ""
    return ", ".join(parts) + more


def _conds(status: Obj) -> str:
    return ",".join(f"{c.get('type')}={c.get('status')}" for c in status.get("conditions", [])[:3])


def _qv(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _api_error(status: int, payload: bytes, retry_after: str | None) -> ApiError:
    try:
        body = json.loads(payload) if payload else {}
    except ValueError:
        body = {"message": payload.decode(errors="replace")[:300]}
    if not isinstance(body, dict):
        body = {}
    err = api_error_for(status, str(body.get("reason", "")), str(body.get("message", "")), body)
    if isinstance(err, TooManyRequests) and retry_after:
        try:
            err.retry_after = float(retry_after)
        except ValueError:
            pass
    return err


# -- small helpers scenarios use ----------------------------------------------------------------------------------


def pod_condition(pod: Obj, ctype: str) -> Obj | None:
    for c in pod.get("status", {}).get("conditions", []) or []:
        if c.get("type") == ctype:
            return c  # type: ignore[no-any-return]
    return None


def unschedulable_message(pod: Obj) -> str | None:
    """The scheduler's message when it marked the pod Unschedulable, else None."""
    c = pod_condition(pod, "PodScheduled")
    if c and c.get("status") == "False" and c.get("reason") == "Unschedulable":
        return str(c.get("message", "Unschedulable"))
    return None


def is_bound(pod: Obj) -> bool:
    return bool(pod.get("spec", {}).get("nodeName"))


def is_running(pod: Obj) -> bool:
    return bool(pod.get("status", {}).get("phase") == "Running")
