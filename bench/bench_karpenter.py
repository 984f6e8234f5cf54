"""Benchmark of node autoscaling at tier S: a pending one-GPU pod → Karpenter adds a node → the node is Ready
(KWOK) → the real scheduler binds the pod; seconds for each step, median of 5.  Prints figures and writes JSON; not
a test.

The cluster is the shipped ``autoscale`` profile with room for the repetitions (``maxNodes`` raised); the fixed
A100 nodes are filled first, so that every repetition's pod needs a new node.

Usage: ``python bench/bench_karpenter.py [--reps 5] [--out bench/results-karpenter.json]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness.config import Autoscale, load_profile
from harness.kube import KubeClient
from harness.providers import open_provider
from harness.providers.base import ProviderOptions
from harness.workloads import gpu_pod, wait_bound

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench._common when run as a script
from bench._common import run_bench  # noqa: E402

PRODUCT = "nvidia.com/gpu.product"


def _ready(node: dict[str, object]) -> bool:
    status = node.get("status", {})
    assert isinstance(status, dict)
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []) or [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="bench/results-karpenter.json")
    args = ap.parse_args()
    base = load_profile("autoscale")
    pools = tuple(dataclasses.replace(p, autoscale=Autoscale(max_nodes=args.reps + 1, consolidate_after="10m"))
                  if p.name == "a100-1g" else p for p in base.pools)
    profile = dataclasses.replace(base, pools=pools)
    target = next(p for p in pools if p.name == "a100-1g")
    assert target.gpu is not None
    reps = []
    with tempfile.TemporaryDirectory(prefix="aiconform-bench-karpenter-") as tmp:
        cluster = open_provider("local", f"bench-karp-{secrets.token_hex(2)}", ProviderOptions(root=Path(tmp)))
        try:
            t_up = time.monotonic()
            cluster.create(profile)
            up_s = time.monotonic() - t_up
            kube = KubeClient.from_kubeconfig(cluster.kubeconfig())
            ns = "bench"
            kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            kube.wait_all("ServiceAccount", [f"{ns}/default"], lambda _o: True, timeout=60)
            product = target.gpu.gpu_model.gfd_product
            fillers = [f"fill-{i}" for i in range(target.nodes * target.gpu.count)]
            for name in fillers:
                kube.create(gpu_pod(name, 1, node_selector={PRODUCT: product}), ns)
            wait_bound(kube, ns, fillers, timeout=60)
            for i in range(args.reps):
                known = {n["metadata"]["name"] for n in kube.list("Node")["items"]}
                name = f"rep-{i}"
                t0 = time.monotonic()
                kube.create(gpu_pod(name, 1, node_selector={PRODUCT: product}), ns)
                kube.wait_for("Node", condition=lambda s, known=known: any(  # type: ignore[misc]
                    k not in known and _ready(o) for k, o in s.items()), timeout=120,
                    what="Karpenter's new node to be Ready")
                ready_s = time.monotonic() - t0
                placed = wait_bound(kube, ns, [name], timeout=120, fail_fast=False)[name]
                bound_s = time.monotonic() - t0
                reps.append({"node": placed.node, "pending_to_node_ready_s": round(ready_s, 2),
                             "pending_to_bound_s": round(bound_s, 2)})
                print(f"rep {i}: node {placed.node} Ready after {ready_s:.2f}s, pod bound after {bound_s:.2f}s")
        finally:
            cluster.delete()
    med_ready = statistics.median(r["pending_to_node_ready_s"] for r in reps)
    med_bound = statistics.median(r["pending_to_bound_s"] for r in reps)
    print(f"median of {len(reps)}: pending -> node Ready {med_ready:.2f}s, pending -> bound {med_bound:.2f}s "
          f"(cluster with Karpenter up in {up_s:.1f}s)")
    Path(args.out).write_text(json.dumps({"reps": reps, "median_pending_to_node_ready_s": med_ready,
                                          "median_pending_to_bound_s": med_bound, "up_s": round(up_s, 2)},
                                         indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_bench(main))
