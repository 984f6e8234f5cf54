"""The one installer: binary (harness.bins) → FROM-scratch image (harness.images) → the node's containerd (the
provider's image loader) → manifests (server-side apply; namespaces and CRDs first, watched until Established) → a
watch until the workload's pods are Ready → its webhooks wired and answering (a Gateway API controller: its
GatewayClass Accepted).

Webhooks (an addon with :class:`~harness.addons.base.Webhooks`): the installer issues the serving certificate from
the cluster CA (SANs ``<svc>.<ns>.svc``, ``<svc>.<ns>.svc.cluster.local``, and 127.0.0.1 for a host process),
writes it into the Secret the workload mounts (or files a host process reads), sets ``caBundle`` on every
Validating/MutatingWebhookConfiguration webhook and CRD conversion webhook of the manifests that names the addon's
Service, applies the webhook configurations only once the controller runs, and sends the addon's probes (server-side
dry-run creates) until the apiserver's call to each webhook is answered by a denial from that webhook.

Two modes: ``pod`` (a real node: the workload runs there) and ``host`` (tier S, no real node: the binary runs as a
host process under the cluster's supervisor with a kubeconfig of its own, its webhook server on 127.0.0.1:PORT, and
the webhook configurations pointing at ``https://127.0.0.1:PORT/...``).

Every failure names the addon and the step and is a ClusterError (one line at the CLI), except what the platform
itself lacks (a PlatformFault: an Established CRD never served in discovery, a registered webhook the apiserver never
calls), which stays the platform's verdict (harness.errors); whatever the installer applied or started for that
addon is removed again (nothing stays installed), including on Ctrl-C.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from harness import images, proc
from harness.addons.base import Addon, AddonContext, HostContext, Obj, UndoCommand, Webhooks
from harness.addons.site import AddonSite, HostProcesses, RealNodes, site_placement
from harness.bins import BinaryResolver, Component, build_env
from harness.errors import (
    AiconformError,
    ApiError,
    ApiNotServed,
    ClusterError,
    CommandError,
    ConfigError,
    NotFound,
    PlatformFault,
    WaitTimeout,
    WebhookNotCalled,
)
from harness.hostproc import free_port
from harness.kube import write_kubeconfig
from harness.workloads import BAD_WAITING_REASONS, pod_log_tail, pod_ready

if TYPE_CHECKING:
    from harness.config import Pool
    from harness.hostproc import Supervisor
    from harness.kube import KubeClient
    from harness.pki import Pki

Progress = Callable[[str], None]
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
CRD = "CustomResourceDefinition"
WEBHOOK_TIMEOUT = 60.0
"""Seconds the webhooks of one addon get to answer once its controller runs."""


def preflight(addons: Iterable[Addon]) -> None:
    """One line before anything starts when the host lacks a tool an addon needs (to undo its host changes)."""
    missing = sorted({pkg for a in addons for exe, pkg in a.host_tools if shutil.which(exe) is None})
    if missing:
        names = ", ".join(a.name for a in addons if any(shutil.which(exe) is None for exe, _ in a.host_tools))
        raise ClusterError(f"addon {names} needs host packages that are not installed: apt-get install "
                           f"{' '.join(missing)}")


class AddonFailed(ClusterError):
    """An addon did not install; the message is the whole line (names the addon and what failed)."""


def install(addons: Sequence[Addon], site: AddonSite, *, timeout: float = 120.0,
            webhook_timeout: float = WEBHOOK_TIMEOUT) -> list[str]:
    """Install each addon in order on the cluster ``site`` stands for (a provider builds it: harness/addons/site.py);
    returns the cluster facts they provide.

    Pod mode where the site has real nodes (:class:`RealNodes`), else host mode (:class:`HostProcesses`); an addon
    that can run neither way there is one ConfigError naming it and the provider, before any addon starts.  The site's
    ``record_undo`` receives the host undo commands of every addon resolved so far before its pods can change
    anything, so a teardown after a crash mid-install still runs them.  An addon that fails is removed again before
    the AddonFailed naming it is raised."""
    modes = {addon.name: site_placement(addon, site) for addon in addons}
    undo: list[UndoCommand] = []
    facts: list[str] = []

    def add_undo(cmds: list[UndoCommand]) -> None:
        undo.extend(cmds)
        site.record_undo(list(undo))

    nodes = site if isinstance(site, RealNodes) else None
    host = site if isinstance(site, HostProcesses) else None
    with site.client() as client:
        for addon in addons:
            t0 = time.monotonic()
            pod = modes[addon.name] == "pod" and nodes is not None
            job = _Install(addon, client=client, resolver=site.resolver(),
                           node_selector=dict(nodes.node_selector) if nodes is not None else {},
                           progress=site.progress, load_image=nodes.load_image if pod and nodes is not None else None,
                           pki=site.ca(), workdir=host.workdir if host is not None else None,
                           supervisor=host.supervisor() if host is not None else None, timeout=timeout,
                           webhook_timeout=webhook_timeout, cluster=site.cluster, pools=site.pools,
                           time_compression=site.time_compression,
                           host_metrics=dict(nodes.host_metrics) if nodes is not None else {})
            try:
                version = job.run(add_undo)
            except (AddonFailed, PlatformFault):  # a PlatformFault is the platform's verdict: it stays one
                job.undo()
                raise
            except (AiconformError, OSError) as err:
                job.undo()
                raise AddonFailed(f"addon {addon.name}: {job.step} failed: {_one_line(str(err))}") from err
            except BaseException:  # Ctrl-C: nothing half-installed stays behind
                job.undo()
                raise
            done = ("is applied (manifests only)" if addon.workload is None and addon.image is None
                    else "is running as a host process" if job.mode == "host" else "is running on the real node")
            site.progress(f"  addon {addon.name} {'v' if addon.binary else ''}{version} {done} "
                          f"({time.monotonic() - t0:.1f}s)")
            facts += [f for f in addon.facts if f not in facts]
    return facts


def _no_upstream(path: str) -> list[Obj]:
    raise ConfigError(f"an addon without a pinned module has no upstream YAML ({path})")


def _real_nodes(client: KubeClient, node_selector: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """(name, InternalIP) of the nodes ``node_selector`` picks (the real nodes)."""
    selector = ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or None
    out = []
    for node in client.list("Node", label_selector=selector).get("items", []):
        ips = [a["address"] for a in node.get("status", {}).get("addresses", []) or [] if a.get("type") == "InternalIP"]
        out.append((node["metadata"]["name"], ips[0] if ips else ""))
    return tuple(sorted(out))


def _one_line(text: str) -> str:
    return " | ".join(ln.strip() for ln in text.splitlines() if ln.strip())


def host_process_name(addon: Addon) -> str:
    """The supervisor name of an addon's host process (tier S)."""
    return f"addon-{addon.name}"


