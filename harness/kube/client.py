"""The client: :class:`KubeClient` (requests, apply/delete, watch-based waits) and small helpers on pod objects
that scenarios use (:func:`is_bound`, :func:`unschedulable_message`, ...).

Owns turning calls into requests and answers into objects or exceptions; it must never decide anything a
Kubernetes component decides.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from harness.errors import ApiError, KubeUnreachable, NotFound, TooManyRequests, WaitFailed, WaitTimeout, api_error_for
from harness.kube.config import KubeConfig
from harness.kube.credentials import Obj
from harness.kube.discovery import Discovery, ResourceInfo
from harness.kube.transport import HttpTransport, Transport


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
