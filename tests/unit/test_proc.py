"""The subprocess helper: argv lists, deadlines, errors you can paste into a terminal, safe pidfiles."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import proc
from harness.errors import CommandError, WaitTimeout


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


def test_poll_until_returns_the_predicates_value_once_truthy() -> None:
    answers = iter([None, "", {"ready": True}])
    assert proc.poll_until(lambda: next(answers), timeout=5, interval=0.01, what="x") == {"ready": True}


def test_poll_until_times_out_naming_what_it_waited_for() -> None:
    calls = []
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"timed out after 0s waiting for the apiserver's /readyz"):
        proc.poll_until(lambda: calls.append(1), timeout=0.3, interval=0.05, what="the apiserver's /readyz")
    took = time.monotonic() - started
    assert 0.3 <= took < 1.0  # the deadline holds: no sleep runs past it
    assert 4 <= len(calls) <= 8  # about one call per interval, and one more at the deadline


def test_poll_until_backs_off_up_to_the_cap() -> None:
    stamps: list[float] = []
    with pytest.raises(WaitTimeout):
        proc.poll_until(lambda: stamps.append(time.monotonic()), timeout=0.5, interval=0.02, backoff=2.0,
                        max_interval=0.16, what="x")
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert gaps[0] < 0.1 and max(gaps) >= 0.15  # grew from 20 ms towards the cap
    assert max(gaps) < 0.3  # and never past it (plus scheduling slack)


def test_poll_until_lets_a_fail_fast_error_through() -> None:
    def exited() -> bool:
        raise CommandError(["dockerd"], 1, "exited")

    with pytest.raises(CommandError):
        proc.poll_until(exited, timeout=5, interval=0.01, what="dockerd")
