"""Benchmark of the upgrade lane: prints figures and writes JSON.  Not a test.

Two measurements, previous pinned minor -> pinned default:
  - ``disruption``: one cluster on the previous minor (tier S: simulated GPU pools; with ``--real`` and root, tier R:
    a real kubelet node with fake GPUs), a GPU Deployment running on it, a prober asking the apiserver's /readyz
    every 50 ms from a thread while ``upgrade_control_plane`` runs.  Figures: the upgrade's wall time, the seconds
    the API did not answer (sum of failed probe intervals, and the longest gap), and workload disruption: pods
    recreated (uid changed) and container restarts (tier R; the kubelet's own restart is counted apart).
  - ``lane``: the whole ``aiconform run --profile default --kubernetes previous --upgrade-to default`` (suites run
    twice around the upgrade), its wall time and whether the diff found a regression.  Target: <= 10 min on 2 cores.

    .venv/bin/python bench/bench_upgrade.py [--real] [--skip-lane] [--out bench/results-upgrade.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import run_bench, run_child  # noqa: E402
from harness.bins import load_versions  # noqa: E402
from harness.config import parse_profile  # noqa: E402
from harness.contract import GPU_RESOURCE, REAL_NODE_LABEL, SIMULATED_TOLERATION  # noqa: E402
from harness.kube import KubeClient  # noqa: E402
from harness.providers import open_provider  # noqa: E402
from harness.providers.base import ProviderOptions, UpgradesControlPlane, require  # noqa: E402

REPLICAS = 4


class Prober(threading.Thread):
    """Asks /readyz every ``interval`` seconds; records (time, ok) until stopped."""

    def __init__(self, client: KubeClient, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.client, self.interval = client, interval
        self.samples: list[tuple[float, bool]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                ok = self.client.healthz("/readyz")
            except Exception:  # noqa: BLE001 - any failure to answer is unavailability
                ok = False
            self.samples.append((t, ok))
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def unavailable(self) -> tuple[float, float]:
        """(seconds without an answer in all, the longest such stretch)."""
        total = longest = 0.0
        start: float | None = None
        for (t, ok), (t_next, _) in zip(self.samples, self.samples[1:] + [(time.monotonic(), True)], strict=True):
            if not ok:
                total += t_next - t
                start = t if start is None else start
                longest = max(longest, t_next - start)
            else:
                start = None
        return total, longest


def deployment(real: bool) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "main", "image": "aiconform.local/pause:3.10",
                         "resources": {"limits": {GPU_RESOURCE: "1", "cpu": "50m", "memory": "32Mi"}}}
    spec: dict[str, Any] = {"containers": [c], "terminationGracePeriodSeconds": 0,
                            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},
                                            dict(SIMULATED_TOLERATION)]}
    if real:
        spec["nodeSelector"] = {REAL_NODE_LABEL: "true"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gpu-work"},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "gpu-work"}},
                     "template": {"metadata": {"labels": {"app": "gpu-work"}}, "spec": spec}}}


def pods(client: KubeClient) -> dict[str, tuple[str, int]]:
    out = {}
    for p in client.list("Pod", namespace="default", label_selector="app=gpu-work")["items"]:
        restarts = sum(cs.get("restartCount", 0) for cs in p.get("status", {}).get("containerStatuses", []) or [])
        out[p["metadata"]["name"]] = (p["metadata"]["uid"], restarts)
    return out


def disruption(real: bool, previous: str, current: str) -> dict[str, Any]:
    profile: dict[str, Any] = {"name": "bench-upgrade", "controlPlane": {"kubernetesVersion": previous}}
    if real:
        profile["realNode"] = {"enabled": True, "gpu": {"model": "A100-SXM4-80GB", "count": REPLICAS}}
    else:
        profile["pools"] = [{"name": "a100", "nodes": 2, "gpu": {"model": "A100-SXM4-80GB", "count": 8}}]
    root = Path(tempfile.mkdtemp(prefix="bup-", dir="/tmp"))
    cluster = open_provider("local", f"bup-{secrets.token_hex(2)}", ProviderOptions(root=root))
    try:
        cluster.create(parse_profile(profile, name="bench-upgrade"))
        client = KubeClient.from_kubeconfig(cluster.kubeconfig())
        client.wait_for("ServiceAccount", namespace="default", name="default", condition=bool, timeout=60)
        client.create(deployment(real), namespace="default")
        client.wait_for("Pod", namespace="default", label_selector="app=gpu-work", timeout=180,
                        what="the GPU Deployment running",
                        condition=lambda s: len(s) == REPLICAS and all(
                            p.get("status", {}).get("phase") == "Running" for p in s.values()))
        before = pods(client)
        prober = Prober(KubeClient.from_kubeconfig(cluster.kubeconfig()))
        prober.start()
        t0 = time.monotonic()
        require(cluster, UpgradesControlPlane, "upgrading the control plane").upgrade_control_plane(current)
        wall = time.monotonic() - t0
        time.sleep(2)  # a few probes after the last component came back
        prober.stop.set()
        prober.join()
        total, longest = prober.unavailable()
        after = pods(KubeClient.from_kubeconfig(cluster.kubeconfig()))
        recreated = len(set(before) ^ set(after)) // 2 + sum(
            1 for n in before if n in after and before[n][0] != after[n][0])
        restarts = sum(after[n][1] - before[n][1] for n in before if n in after)
        return {"tier": "R" if real else "S", "upgrade_wall_s": round(wall, 2),
                "api_unavailable_s": round(total, 2), "api_longest_gap_s": round(longest, 2),
                "probes": len(prober.samples), "pods_recreated": recreated, "container_restarts": restarts,
                "kubelet_restarted": real}
    finally:
        cluster.delete()


def lane() -> dict[str, Any]:
    report = Path(tempfile.mkdtemp(prefix="bup-lane-"))
    cli = str(Path(sys.executable).parent / "aiconform")
    t0 = time.monotonic()
    res = run_child([cli, "run", "--profile", "default", "--name", f"bupl-{secrets.token_hex(2)}",
                     "--kubernetes", "previous", "--upgrade-to", "default", "--report-dir", str(report)],
                    timeout=1800)
    wall = time.monotonic() - t0
    diff = (report / "diff.txt").read_text() if (report / "diff.txt").exists() else ""
    return {"lane_wall_s": round(wall, 1), "exit_code": res.returncode, "target_s": 600,
            "regression": "result: no regression" not in diff, "report": str(report)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="also measure at tier R (needs root)")
    ap.add_argument("--skip-lane", action="store_true")
    ap.add_argument("--out", default="bench/results-upgrade.json")
    args = ap.parse_args()
    v = load_versions()
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                           "from": v.kubernetes_previous, "to": v.kubernetes_default, "disruption": []}
    tiers = [False] + ([True] if args.real else [])
    for real in tiers:
        fig = disruption(real, v.kubernetes_previous, v.kubernetes_default)
        out["disruption"].append(fig)
        print(f"tier {fig['tier']}: upgrade {fig['upgrade_wall_s']} s; API unanswered {fig['api_unavailable_s']} s "
              f"(longest gap {fig['api_longest_gap_s']} s over {fig['probes']} probes); pods recreated "
              f"{fig['pods_recreated']}, container restarts {fig['container_restarts']}"
              f"{' (the kubelet itself restarted once)' if fig['kubelet_restarted'] else ''}")
    if not args.skip_lane:
        out["lane"] = lane()
        print(f"upgrade lane v{v.kubernetes_previous} -> v{v.kubernetes_default} (suites twice): "
              f"{out['lane']['lane_wall_s']} s (target <= 600 s), exit {out['lane']['exit_code']}, "
              f"regression: {out['lane']['regression']}")
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_bench(main))
