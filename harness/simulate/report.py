"""The simulator's report: ``results.json`` (every figure per policy, the trace's description, the declared time
compression) and ``report.html`` (one self-contained page: a comparison table, utilization timelines, per-team
share of GPU-hours against entitlement, queue waits).  Renders figures; computes none."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from harness.report import svg

SCHEMA = 1
_COLORS = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#718096")


def write(report_dir: Path, doc: dict[str, Any]) -> tuple[Path, Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    results = report_dir / "results.json"
    results.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    html = report_dir / "report.html"
    html.write_text(render_html(doc))
    return results, html


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}{unit}" if abs(v) < 100 else f"{v:.0f}{unit}"
    return f"{v}{unit}"


def _timers(timers: list[dict[str, Any]], compression: float) -> str:
    if not timers:
        return ""
    rows = "".join(
        f"<tr><th scope=row>{escape(t['component'])}</th><th scope=row>{escape(t['setting'])}</th>"
        f"<td>{_fmt(t['production_s'], ' s')}</td><td>{_fmt(t['value_s'], ' s')}</td>"
        f"<td>{_fmt(t['value_s'] * compression / 60, ' min')}</td>"
        f"<td style=\"text-align:left\">{escape(t['clamped'] or 'no')}</td>"
        f"<td style=\"text-align:left\">{escape(t.get('note', ''))}</td></tr>" for t in timers)
    return ("<table><tr><th>component</th><th>setting</th><th>production</th><th>set (wall)</th>"
            f"<th>in trace time</th><th>clamped</th><th>note</th></tr>{rows}</table>")


def render_html(doc: dict[str, Any]) -> str:
    policies: list[dict[str, Any]] = doc["policies"]
    trace = doc["trace"]
    rows = [
        ("GPU utilization (allocated, avg)", "gpu_utilization_avg", "pct"),
        ("GPU utilization (productive: whole job running, avg)", "productive_utilization_avg", "pct"),
        ("makespan (trace hours)", "makespan_h", ""),
        ("queue wait p50 (trace min)", "wait_p50_min", ""),
        ("queue wait p99 (trace min)", "wait_p99_min", ""),
        ("fairness (Jain over share/entitlement)", "fairness_jain", ""),
        ("pods preempted (stopped before finishing)", "pods_preempted", ""),
        ("Preempted events", "preemption_events", ""),
        (f"starved jobs (never ran, or waited > {policies[0].get('starve_after_h', '?') if policies else '?'} h)",
         "starved_jobs", ""),
        ("jobs never fully running at once", "jobs_never_fully_ran", ""),
        ("small jobs blocked behind a waiting multi-node job", None, "hol_jobs"),
        ("… their blocked time (trace hours)", None, "hol_hours"),
        ("jobs finished / submitted", None, "finished"),
        ("wall time (s)", "wall_s", ""),
    ]
    head = "".join(f"<th>{escape(p['policy'])}</th>" for p in policies)
    body = []
    for label, key, kind in rows:
        cells = []
        for p in policies:
            if kind == "pct":
                v = p.get(key or "")
                cells.append("–" if v is None else f"{100 * v:.1f}%")
            elif kind == "hol_jobs":
                cells.append(_fmt(p["head_of_line"]["small_jobs_blocked"]))
            elif kind == "hol_hours":
                cells.append(_fmt(p["head_of_line"]["blocked_hours"]))
            elif kind == "finished":
                cells.append(f"{p['jobs_finished']} / {p['jobs']}")
            else:
                cells.append(_fmt(p.get(key or "")))
        body.append(f"<tr><th scope=row>{escape(label)}</th>{''.join(f'<td>{escape(c)}</td>' for c in cells)}</tr>")

    sections = []
    util = {p["policy"]: [(pt["t_h"], 100 * pt["allocated"]) for pt in p["timeline"]] for p in policies}
    sections.append("<h2>GPU utilization over time (allocated)</h2>" + svg.line_chart(
        util, title="GPUs held by running pods, % of the cluster", x_unit="h", y_unit="%"))
    prod = {p["policy"]: [(pt["t_h"], 100 * pt["productive"]) for pt in p["timeline"]] for p in policies}
    sections.append("<h2>Productive utilization over time</h2><p>GPUs of jobs whose pods all ran at once.</p>"
                    + svg.line_chart(prod, title="GPUs of wholly running jobs, % of the cluster", x_unit="h",
                                     y_unit="%"))
    for p in policies:
        bars = []
        for i, (team, t) in enumerate(sorted(p["teams"].items())):
            color = _COLORS[i % len(_COLORS)]
            bars.append(svg.Bar(f"{team}: share", 100 * t["share"], color,
                                f"{team}: {100 * t['share']:.1f}% of GPU-hours"))
            bars.append(svg.Bar(f"{team}: entitlement", 100 * t["entitlement"], "#a0aec0",
                                f"{team}: entitled to {100 * t['entitlement']:.1f}%"))
        waits = [svg.Bar(f"{team}: p99", t["wait_p99_min"] or 0.0, _COLORS[i % len(_COLORS)],
                         f"p50 {_fmt(t['wait_p50_min'])} min, p99 {_fmt(t['wait_p99_min'])} min")
                 for i, (team, t) in enumerate(sorted(p["teams"].items()))]
        team_rows = "".join(
            f"<tr><th scope=row>{escape(team)}</th><td>{t['jobs']}</td><td>{t['finished']}</td>"
            f"<td>{_fmt(t['wait_p50_min'])}</td><td>{_fmt(t['wait_p99_min'])}</td><td>{_fmt(t['gpu_hours'])}</td>"
            f"<td>{100 * t['share']:.1f}%</td><td>{100 * t['entitlement']:.1f}%</td><td>{t['pods_preempted']}</td>"
            f"<td>{t['preemption_events']}</td></tr>"
            for team, t in sorted(p["teams"].items()))
        sections.append(
            f"<h2>Policy {escape(p['policy'])}</h2><p>{escape(p.get('description', ''))}</p>"
            + "".join(f"<p class=note>Deadline passed: {escape(n)}.</p>" for n in p.get("notes", []))
            + "<table><tr><th>team</th><th>jobs</th><th>finished</th><th>wait p50 (min)</th><th>wait p99 (min)</th>"
            "<th>GPU-hours</th><th>share</th><th>entitlement</th><th>pods preempted</th><th>Preempted events</th>"
            f"</tr>{team_rows}</table>"
            + svg.bar_chart(bars, title=f"{p['policy']}: share of GPU-hours vs entitlement", unit="%")
            + svg.bar_chart(waits, title=f"{p['policy']}: queue wait p99 per team", unit=" min"))
    declared = (f"Time compression {doc['compression']:g}× (one wall second plays {doc['compression']:g} trace "
                f"seconds); {doc['nodes']} simulated nodes × 8 {escape(doc['gpu_model'])} = {doc['total_gpus']} GPUs; "
                f"Kubernetes {escape(doc.get('kubernetes', ''))}.")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aiconform simulate</title>
<style>
body {{ font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2rem auto; max-width: 1100px;
       padding: 0 1rem; color: #1a202c; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #cbd5e0; padding: .3rem .6rem; text-align: right; }}
th[scope=row] {{ text-align: left; font-weight: normal; }}
.note {{ color: #4a5568; font-size: .9rem; }}
</style></head><body>
<h1>Utilization and fairness simulation</h1>
<p>Trace: {escape(str(trace['source']))} (seed {escape(str(trace.get('seed')))}): {trace['jobs']} jobs,
{trace['pods']} pods, {trace['gpu_hours_asked']} GPU-hours asked, teams {escape(', '.join(trace['teams']))}.</p>
<p>{declared}</p>
<p class="note">Every figure comes from what the cluster did, read back from the API's watch of the pods (bound,
running, finished, stopped) and its Events; the real kube-scheduler, Job controller and admission decided every
placement and preemption.  KWOK played running time: a pod completes its job's duration (compressed) after it
starts.  What is simulated: the nodes and GPUs.  The controllers' own timers are their production values divided by
the same compression, clamped where the component accepts no smaller value (a clamped timer lasts longer in trace
time than in production):</p>
{_timers(doc.get("timers", []), doc['compression'])}
<h2>Policies compared</h2>
<table><tr><th></th>{head}</tr>{''.join(body)}</table>
{''.join(sections)}
</body></html>
"""
