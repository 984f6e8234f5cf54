"""Benchmark of the kind provider (root, docker.io): prints figures and writes JSON; not a test.

- ``aiconform up`` of the ``kind-gpu`` profile (1 control plane + 2 GPU workers) with a warm node image: wall time
  and each bring-up action's share, ``--reps`` fresh clusters (target <= 40 s);
- the cold node-image build (``--cold``): the node image and every image in it built from an empty images cache
  (pinned binaries stay cached: their cold builds are in the budget table of docs/cold-ci.md);
- the full default suite on kind: wall time of ``aiconform run --profile kind-gpu`` (bring-up, every shipped suite,
  report, teardown; target <= 5 min).

Usage: ``python bench/bench_kind.py [--reps 3] [--cold] [--skip-suite] [--out bench/results-kind.json]``.
One kind cluster at a time (2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench._common when run as a script
from bench._common import child, run_bench, run_child  # noqa: E402

PROFILE = "kind-gpu"
ACTION = re.compile(r"^\[(\d+)/(\d+)\] ([\w-]+):")


def timed(argv: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> tuple[float, int, dict[str, float], str]:
    """Run ``argv``; wall time, exit code, seconds per bring-up action (from the ``[i/n] name:`` lines), stderr."""
    t0 = time.monotonic()
    marks: list[tuple[str, float]] = []
    lines: list[str] = []
    # stopped (or past the timeout), the bench hands the command one SIGTERM and waits for its teardown
    with child(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env) as p:
        assert p.stderr is not None
        for line in p.stderr:
            lines.append(line)
            m = ACTION.match(line)
            if m:
                marks.append((m.group(3), time.monotonic() - t0))
            if time.monotonic() - t0 > timeout:
                p.terminate()
        p.wait()
    wall = time.monotonic() - t0
    steps = {name: round((marks[i + 1][1] if i + 1 < len(marks) else wall) - start, 2)
             for i, (name, start) in enumerate(marks)}
    return wall, p.returncode, steps, "".join(lines)


def aiconform(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def down(name: str) -> None:
    run_child(aiconform("down", "--name", name, "--ignore-missing"), timeout=600)


def cold_node_image() -> dict[str, object]:
    """Build the node image from an empty images cache (binaries linked from the real cache) after removing the
    engine's copy of the current node image."""
    from harness.bins import cache_root
    from harness.providers.kind.engine import ensure_engine
    from harness.providers.kind.nodeimage import plan

    engine = ensure_engine()
    ref = plan().ref
    if engine.image_exists(ref):
        engine.client.images.remove(ref)
    with tempfile.TemporaryDirectory(prefix="aiconform-bench-kind-", dir=str(cache_root().parent)) as tmp:
        (Path(tmp) / "bin").symlink_to(cache_root() / "bin")
        env = {**os.environ, "AICONFORM_CACHE_DIR": tmp}
        wall, code, _, err = timed(aiconform("node-image", "build"), env=env)
        steps = [ln.strip() for ln in err.splitlines() if re.search(r"(done in|built .* in) [\d.]+ s", ln)]
    engine.close()
    return {"exit_code": code, "wall_s": round(wall, 1), "steps": steps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="also time a cold node-image build")
    ap.add_argument("--skip-suite", action="store_true", help="skip the full-suite run")
    ap.add_argument("--out", default="bench/results-kind.json")
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        print("bench_kind: needs root and dockerd (apt-get install docker.io)", file=sys.stderr)
        return 2
    out: dict[str, object] = {"profile": PROFILE}
    if args.cold:
        out["cold_node_image"] = cold_node_image()
        print(f"cold node-image build: {out['cold_node_image']['wall_s']} s")  # type: ignore[index]
    wall, code, _, err = timed(aiconform("node-image", "build"))  # warm (or build it, untimed for `up`)
    if code != 0:
        print(err[-2000:], file=sys.stderr)
        return 1
    ups = []
    for i in range(args.reps):
        name = f"bench-kind-{secrets.token_hex(2)}-{i}"
        try:
            wall, code, steps, err = timed(aiconform("up", "--profile", PROFILE, "--name", name))
            if code != 0:
                print(err[-2000:], file=sys.stderr)
                return 1
            ups.append({"wall_s": round(wall, 2), "steps": steps})
            print(f"up {i + 1}/{args.reps}: {wall:.1f} s  " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
        finally:
            down(name)
    walls = [u["wall_s"] for u in ups]
    out["up_warm"] = {"runs": ups, "min": min(walls), "median": statistics.median(walls), "max": max(walls),
                      "target_s": 40}
    if not args.skip_suite:
        name = f"bench-kind-suite-{secrets.token_hex(2)}"
        with tempfile.TemporaryDirectory(prefix="aiconform-bench-kind-suite-") as tmp:
            try:
                wall, code, _, _ = timed(aiconform("run", "--profile", PROFILE, "--name", name, "--report-dir",
                                                   f"{tmp}/report"))
                summary = json.loads(Path(tmp, "report", "results.json").read_text())["summary"]
            finally:
                down(name)
        out["full_suite"] = {"exit_code": code, "wall_s": round(wall, 1), "checks": summary, "target_s": 300}
        print(f"full default suite on kind: {wall:.1f} s ({summary})")
    print(f"up, warm node image: min {min(walls):.1f} / median {statistics.median(walls):.1f} / max {max(walls):.1f} s "
          "(target <= 40 s)")
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_bench(main))
