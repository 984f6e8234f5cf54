"""``aiconform run --suite``: shipped suite names vs. the path of a user's own folder of checks.  No cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.bins import pinned_kubernetes
from harness.errors import ConfigError
from harness.runner import SCENARIOS, suite_files, upgrade_suite_files

K8S = pinned_kubernetes("default")  # the Kubernetes version harness/versions.toml pins

REPO = Path(__file__).resolve().parents[2]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AICONFORM_STATE_DIR": str(cwd / "state")}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=cwd)


def _one_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aiconform: "), res.stderr
    return lines[0]


def test_names_are_shipped_suites() -> None:
    assert suite_files(["smoke,scheduling"]) == [SCENARIOS / "test_smoke.py", SCENARIOS / "test_scheduling.py"]
    assert suite_files(None) == sorted(p for p in SCENARIOS.glob("test_*.py") if p.stem != "test_upgrade")


def test_the_upgrade_suite_runs_only_across_an_upgrade() -> None:
    """Its checks judge in the after phase what they made in the before phase: --upgrade-to adds it, and asking
    for it without --upgrade-to is one line."""
    upgrade = SCENARIOS / "test_upgrade.py"
    assert upgrade not in suite_files(None)
    assert upgrade_suite_files(suite_files(["smoke"]), K8S) == [SCENARIOS / "test_smoke.py", upgrade]
    assert upgrade_suite_files(suite_files(None), None) == suite_files(None)
    with pytest.raises(ConfigError, match="--suite upgrade: its checks span an upgrade; run it with --upgrade-to"):
        upgrade_suite_files(suite_files(["upgrade"]), None)


def test_a_value_with_a_separator_is_a_path(tmp_path: Path) -> None:
    checks = tmp_path / "my-checks"
    (checks / "gpu").mkdir(parents=True)
    (checks / "test_nodes.py").write_text("def test_x(): pass\n")
    (checks / "gpu" / "quota_test.py").write_text("def test_y(): pass\n")
    (checks / "helpers.py").write_text("")
    (checks / ".hidden").mkdir()
    (checks / ".hidden" / "test_no.py").write_text("")
    assert suite_files([str(checks)]) == [checks / "gpu" / "quota_test.py", checks / "test_nodes.py"]
    assert suite_files([str(checks / "test_nodes.py")]) == [checks / "test_nodes.py"]


def test_an_existing_folder_named_without_a_separator_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "smoke").mkdir()  # a user's folder that shadows a shipped suite name
    (tmp_path / "smoke" / "test_mine.py").write_text("def test_x(): pass\n")
    monkeypatch.chdir(tmp_path)
    assert suite_files(["smoke"]) == [tmp_path / "smoke" / "test_mine.py"]
    assert suite_files(["smoke", "scheduling"])[-1] == SCENARIOS / "test_scheduling.py"


def test_the_shipped_example_suite_is_found() -> None:
    files = suite_files([str(REPO / "examples" / "my-platform-checks")])
    assert len(files) >= 2 and all(f.name.startswith("test_") for f in files)


def test_missing_path_is_one_line(tmp_path: Path) -> None:
    res = _cli(["run", "--suite", "./no-such-folder"], tmp_path)
    assert res.returncode == 2 and "--suite: no-such-folder does not exist" in _one_line(res)
    assert not (tmp_path / "state").exists()  # nothing was started


def test_folder_without_checks_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("nothing here")
    res = _cli(["run", "--suite", "empty"], tmp_path)
    assert res.returncode == 2 and "--suite: empty holds no checks" in _one_line(res)
    assert not (tmp_path / "state").exists()


def test_a_file_that_is_not_python(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ConfigError, match="not a folder of checks or a Python file"):
        suite_files([str(tmp_path / "notes.txt")])


def test_check_ids_are_relative_to_the_folder_above_a_user_suite(tmp_path: Path) -> None:
    from harness.runner import suite_rootdir

    (tmp_path / "my-checks" / "gpu").mkdir(parents=True)
    files = [tmp_path / "my-checks" / "test_a.py", tmp_path / "my-checks" / "gpu" / "test_b.py"]
    assert suite_rootdir(files) == tmp_path  # ids: my-checks/test_a.py::…, my-checks/gpu/test_b.py::…
    assert suite_rootdir(suite_files(["smoke"])) == SCENARIOS.parent  # ids of shipped suites stay scenarios/…


def test_claims_are_requirement_ids_and_musts_is_the_checklists_musts() -> None:
    from harness.runner import expand_claims, validate_claims

    assert validate_claims(["pod_autoscaling,gang_scheduling", " musts "]) == {"pod_autoscaling", "gang_scheduling",
                                                                               "musts"}
    with pytest.raises(ConfigError, match=r"^--claim: unknown requirement 'gpu_metrics'; give 'musts' or "
                                          r"requirement ids: dra_support, "):
        validate_claims(["gpu_metrics"])
    assert expand_claims(frozenset({"gpu_sharing"}), "1.37.0") == {"gpu_sharing"}
    musts_137 = expand_claims(frozenset({"musts"}), "1.37.0")
    assert len(musts_137) == 8 and "dra_support" not in musts_137 and "ai_service_metrics" in musts_137
    assert "dra_support" in expand_claims(frozenset({"musts"}), "1.35.0")  # a MUST in the 1.35 checklist


def test_an_unknown_claim_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    res = _cli(["run", "--profile", "default", "--claim", "musts,gpu_metrics", "--report-dir", str(tmp_path / "r")],
               tmp_path)
    assert res.returncode == 2
    assert _one_line(res).startswith("aiconform: --claim: unknown requirement 'gpu_metrics'")
    assert not (tmp_path / "r").exists() and not (tmp_path / "state").exists()