@dataclass
class _Install:
    """One addon's install, with everything it did recorded for its undo."""

    addon: Addon
    client: KubeClient
    resolver: BinaryResolver
    node_selector: dict[str, str]
    progress: Progress
    load_image: Callable[[Path], None] | None
    pki: Pki | None
    workdir: Path | None
    supervisor: Supervisor | None
    timeout: float
    webhook_timeout: float
    cluster: str = ""
    pools: tuple[Pool, ...] = ()
    time_compression: float | None = None
    host_metrics: dict[str, str] = field(default_factory=dict)
    step: str = "binary"
    applied: list[Obj] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    workload: Obj | None = None

    @property
    def mode(self) -> str:
        """``pod`` when the installer was given the site's image loader (placement chose the real nodes)."""
        return "pod" if self.load_image is not None else "host"

    @property
    def name(self) -> str:
        return self.addon.name

    def run(self, record_undo: Callable[[list[UndoCommand]], None]) -> str:
        addon = self.addon
        runs_host_process = self.mode == "host" and addon.workload is not None
        if runs_host_process and (self.supervisor is None or self.workdir is None or self.pki is None):
            raise ClusterError("host mode needs the cluster's supervisor, run directory and CA")
        if addon.webhooks is not None and self.pki is None:
            raise ClusterError("its webhooks need the cluster CA (pki)")
        binary: Path | None = None
        version = addon.version
        if addon.binary:
            resolved = self.resolver.resolve(addon.binary)
            binary, version = resolved.path, resolved.version
            record_undo(list(addon.host_undo(resolved.path)))
        tag = ""
        if self.load_image is not None and addon.image is not None:
            self.step = "image"
            image = addon.image(binary if binary is not None else Path(), version)
            archive = images.build(image, progress=_prefixed(self.progress, f"  addon {addon.name}: ")).archive
            self.step = "image load"
            self.load_image(archive)
            tag = image.ref
        self.step = "manifests"
        server = urlsplit(self.client.config.server)
        ctx = AddonContext(image=tag, apiserver_host=server.hostname or "127.0.0.1", apiserver_port=server.port or 443,
                           node_selector=dict(self.node_selector), mode=self.mode,
                           upstream=(_upstream_renderer(self.resolver, addon.upstream_group
                                                         or self.resolver.versions.owner_of(addon.binary))
                                     if addon.upstream_group or addon.binary else _no_upstream),
                           cluster=self.cluster, pools=self.pools,
                           real_nodes=_real_nodes(self.client, self.node_selector) if self.mode == "pod" else (),
                           host_metrics=dict(self.host_metrics), time_compression=self.time_compression)
        objs = [copy.deepcopy(o) for o in addon.manifests(ctx)]
        if addon.workload is None:  # image only (loaded) or manifests only: nothing to run
            self._apply_ordered(objs)
            return version
        workload = self.workload = _find(objs, *addon.workload)
        if workload is None:
            raise ClusterError(f"its manifests have no {'/'.join(addon.workload)}")
        hctx: HostContext | None = None
        if self.mode == "host":
            assert binary is not None  # an addon with a host mode has a pinned binary
            hctx = self._host_context(binary, workload)
        apiservices = [o["metadata"]["name"] for o in objs if o["kind"] == "APIService"
                       and addon.webhooks is not None and _names_service(o.get("spec", {}).get("service"),
                                                                         addon.webhooks)]
        if apiservices and hctx is not None:
            raise ConfigError(f"its APIService {apiservices[0]} needs a real node (tier R): the apiserver reaches "
                              "an APIService backend only through a Service with pod endpoints")
        if addon.webhooks is not None:
            self.step = "webhook certificate"
            objs = self._wire_webhooks(objs, addon.webhooks, hctx)
        hooks = [o for o in objs if o["kind"] in WEBHOOK_KINDS]
        workload_key = addon.workload
        rest = [o for o in objs if o["kind"] not in WEBHOOK_KINDS
                and (self.mode == "pod" or _find([o], *workload_key) is None)]  # host mode: no workload
        self._apply_ordered(rest)
        self.step = "rollout"
        if hctx is not None:
            self._start_host_process(hctx)
        else:
            wait_ready(self.client, addon, timeout=self.timeout, workload=workload)
        if addon.gateway_class:
            self.step = "GatewayClass"
            self._wait_class_accepted(addon.gateway_class, workload)
        if hooks:
            self.step = "webhooks"
            for obj in hooks:
                self._apply(obj)
        if addon.webhooks is not None:
            self.step = "webhooks"
            deadline = time.monotonic() + self.webhook_timeout
            self._wait_webhooks(addon.webhooks, hooks, hctx, deadline)
            for name in apiservices:
                self._wait_apiservice(name, deadline)
        if addon.after_ready is not None:
            self.step = "after rollout"
            addon.after_ready(self.client, ctx)
        return version

    # -- steps -------------------------------------------------------------------------------------------------------

    def _apply_ordered(self, objs: list[Obj]) -> None:
        """Namespaces and CRDs first, the CRDs Established and discovered before any object of their kinds, then
        the rest."""
        self.step = "manifests"
        ordered = sorted(objs, key=_apply_order)
        first = [o for o in ordered if _apply_order(o) <= _apply_order({"kind": CRD})]
        for obj in first:
            self._apply(obj)
        crds = [o for o in objs if o["kind"] == CRD]
        if crds:
            self.step = "CRDs"
            self.client.wait_all(CRD, [o["metadata"]["name"] for o in crds], _established, timeout=60,
                                 what=f"addon {self.name}'s CRDs to be Established")
            wait_discovered(self.client, crds, timeout=60, what=f"addon {self.name}'s CRDs")
        self.step = "manifests"
        for obj in ordered[len(first):]:
            self._apply(obj)

    def _wait_class_accepted(self, name: str, workload: Obj) -> None:
        """Watch the GatewayClass until the addon's controller marks it Accepted (its log lines otherwise)."""
        try:
            self.client.wait_for("GatewayClass", name=name, api_version="gateway.networking.k8s.io/v1",
                                 timeout=self.timeout, what=f"GatewayClass {name} to be Accepted",
                                 condition=lambda st: any(_condition(o, "Accepted") == "True" for o in st.values()))
        except AiconformError as err:
            raise ClusterError(f"{err}; {self.addon.name} log: "
                               f"{addon_log_tail(self.client, self.addon, 20, workload)}") from err

    def _apply(self, obj: Obj) -> None:
        """Server-side apply; an object that did not exist before is recorded for the undo (one that did, e.g. a
        namespace or CRD another addon shares, is never deleted by this addon's undo)."""
        md = obj["metadata"]
        try:
            self.client.get(obj["kind"], md["name"], md.get("namespace"), api_version=obj["apiVersion"])
        except NotFound:
            self.applied.append(obj)  # before the call: a create that times out may still have happened
        self.client.apply(obj)

    def _host_context(self, binary: Path, workload: Obj) -> HostContext:
        assert self.workdir is not None and self.pki is not None
        wd = self.workdir / self.name
        self.files.append(wd)
        (wd / "certs").mkdir(parents=True, exist_ok=True)
        ns = workload["metadata"].get("namespace", "default")
        sa = workload["spec"]["template"]["spec"].get("serviceAccountName", "default")
        stem = f"addon-{self.name}-client"
        pair = self.pki.issue(stem, f"system:serviceaccount:{ns}:{sa}", org="system:serviceaccounts", client=True)
        self.files += [pair.cert, pair.key]
        kubeconfig = wd / "kubeconfig"
        write_kubeconfig(kubeconfig, self.client.config.server, self.pki.ca.cert, pair.cert, pair.key,
                         f"addon-{self.name}")
        return HostContext(binary=binary, kubeconfig=kubeconfig, workdir=wd, cert_dir=wd / "certs",
                           webhook_port=free_port(), health_port=free_port(), pools=self.pools,
                           time_compression=self.time_compression)

    def _wire_webhooks(self, objs: list[Obj], hooks: Webhooks, hctx: HostContext | None) -> list[Obj]:
        assert self.pki is not None
        svc, ns = hooks.service, hooks.namespace
        dns = (f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local")
        stem = f"addon-{self.name}-webhook"
        pair = self.pki.issue(stem, dns[0], server=True, dns=dns, ips=("127.0.0.1",) if hctx else ())
        self.files += [pair.cert, pair.key]
        ca = self.pki.ca.cert.read_bytes()
        url = f"https://127.0.0.1:{hctx.webhook_port}" if hctx else None
        out = wire_webhooks(objs, hooks, ca, url_base=url)
        if hctx is not None:
            shutil.copyfile(pair.cert, hctx.cert_dir / "tls.crt")
            shutil.copyfile(pair.key, hctx.cert_dir / "tls.key")
            os.chmod(hctx.cert_dir / "tls.key", 0o600)
            shutil.copyfile(self.pki.ca.cert, hctx.cert_dir / "ca.crt")
            return out
        secret = {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": hooks.secret, "namespace": ns,
                         "labels": {"app.kubernetes.io/managed-by": "aiconform"}},
            "data": {"tls.crt": _b64(pair.cert.read_bytes()), "tls.key": _b64(pair.key.read_bytes()),
                     "ca.crt": _b64(ca)},
        }
        return [*out, secret]

    def _start_host_process(self, hctx: HostContext) -> None:
        assert self.addon.host is not None and self.supervisor is not None
        spec = self.addon.host(hctx)
        for rel, content in spec.files:
            (hctx.workdir / rel).write_text(content)
        name = host_process_name(self.addon)
        self.started.append(name)
        self.supervisor.start(name, list(spec.argv), env={**os.environ, **dict(spec.env)})
        port = hctx.webhook_port if self.addon.webhooks is not None else hctx.health_port
        self.supervisor.wait_ready(name, lambda: _listening(port), timeout=self.timeout,
                                   what=f"addon {self.name} (host process, port {port})")

    def _wait_apiservice(self, name: str, deadline: float) -> None:
        """Watch the APIService until the aggregator reports it Available (it reached the backend over TLS with
        the caBundle), or the deadline: one line with its condition's message and the controller's log."""
        last: dict[str, str] = {}

        def available(st: dict[str, Obj]) -> bool:
            for svc in st.values():
                for c in svc.get("status", {}).get("conditions", []) or []:
                    if c.get("type") == "Available":
                        last["message"] = str(c.get("message") or c.get("reason") or "")
                        return bool(c.get("status") == "True")
            return False

        try:
            self.client.wait_for("APIService", name=name, condition=available,
                                 timeout=max(1.0, deadline - time.monotonic()), what=f"APIService {name}")
        except WaitTimeout:
            raise AddonFailed(f"addon {self.name}: APIService {name} did not become Available in "
                              f"{self.webhook_timeout:.0f}s ({_one_line(last.get('message', 'no status'))[:300]}): "
                              f"{self.controller_log(None)}") from None

    def _wait_webhooks(self, hooks: Webhooks, configs: list[Obj], hctx: HostContext | None, deadline: float) -> None:
        """Poll the probes with server-side dry-run creates (no watch reports "a webhook answers") with a deadline.
        A probe the apiserver still lets through at the deadline, without calling the webhook, is the platform's
        fault (WebhookNotCalled: its apiserver does not run admission webhooks); a webhook the apiserver calls but
        cannot reach or trust is this install's (AddonFailed)."""
        for probe in hooks.probes:
            denial = f'admission webhook "{probe.webhook}" denied the request'
            delay, last, let_through = 0.2, "", False
            while True:
                try:
                    self.client.create(copy.deepcopy(probe.obj), dry_run=True)
                except ApiError as err:
                    if denial in err.message:
                        break
                    last, let_through = _one_line(err.message)[:300], False
                else:  # accepted: the apiserver has not loaded the new webhook configuration yet (its informer lags)
                    last = f"it let the probe {probe.obj['kind']} through without asking the webhook"
                    let_through = True
                if time.monotonic() >= deadline:
                    where = _client_config_of(configs, probe.webhook)
                    if let_through:
                        raise WebhookNotCalled(
                            "kube-apiserver admission webhooks",
                            f"webhook {probe.webhook} of addon {self.name} ({where}) is registered, but after "
                            f"{self.webhook_timeout:.0f}s the apiserver still lets the probe {probe.obj['kind']} "
                            "through without calling it (is the ValidatingAdmissionWebhook/MutatingAdmissionWebhook "
                            "admission plugin off?)")
                    raise AddonFailed(
                        f"addon {self.name}: webhook {probe.webhook} ({where}) did not answer in "
                        f"{self.webhook_timeout:.0f}s (apiserver: {last or 'no answer'}): "
                        f"{self.controller_log(hctx)}")
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)

    def controller_log(self, hctx: HostContext | None, lines: int = 5) -> str:
        """The controller's last log lines, as one line."""
        if hctx is not None and self.supervisor is not None:
            name = host_process_name(self.addon)
            log = self.supervisor.logfile(name)
            try:
                text = log.read_text(errors="replace")
            except OSError:
                return "(no log)"
            tail = [ln for ln in text.splitlines() if ln.strip()][-lines:]
            return _one_line("\n".join(tail))[:1500] + f" (log: {log})"
        return addon_log_tail(self.client, self.addon, lines, self.workload)

    # -- undo --------------------------------------------------------------------------------------------------------

    def undo(self) -> None:
        """Remove what this install applied (webhook configurations first, the namespaces last and awaited), stop
        its host process and remove its files.  Best effort: a failure here must not hide the original error."""
        for name in self.started:
            if self.supervisor is not None:
                self.supervisor.stop(name)
        order = sorted(self.applied, key=_apply_order, reverse=True)
        # stable sort: webhook configurations and APIServices go first (left dangling, they break every create of
        # the kinds they judge, or discovery)
        order.sort(key=lambda o: o["kind"] not in (*WEBHOOK_KINDS, "APIService"))
        namespaces = []
        for obj in order:
            md = obj["metadata"]
            try:
                self.client.delete(obj["kind"], md["name"], md.get("namespace"), api_version=obj["apiVersion"])
            except (AiconformError, OSError):
                continue
            if obj["kind"] == "Namespace":
                namespaces.append(md["name"])
        for ns in namespaces:
            try:
                self.client.wait_for("Namespace", name=ns, condition=lambda st: not st, timeout=60,
                                     what=f"namespace {ns} of addon {self.name} to be deleted")
            except (AiconformError, OSError) as err:
                self.progress(f"warning: {err}")
        for path in self.files:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.applied.clear()
        self.started.clear()


