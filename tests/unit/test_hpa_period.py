"""The HPA sync period the pod_autoscaling check reports is read from the running kube-controller-manager's command
line (measured), not from the profile the cluster was made from (a profile given by path could not even be found)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.testing import ClusterHandle, ClusterInfo
from scenarios.test_pod_autoscaling import hpa_sync_period


def _handle(pids: dict[str, int]) -> ClusterHandle:
    info = ClusterInfo(kubeconfig="/nowhere", run_id="r", provider="local", profile="/tmp/not-a-shipped-name.yaml",
                       tier="R", kubernetes_version="1.37.0", component_pids=pids)
    client: Any = None
    return ClusterHandle(info, client)


def test_the_period_comes_from_the_running_controller() -> None:
    for argv, want in ((["--horizontal-pod-autoscaler-sync-period=5s"],
                        "5s (the running kube-controller-manager's --horizontal-pod-autoscaler-sync-period)"),
                       ([], "15s (upstream default: the running kube-controller-manager sets no sync period)")):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", *argv])
        deadline = time.monotonic() + 10
        while b"time.sleep" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the child has exec'd
        try:
            assert hpa_sync_period(_handle({"kube-controller-manager": proc.pid})) == want
        finally:
            proc.kill()
            proc.wait()
    assert hpa_sync_period(_handle({})).startswith("not known (the platform's own kube-controller-manager")
