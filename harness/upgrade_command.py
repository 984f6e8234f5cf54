"""``aiconform run --kubeconfig KC --upgrade-with COMMAND``: the upgrade of a cluster aiconform did not build, done by
the user's own command (their kubeadm, cloud CLI or script), between the suites' before and after phases.

Owns running that command and waiting for its effect; the runner (harness.runner) runs the phases around it and
writes the diff.  The command runs in a shell (``bash -c``) in its own process group with ``KUBECONFIG`` set to the
cluster's kubeconfig; every line it prints goes to the terminal (prefixed ``[upgrade]``) and to
``REPORT_DIR/upgrade-command.log``, which the report keeps.  Ctrl-C or SIGTERM stops the whole group.

Once it exits 0, the API must serve another Kubernetes version within ``timeout`` seconds (a command may return
before a managed control plane has switched); ``timeout`` 0 compares at whatever version the API serves when the
command ends (a node image or GPU driver upgrade that keeps the control plane's version).  A command that exits
non-zero, or an upgrade that never takes effect, is the platform's upgrade failing: :class:`UpgradeFailed`, exit 1,
after the before report was written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import AiconformError, KubeError

LOG_FILE = "upgrade-command.log"
PREFIX = "[upgrade] "


class UpgradeFailed(AiconformError):
    """The user's upgrade command failed, or its upgrade never reached the API: the after phase did not run."""

    exit_code = 1


def run_command(command: str, kubeconfig: Path, log: Path) -> float:
    """Run ``command`` to its end, its output streamed to stderr and ``log``; its wall seconds.  A non-zero exit is
    :class:`UpgradeFailed` naming the log."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    t0 = time.monotonic()
    with log.open("w") as out:
        out.write(f"$ {command}\n")
        out.flush()
        proc = subprocess.Popen(["bash", "-c", command], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                print(PREFIX + line.rstrip("\n"), file=sys.stderr, flush=True)
            rc = proc.wait()
        except BaseException:  # Ctrl-C, SIGTERM (as KeyboardInterrupt/SystemExit): the command's group goes too
            _stop_group(proc)
            raise
        took = time.monotonic() - t0
        out.write(f"# exit status {rc} after {took:.0f}s\n")
    if rc != 0:
        raise UpgradeFailed(f"--upgrade-with: the upgrade command exited with status {rc} after {took:.0f}s; its "
                            f"output: {log} (the after phase did not run)")
    return took


def _stop_group(proc: subprocess.Popen[str]) -> None:
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_new_version(server_version: Callable[[], str], before: str, timeout: float, *,
                     interval: float = 2.0, progress: Callable[[str], None] = lambda _: None) -> str:
    """The version the API serves once it differs from ``before`` (both without a leading ``v``).  Connection errors
    while the control plane restarts are waited through.  ``timeout`` 0: the version it serves now, changed or not.
    At the deadline: :class:`UpgradeFailed`."""
    deadline = time.monotonic() + timeout
    last_error = ""
    said = False
    while True:
        try:
            now = server_version().removeprefix("v")
            if now and (now != before or timeout <= 0):
                return now
            last_error = ""
        except (KubeError, OSError) as err:
            last_error = f" (last answer: {err})"
            if timeout <= 0:
                raise UpgradeFailed(f"--upgrade-with: the API does not answer after the upgrade command: {err}") from err
        if time.monotonic() >= deadline:
            raise UpgradeFailed(f"--upgrade-with: the API still serves v{before} {timeout:.0f}s after the upgrade "
                                f"command ended{last_error}: the upgrade did not take effect (a node-only upgrade "
                                "that keeps the version: --upgrade-timeout 0)")
        if not said:
            progress(f"waiting up to {timeout:.0f}s for the API to serve a version other than v{before}")
            said = True
        time.sleep(interval)
