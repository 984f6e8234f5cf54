"""The one installer: binary (harness.bins) → FROM-scratch image (harness.images) → the node's containerd (the
provider's image loader) → CRDs from the pinned module in the Go module cache (server-side apply, watched until
Established) → manifests (server-side apply) → a watch until the workload's pods are Ready (and, for a Gateway API
controller, its GatewayClass Accepted).

Every failure names the addon and the step, and is a ClusterError (one line at the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness import images, proc
from harness.addons import kube_router, traefik
from harness.addons.base import Addon, AddonContext, UndoCommand
from harness.bins import BinaryResolver
from harness.errors import AiconformError, ClusterError, CommandError, ConfigError
from harness.kube import KubeClient

Progress = Callable[[str], None]
_REGISTRY: tuple[Addon, ...] = (kube_router.ADDON, traefik.ADDON)
_BAD_WAITING = ("CrashLoopBackOff", "ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "CreateContainerError",
                "CreateContainerConfigError", "RunContainerError", "InvalidImageName")


def known_addons() -> dict[str, Addon]:
    return {a.name: a for a in _REGISTRY}


def lookup(name: str) -> Addon:
    try:
        return known_addons()[name]
    except KeyError:
        raise ConfigError(f"unknown addon {name!r}; known addons: {', '.join(sorted(known_addons()))}") from None


def preflight(addons: Iterable[Addon]) -> None:
    """One line before anything starts when the host lacks a tool an addon needs (to undo its host changes)."""
    import shutil

    missing = sorted({pkg for a in addons for exe, pkg in a.host_tools if shutil.which(exe) is None})
    if missing:
        names = ", ".join(a.name for a in addons if any(shutil.which(exe) is None for exe, _ in a.host_tools))
        raise ClusterError(f"addon {names} needs host packages that are not installed: apt-get install "
                           f"{' '.join(missing)}")


def install(
    addons: Sequence[Addon],
    *,
    client: KubeClient,
    load_image: Callable[[Path], None],
    resolver: BinaryResolver,
    node_selector: dict[str, str],
    progress: Progress,
    record_undo: Callable[[list[UndoCommand]], None],
    timeout: float = 120.0,
) -> list[str]:
    """Install each addon in order; returns the cluster facts they provide.  ``record_undo`` receives the host undo
    commands of every addon resolved so far before its pods can change anything, so a teardown after a crash
    mid-install still runs them."""
    undo: list[UndoCommand] = []
    facts: list[str] = []
    server = urlsplit(client.config.server)
    for addon in addons:
        t0 = time.monotonic()
        step = "binary"
        try:
            resolved = resolver.resolve(addon.binary)
            undo += addon.host_undo(resolved.path)
            record_undo(list(undo))
            step = "image"
            image = addon.image(resolved.path, resolved.version)
            tag = image.ref
            archive = images.build(image, progress=_prefixed(progress, f"  addon {addon.name}: ")).archive
            step = "image load"
            load_image(archive)
            if addon.crd_group:
                step = "CRDs"
                install_crds(client, addon.crds(resolver.module_source(addon.crd_group)), timeout=timeout)
            step = "manifests"
            ctx = AddonContext(image=tag, apiserver_host=server.hostname or "127.0.0.1",
                               apiserver_port=server.port or 443, node_selector=dict(node_selector))
            for obj in addon.manifests(ctx):
                client.apply(obj)
            step = "rollout"
            wait_ready(client, addon, timeout=timeout)
            if addon.accepted_class:
                step = "GatewayClass"
                wait_class_accepted(client, addon, timeout=timeout)
        except (AiconformError, OSError) as err:
            raise ClusterError(f"addon {addon.name}: {step} failed: {err}") from err
        progress(f"  addon {addon.name} v{resolved.version} is running ({time.monotonic() - t0:.1f}s)")
        facts += [f for f in addon.facts if f not in facts]
    return facts


def _prefixed(progress: Progress, prefix: str) -> Progress:
    return lambda line: progress(prefix + line)


def wait_ready(client: KubeClient, addon: Addon, *, timeout: float) -> None:
    """Watch the workload's pods until every one is Ready; fail at once on a crash or a missing image."""
    kind, namespace, name = addon.workload
    selector = f"app.kubernetes.io/name={name}"

    def ready(pods: dict[str, Any]) -> bool:
        return bool(pods) and all(_pod_ready(p) for p in pods.values())

    def broken(pods: dict[str, Any]) -> str | None:
        for p in pods.values():
            for cs in p.get("status", {}).get("containerStatuses", []) or []:
                waiting = (cs.get("state", {}).get("waiting") or {})
                term = (cs.get("lastState", {}).get("terminated") or cs.get("state", {}).get("terminated") or {})
                if waiting.get("reason") in _BAD_WAITING:
                    return f"pod {p['metadata']['name']}: {waiting['reason']}: {waiting.get('message', '')}".strip()
                if term and term.get("exitCode", 0) != 0:
                    return (f"pod {p['metadata']['name']} exited {term.get('exitCode')}: "
                            f"{(term.get('message') or term.get('reason') or '').strip()[:300]}")
        return None

    client.wait_for("Pod", namespace=namespace, label_selector=selector, condition=ready, failure=broken,
                    timeout=timeout, what=f"{kind} {namespace}/{name} pods to be Ready")


