"""bench/_common.py: a bench stopped by `timeout` (SIGTERM) or Ctrl-C tears down what it started, as `aiconform up`
does, instead of leaving a control plane running.  Each case runs a small bench script in its own interpreter and
signals it, the way a user or `timeout` would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BENCH_WITH_CLUSTER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bench._common import cluster_up, run_bench

    log = Path(sys.argv[1])

    class Cluster:  # stands in for LocalCluster: create/delete only, each step logged
        def create(self, profile):
            log.write_text("created\\n")

        def delete(self):
            with log.open("a") as fh:
                fh.write("deleting\\n")
            print("deleting", flush=True)
            time.sleep(1.0)  # the test's second signal lands here
            with log.open("a") as fh:
                fh.write("deleted\\n")

    def main():
        with cluster_up(Cluster(), None):
            print("up", flush=True)
            time.sleep(60)
        return 0

    sys.exit(run_bench(main))
""")


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)


def _expect_line(proc: subprocess.Popen[str], want: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != want:
        proc.kill()
        pytest.fail(f"expected {want!r} from the bench, got {line!r}; stderr: {proc.communicate()[1][-2000:]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signalled_bench_tears_its_cluster_down_and_a_second_signal_does_not_cut_that_short(
        tmp_path: Path, sig: signal.Signals) -> None:
    log = tmp_path / "cluster.log"
    bench = _start(BENCH_WITH_CLUSTER, str(log))
    _expect_line(bench, "up")
    os.kill(bench.pid, sig)  # as `timeout` (SIGTERM) or Ctrl-C (SIGINT) would
    _expect_line(bench, "deleting")
    os.kill(bench.pid, sig)  # an impatient second one, mid-teardown
    _out, err = bench.communicate(timeout=30)
    assert log.read_text().splitlines() == ["created", "deleting", "deleted"]
    assert bench.returncode == 130
    assert err.strip().splitlines()[-1] == "bench: interrupted; the clusters it started have been torn down"
    assert f"{sig.name} ignored" in err


BENCH_WITH_CHILD = textwrap.dedent("""
    import sys
    from bench._common import child, run_bench

    CHILD = '''
    import signal, sys, time
    from pathlib import Path
    log = Path(sys.argv[1])
    def on(signum, frame):
        with log.open("a") as fh:
            fh.write(signal.Signals(signum).name + "\\\\n")
        if signum == signal.SIGTERM:
            time.sleep(0.5)  # its own teardown
            with log.open("a") as fh:
                fh.write("torn down\\\\n")
            sys.exit(0)
    signal.signal(signal.SIGTERM, on)
    signal.signal(signal.SIGINT, on)
    print("child up", flush=True)
    time.sleep(60)
    '''

    def main():
        with child([sys.executable, "-c", CHILD, sys.argv[1]], stdout=subprocess.PIPE, text=True) as proc:
            print(proc.stdout.readline().strip(), flush=True)
            print(proc.pid, flush=True)
            proc.wait()
        return 0

    import subprocess
    sys.exit(run_bench(main))
""")


def test_ctrl_c_reaches_only_the_bench_which_gives_its_child_one_sigterm_and_waits_for_its_teardown(
        tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    bench = _start(BENCH_WITH_CHILD, str(log))
    _expect_line(bench, "child up")
    assert bench.stdout is not None
    child_pid = int(bench.stdout.readline())
    os.killpg(bench.pid, signal.SIGINT)  # a terminal's Ctrl-C: the bench's whole process group
    bench.communicate(timeout=30)
    assert bench.returncode == 130
    assert log.read_text().splitlines() == ["SIGTERM", "torn down"]  # no SIGINT: the child has its own session
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)
