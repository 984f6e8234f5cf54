"""Benchmark of the local provider (tier S): prints figures and writes JSON.  Not a test.

Per repetition (default 3), on a fresh cluster each time:
  - ``up`` to a Ready control plane (API ready + default service account), binaries already cached;
  - 1,000 simulated nodes x 8 GPUs created through the harness's client, until all are Ready (watch);
  - 5,000 single-GPU pods created through the harness's client; all bound by the real scheduler and all Running
    (watch, timestamps taken when the counts are reached);
  - resident memory of every control-plane process at 1,000 nodes + 5,000 pods;
  - separately, 5,000 nodes until all Ready.
Reports min / median / max.  Usage: ``python bench/bench_local.py [--reps 3] [--out bench/results.json]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import run_bench  # noqa: E402
from harness.config import parse_profile  # noqa: E402
from harness.contract import SIMULATED_LABEL  # noqa: E402
from harness.kube import KubeClient  # noqa: E402
from harness.nodes import create_nodes, node_ready, simulated_node  # noqa: E402
from harness.providers.local import LocalCluster  # noqa: E402
from harness.workloads import gpu_pod  # noqa: E402

PROFILE = {"name": "bench", "provider": "local", "pools": []}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def watch_counts(kubeconfig: str, path: str, targets: dict[str, Any], n: int, timeout: float,
                 started: Any, t0_box: Any, results: Any, **kw: Any) -> None:
    """Watch a collection; record the time (since t0_box.value) at which each predicate held for n objects.

    Runs in its own process, so decoding the watch stream never competes for the creating threads' GIL."""
    client = KubeClient.from_kubeconfig(kubeconfig)
    out: dict[str, float] = {}
    try:
        _watch(client, path, targets, n, timeout, started, t0_box, out, **kw)
    except KeyboardInterrupt:  # `timeout` and Ctrl-C signal the whole process group: the main process tears down
        pass
    finally:
        results.put(out)


def _watch(client: KubeClient, path: str, targets: dict[str, Any], n: int, timeout: float,
           started: Any, t0_box: Any, out: dict[str, float], **kw: Any) -> None:
    satisfied: dict[str, set[str]] = {k: set() for k in targets}
    listing = client.request("GET", path, params={"labelSelector": kw.get("label_selector")})
    rv = listing["metadata"]["resourceVersion"]
    started.set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(out) < len(targets):
        for etype, obj in client.watch(path, resource_version=rv, timeout=deadline - time.monotonic(), **kw):
            rv = obj["metadata"].get("resourceVersion", rv)
            name = obj["metadata"]["name"]
            for key, pred in targets.items():
                if etype != "DELETED" and pred(obj):
                    satisfied[key].add(name)
                else:
                    satisfied[key].discard(name)
                if key not in out and len(satisfied[key]) >= n:
                    out[key] = time.monotonic() - t0_box.value
            if len(out) == len(targets):
                return


def _watcher(kubeconfig: str, path: str, targets: dict[str, Any], n: int, timeout: float,
             **kw: Any) -> tuple[Any, Any, Any, Any]:
    ctx = mp.get_context("fork")
    started, t0, results = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    proc_ = ctx.Process(target=watch_counts, args=(kubeconfig, path, targets, n, timeout, started, t0, results),
                        kwargs=kw, daemon=True)  # never outlives the bench, even an interrupted one
    proc_.start()
    if not started.wait(30):
        raise RuntimeError("the watcher did not start")
    return proc_, t0, results, started


def timed_nodes(client: KubeClient, kubeconfig: str, count: int, gpus: int, cluster: str,
                timeout: float = 300) -> dict[str, float]:
    pool = parse_profile({"pools": [{"name": "gpu", "nodes": count, "gpu": {"model": "H100", "count": gpus}}]}).pools[0]
    nodes = [simulated_node(pool, i, cluster) for i in range(count)]
    w, t0, results, _ = _watcher(kubeconfig, "/api/v1/nodes", {"ready": node_ready}, count, timeout,
                                 label_selector=f"{SIMULATED_LABEL}=true")
    t0.value = time.monotonic()
    create_nodes(client, nodes, workers=32)
    created = time.monotonic() - t0.value
    out = results.get(timeout=timeout + 10)
    w.join(10)
    return {**out, "created": created}


