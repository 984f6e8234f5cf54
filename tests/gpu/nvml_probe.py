"""Run on a machine with real NVIDIA GPUs: record NVML's answers and show what ``--backend nvml`` advertises.

No kubelet needed: the plugin registers with ``testing.FakeKubeletRegistration`` in a temporary directory and this
script talks to its sockets like the kubelet would.  Reads only: no MIG mode change, no reset, no clocks.

    python3 tests/gpu/nvml_probe.py --out DIR

writes into DIR: ``nvml-recording.json`` (the unit tests' fixture format, ``nvml_backend.record_nvml``),
``probe.json`` (inventory, Register, ListAndWatch, GetPreferredAllocation, Allocate, health push, timings),
``inventory.json`` and ``serve.log`` (the CLI as a process), ``nvidia-smi-L.txt`` and ``nvidia-smi-q.txt``.
As root with ``unshare`` it also checks that Allocate's device nodes are what a container needs: a process in a new
mount namespace whose /dev holds only those nodes (plus null/zero/urandom) runs cuInit, cuCtxCreate and cuMemAlloc
through libcuda; the same without ``/dev/nvidia<minor>`` must fail.
Exit 0 when every step worked; 1 otherwise (``probe.json`` says which step failed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import grpc

from fake_gpu_plugin.api import deviceplugin_pb2 as pb
from fake_gpu_plugin.api import deviceplugin_pb2_grpc as pb_grpc
from fake_gpu_plugin.health import set_device_health
from fake_gpu_plugin.nvml_backend import NvmlBackend, NvmlSettings, record_nvml
from fake_gpu_plugin.plugin import FakeGpuPlugin, PluginSettings
from fake_gpu_plugin.testing import FakeKubeletRegistration


def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def node_info(path: str) -> dict[str, Any]:
    try:
        st = os.stat(path)
    except OSError as err:
        return {"path": path, "error": err.strerror}
    return {"path": path, "char": stat.S_ISCHR(st.st_mode), "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev)}


def allocate_dict(resp: pb.ContainerAllocateResponse) -> dict[str, Any]:
    return {"envs": dict(resp.envs), "devices": [{"container_path": d.container_path, "host_path": d.host_path,
                                                   "permissions": d.permissions, **node_info(d.host_path)}
                                                  for d in resp.devices],
            "mounts": [m.container_path for m in resp.mounts]}


def in_process(out: Path, report: dict[str, Any]) -> None:
    started = time.monotonic()
    backend = NvmlBackend.open()
    report["open_s"] = round(time.monotonic() - started, 4)
    try:
        (out / "nvml-recording.json").write_text(json.dumps(record_nvml(backend.nvml), indent=1) + "\n")
        inv = backend.inventory("gpu-node", NvmlSettings())
        report["inventory"] = {"gpus": [{"index": g.index, "uuid": g.uuid, "model": g.model.key, "memory_mib":
                                         g.memory_mib, "minor": g.minor, "numa": g.numa_node, "pci": g.pci_bus_id}
                                        for g in inv.gpus],
                               "resources": {k: [d.id for d in v] for k, v in inv.resources.items()}}
        health = backend.health_source(inv)
        sockdir = Path(tempfile.mkdtemp(prefix="nv", dir="/tmp"))
        try:
            settings = PluginSettings(node_name="gpu-node", device_plugin_dir=sockdir, state_dir=sockdir / "state",
                                      metrics_addr=None, pod_resources_socket=None)
            with FakeKubeletRegistration(sockdir) as kubelet:
                t0 = time.monotonic()
                with FakeGpuPlugin(inv, settings, health_source=health) as plugin:
                    reg = kubelet.next_request(timeout_s=10)
                    report["register"] = {"resource": reg.resource_name, "endpoint": reg.endpoint,
                                          "after_s": round(time.monotonic() - t0, 4)}
                    server = plugin.servers[reg.resource_name]
                    with grpc.insecure_channel(f"unix://{server.socket_path}") as channel:
                        stub = pb_grpc.DevicePluginStub(channel)
                        stream = stub.ListAndWatch(pb.Empty(), timeout=30)
                        first = next(stream)
                        report["list_and_watch"] = [{"id": d.ID, "health": d.health,
                                                     "numa": [n.ID for n in d.topology.nodes]} for d in first.devices]
                        ids = [d.ID for d in first.devices]
                        pref = stub.GetPreferredAllocation(pb.PreferredAllocationRequest(container_requests=[
                            pb.ContainerPreferredAllocationRequest(available_deviceIDs=ids, allocation_size=1)]),
                            timeout=5)
                        report["preferred"] = list(pref.container_responses[0].deviceIDs)
                        req = pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=ids[:1])])
                        resp = stub.Allocate(req, timeout=5)
                        report["allocate"] = allocate_dict(resp.container_responses[0])
                        times = []
                        for _ in range(200):
                            a = time.perf_counter()
                            stub.Allocate(req, timeout=5)
                            times.append(time.perf_counter() - a)
                        times.sort()
                        report["allocate_ms"] = {"n": 200, "p50": round(statistics.median(times) * 1000, 3),
                                                 "p99": round(times[197] * 1000, 3)}
                        # The control file path on real GPUs: mark, see the push, clear (only when all start healthy).
                        if all(d.health == "Healthy" for d in first.devices):
                            a = time.monotonic()
                            set_device_health(plugin.paths.state_dir, ids[0], healthy=False)
                            pushed = next(stream)
                            report["health_push"] = {"latency_s": round(time.monotonic() - a, 4),
                                                     "states": {d.ID: d.health for d in pushed.devices}}
                            set_device_health(plugin.paths.state_dir, ids[0], healthy=True)
                            report["health_cleared"] = {d.ID: d.health for d in next(stream).devices}
                        stream.cancel()
                    report["nvml_health"] = {"events_seen": health.events_seen,
                                             "unhealthy": sorted(health.unhealthy()),
                                             "watching": health._thread is not None}
        finally:
            shutil.rmtree(sockdir, ignore_errors=True)
    finally:
        backend.close()


def as_process(out: Path, report: dict[str, Any]) -> None:
    inv = run([sys.executable, "-m", "fake_gpu_plugin", "inventory", "--backend", "nvml", "--node-name", "gpu-node"],
              60)
    (out / "inventory.json").write_text(inv.stdout + inv.stderr)
    report["cli_inventory_rc"] = inv.returncode
    sockdir = Path(tempfile.mkdtemp(prefix="nv", dir="/tmp"))
    argv = [sys.executable, "-m", "fake_gpu_plugin", "serve", "--backend", "nvml", "--node-name", "gpu-node",
            "--device-plugin-dir", str(sockdir), "--state-dir", str(sockdir / "state"), "--metrics-addr", "off",
            "--pod-resources-socket", str(sockdir / "none.sock")]
    try:
        with FakeKubeletRegistration(sockdir) as kubelet:
            t0 = time.monotonic()
            log_file = open(out / "serve.log", "w")  # noqa: SIM115 - closed below, the child writes it
            proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, text=True)
            try:
                reg = None
                deadline = time.monotonic() + 30
                while reg is None and proc.poll() is None and time.monotonic() < deadline:
                    try:
                        reg = kubelet.next_request(timeout_s=0.2)
                    except queue.Empty:
                        continue
                if reg is None:
                    raise RuntimeError(f"serve did not register (exit code {proc.poll()})")
                report["cli_register_s"] = round(time.monotonic() - t0, 3)
                with grpc.insecure_channel(f"unix://{sockdir / reg.endpoint}") as channel:
                    stub = pb_grpc.DevicePluginStub(channel)
                    first = next(stub.ListAndWatch(pb.Empty(), timeout=10))
                    ids = [d.ID for d in first.devices]
                    resp = stub.Allocate(pb.AllocateRequest(container_requests=[
                        pb.ContainerAllocateRequest(devices_ids=ids[:1])]), timeout=5)
                    report["cli_allocate"] = allocate_dict(resp.container_responses[0])
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log_file.close()
            report["cli_serve_rc"] = proc.returncode
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


CUDA_CHECK = """
import ctypes, json
c = ctypes.CDLL("libcuda.so.1")
out = {"cuInit": c.cuInit(0)}
n = ctypes.c_int(0)
out["cuDeviceGetCount"] = c.cuDeviceGetCount(ctypes.byref(n)), n.value
if n.value:
    dev, ctx, ptr = ctypes.c_int(0), ctypes.c_void_p(), ctypes.c_uint64()
    c.cuDeviceGet(ctypes.byref(dev), 0)
    out["cuCtxCreate"] = c.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev)
    out["cuMemAlloc_1MiB"] = c.cuMemAlloc_v2(ctypes.byref(ptr), 1 << 20)
