"""Training figures: data-parallel throughput on this machine, and (on a tier R cluster) the operator's bring-up
and the kill → resumed-step time.

- ``steps_per_s``: the training script (reference_workloads/training/train.py) as 1 process and as 2 processes on
  loopback (gloo), same global batch, steps/s measured from the script's own step lines after ``--warmup`` steps
  (so JIT compilation is excluded); ``ratio`` = 2 processes / 1 process;
- with ``--kubeconfig`` of a running ``local-real`` cluster: ``operator_bringup_s`` (JobSet + Trainer through the
  one installer: image load, CRDs Established and discoverable, controller Ready, webhooks answering; 0 when they
  were already installed), and ``kill_to_resumed_s`` (delete one of two workers after a checkpoint → the first
  step logged by the restarted group) with the checkpoint step and the first step after the restart.

    .venv/bin/python bench/bench_training.py [--steps 200] [--global-batch 4096] [--kubeconfig PATH] \\
        [--out bench/results-training.json]

Target: kill → resumed step <= 60 s.  Prints the figures and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reference_workloads.training import logs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench._common when run as a script
from bench._common import run_bench  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def steps_per_second(n: int, steps: int, batch: int, warmup: int, hidden: int, timeout: float) -> float:
    """Run ``n`` processes of the script; steps/s of rank 0 between step ``warmup`` and the last step."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        procs, outs = [], []
        for rank in range(n):
            argv = [sys.executable, "-m", "reference_workloads.training.train", "--steps", str(steps),
                    "--global-batch", str(batch), "--hidden", str(hidden), "--num-processes", str(n),
                    "--process-id", str(rank)]
            if n > 1:
                argv += ["--coordinator", f"127.0.0.1:{port}", "--init-timeout-seconds", str(int(timeout))]
            out = Path(tmp) / f"r{rank}.log"
            outs.append(out)
            procs.append(subprocess.Popen(argv, stdout=out.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
                                          env={**os.environ, "JAX_PLATFORMS": "cpu"}))
        try:
            codes = [p.wait(timeout=timeout) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
        if codes != [0] * n:
            raise SystemExit(f"bench: {n}-process run exited {codes}: {outs[0].read_text()[-1000:]}")
        recs = [r for r in logs.parse(outs[0].read_text()) if r["event"] == "step"]
        t = {int(r["step"]): float(r["time"]) for r in recs}
        return (steps - warmup) / (t[steps] - t[warmup])


def tier_r(kubeconfig: Path) -> dict[str, Any]:
    from harness import images
    from harness.kube import KubeClient
    from harness.providers import cluster_of, ensure_addons
    from harness.providers.base import LoadsImages, require
    from harness.testing.tenants import create_run_namespace, release_tenant
    from harness.workloads import real_node_selector
    from reference_workloads.training import cluster, manifests

    path = kubeconfig.resolve()
    t0 = time.monotonic()
    added = ensure_addons(path, "jobset", "trainer")
    bringup = time.monotonic() - t0
    built = images.build("jax-training", progress=lambda line: None)
    require(cluster_of(path), LoadsImages, "loading the training image").load_image(built.archive)
    kube = KubeClient.from_kubeconfig(path)
    ns = f"bench-train-{os.getpid()}"
    pv = f"{ns}-ckpt"
    create_run_namespace(kube, ns, "bench")
    try:
        kube.create(manifests.checkpoint_volume(pv, path=str(path.parent / "training-checkpoints" / ns),
                                                claim_namespace=ns, claim="ckpt"))
        kube.create(manifests.checkpoint_claim("ckpt", ns, volume=pv), namespace=ns)
        kube.create(manifests.training_runtime("jax", ns, image=built.ref, claim="ckpt",
                                               node_selector=real_node_selector()), namespace=ns)
        cluster.wait_runtime_known(kube, ns, "jax")
        kube.create(manifests.train_job("bench", ns, runtime="jax", steps=60, checkpoint_every=5,
                                        min_step_seconds=0.4, global_batch=64), namespace=ns)
        pods = cluster.wait_pods_running(kube, ns, "bench", 2, timeout=180)
        rank = {int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]): p["metadata"]["name"]
                for p in pods}
        follower = cluster.LogFollower(kube, ns, rank[0], timeout=400)
        follower.wait(lambda r: r["event"] == "checkpoint" and r["step"] >= 15, timeout=180)
        killed = time.time()
        kube.delete("Pod", rank[1], ns, grace_period=0)
        cluster.wait_trainjob(kube, ns, "bench", timeout=300)
        before = logs.attempt(follower.finish(timeout=30))
        after = cluster.collect(kube, ns, sorted(p["metadata"]["name"] for p in cluster.pods_of(kube, ns, "bench")
                                                 if p["status"].get("phase") == "Succeeded")).attempt()
        return {"operator_bringup_s": round(bringup, 1), "operator_installed_now": "trainer" in added,
                "kill_to_resumed_s": round(after.first_step_time - killed, 1),
                "checkpoint_step_at_kill": before.checkpoints[-1], "first_step_after_restart": after.steps[0]}
    finally:
        for tj in kube.list("TrainJob", ns).get("items", []):
            kube.delete("TrainJob", tj["metadata"]["name"], ns, grace_period=0)
        release_tenant(kube, ns)
        kube.delete("PersistentVolume", pv)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--global-batch", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--kubeconfig", type=Path, default=None, help="a running local-real cluster (tier R figures)")
    ap.add_argument("--out", type=Path, default=Path("bench/results-training.json"))
    a = ap.parse_args()
    one = steps_per_second(1, a.steps, a.global_batch, a.warmup, a.hidden, a.timeout)
    two = steps_per_second(2, a.steps, a.global_batch, a.warmup, a.hidden, a.timeout)
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load1": os.getloadavg()[0]},
        "settings": {"steps": a.steps, "warmup": a.warmup, "global_batch": a.global_batch, "hidden": a.hidden},
        "steps_per_s": {"1_process": round(one, 2), "2_processes": round(two, 2)},
        "ratio_2_over_1": round(two / one, 3),
    }
    print(f"steps/s: 1 process {one:.2f}, 2 processes {two:.2f}, ratio {two / one:.2f} "
          f"(global batch {a.global_batch}, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if a.kubeconfig is not None:
        r = tier_r(a.kubeconfig)
        result["tier_r"] = r
        print(f"operator bring-up {r['operator_bringup_s']} s; kill -> resumed step {r['kill_to_resumed_s']} s "
              f"(checkpoint step {r['checkpoint_step_at_kill']}, first step after restart "
              f"{r['first_step_after_restart']}; target <= 60 s)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_bench(main))
