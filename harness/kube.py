"""A small, fast Kubernetes API client: kubeconfig loading, keep-alive HTTPS, watch-based waits, apply/delete.

Owns talking to a kube-apiserver.  It speaks JSON over the stdlib's http.client with one keep-alive connection per
thread, which is what lets the harness create thousands of pods a second on two cores.  It must never decide
anything a Kubernetes component decides: it only sends requests and reads answers.

Auth: bearer token (token / tokenFile) or client certificate; exec and auth-provider plugins are refused with a
clear KubeConfigError.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import (
    ApiError,
    KubeConfigError,
    KubeUnreachable,
    NotFound,
    TooManyRequests,
    WaitFailed,
    WaitTimeout,
    api_error_for,
)

Obj = dict[str, Any]

# kind -> (group/version, plural, namespaced) for the kinds the harness uses; others go through discovery.
_KNOWN: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("v1", "namespaces", False),
    "Node": ("v1", "nodes", False),
    "Pod": ("v1", "pods", True),
    "Service": ("v1", "services", True),
    "ServiceAccount": ("v1", "serviceaccounts", True),
    "Secret": ("v1", "secrets", True),
    "ConfigMap": ("v1", "configmaps", True),
    "Event": ("v1", "events", True),
    "ResourceQuota": ("v1", "resourcequotas", True),
    "LimitRange": ("v1", "limitranges", True),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims", True),
    "Deployment": ("apps/v1", "deployments", True),
    "DaemonSet": ("apps/v1", "daemonsets", True),
    "StatefulSet": ("apps/v1", "statefulsets", True),
    "ReplicaSet": ("apps/v1", "replicasets", True),
    "Job": ("batch/v1", "jobs", True),
    "PriorityClass": ("scheduling.k8s.io/v1", "priorityclasses", False),
    "Role": ("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies", True),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers", True),
    "Lease": ("coordination.k8s.io/v1", "leases", True),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets", True),
    "SelfSubjectAccessReview": ("authorization.k8s.io/v1", "selfsubjectaccessreviews", False),
    "SubjectAccessReview": ("authorization.k8s.io/v1", "subjectaccessreviews", False),
}


@dataclass(frozen=True)
class KubeConfig:
    """Everything needed to reach one apiserver as one user.  Built from a kubeconfig file, never from os.environ."""

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    source: str = ""
    context: str = ""

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
        return cls.from_dict(doc, base_dir=p.parent, context=context, source=str(p))

    @classmethod
    def from_dict(
        cls, doc: Mapping[str, Any], *, base_dir: Path = Path("."), context: str | None = None, source: str = ""
    ) -> KubeConfig:
        where = source or "kubeconfig"

        def named(section: str, name: str) -> dict[str, Any]:
            for item in doc.get(section) or []:
                if isinstance(item, dict) and item.get("name") == name:
                    inner = item.get(section[:-1]) or {}
                    if not isinstance(inner, dict):
                        break
                    return inner
            raise KubeConfigError(f"{where}: no {section[:-1]} named {name!r}")

        ctx_name = context or doc.get("current-context")
        if not ctx_name:
            raise KubeConfigError(f"{where}: no current-context set and no context given")
        ctx = named("contexts", ctx_name)
        cluster = named("clusters", ctx.get("cluster", ""))
        user = named("users", ctx.get("user", "")) if ctx.get("user") else {}
        server = cluster.get("server")
        if not server or not str(server).startswith(("https://", "http://")):
            raise KubeConfigError(f"{where}: cluster {ctx.get('cluster')!r} has no https:// server")

        def blob(data_key: str, file_key: str, holder: Mapping[str, Any]) -> bytes | None:
            if holder.get(data_key):
                try:
                    return base64.b64decode(holder[data_key])
                except ValueError as err:
                    raise KubeConfigError(f"{where}: {data_key} is not base64") from err
            if holder.get(file_key):
                fp = Path(holder[file_key])
                fp = fp if fp.is_absolute() else base_dir / fp
                try:
                    return fp.read_bytes()
                except OSError as err:
                    raise KubeConfigError(f"{where}: cannot read {file_key} {fp}: {err.strerror}") from err
            return None

        if user.get("exec") or user.get("auth-provider"):
            raise KubeConfigError(
                f"{where}: user {ctx.get('user')!r} uses an exec/auth-provider plugin, which aiconform does not run; "
                "give it a kubeconfig with a token or a client certificate"
            )
        token = user.get("token")
        if not token and user.get("tokenFile"):
            tf = Path(user["tokenFile"])
            try:
                token = (tf if tf.is_absolute() else base_dir / tf).read_text().strip()
            except OSError as err:
                raise KubeConfigError(f"{where}: cannot read tokenFile {tf}: {err.strerror}") from err
        return cls(
            server=str(server).rstrip("/"),
            ca_data=blob("certificate-authority-data", "certificate-authority", cluster),
            insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
            token=token,
            client_cert_data=blob("client-certificate-data", "client-certificate", user),
            client_key_data=blob("client-key-data", "client-key", user),
            source=source,
            context=str(ctx_name),
        )

    def with_token(self, token: str) -> KubeConfig:
        """The same cluster as another identity (e.g. a tenant's service account)."""
        return KubeConfig(self.server, self.ca_data, self.insecure, token, None, None, self.source, self.context)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            ctx.load_verify_locations(cadata=self.ca_data.decode())
        if self.client_cert_data and self.client_key_data:
            # ssl wants files; write them to a private temp dir once per context.
            with tempfile.TemporaryDirectory(prefix="aiconform-kc-") as tmp:
                cert = Path(tmp, "c.pem")
                key = Path(tmp, "k.pem")
                cert.write_bytes(self.client_cert_data)
                key.write_bytes(self.client_key_data)
                os.chmod(key, 0o600)
                ctx.load_cert_chain(str(cert), str(key))
        return ctx


class KubeClient:
    """JSON over keep-alive HTTPS.  Thread-safe: each thread gets its own connection."""

    def __init__(self, config: KubeConfig, *, timeout: float = 30.0, user_agent: str = "aiconform/0.1") -> None:
        self.config = config
        self.timeout = timeout
        self.user_agent = user_agent
        u = urllib.parse.urlsplit(config.server)
        self._https = u.scheme == "https"
        self._host = u.hostname or "127.0.0.1"
        self._port = u.port or (443 if self._https else 80)
        self._prefix = u.path.rstrip("/")
        self._ssl = config.ssl_context() if self._https else None
        self._local = threading.local()
        self._discovery: dict[str, tuple[str, str, bool]] = {}
        self._lock = threading.Lock()
        self._all_conns: list[http.client.HTTPConnection] = []

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> KubeClient:
        return cls(KubeConfig.from_file(path, context))

    # -- transport ------------------------------------------------------------------------------------------------

    def _new_conn(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._new_conn(self.timeout)
            self._local.conn = conn
            with self._lock:
                self._all_conns.append(conn)
        return conn

    def _headers(self, content_type: str | None) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": self.user_agent}
        if self.config.token:
            h["Authorization"] = f"Bearer {self.config.token}"
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
    ) -> Any:
        """Send one request; returns the decoded JSON (or text with ``raw``).  Errors map to ApiError subclasses.

        ``discard_body`` asks the server for protobuf (cheaper for the apiserver to encode) and returns None on
        success: for bulk creates whose answer nobody reads.  Errors still come back as JSON Status objects.
        """
        url = self._prefix + path
        if params:
            url += "?" + urllib.parse.urlencode({k: _qv(v) for k, v in params.items() if v is not None})
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = self._headers(content_type if data is not None else None)
        if discard_body:
            headers["Accept"] = "application/vnd.kubernetes.protobuf, application/json"
        for attempt in range(3):
            conn = self._conn()
            try:
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (ConnectionError, http.client.HTTPException, ssl.SSLError, TimeoutError, OSError) as err:
                conn.close()
                self._local.conn = None
                with self._lock:
                    if conn in self._all_conns:
                        self._all_conns.remove(conn)
                if attempt < 2 and not isinstance(err, ssl.SSLCertVerificationError | TimeoutError):
                    continue
                raise KubeUnreachable(f"{method} {self.config.server}{path}: {err}") from err
            if resp.status == 429 and attempt < 2:
                time.sleep(min(float(resp.getheader("Retry-After") or 1), 5.0))
                continue
            if resp.status >= 400:
                if discard_body and "protobuf" in (resp.getheader("Content-Type") or ""):
                    raise api_error_for(resp.status, resp.reason, payload.decode("ascii", "replace")[-200:])
                raise _api_error(resp.status, payload, resp.getheader("Retry-After"))
            if discard_body:
                return None
            if raw:
                return payload.decode(errors="replace")
            return json.loads(payload) if payload else {}
        raise KubeUnreachable(f"{method} {path}: gave up after retries")  # pragma: no cover

    def close(self) -> None:
        """Close every keep-alive connection this client opened, in any thread."""
        with self._lock:
            conns, self._all_conns = self._all_conns, []
        for conn in conns:
            conn.close()
        self._local.conn = None

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths ----------------------------------------------------------------------------------------------------

    def resource_info(self, api_version: str, kind: str) -> tuple[str, str, bool]:
        """(apiVersion, plural, namespaced) for a kind, from the built-in table or API discovery."""
        known = _KNOWN.get(kind)
        if known and known[0] == api_version:
            return known
        key = f"{api_version}/{kind}"
        with self._lock:
            if key in self._discovery:
                return self._discovery[key]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            doc = self.request("GET", base)
        except NotFound:
            raise ApiError(404, "NotFound", f"the server does not serve {api_version}") from None
        for res in doc.get("resources", []):
            if res.get("kind") == kind and "/" not in res.get("name", ""):
                info = (api_version, res["name"], bool(res.get("namespaced")))
                with self._lock:
                    self._discovery[key] = info
                return info
        raise ApiError(404, "NotFound", f"the server has no kind {kind} in {api_version}")

    def path(self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        av, plural, namespaced = self.resource_info(api_version, kind)
        base = "/api/v1" if av == "v1" else f"/apis/{av}"
        p = base
        if namespaced and namespace:
            p += f"/namespaces/{namespace}"
        p += f"/{plural}"
        if name:
            p += f"/{name}"
        return p

    def kind_path(self, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        av = _KNOWN[kind][0]
        return self.path(av, kind, namespace, name)

    # -- verbs ------------------------------------------------------------------------------------------------------

    def get(self, kind: str, name: str, namespace: str | None = None, *, api_version: str | None = None) -> Obj:
        return self.request("GET", self.path(api_version or _KNOWN[kind][0], kind, namespace, name))  # type: ignore[no-any-return]

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
        return self.request("GET", self.path(api_version or _KNOWN[kind][0], kind, namespace), params=params)  # type: ignore[no-any-return]

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
        path = self.path(api_version or _KNOWN[kind][0], kind, namespace, name)
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
            return self.request("DELETE", self.path(api_version or _KNOWN[kind][0], kind, namespace, name), body)  # type: ignore[no-any-return]
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
        path = self.path(api_version or _KNOWN[kind][0], kind, namespace)
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
        deadline = time.monotonic() + timeout
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "timeoutSeconds": max(1, int(timeout) + 1),
            "allowWatchBookmarks": "true",
        }
        url = self._prefix + path + "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        conn = self._new_conn(timeout=max(0.5, timeout + 2))
        try:
            try:
                conn.request("GET", url, headers=self._headers(None))
                resp = conn.getresponse()
            except (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError) as err:
                raise KubeUnreachable(f"watch {path}: {err}") from err
            if resp.status >= 400:
                raise _api_error(resp.status, resp.read(), None)
            while time.monotonic() < deadline:
                remaining = deadline - time.monotonic()
                if conn.sock is not None:
                    conn.sock.settimeout(max(0.05, remaining))
                try:
                    line = resp.readline()
                except TimeoutError:
                    return
                except (ConnectionError, http.client.HTTPException, OSError) as err:
                    raise KubeUnreachable(f"watch {path}: {err}") from err
                if not line:
                    return
                ev = json.loads(line)
                etype = ev.get("type", "")
                obj = ev.get("object", {})
                if etype == "BOOKMARK":
                    continue
                if etype == "ERROR":
                    raise api_error_for(int(obj.get("code", 500)), obj.get("reason", ""), obj.get("message", ""), obj)
                yield etype, obj
        finally:
            conn.close()

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
        av = api_version or _KNOWN[kind][0]
        coll = self.path(av, kind, namespace)
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
