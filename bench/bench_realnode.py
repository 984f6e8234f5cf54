"""Benchmark of the real node (tier R): prints figures and writes JSON.  Not a test.  Needs root.

On one fresh cluster with only the real node (4 fake A100-80GB GPUs, no simulated pools):
  - ``up`` time (control plane + containerd + kubelet + plugin, until the node is Ready with nvidia.com/gpu=4);
  - ``--reps`` times (default 5): mark one GPU Unhealthy with the plugin's health control and time until the
    node's allocatable nvidia.com/gpu drops to 3 (watch on the Node), then mark it healthy and time until it is 4
    again.  Before each flip a random pause of 0..nodeStatusUpdateFrequency puts the flip at a random phase of the
    kubelet's node-status loop (otherwise every flip would land right after a status write: the worst case);
  - ``down`` time and whether it left anything.
Target: median unhealthy -> allocatable drop <= 5 s.

    .venv/bin/python bench/bench_realnode.py [--reps 5] [--out bench/results-realnode.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import run_bench  # noqa: E402
from harness.config import parse_profile  # noqa: E402
from harness.contract import GPU_RESOURCE  # noqa: E402
from harness.kube import KubeClient  # noqa: E402
from harness.providers.local import (
    LocalCluster,  # noqa: E402
    realnode,  # noqa: E402
)

NODE = "aiconform-real-0"
PROFILE = {"name": "bench-realnode", "provider": "local", "pools": [],
           "realNode": {"enabled": True, "name": NODE, "gpu": {"model": "A100-SXM4-80GB", "count": 4}}}


def set_health(rec: dict[str, Any], device: str, healthy: bool) -> None:
    subprocess.run([sys.executable, "-m", "fake_gpu_plugin", "health", "--state-dir", rec["plugin_state_dir"],
                    "--device", device, "--healthy" if healthy else "--unhealthy"],
                   check=True, capture_output=True, timeout=30)


def time_until_allocatable(client: KubeClient, value: str, started: float, timeout: float = 30) -> float:
    def ok(state: dict[str, Any]) -> bool:
        n = state.get(NODE)
        return n is not None and n["status"].get("allocatable", {}).get(GPU_RESOURCE) == value

    client.wait_for("Node", name=NODE, condition=ok, timeout=timeout, what=f"nvidia.com/gpu={value}")
    return time.monotonic() - started


def first_gpu(rec: dict[str, Any]) -> str:
    out = subprocess.run([sys.executable, "-m", "fake_gpu_plugin", "inventory", "--config", rec["plugin_config"],
                          "--node-name", rec["node"]], capture_output=True, text=True, check=True, timeout=30)
    return str(json.loads(out.stdout)["resources"][GPU_RESOURCE][0])


def summary(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="bench/results-realnode.json")
    args = ap.parse_args()
    period = float(realnode.NODE_STATUS_UPDATE_FREQUENCY.rstrip("s"))
    root = Path(tempfile.mkdtemp(prefix="aicf-rnb-"))
    cluster = LocalCluster(f"rnb-{secrets.token_hex(2)}", root=root, progress=lambda m: None)
    try:
        t0 = time.monotonic()
        cluster.create(parse_profile(PROFILE, name="bench-realnode"))
        up_s = time.monotonic() - t0
        print(f"up (real node Ready with nvidia.com/gpu=4): {up_s:.1f}s", flush=True)
        drops: list[float] = []
        restores: list[float] = []
        rec = realnode.load_record(cluster)
        assert rec is not None
        client = cluster.client()
        device = first_gpu(rec)
        for i in range(args.reps):
            time.sleep(random.uniform(0, period))  # random phase of the kubelet's status loop (see docstring)
            started = time.monotonic()
            set_health(rec, device, healthy=False)
            drops.append(time_until_allocatable(client, "3", started))
            time.sleep(random.uniform(0, period))
            started = time.monotonic()
            set_health(rec, device, healthy=True)
            restores.append(time_until_allocatable(client, "4", started))
            print(f"rep {i + 1}: unhealthy -> allocatable 3 in {drops[-1]:.2f}s; "
                  f"healthy -> 4 in {restores[-1]:.2f}s", flush=True)
        client.close()
    finally:
        pids = [p for c, p in cluster.running_components().items() if c in realnode.COMPONENTS]
        rec_after = realnode.load_record(cluster)
        t0 = time.monotonic()
        cluster.delete()
        down_s = time.monotonic() - t0
        left = realnode.host_leftovers(rec_after, cluster.dir, pids) if rec_after else ["no realnode.json"]
        root.rmdir()
    doc = {
        "benchmark": "realnode",
        "machine": {"arch": platform.machine(), "cores": os.cpu_count(), "kernel": platform.release()},
        "node_status_update_frequency_s": period,
        "up_s": round(up_s, 2),
        "down_s": round(down_s, 2),
        "unhealthy_to_allocatable_drop_s": {**summary(drops), "samples": [round(d, 3) for d in drops]},
        "healthy_to_allocatable_restore_s": {**summary(restores), "samples": [round(r, 3) for r in restores]},
        "target_median_drop_s": 5.0,
        "leftovers_after_down": left,
    }
    print(f"unhealthy -> allocatable drop: median {doc['unhealthy_to_allocatable_drop_s']['median']:.2f}s "
          f"(min {min(drops):.2f}, max {max(drops):.2f}; target <= 5 s); healthy -> restore median "
          f"{statistics.median(restores):.2f}s; down {down_s:.1f}s, leftovers: {left or 'none'}")
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_bench(main))