def wire_webhooks(objs: list[Obj], hooks: Webhooks, ca_pem: bytes, *, url_base: str | None) -> list[Obj]:
    """The manifests with ``caBundle`` set on every webhook client config that names the addon's Service (webhook
    configurations and CRD conversion webhooks) and on every APIService backed by that Service (its
    ``insecureSkipTLSVerify`` dropped), and with ``url_base + path`` in place of the Service in webhook client
    configs when given (host mode); the addon's own Secret of that name is dropped (the installer writes it).
    Pure."""
    bundle = _b64(ca_pem)

    def fix(cc: Obj) -> Obj:
        svc = cc.get("service") or {}
        if svc.get("name") != hooks.service or svc.get("namespace") != hooks.namespace:
            return cc
        if url_base is None:
            return {**cc, "caBundle": bundle}
        return {"url": url_base + (svc.get("path") or "/"), "caBundle": bundle}

    out = []
    for obj in objs:
        obj = copy.deepcopy(obj)
        md = obj.get("metadata", {})
        if obj["kind"] == "Secret" and md.get("name") == hooks.secret and md.get("namespace") == hooks.namespace:
            continue
        if obj["kind"] in WEBHOOK_KINDS:
            for wh in obj.get("webhooks", []) or []:
                wh["clientConfig"] = fix(wh.get("clientConfig", {}))
        elif obj["kind"] == "APIService" and _names_service(obj.get("spec", {}).get("service"), hooks):
            obj["spec"]["caBundle"] = bundle
            obj["spec"].pop("insecureSkipTLSVerify", None)
        elif obj["kind"] == CRD:
            conv = obj.get("spec", {}).get("conversion") or {}
            if conv.get("strategy") == "Webhook" and "clientConfig" in (conv.get("webhook") or {}):
                conv["webhook"]["clientConfig"] = fix(conv["webhook"]["clientConfig"])
        out.append(obj)
    return out