def _bound(o: dict[str, Any]) -> bool:
    return bool(o["spec"].get("nodeName"))


def _running(o: dict[str, Any]) -> bool:
    return o.get("status", {}).get("phase") == "Running"


def timed_pods(client: KubeClient, kubeconfig: str, count: int, timeout: float = 300) -> dict[str, float]:
    ns = f"bench-{secrets.token_hex(2)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    client.wait_for("ServiceAccount", namespace=ns, name="default", condition=bool, timeout=30)
    pods = [gpu_pod(f"p-{i}", 1, tolerate_gpu=True) for i in range(count)]
    w, t0, results, _ = _watcher(kubeconfig, f"/api/v1/namespaces/{ns}/pods", {"bound": _bound, "running": _running},
                                 count, timeout)
    t0.value = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as ex:
        list(ex.map(lambda p: client.create_fast(p, namespace=ns), pods))
    created = time.monotonic() - t0.value
    out = results.get(timeout=timeout + 10)
    w.join(10)
    return {**out, "created": created}


def one_rep(rep: int, root: Path, with_5k_nodes: bool) -> dict[str, Any]:
    res: dict[str, Any] = {}
    cluster = LocalCluster(f"bench-{rep}", root=root, progress=lambda m: None)
    try:
        t0 = time.monotonic()
        cluster.create(parse_profile(PROFILE, name="bench"))
        res["up_s"] = time.monotonic() - t0
        client = KubeClient.from_kubeconfig(cluster.kubeconfig())
        kc = str(cluster.kubeconfig())
        n = timed_nodes(client, kc, 1000, 8, cluster.name)
        res["nodes_1000_ready_s"] = n.get("ready")
        res["nodes_1000_created_s"] = n["created"]
        p = timed_pods(client, kc, 5000)
        res["pods_5000_created_s"] = p["created"]
        res["pods_5000_bound_s"] = p.get("bound")
        res["pods_5000_running_s"] = p.get("running")
        res["create_rate_pods_per_s"] = 5000 / p["created"]
        res["bind_rate_pods_per_s"] = 5000 / p["bound"] if p.get("bound") else None
        res["rss_mb"] = {c: round(rss_mb(pid), 1) for c, pid in cluster.running_components().items()}
        res["rss_mb_total"] = round(sum(res["rss_mb"].values()), 1)
    finally:
        cluster.delete()
    if with_5k_nodes:
        cluster = LocalCluster(f"bench5k-{rep}", root=root, progress=lambda m: None)
        try:
            cluster.create(parse_profile(PROFILE, name="bench"))
            n = timed_nodes(KubeClient.from_kubeconfig(cluster.kubeconfig()), str(cluster.kubeconfig()), 5000, 8,
                            cluster.name, timeout=600)
            res["nodes_5000_ready_s"] = n.get("ready")
        finally:
            cluster.delete()
    return res


def summarize(reps: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = [k for k in reps[0] if isinstance(reps[0][k], int | float)]
    for k in keys:
        vals = [r[k] for r in reps if isinstance(r.get(k), int | float)]
        if vals:
            out[k] = {"min": round(min(vals), 3), "median": round(statistics.median(vals), 3),
                      "max": round(max(vals), 3), "n": len(vals)}
    comps = reps[0].get("rss_mb", {})
    out["rss_mb"] = {c: {"median": round(statistics.median(r["rss_mb"][c] for r in reps if c in r.get("rss_mb", {})), 1)}
                     for c in comps}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="bench/results.json")
    ap.add_argument("--skip-5k-nodes", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aiconform-bench-"))
    reps = []
    try:
        for i in range(args.reps):
            r = one_rep(i, root, not args.skip_5k_nodes)
            reps.append(r)
            print(f"rep {i + 1}/{args.reps}: " + ", ".join(
                f"{k}={v:.2f}" for k, v in r.items() if isinstance(v, float)), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary = summarize(reps)
    print("\nfigure                      min      median   max")
    for k, v in summary.items():
        if k != "rss_mb":
            print(f"{k:<26} {v['min']:>8.2f} {v['median']:>8.2f} {v['max']:>8.2f}")
    print("RSS at 1,000 nodes + 5,000 pods (MB, median): " + ", ".join(
        f"{c}={v['median']}" for c, v in summary["rss_mb"].items()))
    doc = {"host": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "reps": reps, "summary": summary}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_bench(main))
