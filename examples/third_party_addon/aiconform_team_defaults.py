"""An addon from outside aiconform: the namespace ``team-defaults`` and a ConfigMap ``gpu-defaults`` in it, which a
platform team's own checks read (the GPU model and count a team's jobs ask for by default).

It brings no binary and no image and runs nothing (``workload=None``, ``needs_real_node=False``): aiconform's
installer applies its objects on any cluster a provider made (tier S or R, ``local`` or ``kind``), waits for
nothing else, and removes them again if applying fails.  Registered by this directory's pyproject.toml as the entry
point ``team-defaults = aiconform_team_defaults:ADDON`` in the group ``aiconform.addons``.
"""

from __future__ import annotations

from typing import Any

from harness.addons import Addon, AddonContext
from harness.addons.base import addon_labels

NAME = "team-defaults"
NAMESPACE = "team-defaults"
DEFAULTS = {"gpu.model": "A100-SXM4-80GB", "gpu.count": "1"}


def manifests(ctx: AddonContext) -> list[dict[str, Any]]:
    labels = addon_labels(NAME)
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "gpu-defaults", "namespace": NAMESPACE, "labels": labels},
         "data": dict(DEFAULTS)},
    ]


ADDON = Addon(
    name=NAME,
    binary="",
    image=None,
    manifests=manifests,
    workload=None,
    needs_real_node=False,
    version="1.0.0",
    description="a namespace and a ConfigMap of a team's GPU defaults (example third-party addon)",
)
