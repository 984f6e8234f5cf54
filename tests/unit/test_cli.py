"""The CLI's bad-input paths: one line on stderr, a non-zero exit, nothing started.  No cluster needed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from harness.report.sample import sample_results


def cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state"), **env}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=60, env=full, cwd=tmp_path)


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("aiconform: ")
    return lines[0]


def test_unknown_suite(tmp_path: Path) -> None:
    res = cli(["run", "--suite", "nope"], tmp_path)
    assert res.returncode == 2
    from harness.runner import known_suites

    assert f"unknown suite 'nope'; known suites: {', '.join(known_suites())}" in one_line(res)
    assert {"dra", "isolation", "properties", "scheduling", "smoke"} <= set(known_suites())
    assert not (tmp_path / "state").exists()


def test_unknown_profile(tmp_path: Path) -> None:
    res = cli(["up", "--profile", "nope"], tmp_path)
    assert res.returncode == 2 and "unknown profile 'nope'" in one_line(res)


def test_no_probe_belongs_to_an_existing_cluster(tmp_path: Path) -> None:
    res = cli(["run", "--no-probe", "--report-dir", str(tmp_path / "r")], tmp_path)
    assert res.returncode == 2 and "--no-probe skips a probe of fact detection on an existing cluster" in one_line(res)


def test_missing_kubeconfig(tmp_path: Path) -> None:
    res = cli(["run", "--kubeconfig", str(tmp_path / "missing"), "--report-dir", str(tmp_path / "r")], tmp_path)
    assert res.returncode != 0 and "does not exist" in one_line(res)


def test_kubeconfig_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        kc = tmp_path / "kc"
        kc.write_text(yaml.safe_dump({
            "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
            "users": [{"name": "u", "user": {"token": "x"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }))
        res = cli(["run", "--kubeconfig", str(kc), "--report-dir", str(tmp_path / "r")], tmp_path)
    assert res.returncode != 0 and "does not answer" in one_line(res)


def test_report_dir_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = cli(["run", "--suite", "smoke", "--report-dir", str(blocker / "sub")], tmp_path)
    assert res.returncode != 0 and "cannot be written" in one_line(res)
    assert not (tmp_path / "state").exists()


def test_report_diff_exit_codes_and_schema_mismatch(tmp_path: Path) -> None:
    from harness.report import save_results

    before = tmp_path / "before.json"
    save_results(sample_results(), before)
    same = cli(["report", "diff", str(before), str(before)], tmp_path)
    assert same.returncode == 0, same.stderr
    passed = next(c for c in json.loads(before.read_text())["checks"] if c["status"] == "passed")
    after_data = json.loads(before.read_text())
    for c in after_data["checks"]:
        if c["id"] == passed["id"]:
            c["status"] = "failed"
    after = tmp_path / "after.json"
    after.write_text(json.dumps(after_data))
    regressed = cli(["report", "diff", str(before), str(after)], tmp_path)
    assert regressed.returncode == 1
    assert passed["id"] in regressed.stdout
    after_data["schema_version"] = 99
    after.write_text(json.dumps(after_data))
    mismatch = cli(["report", "diff", str(before), str(after)], tmp_path)
    assert mismatch.returncode != 0 and "schema" in one_line(mismatch)


def test_existing_provider_profile_has_nothing_to_bring_up(tmp_path: Path) -> None:
    p = tmp_path / "ex.yaml"
    p.write_text("provider: existing\n")
    res = cli(["up", "--profile", str(p)], tmp_path)
    assert res.returncode == 2 and "aiconform run --kubeconfig" in one_line(res)


def test_bins_without_go_or_downloads(tmp_path: Path) -> None:
    res = cli(["bins", "--no-download"], tmp_path, AICONFORM_GO="none", AICONFORM_CACHE_DIR=str(tmp_path / "c"),
              AICONFORM_BIN_DIR=str(tmp_path / "empty"))
    assert res.returncode == 1
    line = one_line(res)
    assert "cannot obtain" in line and "AICONFORM_BIN_DIR" in line and "install Go" in line


def test_plugin_subcommand_passes_arguments_through(tmp_path: Path) -> None:
    cfg = tmp_path / "pool.yaml"
    cfg.write_text("gpu: {model: T4, count: 2}\n")
    ok = cli(["plugin", "--", "validate", "--config", str(cfg)], tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = cli(["plugin", "validate", "--config", str(tmp_path / "missing.yaml")], tmp_path)
    assert bad.returncode == 2
    assert "config file not found" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_kubernetes_flag_rejects_a_bad_version_and_an_existing_cluster(tmp_path: Path) -> None:
    bad = cli(["run", "--kubernetes", "1.x", "--name", "nope"], tmp_path)
    assert bad.returncode != 0 and bad.stderr.strip() == (
        "aiconform: --kubernetes: must look like 1.X.Y (or default, previous), got '1.x'")
    kc = tmp_path / "kc"
    kc.write_text("apiVersion: v1\nkind: Config\n")
    existing = cli(["run", "--kubeconfig", str(kc), "--kubernetes", "previous"], tmp_path)
    assert existing.returncode != 0 and "--kubernetes picks the version" in existing.stderr
