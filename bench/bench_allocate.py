"""Allocate latency of the fake GPU plugin over a real gRPC unix socket.

Starts ``FakeGpuPlugin`` in a temporary directory (no kubelet needed: the kubelet is the client of Allocate) and
times ``--calls`` Allocate RPCs, client side, per scenario:
- ``1gpu``: 1-GPU requests rotating over 8 GPUs (the data file of each allocation already exists after 8 calls);
- ``8gpu``: all 8 GPUs in one request;
- ``timesliced-cold``: 8 GPUs x 160 replicas, every call (up to 1,280) a replica never allocated before, so every
  call writes a new per-allocation data file (the slowest path).
Prints p50/p99 per scenario and writes JSON to ``--out``.  Target: p99 <= 2 ms.

    .venv/bin/python bench/bench_allocate.py [--calls 1000] [--out bench/results-allocate.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from fake_gpu_plugin.api import deviceplugin_pb2 as pb
from fake_gpu_plugin.api import deviceplugin_pb2_grpc as pb_grpc
from fake_gpu_plugin.config import config_from_pool
from fake_gpu_plugin.inventory import build_inventory
from fake_gpu_plugin.names import GPU_RESOURCE
from fake_gpu_plugin.plugin import FakeGpuPlugin, PluginSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench._common when run as a script
from bench._common import run_bench  # noqa: E402


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    index = min(len(sorted_ms) - 1, max(0, round(q / 100 * len(sorted_ms)) - 1))
    return sorted_ms[index]


def run_scenario(pool: dict[str, Any], ids_for_call: Callable[[list[str], int], list[str]], calls: int,
                 warmup: int, state_root: Path) -> dict[str, float]:
    inv = build_inventory(config_from_pool(pool), "bench-node")
    ids = [d.id for d in inv.resources[GPU_RESOURCE]]
    workdir = Path(tempfile.mkdtemp(dir="/tmp", prefix="fgb"))
    state_dir = Path(tempfile.mkdtemp(dir=state_root, prefix="fgb-state"))
    settings = PluginSettings(node_name="bench-node", device_plugin_dir=workdir, state_dir=state_dir,
                              device_nodes=os.geteuid() == 0, metrics_addr=None, pod_resources_socket=None)
    try:
        with FakeGpuPlugin(inv, settings) as plugin, \
                grpc.insecure_channel(f"unix://{plugin.servers['nvidia.com/gpu'].socket_path}") as channel:
            stub = pb_grpc.DevicePluginStub(channel)

            def call(n: int) -> float:
                request = pb.AllocateRequest(container_requests=[
                    pb.ContainerAllocateRequest(devices_ids=ids_for_call(ids, n))])
                started = time.perf_counter()
                stub.Allocate(request, timeout=5)
                return (time.perf_counter() - started) * 1000

            for n in range(warmup):
                call(n)
            samples = sorted(call(warmup + n) for n in range(calls))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)
    return {"calls": calls, "p50_ms": round(percentile(samples, 50), 4), "p99_ms": round(percentile(samples, 99), 4),
            "mean_ms": round(statistics.fmean(samples), 4), "max_ms": round(samples[-1], 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--state-root", type=Path, default=Path("/tmp"),
                        help="where the state dir (allocation data files) lives; /dev/shm mimics a tmpfs /var/run")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results-allocate.json")
    args = parser.parse_args()
    plain = {"gpu": {"model": "A100-SXM4-80GB", "count": 8}}
    shared = {"gpu": {"model": "A100-SXM4-80GB", "count": 8, "sharing": {"timeSlicing": {"replicas": 160}}}}
    scenarios = {
        "1gpu": run_scenario(plain, lambda ids, n: [ids[n % len(ids)]], args.calls, args.warmup, args.state_root),
        "8gpu": run_scenario(plain, lambda ids, n: ids, args.calls, args.warmup, args.state_root),
        "timesliced-cold": run_scenario(shared, lambda ids, n: [ids[(n * 7919) % len(ids)]], args.calls,
                                        args.warmup, args.state_root),
    }
    result = {
        "benchmark": "allocate",
        "transport": "grpc over unix socket, one client channel, sequential calls",
        "target_p99_ms": 2.0,
        "scenarios": scenarios,
        "state_root": str(args.state_root),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                 "grpcio": grpc.__version__, "root": os.geteuid() == 0},
    }
    for name, figures in scenarios.items():
        print(f"{name:16s} p50 {figures['p50_ms']:.3f} ms  p99 {figures['p99_ms']:.3f} ms  "
              f"mean {figures['mean_ms']:.3f} ms  max {figures['max_ms']:.3f} ms  ({figures['calls']} calls)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_bench(main))
