"""The subprocess helper: argv lists, deadlines, errors you can paste into a terminal, safe pidfiles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import proc
from harness.errors import CommandError


def test_run_returns_output() -> None:
    res = proc.run([sys.executable, "-c", "print('hi')"])
    assert res.stdout == "hi\n" and res.returncode == 0


def test_failure_carries_argv_output_and_shell_line() -> None:
    with pytest.raises(CommandError) as err:
        proc.run([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"])
    e = err.value
    assert e.returncode == 3
    assert "boom" in e.output
    assert "exited with status 3: boom" in str(e)
    assert e.shell_line().startswith(sys.executable)
    assert "'import sys; print('\"'\"'boom'\"'\"'); sys.exit(3)'" in e.shell_line()


def test_timeout_is_a_command_error() -> None:
    with pytest.raises(CommandError) as err:
        proc.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3)
    assert err.value.timed_out and "timed out" in str(err.value)


def test_missing_program() -> None:
    with pytest.raises(CommandError, match="not found"):
        proc.run(["/nonexistent/program"])


def test_daemon_pidfile_stop(tmp_path: Path) -> None:
    d = proc.start_daemon("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                          log=tmp_path / "l.log", pidfile=tmp_path / "p.pid")
    assert proc.pid_alive(d.pid)
    assert proc.stop_pidfile(tmp_path / "p.pid", grace=5)
    assert not proc.pid_alive(d.pid)
    assert not (tmp_path / "p.pid").exists()


def test_stop_ignores_pid_reused_by_another_program(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "p.pid").write_text(f"{other.pid}\n/usr/bin/some-other-binary\n")
        assert not proc.stop_pidfile(tmp_path / "p.pid")
        assert other.poll() is None  # still running
    finally:
        other.kill()
        other.wait()