def _names_service(svc: Obj | None, hooks: Webhooks) -> bool:
    return isinstance(svc, dict) and svc.get("name") == hooks.service and svc.get("namespace") == hooks.namespace


def _client_config_of(configs: list[Obj], webhook: str) -> str:
    for obj in configs:
        for wh in obj.get("webhooks", []) or []:
            if wh.get("name") == webhook:
                cc = wh.get("clientConfig", {})
                if "url" in cc:
                    return str(cc["url"])
                svc = cc.get("service", {})
                return f"service {svc.get('namespace')}/{svc.get('name')}:{svc.get('port', 443)}{svc.get('path', '')}"
    return "not in the manifests"


def _apply_order(obj: Obj) -> int:
    return {"Namespace": 0, CRD: 1, "ServiceAccount": 2, "Secret": 2, "ConfigMap": 2}.get(obj["kind"], 3)


def _find(objs: list[Obj], kind: str, namespace: str, name: str) -> Obj | None:
    for o in objs:
        md = o.get("metadata", {})
        if o.get("kind") == kind and md.get("name") == name and md.get("namespace", namespace) == namespace:
            return o
    return None


def _condition(obj: Obj, kind: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


def _established(crd: Obj) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in crd.get("status", {}).get("conditions", []) or [])


def wait_discovered(client: KubeClient, crds: list[Obj], *, timeout: float, what: str) -> None:
    """Poll API discovery until every served version of every CRD lists its resource.  Established comes first:
    a controller that starts in between fails its own discovery ("no matches for <group>/<version>") and exits
    (Kubeflow Trainer v2.3.0 did, 1 of 2 installs here).  Discovery has no watch: polled, with a deadline."""
    wanted = {(c["spec"]["group"], v["name"], c["spec"]["names"]["plural"])
              for c in crds for v in c["spec"].get("versions", []) if v.get("served", True)}
    missing: list[str] = []

    def discovered() -> bool:
        missing[:] = []
        for group, version, plural in sorted(wanted):
            try:
                found = client.request("GET", f"/apis/{group}/{version}")
            except ApiError:
                found = {}
            if plural not in {r.get("name") for r in found.get("resources", []) or []}:
                missing.append(f"{plural}.{group}/{version}")
        return not missing

    try:
        proc.poll_until(discovered, timeout=timeout, interval=0.1, backoff=2.0, max_interval=1.0,
                        what=f"{what} in API discovery")
    except WaitTimeout:
        raise ApiNotServed("kube-apiserver API discovery",
                           f"{what}: Established but not in API discovery after {timeout:.0f}s: {', '.join(missing)}") from None


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _prefixed(progress: Progress, prefix: str) -> Progress:
    return lambda line: progress(prefix + line)


