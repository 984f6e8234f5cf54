"""Every GitHub Actions workflow under ci/ passes actionlint (pinned in versions.toml, built from the Go module proxy
on first use).  Only the lint can run here: these machines have no hosted runner.  A broken workflow must fail it,
so the check can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import proc
from harness.bins import BinaryResolver
from harness.errors import BinaryError, CommandError

CI_DIR = Path(__file__).resolve().parents[2] / "ci"
CONFIG = CI_DIR / "actionlint.yaml"
"""actionlint's own settings (self-hosted runner labels), passed with -config-file; not a workflow."""


def _workflows() -> list[Path]:
    return sorted(p for p in CI_DIR.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file() and p != CONFIG)


def _argv(actionlint: Path, workflow: Path) -> list[str]:
    return [str(actionlint), "-no-color", *(["-config-file", str(CONFIG)] if CONFIG.is_file() else []), str(workflow)]


@pytest.fixture(scope="module")
def actionlint() -> Path:
    try:
        return BinaryResolver(download="never").resolve("actionlint").path
    except BinaryError as err:
        pytest.skip(f"actionlint is not available and cannot be built here: {err}")


def test_ci_has_workflows() -> None:
    assert _workflows(), f"no workflow under {CI_DIR}"


@pytest.mark.parametrize("workflow", _workflows(), ids=lambda p: str(p.relative_to(CI_DIR)))
def test_workflows_let_the_cluster_facts_be_detected(workflow: Path) -> None:
    """No lane declares facts: they are detected from what the cluster serves (a declaration would hide a fact
    the cluster lost), and the real-GPU lane keeps the NetworkPolicy probe."""
    text = workflow.read_text()
    assert "--capability" not in text
    assert "--no-probe" not in text
    if workflow.name == "gpu-lane.yml":
        assert "aiconform run --kubeconfig" in text


@pytest.mark.parametrize("workflow", _workflows(), ids=lambda p: str(p.relative_to(CI_DIR)))
def test_workflow_passes_actionlint(actionlint: Path, workflow: Path) -> None:
    try:
        proc.run(_argv(actionlint, workflow), timeout=120)
    except CommandError as err:
        pytest.fail(f"actionlint found problems in {workflow.name}:\n{err.output}")


def test_actionlint_rejects_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  j:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo ${{ github.nope_not_a_field }}\n        timeout-minutes: soon\n")
    res = proc.run(_argv(actionlint, broken), timeout=120, check=False)
    assert res.returncode != 0
    assert "timeout-minutes" in res.stdout + res.stderr
