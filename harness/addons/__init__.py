"""Pinned upstream controllers the harness installs into a cluster it made: one registry, one installer.

An addon is an upstream binary pinned in ``versions.toml`` (built from the Go module proxy by ``harness.bins``), packed
here into a FROM-scratch image, loaded into the real node's containerd (no registry, no pull), and deployed with
manifests the addon module renders (its own, or upstream YAML/kustomize output read at install time from the pinned
module in the Go module cache); the installer waits until its workload is Available and fails fast (naming the
addon) when a pod of it crashes or its image is missing.  An addon that serves webhooks gets its serving certificate
from the cluster CA, caBundles patched in, and a wait until the apiserver's calls to its webhooks are answered (see
installer.py).  At tier S (no real node) an addon that declares ``host`` runs as a host process under the cluster's
supervisor instead.  An addon may provide cluster facts (``networkpolicy``) that the provider then declares.

Addons are registered as entry points in the group ``aiconform.addons`` (registry.py), aiconform's own as a third
party's.  A provider installs them through one small protocol it implements (site.py: load an image, run a host
process, its pools and real nodes), so nothing here imports a provider.  From a suite or fixture, ask through the
provider registry::

    from harness.providers import ensure_addons
    ensure_addons(cluster, "jobset")   # a ClusterHandle/ClusterInfo, a provider object, or its kubeconfig path

which installs what is missing on a running cluster whose provider has the ``ensure_addons`` ability (idempotent;
tier R: pods on the real node, tier S: host processes) and returns the facts added; a profile asks for the same with
``addons: [jobset]``.  An unknown name, or an addon the cluster cannot run (a real node at tier S, a host process
on a provider that runs none), is one ConfigError line naming the addon (and the provider); a cluster the harness
did not make (provider ``existing``) is UnsupportedCapability.

Owns the addon registry, the site protocol and the install steps (including the undo of a failed install).  Must not
change host state by itself: host processes are started through the supervisor the site gives (stopped by the
cluster's teardown), and what an addon's pods leave on the host (an nftables table) it declares as undo commands,
which the site records and the provider runs at teardown.
"""

from __future__ import annotations

from harness.addons.base import Addon, AddonContext, HostContext, HostProcess, UndoCommand, WebhookProbe, Webhooks
from harness.addons.installer import AddonFailed, host_process_name, install, preflight, undo_host_changes, wire_webhooks
from harness.addons.registry import check_profile, known_addons, lookup, registered
from harness.addons.site import AddonSite, HostProcesses, RealNodes, placement

__all__ = ["Addon", "AddonContext", "AddonFailed", "AddonSite", "HostContext", "HostProcess", "HostProcesses",
           "RealNodes", "UndoCommand", "WebhookProbe", "Webhooks", "check_profile", "host_process_name", "install",
           "known_addons", "lookup", "placement", "preflight", "registered", "undo_host_changes", "wire_webhooks"]
