"""Evidence: what a check observed (``evidence["key"] = value``, ``evidence.timing("time_to_schedule_s", s)``,
``evidence.series("timeline", {"replicas": [(t, n), ...]}, x="s", y="pods")`` for a line chart in report.html).

Values must survive JSON (they travel from an xdist worker to the report and land in results.json); a value that
does not fails in the check that recorded it, as a ReportError (graded ``error``: a harness bug, not the platform).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from harness.report import ReportError
from harness.report.model import SERIES_KIND

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

    def series(
        self,
        key: str,
        lines: Mapping[str, Sequence[Sequence[float]]],
        *,
        x: str = "s",
        y: str = "",
        title: str = "",
    ) -> None:
        """Named series of (x, y) points (a timeline, a loss curve): kept in results.json as evidence ``key`` and
        drawn as one line chart in report.html.  Series sharing a chart share a y unit: record one chart per unit."""
        data: dict[str, list[list[float]]] = {}
        for name, points in lines.items():
            pts = []
            for point in points:
                if len(point) != 2 or not all(math.isfinite(float(v)) for v in point):
                    raise ReportError(f"series {key!r}/{name!r}: point {point!r} is not a finite (x, y) pair")
                pts.append([float(point[0]), float(point[1])])
            data[str(name)] = pts
        self[key] = {SERIES_KIND: "series", "x": x, "y": y, "title": title or key, "lines": data}

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
