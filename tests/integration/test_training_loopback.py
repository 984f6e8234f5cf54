"""The training script as real processes on loopback (no cluster): two JAX processes form one data-parallel group
over gloo, a killed rank takes the group down within the heartbeat timeout, and a restarted group resumes from the
atomic checkpoint.  What the Kubernetes scenarios (scenarios/test_training.py) then check under the real operator."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reference_workloads.training import checkpoint, logs

pytest.importorskip("jax", reason="the training extra is not installed (pip install -e '.[training]')")

DEADLINE = 150.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(rank: int, n: int, port: int, ckpt: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "reference_workloads.training.train", "--num-processes", str(n),
            "--process-id", str(rank), "--coordinator", f"127.0.0.1:{port}", "--checkpoint-dir", str(ckpt),
            "--checkpoint-every", "5", "--global-batch", "64", "--heartbeat-seconds", "5", "--init-timeout-seconds",
            "120", *extra]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(argv, stdout=out.open("wb"), stderr=subprocess.STDOUT, env=env)


def _wait_all(procs: list[subprocess.Popen[bytes]], deadline: float) -> list[int]:
    try:
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def _records(paths: list[Path]) -> list[logs.Record]:
    return [r for p in paths for r in logs.parse(p.read_text(errors="replace"))]


def test_two_processes_train_as_one_group_and_resume_after_a_kill(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    first = [tmp_path / f"a{r}.log" for r in range(2)]
    port = _free_port()
    procs = [_start(r, 2, port, ckpt, first[r], "--steps", "60", "--min-step-seconds", "0.25") for r in range(2)]
    deadline = time.monotonic() + DEADLINE
    try:
        # kill rank 1 once rank 0 has checkpointed at least once (a watch on the log file with a deadline)
        while checkpoint.load(ckpt) is None or checkpoint.load(ckpt).step < 10:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"no checkpoint at step >= 10 in time:\n{first[0].read_text()}"
            assert procs[0].poll() is None, f"rank 0 exited early:\n{first[0].read_text()}"
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        codes = _wait_all(procs, killed_at + 60)
    finally:
        _wait_all(procs, time.monotonic() + 5)
    assert codes[0] != 0, "rank 0 finished although its peer was killed"
    took_down = time.monotonic() - killed_at
    saved = checkpoint.load(ckpt)
    assert saved is not None and 10 <= saved.step < 60
    before = logs.attempt(_records(first))
    assert logs.problems(before, 2) == []
    assert before.process_counts == {0: 2, 1: 2}

    again = [tmp_path / f"b{r}.log" for r in range(2)]
    port = _free_port()
    procs = [_start(r, 2, port, ckpt, again[r], "--steps", "60") for r in range(2)]
    assert _wait_all(procs, time.monotonic() + DEADLINE) == [0, 0], again[0].read_text()[-2000:]
    after = logs.attempt(_records(again))
    assert logs.problems(after, 2) == []
    assert after.resumed_from == {0: saved.step, 1: saved.step}
    assert after.steps[0] == saved.step + 1 and after.steps[-1] == 60 and after.done == {0: 60, 1: 60}
    # the resumed run continues the same curve: its first loss is below the first run's first loss, and it falls
    assert after.loss_curve()[0][1] < before.loss_curve()[0][1]
    assert logs.falling(before.loss_curve() + after.loss_curve())
    print(f"killed rank 1 after checkpoint step {saved.step}; group down in {took_down:.1f}s")
