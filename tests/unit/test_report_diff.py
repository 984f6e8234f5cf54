"""``aiconform report diff``: regressions, fixes, new skips, added/removed checks, timing changes, exit codes."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest

from harness.report import ReportError, RunResults, Status, diff, diff_main, save_results
from harness.report.model import to_dict
from harness.report.sample import sample_results

GANG_OK = "scenarios/test_scheduling.py::test_gang_all_or_nothing"
GANG_WAIT = "scenarios/test_scheduling.py::test_gang_waits_for_capacity"
MIG = "scenarios/test_sharing.py::test_mig_partitions_schedulable"
FITS_1 = "scenarios/test_scheduling.py::test_gpu_pod_fits[1gpu]"
FITS_8 = "scenarios/test_scheduling.py::test_gpu_pod_fits[8gpu]"
PREEMPT = "scenarios/test_scheduling.py::test_priority_preemption"


def _edit(results: RunResults, changes: dict[str, dict[str, Any]], drop: tuple[str, ...] = (),
          add: tuple[str, ...] = ()) -> RunResults:
    checks = [dataclasses.replace(c, **changes.get(c.id, {})) for c in results.checks if c.id not in drop]
    template = results.checks[0]
    checks += [dataclasses.replace(template, id=i, name=i.split("::")[-1]) for i in add]
    info = dataclasses.replace(results.info, run_id=results.info.run_id + "-after")
    return dataclasses.replace(results, info=info, checks=tuple(checks))


def _after() -> RunResults:
    return _edit(
        sample_results(),
        {
            GANG_OK: {"status": Status.FAILED, "reason": "gang split across 2 admissions"},
            GANG_WAIT: {"status": Status.PASSED, "reason": ""},
            MIG: {"status": Status.SKIPPED, "reason": "MIG disabled"},
            FITS_8: {"duration_s": 5.5},  # 3.4 → 5.5: +2.1 s and +62 %: counted
            FITS_1: {"duration_s": 3.0},  # 2.1 → 3.0: +43 %: below the relative threshold
            PREEMPT: {"timings": {"time_to_schedule_s": 4.0}},  # 2.2 → 4.0: +1.8 s, +82 %
        },
        drop=("scenarios/test_isolation.py::test_tenant_cannot_list_other_pods",),
        add=("scenarios/test_serving.py::test_new_check",),
    )


def test_diff_finds_every_kind_of_change() -> None:
    result = diff(sample_results(), _after())
    assert [(c.check_id, c.before, c.after) for c in result.regressions] == [(GANG_OK, Status.PASSED, Status.FAILED)]
    assert [c.check_id for c in result.fixes] == [GANG_WAIT]
    assert [(c.check_id, c.reason) for c in result.new_skips] == [(MIG, "MIG disabled")]
    assert [c.id for c in result.added] == ["scenarios/test_serving.py::test_new_check"]
    assert [c.id for c in result.removed] == ["scenarios/test_isolation.py::test_tenant_cannot_list_other_pods"]
    timing = {(t.check_id, t.metric): (t.before_s, t.after_s) for t in result.timing_changes}
    assert timing == {(FITS_8, "duration_s"): (3.4, 5.5), (PREEMPT, "time_to_schedule_s"): (2.2, 4.0)}
    assert result.has_regression


def test_timing_thresholds_are_configurable() -> None:
    result = diff(sample_results(), _after(), relative_threshold=0.3, absolute_threshold_s=0.5)
    assert (FITS_1, "duration_s") in {(t.check_id, t.metric) for t in result.timing_changes}
    strict = diff(sample_results(), _after(), relative_threshold=1.0, absolute_threshold_s=5.0)
    assert strict.timing_changes == ()


def test_identical_runs_have_no_differences() -> None:
    result = diff(sample_results(), sample_results())
    assert not result.has_regression
    assert result.regressions == result.fixes == result.new_skips == ()
    assert result.timing_changes == ()
    assert result.added == result.removed == ()


def test_diff_main_exit_codes_and_text(tmp_path: Path) -> None:
    before_dir, after_file = tmp_path / "before", tmp_path / "after.json"
    before_dir.mkdir()
    save_results(sample_results(), before_dir)
    save_results(_after(), after_file)
    out = io.StringIO()
    assert diff_main(before_dir, after_file, out=out) == 1
    text = out.getvalue()
    assert "REGRESSIONS (1):" in text and f"{GANG_OK}: passed → failed — gang split across 2 admissions" in text
    assert "Fixed (1):" in text and "Newly skipped (1):" in text
    assert "Added checks (1):" in text and "Removed checks (1):" in text
    assert f"{FITS_8} duration_s: 3.40 s → 5.50 s (+2.10 s, ×1.6)" in text
    assert text.rstrip().endswith("result: REGRESSION")
    assert text.splitlines()[1] == "headline: failed → failed"

    out = io.StringIO()
    assert diff_main(before_dir, before_dir, out=out) == 0
    assert "no differences" in out.getvalue() and "result: no regression" in out.getvalue()

    out = io.StringIO()
    assert diff_main(after_file, before_dir, out=out) == 1  # the fix seen backwards is a regression


def test_diff_of_different_schema_versions_is_one_clear_line(tmp_path: Path) -> None:
    save_results(sample_results(), tmp_path / "before.json")
    data = to_dict(sample_results())
    data["schema_version"] = 2
    (tmp_path / "after.json").write_text(json.dumps(data))
    with pytest.raises(ReportError) as err:
        diff_main(tmp_path / "before.json", tmp_path / "after.json", out=io.StringIO())
    message = str(err.value)
    assert "\n" not in message
    assert "different schema versions" in message and "schema_version 1" in message and "has 2" in message
    with pytest.raises(ReportError, match="cannot compare results of schema_version 1 and 2"):
        diff(sample_results(), dataclasses.replace(sample_results(), schema_version=2))


def test_diff_main_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no results file at"):
        diff_main(tmp_path / "nope.json", tmp_path, out=io.StringIO())
