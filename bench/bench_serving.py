"""Benchmark of the serving stack (tier R): prints figures and writes JSON.  Not a test.  Needs root and the
``serving`` extra (``pip install -e '.[serving]'``: locust).

In one run:
  - image build: the model server image's cold build (the cache's own record of when it was built: steps and
    seconds) and a cached lookup timed now; the Prometheus and prometheus-adapter images likewise; sizes;
  - bare: the model server image's own root filesystem (unpacked, chroot) run as a host process on 127.0.0.1: the
    same bits as the pod, without cgroup limits, kube-proxy or the pod network; under locust (``--users``
    closed-loop users for ``--seconds``): RPS, p50/p99;
  - cluster: one ``local-serving`` cluster (bring-up time); the same server as a pod (1.5 CPU, one fake GPU)
    behind its NodePort on the node's own address, the same locust run: RPS and p99, and the ratios to bare (target
    RPS >= 0.8 of bare: the difference is kube-proxy + the pod's network);
  - HPA reaction: the autoscaling experiment of the pod_autoscaling check: queue depth above target → a new replica
    Ready (target <= HPA sync period + 15 s), and the four phases' times.

    .venv/bin/python bench/bench_serving.py [--users 8] [--seconds 20] [--out bench/results-serving.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import run_bench  # noqa: E402
from harness import images  # noqa: E402
from harness.addons import prometheus, prometheus_adapter  # noqa: E402
from harness.bins import BinaryResolver  # noqa: E402
from harness.config import load_profile  # noqa: E402
from harness.kube import KubeClient  # noqa: E402
from harness.providers import open_provider  # noqa: E402
from harness.providers.base import ProviderOptions  # noqa: E402
from harness.testing.tenants import create_run_namespace  # noqa: E402
from reference_workloads.serving import autoscale, deploy  # noqa: E402
from reference_workloads.serving.load import LoadResult, LoadSpec, run_load  # noqa: E402

HPA_SYNC_S = 5.0  # harness/profiles/local-serving.yaml


def image_figures() -> dict[str, Any]:
    out: dict[str, Any] = {}
    resolver = BinaryResolver(download="never")
    adapter, prom = resolver.resolve("prometheus-adapter"), resolver.resolve("prometheus")
    for img in (images.get("model-server"), prometheus.image(prom.path, prom.version),
                prometheus_adapter.image(adapter.path, adapter.version)):
        t0 = time.monotonic()
        built = images.build(img, progress=lambda m: None)
        took = time.monotonic() - t0
        record_file = built.archive.with_suffix(".json")
        record = json.loads(record_file.read_text()) if record_file.is_file() else {}
        out[img.name] = {"cold_build_s": record.get("seconds"), "cold_steps": record.get("steps"),
                         "this_call_s": round(took, 2), "this_call_cached": built.cached,
                         "archive_mb": round(built.archive.stat().st_size / 1e6, 1)}
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unpack(archive: Path, root: Path) -> None:
    """The image's layers applied in order (no whiteouts in this image: each layer only adds)."""
    import tarfile

    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            member = outer.extractfile(layer)
            assert member is not None
            with tarfile.open(fileobj=member, mode="r:*") as inner:
                inner.extractall(root, filter="tar")


def bare(users: int, seconds: float, work: Path) -> LoadResult:
    root = work / "model-server-root"
    root.mkdir()
    unpack(images.build("model-server", progress=lambda m: None).archive, root)
    (root / "proc").mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True, timeout=30)
    port = free_port()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HTTP_PORT": str(port), "MODEL_VERSION": "v1",
           "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "LC_ALL": "C.UTF-8"}
    log = (work / "bare-server.log").open("wb")
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen([chroot, str(root), "python3", "/opt/aiconform/model_server.py"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:  # a local socket: nothing to watch
            try:
                with urllib.request.urlopen(f"{url}/v2/models/minilm/ready", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bare model server did not start:\n"
                                     + (work / "bare-server.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        return run_load(LoadSpec(url, users=users, duration_s=seconds), work / "bare-load.json")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
        subprocess.run(["umount", str(root / "proc")], check=False, timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def figures(r: LoadResult) -> dict[str, float]:
    return {"rps": round(r.rps, 2), "p50_s": round(r.p50_s, 4), "p99_s": round(r.p99_s, 4), "requests": r.requests,
            "failures": r.failures}


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="aicf-srv-"))
    try:
        return run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--skip-hpa", action="store_true")
    ap.add_argument("--out", default="bench/results-serving.json")
    args = ap.parse_args()
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "loadavg_start": os.getloadavg()[0]},
                              "users": args.users, "seconds": args.seconds}
    result["images"] = image_figures()
    print(f"images: {json.dumps(result['images'])}", flush=True)
    # The cluster first (the one real node per host is often taken), then both measurements while it runs: the bare
    # server and the pod see the same machine.
    cluster = open_provider("local", f"srvb-{secrets.token_hex(2)}", ProviderOptions(root=work / "state", progress=lambda m: None))
    try:
        t0 = time.monotonic()
        cluster.create(load_profile("local-serving"))
        result["up_s"] = round(time.monotonic() - t0, 1)
        print(f"local-serving up in {result['up_s']}s", flush=True)
        b = bare(args.users, args.seconds, work)
        result["bare"] = figures(b)
        print(f"bare loopback: {result['bare']}", flush=True)
        client = KubeClient.from_kubeconfig(cluster.kubeconfig())
        ns = f"bench-serving-{secrets.token_hex(2)}"
        create_run_namespace(client, ns, "bench")
        ep = deploy.deploy_model(client, ns, "v1", replicas=1, cpu="1500m", name="bench-model")
        deploy.wait_answering(ep.url, timeout=60)
        c = run_load(LoadSpec(ep.url, users=args.users, duration_s=args.seconds), work / "cluster-load.json")
        result["cluster"] = figures(c)
        result["ratio"] = {"rps": round(c.rps / b.rps, 3) if b.rps else None,
                           "p99": round(c.p99_s / b.p99_s, 3) if b.p99_s else None}
        print(f"cluster NodePort: {result['cluster']}; ratio to bare: {result['ratio']} (target rps >= 0.8)",
              flush=True)
        client.delete("Deployment", "bench-model", ns)
        if not args.skip_hpa:
            ns2 = f"bench-hpa-{secrets.token_hex(2)}"
            create_run_namespace(client, ns2, "bench")
            tl = autoscale.run(client, ns2, work)
            ph = autoscale.phases(tl)
            result["hpa"] = {"reaction_s": ph.reaction_s, "target_s": HPA_SYNC_S + 15,
                             "phases_s": {"queue_above_target": ph.queue_rose_at, "scaled_out": ph.scaled_out_at,
                                          "served_reached_offered": ph.served_reached_at,
                                          "queue_under_target": ph.queue_fell_at, "load_stopped": tl.load_stopped_at,
                                          "scaled_in": ph.scaled_in_at},
                             "peak_ready": ph.peak_ready, "offered_rps": tl.params.offered_rps}
            print(f"HPA: {result['hpa']}", flush=True)
    finally:
        t1 = time.monotonic()
        cluster.delete()
        result["down_s"] = round(time.monotonic() - t1, 1)
    result["machine"]["loadavg_end"] = os.getloadavg()[0]
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_bench(main))
