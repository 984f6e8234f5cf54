"""The one installer: binary (harness.bins) → FROM-scratch image (harness.images) → the node's containerd (the
provider's image loader) → manifests (server-side apply) → a watch until the workload's pods are Ready.

Every failure names the addon and the step, and is a ClusterError (one line at the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness import images, proc
from harness.addons import kube_router, kueue
from harness.addons.base import Addon, AddonContext, HostContext, UndoCommand
from harness.bins import BinaryResolver
from harness.errors import AiconformError, ClusterError, CommandError, ConfigError
from harness.kube import KubeClient

Progress = Callable[[str], None]
_REGISTRY: tuple[Addon, ...] = (kube_router.ADDON, kueue.ADDON)
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
    host: HostContext | None = None,
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
            if addon.host is not None:
                step = "host process"
                if host is None:
                    raise ClusterError("this cluster cannot run host processes for addons")
                addon.host(host, resolved.path, resolved.version)
                progress(f"  addon {addon.name} v{resolved.version} is running ({time.monotonic() - t0:.1f}s)")
                facts += [f for f in addon.facts if f not in facts]
                continue
            step = "image"
            if addon.image is None:
                raise ClusterError("the addon has neither an image nor a host process")
            image = addon.image(resolved.path, resolved.version)
            tag = image.ref
            archive = images.build(image, progress=_prefixed(progress, f"  addon {addon.name}: ")).archive
            step = "image load"
            load_image(archive)
            step = "manifests"
            ctx = AddonContext(image=tag, apiserver_host=server.hostname or "127.0.0.1",
                               apiserver_port=server.port or 443, node_selector=dict(node_selector))
            for obj in addon.manifests(ctx):
                client.apply(obj)
            step = "rollout"
            wait_ready(client, addon, timeout=timeout)
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