# -- upstream manifests ------------------------------------------------------------------------------------------------


def _upstream_renderer(resolver: BinaryResolver, group: str) -> Callable[[str], list[Obj]]:
    """``render(path)``: a kustomization directory (``kubectl kustomize``) or a YAML file of the pinned module of the
    versions.toml ``group``, read from the Go module cache (downloaded through the module proxy on first use)."""
    comp = resolver.versions.component(group)

    def render(path: str) -> list[Obj]:
        root = module_dir(resolver, comp)
        target = root / path
        if target.is_file():
            text = target.read_text()
        else:
            kubectl = resolver.resolve("kubectl").path
            try:
                text = proc.run([str(kubectl), "kustomize", str(target)], timeout=120).stdout
            except CommandError as err:
                raise ClusterError(f"cannot render {comp.module}@v{comp.version}/{path}: {err}") from err
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]

    return render


@functools.cache
def _module_dir(go: str, module: str, version: str, env: tuple[tuple[str, str], ...]) -> Path:
    try:
        res = proc.run([go, "mod", "download", "-json", f"{module}@v{version}"], env=dict(env), timeout=600,
                       cwd=Path.home())
        info = json.loads(res.stdout)
    except (CommandError, ValueError) as err:
        raise ClusterError(f"cannot fetch {module} v{version} from the Go module proxy: {err}") from err
    if info.get("Error") or not info.get("Dir"):
        raise ClusterError(f"cannot fetch {module} v{version}: {info.get('Error', 'no Dir')}")
    return Path(info["Dir"])