def install_crds(client: KubeClient, crds: Sequence[dict[str, Any]], *, timeout: float) -> None:
    """Apply CustomResourceDefinitions and watch until the apiserver serves every one (Established); fails at once
    when one is refused (NamesAccepted=False)."""
    names = {c["metadata"]["name"] for c in crds}
    for crd in crds:
        client.apply(crd)

    def cond(state: dict[str, Any]) -> bool:
        return names <= {k for k, v in state.items() if _condition(v, "Established") == "True"}

    def broken(state: dict[str, Any]) -> str | None:
        for k, v in state.items():
            if k in names and _condition(v, "NamesAccepted") == "False":
                return f"CRD {k} names not accepted: {_condition_message(v, 'NamesAccepted')}"
        return None

    client.wait_for("CustomResourceDefinition", condition=cond, failure=broken, timeout=timeout,
                    what=f"{len(names)} CRDs to be Established")


def wait_class_accepted(client: KubeClient, addon: Addon, *, timeout: float) -> None:
    """Watch the addon's GatewayClass until its controller marks it Accepted; the controller's own log lines
    are in the error when it never does."""
    name = addon.accepted_class
    try:
        client.wait_for("GatewayClass", name=name, api_version="gateway.networking.k8s.io/v1", timeout=timeout,
                        condition=lambda st: any(_condition(v, "Accepted") == "True" for v in st.values()),
                        what=f"GatewayClass {name} to be Accepted by {addon.name}")
    except AiconformError as err:
        raise ClusterError(f"{err}; {addon.name} logs:\n{workload_logs(client, addon)}") from err


def workload_logs(client: KubeClient, addon: Addon, *, tail: int = 40) -> str:
    """The last log lines of each pod of the addon's workload (for errors: the component's own words)."""
    _, namespace, name = addon.workload
    out: list[str] = []
    for p in client.list("Pod", namespace, label_selector=f"app.kubernetes.io/name={name}")["items"]:
        pod = p["metadata"]["name"]
        try:
            text = client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
                                  params={"tailLines": str(tail)}, raw=True)
        except AiconformError as err:
            text = f"(no log: {err})"
        out.append(f"--- {namespace}/{pod}\n{str(text).rstrip()}")
    return "\n".join(out) or f"(no pod of {namespace}/{name})"


def _condition(obj: dict[str, Any], kind: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


def _condition_message(obj: dict[str, Any], kind: str) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("message") or c.get("reason") or "")
    return ""


def _pod_ready(pod: dict[str, Any]) -> bool:
    for c in pod.get("status", {}).get("conditions", []) or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


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