print(json.dumps(out))
"""


def container_check(devices: list[dict[str, Any]]) -> dict[str, Any]:
    """Run CUDA_CHECK as an unprivileged user with a /dev holding only ``devices`` (as Allocate handed them out) and
    null/zero/urandom, the way a container sees them.  Unprivileged, and with nvidia-modprobe masked, because as root
    the driver libraries create missing /dev/nvidia* nodes themselves (a container has neither)."""
    nodes = [(d["container_path"], d["major"], d["minor"]) for d in devices if d.get("char")]
    nodes += [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/urandom", 1, 9)]
    script = ["mount -t tmpfs tmpfs /dev"]
    for path, major, minor in nodes:
        script.append(f"mkdir -p {os.path.dirname(path)} && mknod -m 666 {path} c {major} {minor}")
    modprobe = shutil.which("nvidia-modprobe")
    if modprobe:
        script.append(f"mount --bind /bin/false {modprobe}")
    script.append(f"{{ setpriv --reuid=65534 --regid=65534 --clear-groups {sys.executable} -c '{CUDA_CHECK}'; "
                  "echo --dev-- >&2; ls -R /dev >&2; }")
    done = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", " && ".join(script)], 120)
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {"rc": done.returncode, "stdout": done.stdout[-500:]}
    errors, _, listing = done.stderr.rpartition("--dev--")
    result["dev_given"] = [n[0] for n in nodes]
    result["dev_after"] = listing.split()
    if errors.strip():
        result["stderr"] = errors.strip()[-300:]
    return result


def in_container(out: Path, report: dict[str, Any]) -> None:
    devices = report["allocate"]["devices"]

    def without(pred: Any) -> list[dict[str, Any]]:
        return [d for d in devices if not pred(d["container_path"])]

    report["container_with_allocated_nodes"] = container_check(devices)
    report["container_without_gpu_node"] = container_check(
        without(lambda p: p.startswith("/dev/nvidia") and p[len("/dev/nvidia"):].isdigit()))
    report["container_without_uvm"] = container_check(without(lambda p: p.startswith("/dev/nvidia-uvm")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    out = parser.parse_args().out
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"python": sys.version.split()[0], "failed": []}
    for name, argv in (("nvidia-smi-L.txt", ["nvidia-smi", "-L"]), ("nvidia-smi-q.txt", ["nvidia-smi", "-q"])):
        try:
            done = run(argv, 60)
            (out / name).write_text(done.stdout + done.stderr)
        except (OSError, subprocess.TimeoutExpired) as err:
            (out / name).write_text(f"{err}\n")
    for step in (in_process, as_process, in_container):
        try:
            step(out, report)
        except Exception:  # noqa: BLE001 - the report says which step failed and how
            report["failed"].append({"step": step.__name__, "traceback": traceback.format_exc()})
    (out / "probe.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
