"""Benchmark of Kueue on a local tier S cluster: prints figures and writes JSON.  Not a test.

- Admission throughput: 1,000 one-GPU Jobs queued on a ClusterQueue held with ``stopPolicy: Hold`` (so all of them
  are queued first: its ``pendingWorkloads`` reaches 1,000), then the queue is released and its
  ``admittedWorkloads`` is watched until Kueue has admitted them all: workloads admitted per second, from the release
  to the last admission (and to the 500th).  The quota and a pool
  of simulated nodes (125 x 8 GPUs) hold every admitted job, so waitForPodsReady evicts nothing.  Anchor: Kueue's
  own scale test admits 15,000 workloads in <= 425 s on a large machine.
- With ``--cold-build``: the cold build time of the pinned kueue binary (an empty Go build cache, the module cache
  kept), as ``go build`` of ``sigs.k8s.io/kueue/cmd/kueue`` inside a scratch module.

Usage: ``python bench/bench_kueue.py [--workloads 1000] [--cold-build] [--out bench/results-kueue.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import run_bench  # noqa: E402
from harness.bins import BinaryResolver  # noqa: E402
from harness.config import parse_profile  # noqa: E402
from harness.contract import GPU_RESOURCE, POOL_LABEL  # noqa: E402
from harness.governance import kueue as kq  # noqa: E402
from harness.kube import KubeClient  # noqa: E402
from harness.providers import open_provider  # noqa: E402
from harness.providers.base import ProviderOptions  # noqa: E402

GPUS_PER_NODE = 8


def profile(workloads: int) -> dict[str, Any]:
    nodes = -(-workloads // GPUS_PER_NODE)
    return {"name": "bench-kueue", "provider": "local", "addons": ["kueue"],
            "pools": [{"name": "gpu", "nodes": nodes, "gpu": {"model": "A100-SXM4-80GB", "count": GPUS_PER_NODE},
                       "taints": [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}]}]}


def admission_throughput(client: KubeClient, n: int) -> dict[str, Any]:
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
    cfg = kq.QueueConfig(cohort="bench", flavor="gpu", node_labels={POOL_LABEL: "gpu"},
                         teams=(kq.TeamQueue("bench", "bench", n),))
    kq.apply_queues(client, cfg)
    client.patch("ClusterQueue", "bench", {"spec": {"stopPolicy": "Hold"}}, api_version=kq.API)
    client.wait_for("ServiceAccount", namespace="bench", name="default", condition=bool, timeout=60)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: client.create_fast(kq.job(f"j{i}", queue="bench", pods=1, gpus_per_pod=1),
                                                   namespace="bench"), range(n)))
    client.wait_for("ClusterQueue", name="bench", api_version=kq.API, timeout=600,
                    condition=lambda s: any(int(cq.get("status", {}).get("pendingWorkloads", 0) or 0) >= n
                                            for cq in s.values()),
                    what=f"{n} workloads pending in the held ClusterQueue")
    create_s = time.monotonic() - t0
    marks: dict[int, float] = {}
    t1 = time.monotonic()
    client.patch("ClusterQueue", "bench", {"spec": {"stopPolicy": "None"}}, api_version=kq.API)

    def all_admitted(state: dict[str, dict[str, Any]]) -> bool:
        done = sum(int(cq.get("status", {}).get("admittedWorkloads", 0) or 0) for cq in state.values())
        for m in (n // 2, n):
            if done >= m and m not in marks:
                marks[m] = time.monotonic() - t1
        return done >= n

    # Kueue's own count (ClusterQueue status.admittedWorkloads): one small object to watch, where listing 1,000
    # Workloads at every event would load the apiserver the benchmark measures.
    client.wait_for("ClusterQueue", name="bench", api_version=kq.API, condition=all_admitted, timeout=900,
                    what=f"Kueue to admit {n} workloads")
    total = marks[n]
    return {"workloads": n, "queue_s": round(create_s, 1), "admit_all_s": round(total, 1),
            "admit_half_s": round(marks[n // 2], 1), "admitted_per_s": round(n / total, 1)}


def cold_build() -> dict[str, Any]:
    r = BinaryResolver()
    comp = r.versions.component("kueue")
    with tempfile.TemporaryDirectory(prefix="kueue-cold-") as tmp:
        work = Path(tmp) / "mod"
        work.mkdir()
        (work / "go.mod").write_text(f"module aiconform.local/bench\n\ngo 1.26\n\nrequire {comp.module} v{comp.version}\n")
        (work / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{comp.packages["kueue"]}"\n')
        env = {**os.environ, "GOCACHE": str(Path(tmp) / "gocache"), "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        subprocess.run([r.go, "mod", "tidy"], cwd=work, env=env, check=True, capture_output=True, timeout=1800)
        t0 = time.monotonic()
        subprocess.run([r.go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(Path(tmp) / "kueue"),
                        comp.packages["kueue"]], cwd=work, env=env, check=True, capture_output=True, timeout=3600)
        secs = time.monotonic() - t0
        size = (Path(tmp) / "kueue").stat().st_size
    return {"version": comp.version, "cold_build_s": round(secs, 1), "binary_mb": round(size / 2**20, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", type=int, default=1000)
    ap.add_argument("--cold-build", action="store_true", help="also time a cold build of the pinned kueue binary")
    ap.add_argument("--out", type=Path, default=Path("bench/results-kueue.json"))
    args = ap.parse_args()
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    with tempfile.TemporaryDirectory(prefix="bench-kueue-") as root:
        cluster = open_provider("local", f"bench-kueue-{os.getpid()}", ProviderOptions(root=Path(root)))
        try:
            t0 = time.monotonic()
            cluster.create(parse_profile(profile(args.workloads), name="bench-kueue"))
            out["up_with_kueue_s"] = round(time.monotonic() - t0, 1)
            out["admission"] = admission_throughput(KubeClient.from_kubeconfig(cluster.kubeconfig()), args.workloads)
        finally:
            cluster.delete()
    if args.cold_build:
        out["build"] = cold_build()
    print(json.dumps(out, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_bench(main))
