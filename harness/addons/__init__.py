"""Pinned upstream controllers the harness installs into a cluster it made: one registry, one installer.

An addon is an upstream binary pinned in ``versions.toml`` (built from the Go module proxy by ``harness.bins``), packed
here into a FROM-scratch image, loaded into the real node's containerd (no registry, no pull), and deployed with
manifests the harness renders; the installer waits until its workload is Available and fails fast (naming the addon)
when a pod of it crashes or its image is missing.  An addon may provide cluster facts (``networkpolicy``) that the
provider then declares for the cluster.

Owns the addon registry and the install steps.  Must not start host processes or change host state itself: what an
addon leaves on the host (an nftables table) it declares as undo commands, which the provider records and runs at
teardown.
"""

from harness.addons.base import Addon, AddonContext, HostContext, UndoCommand
from harness.addons.installer import install, known_addons, lookup, preflight, undo_host_changes

__all__ = ["Addon", "AddonContext", "HostContext", "UndoCommand", "install", "known_addons", "lookup", "preflight",
           "undo_host_changes"]
