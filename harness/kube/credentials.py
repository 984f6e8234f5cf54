"""Credentials a request speaks with: a static token or client certificate, a ``tokenFile`` re-read as it
rotates, an exec credential plugin re-run before its credential expires, an OIDC ``id-token``.

Owns renewing an identity; it must not read a kubeconfig (``config.py``) or send a request.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from harness import proc
from harness.errors import CommandError, KubeConfigError

Obj = dict[str, Any]

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
