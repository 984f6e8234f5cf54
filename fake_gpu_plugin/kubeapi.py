"""The plugin's talk to a real kube-apiserver (stdlib HTTPS only; the plugin image carries no client).

Owns ``KubeRest`` (JSON requests with a kubeconfig's or a pod's service account's credentials:
``from_kubeconfig`` for the host-process case, the harness passes its kubeconfig; ``in_cluster()`` for the
DaemonSet case) and, on top of it, ``KubeAnnotationLookup``, the metrics exporter's pod annotation lookup: answers
are cached for ``ttl_s`` so a scrape costs at most one GET per pod; a failed GET raises PluginError and the exporter
falls back to its documented default.  The DRA driver uses ``KubeRest`` for ResourceSlices and ResourceClaims.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from fake_gpu_plugin.errors import PluginError

_SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ApiError(PluginError):
    """The apiserver answered a request with an HTTP error (``code``, and its Status ``message``)."""

    def __init__(self, method: str, path: str, code: int, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {code}: {message}")
        self.code = code
        self.message = message


class KubeRest:
    """JSON requests to one apiserver with one identity."""

    def __init__(self, server: str, context: ssl.SSLContext, *, token: str | None = None, ttl_s: float = 2.0,
                 timeout_s: float = 2.0) -> None:
        self.server = server.rstrip("/")
        self.context = context
        self.token = token
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._cache: dict[tuple[str, str], tuple[float, Mapping[str, str]]] = {}
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: Any = None, *, timeout_s: float | None = None,
                content_type: str = "application/json") -> Any:
        """``method path`` with a JSON body; the decoded answer.  ApiError for an HTTP error status, PluginError
        when the apiserver cannot be reached."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method,
                                         headers={"Accept": "application/json"})
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or max(self.timeout_s, 10.0),
                                        context=self.context) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read() or b"{}").get("message", "") or err.reason
            except ValueError:
                message = str(err.reason)
            raise ApiError(method, path, err.code, str(message)) from err
        except (urllib.error.URLError, OSError) as err:
            raise PluginError(f"{method} {path}: {err}") from err
        try:
            return json.loads(raw) if raw else {}
        except ValueError as err:
            raise PluginError(f"{method} {path}: answer is not JSON: {err}") from err

    def request_json(self, method: str, path: str, body: bytes | None = None, *,
                     content_type: str = "application/json") -> dict[str, Any]:
        """One API call with this lookup's credentials (the node labeller's GET and PATCH of its own Node)."""
        request = urllib.request.Request(self.server + path, data=body, method=method,
                                         headers={"Accept": "application/json", "Content-Type": content_type})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=max(self.timeout_s, 10.0), context=self.context) as reply:
                doc = json.load(reply)
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300]
            raise PluginError(f"{method} {path}: HTTP {err.code}: {detail}") from err
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise PluginError(f"{method} {path}: {err}") from err
        return doc if isinstance(doc, dict) else {}

    @classmethod
    def in_cluster(cls) -> Self:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise PluginError("--in-cluster: KUBERNETES_SERVICE_HOST is not set (not running in a pod?)")
        try:
            token = (_SA_DIR / "token").read_text().strip()
        except OSError as err:
            raise PluginError(f"--in-cluster: cannot read the service account token: {err}") from err
        context = ssl.create_default_context(cafile=str(_SA_DIR / "ca.crt"))
        return cls(f"https://{host}:{port}", context, token=token)

    @classmethod
    def from_kubeconfig(cls, path: str | Path) -> Self:
        """The current context of a kubeconfig: server, CA, and a token or a client certificate."""
        import yaml

        try:
            config: dict[str, Any] = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise PluginError(f"kubeconfig {path}: {err}") from err
        base = Path(path).parent

        def named(kind: str, name: str) -> dict[str, Any]:
            for entry in config.get(f"{kind}s") or []:
                if entry.get("name") == name:
                    return dict(entry.get(kind) or {})
            raise PluginError(f"kubeconfig {path}: no {kind} named {name!r}")

        ctx_name = config.get("current-context") or ""
        ctx = named("context", ctx_name)
        cluster, user = named("cluster", ctx.get("cluster", "")), named("user", ctx.get("user", ""))
        context = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif cluster.get("certificate-authority"):
            context.load_verify_locations(cafile=str(base / cluster["certificate-authority"]))
        cert = _material(user, "client-certificate", base)
        key = _material(user, "client-key", base)
        if cert and key:
            with tempfile.TemporaryDirectory() as tmp:
                cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
                cert_file.write_bytes(cert)
                key_file.write_bytes(key)
                context.load_cert_chain(str(cert_file), str(key_file))
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = (base / user["tokenFile"]).read_text().strip()
        server = cluster.get("server")
        if not server:
            raise PluginError(f"kubeconfig {path}: cluster of context {ctx_name!r} has no server")
        return cls(server, context, token=token)


class KubeAnnotationLookup(KubeRest):
    """``(namespace, pod) -> annotations`` by ``GET /api/v1/namespaces/{ns}/pods/{name}``."""

    def __call__(self, namespace: str, pod: str) -> Mapping[str, str]:
        key = (namespace, pod)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        path = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/pods/{urllib.parse.quote(pod)}"
        request = urllib.request.Request(self.server + path, headers={"Accept": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self.context) as reply:
                body = json.load(reply)
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise PluginError(f"GET {path}: {err}") from err
        annotations = dict(body.get("metadata", {}).get("annotations") or {})
        with self._lock:
            self._cache[key] = (now, annotations)
        return annotations


def _material(user: Mapping[str, Any], field: str, base: Path) -> bytes | None:
    if user.get(f"{field}-data"):
        return base64.b64decode(str(user[f"{field}-data"]))
    if user.get(field):
        return Path(base, str(user[field])).read_bytes()
    return None
