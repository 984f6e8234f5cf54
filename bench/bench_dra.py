"""Benchmark of Dynamic Resource Allocation: prints figures and writes JSON.  Not a test.

Parts (``--part``, repeatable; default ``prepare`` and ``scale``):
  - ``prepare`` (tier R, needs root): a fresh cluster with only the real node (its DRA pool: 2 fake A100s); ``--pods``
    one-GPU pods with claim templates run one after another (claim allocated by the scheduler, the real kubelet
    calls NodePrepareResources, containerd injects the CDI devices, the pod runs; then it is deleted and the
    kubelet calls NodeUnprepareResources).  Prepare/Unprepare p50/p99 are the driver's handling time of each call
    *the kubelet made* (``<state>/dra/calls.jsonl``), not calls of the function; also the pod's claim-to-Running
    time.  Target p99 <= 50 ms.
  - ``scale`` (tier S): ``--nodes`` simulated nodes x 8 A100 whose GPUs are offered only through ResourceSlices
    (profile dra-scale); ``--sim-pods`` pods, each with a one-GPU claim template, created at once; pods bound per
    second (first create to last bind) and claims allocated per second.  Anchor: upstream scheduler_perf DRA
    workloads run at ~40-56 pods/s; target >= 40 pods/s on 2 cores.
  - ``containerd-build`` (minutes): a cold build of the pinned containerd (ctr, shim) into a temporary cache and
    a temporary Go build cache (the module download cache is shared).

    .venv/bin/python bench/bench_dra.py [--part prepare] [--part scale] [--pods 30] [--nodes 500] [--sim-pods 1000]
                                        [--out bench/results-dra.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import run_bench  # noqa: E402
from harness.config import load_profile, parse_profile  # noqa: E402
from harness.dra import allocation, claim_pod, claim_template, device_request  # noqa: E402
from harness.kube import KubeClient, is_bound, is_running  # noqa: E402
from harness.providers.local import LocalCluster, realnode  # noqa: E402
from harness.workloads import PAUSE_IMAGE  # noqa: E402

NODE = "aiconform-real-0"
PREPARE_PROFILE = {
    "name": "bench-dra", "provider": "local", "pools": [],
    "realNode": {"enabled": True, "name": NODE, "dra": {"gpu": {"model": "A100-SXM4-80GB", "count": 2}}},
    "controlPlane": {"featureGates": {"DRADeviceTaints": True}},
}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(pct(values, 0.5), 3), "p99": round(pct(values, 0.99), 3),
            "max": round(max(values), 3), "mean": round(statistics.fmean(values), 3)} if values else {"n": 0}


def namespace(client: KubeClient) -> str:
    ns = f"bench-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    client.wait_for("ServiceAccount", namespace=ns, name="default", condition=bool, timeout=30)
    return ns


def bench_prepare(root: Path, pods: int) -> dict[str, Any]:
    cluster = LocalCluster(f"bd-{secrets.token_hex(2)}", root=root)
    try:
        t0 = time.monotonic()
        cluster.create(parse_profile(PREPARE_PROFILE))
        up_s = time.monotonic() - t0
        rec = realnode.load_record(cluster)
        assert rec is not None
        calls = Path(rec["dra"]["state_dir"]) / "dra" / "calls.jsonl"
        client = cluster.client()
        ns = namespace(client)
        client.create(claim_template("one", device_request()), namespace=ns)
        running: list[float] = []
        for i in range(pods):
            name = f"p{i}"
            start = time.monotonic()
            client.create(claim_pod(name, claims={"gpu": ("template", "one")}, containers=[("main", ["gpu"], "")],
                                    image=PAUSE_IMAGE, node_selector={"kubernetes.io/hostname": NODE}),
                          namespace=ns)
            client.wait_for("Pod", namespace=ns, name=name, timeout=60, what=f"pod {name} Running",
                            condition=lambda s: any(is_running(p) for p in s.values()))
            running.append(time.monotonic() - start)
            client.delete("Pod", name, ns, grace_period=0)
            client.wait_for("Pod", namespace=ns, name=name, timeout=60, condition=lambda s: not s,
                            what=f"pod {name} gone")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the last Unprepare follows the pod's deletion
            lines = [json.loads(ln) for ln in calls.read_text().splitlines() if ln.strip()]
            if sum(1 for c in lines if c["op"] == "unprepare") >= pods:
                break
            time.sleep(0.5)
        prep = [c["ms"] for c in lines if c["op"] == "prepare"]
        unprep = [c["ms"] for c in lines if c["op"] == "unprepare"]
        return {"up_s": round(up_s, 1), "pods": pods, "prepare_ms": summary(prep), "unprepare_ms": summary(unprep),
                "claim_pod_to_running_s": summary(running)}
    finally:
        cluster.delete()


def bench_scale(root: Path, nodes: int, pods: int) -> dict[str, Any]:
    profile = load_profile("dra-scale")
    if nodes != profile.pools[0].nodes:
        raw = {"name": "dra-scale", "provider": "local", "controlPlane": {"featureGates": {"DRADeviceTaints": True}},
               "pools": [{"name": "dra", "nodes": nodes, "gpu": {"model": "A100-SXM4-80GB", "count": 8}, "dra": True}]}
        profile = parse_profile(raw)
    cluster = LocalCluster(f"bs-{secrets.token_hex(2)}", root=root)
    try:
        t0 = time.monotonic()
        cluster.create(profile)
        up_s = time.monotonic() - t0
        client = cluster.client()
        ns = namespace(client)
        client.create(claim_template("one", device_request()), namespace=ns)
        manifests = [claim_pod(f"p{i}", claims={"gpu": ("template", "one")}, containers=[("main", ["gpu"], "")],
                               image=PAUSE_IMAGE) for i in range(pods)]
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda m: client.create_fast(m, namespace=ns), manifests))
        created_s = time.monotonic() - start
        client.wait_for("Pod", namespace=ns, timeout=max(120, pods / 5), what=f"{pods} pods bound",
                        condition=lambda s: sum(1 for p in s.values() if is_bound(p)) >= pods)
        bound_s = time.monotonic() - start
        claims = client.list("ResourceClaim", ns, api_version="resource.k8s.io/v1")["items"]
        allocated = sum(1 for c in claims if allocation(c))
        # per pod, creation -> PodScheduled (the apiserver's 1 s timestamps): whether the scheduler kept up with
        # the creates, or pods queued for it
        lag = []
        for p in client.list("Pod", ns)["items"]:
            cond = next((c for c in p["status"].get("conditions") or [] if c["type"] == "PodScheduled"), None)
            if cond and cond.get("status") == "True":
                lag.append(_ts(cond["lastTransitionTime"]) - _ts(p["metadata"]["creationTimestamp"]))
        return {"nodes": nodes, "dra_devices": nodes * 8, "pods": pods, "up_s": round(up_s, 1),
                "create_s": round(created_s, 2), "all_bound_s": round(bound_s, 2),
                "pods_bound_per_s": round(pods / bound_s, 1), "claims_allocated": allocated,
                "claims_allocated_per_s": round(allocated / bound_s, 1),
                "bound_after_last_create_s": round(bound_s - created_s, 2),
                "create_to_scheduled_s": summary(lag)}
    finally:
        cluster.delete()


def _ts(text: str) -> float:
    import calendar

    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def bench_containerd_build() -> dict[str, Any]:
    from harness.bins import BinaryResolver

    with tempfile.TemporaryDirectory(prefix="aicf-ctr-") as tmp:
        os.environ["GOCACHE"] = str(Path(tmp) / "gocache")
        t0 = time.monotonic()
        BinaryResolver(cache_dir=Path(tmp) / "cache", download="never").resolve_many(
            ["containerd", "ctr", "containerd-shim-runc-v2"])
        return {"cold_build_s": round(time.monotonic() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", action="append", choices=["prepare", "scale", "containerd-build"])
    ap.add_argument("--pods", type=int, default=30)
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--sim-pods", type=int, default=1000)
    ap.add_argument("--out", default="bench/results-dra.json")
    args = ap.parse_args()
    parts = args.part or ["prepare", "scale"]
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    with tempfile.TemporaryDirectory(prefix="aicf-bd-", dir="/tmp") as root:
        if "prepare" in parts:
            if os.geteuid() != 0:
                print("prepare: skipped (needs root for the real node)", file=sys.stderr)
            else:
                out["prepare"] = bench_prepare(Path(root), args.pods)
                p = out["prepare"]
                print(f"Prepare p50 {p['prepare_ms']['p50']} ms p99 {p['prepare_ms']['p99']} ms; Unprepare p50 "
                      f"{p['unprepare_ms']['p50']} ms p99 {p['unprepare_ms']['p99']} ms ({args.pods} pods); claim pod "
                      f"to Running p50 {p['claim_pod_to_running_s']['p50']} s")
        if "scale" in parts:
            out["scale"] = s = bench_scale(Path(root), args.nodes, args.sim_pods)
            print(f"tier S: {s['pods']} claim-template pods on {s['nodes']} DRA nodes bound in {s['all_bound_s']} s: "
                  f"{s['pods_bound_per_s']} pods/s, {s['claims_allocated_per_s']} claims allocated/s (creates took "
                  f"{s['create_s']} s; create->scheduled p50 {s['create_to_scheduled_s'].get('p50')} s, p99 "
                  f"{s['create_to_scheduled_s'].get('p99')} s)")
    if "containerd-build" in parts:
        out["containerd_build"] = bench_containerd_build()
        print(f"containerd cold build: {out['containerd_build']['cold_build_s']} s")
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_bench(main))
