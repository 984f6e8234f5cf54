"""Line charts from evidence series: what a check records with ``Evidence.series`` is drawn in report.html as a
chart (not dumped as JSON), survives results.json, and bad points fail in the check that recorded them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from harness.report import ReportError, RunResults, load_results, save_results
from harness.report.html_report import render_html
from harness.report.sample import sample_results
from harness.report.svg import line_chart
from harness.testing.evidence import Evidence


def _run_with(ev: Evidence) -> RunResults:
    results = sample_results()
    first = dataclasses.replace(results.checks[0], evidence=ev.data)
    return dataclasses.replace(results, checks=(first, *results.checks[1:]))


def test_series_is_drawn_as_a_line_chart_not_dumped() -> None:
    ev = Evidence()
    ev.series("timeline", {"replicas": [(0, 1), (30, 3), (60, 1)], "queue depth": [(0, 0), (30, 12), (60, 0.5)]},
              x="s", y="", title="HPA timeline")
    ev["other"] = "kept as a row"
    html = render_html(_run_with(ev))
    assert "HPA timeline" in html
    assert len(re.findall(r"<polyline ", html)) == 2
    assert ">replicas</text>" in html and ">queue depth</text>" in html
    assert "aiconform.chart" not in html  # the marker never leaks into the page
    assert "kept as a row" in html


def test_series_round_trips_through_results_json(tmp_path: Path) -> None:
    ev = Evidence()
    ev.series("loss", {"loss": [(1, 2.5), (2, 1.25)]}, x="step", y="")
    save_results(_run_with(ev), tmp_path / "results.json")
    again = load_results(tmp_path / "results.json")
    assert "<polyline " in render_html(again)


@pytest.mark.parametrize("point", [(1.0,), (1.0, float("nan")), (1.0, 2.0, 3.0)])
def test_a_bad_point_fails_in_the_recording_check(point: tuple[float, ...]) -> None:
    with pytest.raises(ReportError, match="is not a finite"):
        Evidence().series("s", {"a": [point]})


def test_line_chart_scales_negative_values_and_keeps_empty_series_in_legend() -> None:
    svg = line_chart({"loss": [(0, -1.0), (10, 2.0)], "none yet": []}, title="t", x_unit="step")
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert len(ys) == 2 and ys[0] > ys[1]  # lower value drawn lower
    assert ">none yet</text>" in svg and svg.count("<polyline") == 1
