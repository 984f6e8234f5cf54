"""The local provider's part of a profile.  It owns no section of its own: its cluster is exactly what the generic
fields describe (``pools`` of simulated nodes, the ``realNode``, ``controlPlane``), which stay in harness/config.py
because harness modules other than this provider read them too (DRA slices, component flags, addons, simulate).
So it states its tier and node count with config's :class:`~harness.config.GenericSpec`.  harness/config.py calls
``PROFILE_SECTION`` through the provider registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.config import Fields, GenericSpec, ProfileSection


class LocalSection:
    """The local provider's hook into profile parsing (config.ProfileSection): no key, the generic spec."""

    key = ""
    holds = ""

    def parse(self, fields: Fields, profile: Mapping[str, Any]) -> GenericSpec:
        return GenericSpec()


PROFILE_SECTION: ProfileSection = LocalSection()
