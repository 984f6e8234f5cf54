"""``aiconform run --upgrade-with COMMAND``: the user's upgrade command (its output kept, its exit judged, Ctrl-C
stops its whole process group), the wait until the API serves another version, and the bad input refused in one
line before anything starts.  The run across a real upgrade is in tests/integration/test_upgrade.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.errors import KubeUnreachable
from harness.upgrade_command import UpgradeFailed, run_command, wait_new_version


def test_the_command_runs_with_the_clusters_kubeconfig_and_its_output_is_kept(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "upgrade-command.log"
    run_command('echo "upgrading $KUBECONFIG"; echo warning >&2', tmp_path / "kc", log)
    text = log.read_text()
    assert f"upgrading {tmp_path / 'kc'}" in text and "warning" in text and "# exit status 0" in text
    assert f"[upgrade] upgrading {tmp_path / 'kc'}" in capsys.readouterr().err


def test_a_failing_command_is_the_upgrade_failing_and_names_its_log(tmp_path: Path) -> None:
    log = tmp_path / "upgrade-command.log"
    with pytest.raises(UpgradeFailed, match=r"exited with status 3 after \d+s; its output: .*upgrade-command.log") as err:
        run_command("echo drained; exit 3", tmp_path / "kc", log)
    assert err.value.exit_code == 1  # the platform's upgrade failed: a verdict, not aiconform breaking
    assert "drained" in log.read_text() and "# exit status 3" in log.read_text()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_the_commands_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # Ctrl-C as a terminal delivers it, whatever this process inherited (a background job of a script, as CI may
    # start it, has SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_command(f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait", tmp_path / "kc", tmp_path / "log")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    children = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 5
    while any(map(_alive, children)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, children)), "the upgrade command's processes outlived Ctrl-C"


def test_waits_through_a_restarting_api_until_it_serves_another_version() -> None:
    said: list[str] = []
    answers = iter([KubeUnreachable("connection refused"), "v1.40.1", "v1.41.0"])

    def version() -> str:
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item

    assert wait_new_version(version, "1.40.1", 30, interval=0.01, progress=said.append) == "1.41.0"
    assert said == ["waiting up to 30s for the API to serve a version other than v1.40.1"]


def test_an_upgrade_that_never_reaches_the_api_fails_at_the_deadline() -> None:
    with pytest.raises(UpgradeFailed, match=r"still serves v1\.40\.1 0s after the upgrade command ended: the upgrade "
                                            r"did not take effect .*--upgrade-timeout 0"):
        wait_new_version(lambda: "v1.40.1", "1.40.1", 0.05, interval=0.01)


def test_timeout_zero_compares_at_the_version_served_now() -> None:
    """A node image or GPU driver upgrade keeps the control plane's version."""
    assert wait_new_version(lambda: "v1.40.1", "1.40.1", 0) == "1.40.1"


@pytest.mark.parametrize(("args", "line"), [
    (["--upgrade-with", "true"], "aiconform: --upgrade-with runs your own upgrade command on an existing cluster "
                                 "(with --kubeconfig); a cluster the harness brings up is upgraded with --upgrade-to "
                                 "VERSION"),
    (["--kubeconfig", "kc", "--upgrade-with", " "], "aiconform: --upgrade-with: give the command that upgrades the "
                                                    "cluster, e.g. --upgrade-with './upgrade.sh 1.37'"),
    (["--kubeconfig", "kc", "--upgrade-with", "true", "--upgrade-to", "default"],
     "aiconform: --upgrade-to and --upgrade-with: give one (--upgrade-to for a cluster the harness brings up, "
     "--upgrade-with for an existing one)"),
    (["--kubeconfig", "kc", "--upgrade-with", "true", "--upgrade-timeout", "-1"],
     "aiconform: --upgrade-timeout: seconds, 0 or more, got -1"),
])
def test_bad_upgrade_with_input_is_one_line_before_anything_starts(tmp_path: Path, args: list[str],
                                                                   line: str) -> None:
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--report-dir", str(tmp_path / "r"), *args],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env={**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state"),
                              "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == line
    assert not (tmp_path / "r").exists() and not (tmp_path / "state").exists()
