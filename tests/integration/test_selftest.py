"""``aiconform selftest`` end to end on real local clusters (tier S): the gang mutation brings up its own mutated
cluster (after the unmutated baseline, where both gang checks pass) and both gang checks fail on it (caught); a
weakened copy of the gang check passes on the mutated platform, so selftest grades it missed and exits non-zero.
Nothing is mocked: each verdict is the real scheduler's, read back through ``aiconform run``'s own report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.upstream("jobset", "kueue")

REPO = Path(__file__).resolve().parents[2]
WEAK = REPO / "tests" / "selftest_data" / "weak_gang_check.py"  # outside tests/integration: its conftest would
# hand the check the integration session's own (default) cluster


def _selftest(*argv: str, state_dir: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AICONFORM_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "harness.cli", "selftest", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def test_every_gang_mutation_is_caught_by_every_gang_check(tmp_path: Path, state_dir: Path) -> None:
    report = tmp_path / "selftest"
    res = _selftest("--requirement", "gang_scheduling", "--report-dir", str(report), state_dir=state_dir)
    doc = json.loads((report / "selftest.json").read_text())
    assert res.returncode == 0, res.stderr[-4000:]
    assert doc["summary"]["caught"] == 1 and not doc["summary"]["missed"] and not doc["summary"]["error"]
    for m in doc["mutations"]:
        assert m["verdict"] == "caught", m
        names = {c["check"].split("::")[1]: c for c in m["checks"]}
        assert set(names) == {"test_native_gang_is_bound_all_or_nothing",
                              "test_two_competing_gangs_one_binds_whole_the_other_none"}
        for c in m["checks"]:
            assert c["status"] == "failed" and c["reason"], c
        assert "partially" in names["test_two_competing_gangs_one_binds_whole_the_other_none"]["reason"]
    assert len(doc["baselines"]) == 1  # the unmutated gang platform, where both checks passed
    rows = doc["power_table"]
    assert [(r["requirement"], r["mutation"], r["verdict"]) for r in rows] == [
        ("gang_scheduling", "gang-plugin-off", "caught")] * 2
    assert "power table" in (report / "report.html").read_text()
    assert res.stdout.strip().splitlines()[-1] == str(report / "report.html")


def test_a_weakened_gang_check_is_missed_and_selftest_fails(tmp_path: Path, state_dir: Path) -> None:
    report = tmp_path / "weak"
    res = _selftest("--suite", str(WEAK), "--mutation", "gang-plugin-off", "--no-baseline",
                    "--report-dir", str(report), state_dir=state_dir)
    assert res.returncode == 1, res.stderr[-4000:]
    doc = json.loads((report / "selftest.json").read_text())
    [m] = doc["mutations"]
    assert m["verdict"] == "missed"
    [c] = m["checks"]
    assert c["check"].endswith("weak_gang_check.py::test_weak_gang_is_bound_once_there_is_room")
    assert c["status"] == "passed" and c["reason"] == "passed on the mutated platform"
    assert "| gang_scheduling (MUST) | `gang-plugin-off`" in (report / "selftest.md").read_text()


def test_a_bad_selection_is_one_line(tmp_path: Path, state_dir: Path) -> None:
    for argv, message in ((["--requirement", "gang"], "unknown requirement 'gang'"),
                          (["--check", "test_nothing"], "--check test_nothing"),
                          (["--requirement", "pod_autoscaling"], "hpa-controller-off needs tier R")):
        res = _selftest(*argv, "--report-dir", str(tmp_path / "r"), state_dir=state_dir, timeout=120)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and message in lines[0], res.stderr