def module_dir(resolver: BinaryResolver, comp: Component) -> Path:
    """Where the pinned module's source lies in the Go module cache (read-only; never copied into the repo).  Go
    runs with the section's environment (``build_env``: its pinned GOTOOLCHAIN included)."""
    if not resolver.go:
        raise ClusterError(f"reading {comp.module} v{comp.version}'s manifests needs Go (`go` on PATH) for the "
                           "module cache")
    return _module_dir(resolver.go, comp.module, comp.version, tuple(sorted(build_env(comp).items())))


# -- rollout -----------------------------------------------------------------------------------------------------------


def _selector(addon: Addon, workload: Obj | None) -> str:
    labels = ((workload or {}).get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:
        return f"app.kubernetes.io/name={addon.workload[2] if addon.workload else addon.name}"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def wait_ready(client: KubeClient, addon: Addon, *, timeout: float, workload: Obj | None = None) -> None:
    """Watch the workload's pods until every one is Ready; fail at once on a crash or a missing image."""
    if addon.workload is None:
        return
    kind, namespace, name = addon.workload

    def ready(pods: dict[str, Any]) -> bool:
        return bool(pods) and all(pod_ready(p) for p in pods.values())

    def broken(pods: dict[str, Any]) -> str | None:
        for p in pods.values():
            for cs in p.get("status", {}).get("containerStatuses", []) or []:
                waiting = (cs.get("state", {}).get("waiting") or {})
                term = (cs.get("lastState", {}).get("terminated") or cs.get("state", {}).get("terminated") or {})
                if waiting.get("reason") in BAD_WAITING_REASONS:
                    return f"pod {p['metadata']['name']}: {waiting['reason']}: {waiting.get('message', '')}".strip()
                if term and term.get("exitCode", 0) != 0:
                    return (f"pod {p['metadata']['name']} exited {term.get('exitCode')}: "
                            f"{(term.get('message') or term.get('reason') or '').strip()[:300]}")
        return None

    client.wait_for("Pod", namespace=namespace, label_selector=_selector(addon, workload), condition=ready,
                    failure=broken, timeout=timeout, what=f"{kind} {namespace}/{name} pods to be Ready")


def addon_log_tail(client: KubeClient, addon: Addon, lines: int = 5, workload: Obj | None = None) -> str:
    """The last log lines of the addon's workload pods (:func:`harness.workloads.pod_log_tail` each), as one line."""
    if addon.workload is None:
        return ""
    _, namespace, _ = addon.workload
    try:
        pods = client.list("Pod", namespace, label_selector=_selector(addon, workload))["items"]
    except (AiconformError, OSError) as err:
        return f"(no controller log: {err})"
    out = []
    for p in pods:
        name = p["metadata"]["name"]
        tail = "\n".join(pod_log_tail(client, namespace, name, lines=lines))
        out.append(f"pod {name}: {_one_line(tail)}")
    return " ; ".join(out)[:1500] or "(no controller pod)"


def undo_host_changes(commands: Iterable[Sequence[str]], progress: Progress) -> list[str]:
    """Run recorded undo commands (teardown); a command that fails (nothing to undo) is not an error."""
    done = []
    for argv in commands:
        try:
            proc.run(list(argv), timeout=30)
        except CommandError:
            continue
        done.append(" ".join(argv))
        progress(f"undid: {' '.join(argv)}")
    return done
