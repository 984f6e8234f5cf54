"""Evidence: what a check observed (``evidence["key"] = value``, ``evidence.timing("time_to_schedule_s", s)``).

Values must survive JSON (they travel from an xdist worker to the report and land in results.json); a value that
does not fails in the check that recorded it, as a ReportError (graded ``error``: a harness bug, not the platform).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from harness.report import ReportError

EVIDENCE_KEY = pytest.StashKey["Evidence"]()


class Evidence:
    """What a check observed; lands in results.json and the report."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        try:
            self.data[key] = json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as err:
            raise ReportError(f"evidence {key!r} is not JSON-serializable: {err}") from err

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def timing(self, key: str, seconds: float) -> None:
        value = float(seconds)
        if not math.isfinite(value) or value < 0:
            raise ReportError(f"timing {key!r} must be a non-negative number of seconds, got {seconds!r}")
        self.timings[key] = round(value, 4)


def evidence_of(item: pytest.Item) -> Evidence | None:
    return item.stash.get(EVIDENCE_KEY, None)


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """The recorder of this check's observations."""
    ev = Evidence()
    request.node.stash[EVIDENCE_KEY] = ev
    return ev
