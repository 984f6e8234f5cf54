"""Pinned upstream controllers the harness installs into a cluster it made: one registry, one installer.

An addon is an upstream binary pinned in ``versions.toml`` (built from the Go module proxy by ``harness.bins``), packed
here into a FROM-scratch image, loaded into the real node's containerd (no registry, no pull), and deployed with
manifests the addon module renders (its own, or upstream YAML/kustomize output read at install time from the pinned
module in the Go module cache); the installer waits until its workload is Available and fails fast (naming the
addon) when a pod of it crashes or its image is missing.  An addon that serves webhooks gets its serving certificate
from the cluster CA, caBundles patched in, and a wait until the apiserver's calls to its webhooks are answered (see
installer.py).  At tier S (no real node) an addon that declares ``host`` runs as a host process under the cluster's
supervisor instead.  An addon may provide cluster facts (``networkpolicy``) that the provider then declares.

Use from a suite or fixture (training, governance, serving)::

    from harness.providers.local import ensure_addons
    ensure_addons(cluster, "jobset")   # a LocalCluster, a ClusterHandle/ClusterInfo, or its kubeconfig path

installs what is missing on the running local cluster (idempotent; tier R: pods on the real node, tier S: host
processes) and returns the facts added; a profile asks for the same with ``addons: [jobset]``.  An unknown name or
an addon that needs a real node on a tier S cluster is one ConfigError line; a cluster the harness did not make
(provider ``existing``) is UnsupportedCapability.

Owns the addon registry and the install steps (including the undo of a failed install).  Must not change host state
by itself: host processes are started through the supervisor the provider passes in (stopped by its teardown), and
what an addon's pods leave on the host (an nftables table) it declares as undo commands, which the provider records
and runs at teardown.
"""

from __future__ import annotations

from harness.addons.base import Addon, AddonContext, HostContext, HostProcess, UndoCommand, WebhookProbe, Webhooks
from harness.addons.installer import (
    AddonFailed,
    check_profile,
    host_process_name,
    install,
    known_addons,
    lookup,
    preflight,
    undo_host_changes,
    wire_webhooks,
)

__all__ = ["Addon", "AddonContext", "AddonFailed", "HostContext", "HostProcess", "UndoCommand", "WebhookProbe",
           "Webhooks", "check_profile", "host_process_name", "install", "known_addons", "lookup", "preflight",
           "undo_host_changes", "wire_webhooks"]
