"""The plugin labels its own Node, as GPU feature discovery does (the DaemonSet case, ``serve --label-node``).

Owns one merge patch of ``/api/v1/nodes/<node>``: the labels of ``labels.node_labels`` for this node's GPU spec are
set, and labels the plugin owns (``nvidia.com/*`` and ``aiconform.io/fake-gpu``) that the spec no longer yields are
removed, so a changed spec leaves no stale label.  The pod's service account needs ``get`` and ``patch`` on nodes.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping

from fake_gpu_plugin.kubeapi import KubeAnnotationLookup
from fake_gpu_plugin.labels import FAKE_LABEL

OWNED_PREFIXES = ("nvidia.com/",)


def owned(key: str) -> bool:
    return key == FAKE_LABEL or key.startswith(OWNED_PREFIXES)


def label_patch(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str | None]:
    """The merge patch of ``metadata.labels`` that turns ``current`` into ``wanted`` for the labels we own
    (None removes a label); empty when nothing changes."""
    patch: dict[str, str | None] = {k: v for k, v in wanted.items() if current.get(k) != v}
    patch |= {k: None for k in current if owned(k) and k not in wanted}
    return patch


def apply_node_labels(api: KubeAnnotationLookup, node: str, wanted: Mapping[str, str]) -> dict[str, str | None]:
    """Read the node's labels and patch ours in; returns the patch sent (PluginError when the API refuses)."""
    path = f"/api/v1/nodes/{urllib.parse.quote(node)}"
    current = (api.request_json("GET", path).get("metadata", {}) or {}).get("labels") or {}
    patch = label_patch(current, wanted)
    if patch:
        api.request_json("PATCH", path, json.dumps({"metadata": {"labels": patch}}).encode(),
                         content_type="application/merge-patch+json")
    return patch
