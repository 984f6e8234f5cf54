"""The reference model server's image (``model-server`` in harness/images/registry.py), loaded into the real node's
containerd at bring-up so serving checks can deploy it (reference_workloads/serving/deploy.py); an image-only addon:
no manifests, nothing runs until a check deploys a model.  Provides the ``model-server`` cluster fact.
"""

from __future__ import annotations

from pathlib import Path

from harness import images
from harness.addons.base import Addon, AddonContext, Obj

NAME = "model-server"


def image(binary: Path, version: str) -> images.Image:
    return images.get(NAME)


def manifests(ctx: AddonContext) -> list[Obj]:
    return []


ADDON = Addon(
    name=NAME,
    binary="",
    version="image (this repository)",
    image=image,
    manifests=manifests,
    workload=None,
    facts=(NAME,),
    needs_real_node=True,
    description="the reference OIP v2 model server's image, loaded into the real node for the serving checks",
)
