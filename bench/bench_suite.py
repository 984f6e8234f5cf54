"""Benchmark of the full conformance run: wall time of `aiconform run` on a profile (default: the embedded default,
all suites), where it goes (bring-up and teardown, then each suite's checks), the CNCF verdict, and Hypothesis
examples per minute against the real cluster.  Prints figures and writes JSON; not a test.

Usage: ``python bench/bench_suite.py [--reps 3] [--profile default] [--examples N] [--parallel N]
[--out bench/results-suite.json]`` (``--examples``: Hypothesis examples per property, as ``aiconform run
--examples``; ``--parallel``: checks at a time, as ``aiconform run --parallel``; both default to the run's default).
``make bench`` runs it on the main job's profile once (the one-run verdict's breakdown) and on ``default``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench._common when run as a script
from bench._common import run_bench, run_child  # noqa: E402


def one_run(profile: str, examples: int | None, report_dir: Path, name: str, parallel: int | None) -> dict[str, object]:
    t0 = time.monotonic()
    res = run_child(  # stopped, the bench hands `aiconform run` one SIGTERM and waits for its teardown
        [sys.executable, "-m", "harness.cli", "run", "--profile", profile, "--name", name,
         "--report-dir", str(report_dir),
         *(["--examples", str(examples)] if examples is not None else []),
         *(["--parallel", str(parallel)] if parallel is not None else [])],
        timeout=1800,
    )
    wall = time.monotonic() - t0
    results = json.loads((report_dir / "results.json").read_text())
    props = [c for c in results["checks"] if c["suite"] == "properties" and c["status"] == "passed"]
    examples_run = sum(int(c["evidence"].get("examples", 0)) for c in props)
    prop_seconds = sum(float(c["duration_s"]) for c in props)
    counts: dict[str, int] = {}
    per_suite: dict[str, float] = {}
    for c in results["checks"]:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
        per_suite[c["suite"]] = per_suite.get(c["suite"], 0.0) + float(c["duration_s"])
    run, verdict = results["run"], results.get("conformance") or {}
    suites_s = (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()
    return {
        "exit_code": res.returncode,
        "wall_s": round(wall, 2),
        "verdict": verdict.get("verdict"),
        "musts": f"{verdict.get('musts_evidenced')} of {verdict.get('musts_total')}",
        "bring_up_and_teardown_s": round(wall - suites_s, 1),
        "suites_s": round(suites_s, 1),
        "suite_check_seconds": {k: round(v, 1) for k, v in sorted(per_suite.items(), key=lambda kv: -kv[1])},
        "checks": counts,
        "property_examples": examples_run,
        "property_seconds": round(prop_seconds, 2),
        "examples_per_minute": round(examples_run / (prop_seconds / 60), 1) if prop_seconds else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--examples", type=int, default=None, help="examples per property (default: the run's)")
    ap.add_argument("--parallel", type=int, default=None, help="checks at a time (aiconform run --parallel)")
    ap.add_argument("--out", default="bench/results-suite.json")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="aiconform-bench-suite-") as tmp:
        for i in range(args.reps):
            name = f"bench-suite-{secrets.token_hex(2)}-{i}"  # unique: other clusters may run on this machine
            r = one_run(args.profile, args.examples, Path(tmp) / f"r{i}", name, args.parallel)
            runs.append(r)
            print(f"rep {i + 1}/{args.reps}: {r}", flush=True)
    walls = [float(r["wall_s"]) for r in runs]  # type: ignore[arg-type]
    rates = [float(r["examples_per_minute"]) for r in runs if r["examples_per_minute"]]  # type: ignore[arg-type]
    summary = {
        "wall_s": {"min": min(walls), "median": statistics.median(walls), "max": max(walls)},
        "examples_per_minute": {"min": min(rates), "median": statistics.median(rates), "max": max(rates)}
        if rates else None,
    }
    print(f"full run wall time (s): min {min(walls):.1f} median {statistics.median(walls):.1f} max {max(walls):.1f}")
    if rates:
        print(f"property examples/min: min {min(rates):.0f} median {statistics.median(rates):.0f} max {max(rates):.0f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"profile": args.profile, "examples": args.examples, "parallel": args.parallel,
                                          "runs": runs, "summary": summary}, indent=2))
    print(f"wrote {args.out}")
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(run_bench(main))
