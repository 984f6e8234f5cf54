"""``report.html``: one self-contained page (inline CSS and SVG, no scripts, no external fetches).

Order: run metadata and the run's headline (passed / failed / partial: N of M MUSTs evidenced); every CNCF MUST
of the run's checklist, evidenced or not; verdict per requirement; charts (duration per check, and one per
named timing such as ``time_to_schedule_s``); every check grouped by requirement with status, duration, reason
and evidence.  Every value from the results is passed through ``html.escape``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any

import harness
from harness.report.model import SCHEMA_VERSION, SERIES_KIND, CheckResult, RunResults, Status
from harness.report.svg import Bar, bar_chart, line_chart
from harness.report.verdicts import Headline, MustCoverage, Overall, RequirementSummary, headline, summarize

MAX_CHART_BARS = 30
"""Charts show the slowest this many checks; the rest are counted in a note."""
MAX_EVIDENCE_CHARS = 20_000
"""Longer evidence values are cut in the page (results.json keeps them whole)."""

STATUS_COLORS = {
    Status.PASSED: "#16a34a",
    Status.FAILED: "#dc2626",
    Status.ERROR: "#9333ea",
    Status.SKIPPED: "#9ca3af",
}

_CSS = """
:root { --fg:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --card:#ffffff; --accent:#1e3a8a; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg); font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
  "Helvetica Neue",Arial,sans-serif; }
code, pre, .mono { font-family: ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;
  font-size:12.5px; }
header.top { background:linear-gradient(120deg,#0f172a,#1e3a8a); color:#f8fafc; padding:24px 40px 20px; }
header.top .brand { font-size:12px; letter-spacing:.14em; text-transform:uppercase; opacity:.75; }
header.top h1 { margin:4px 0 14px; font-size:26px; font-weight:650; display:flex; align-items:center; gap:14px; }
.meta { display:grid; grid-template-columns:repeat(auto-fill,minmax(190px,1fr)); gap:8px 24px; margin:0; }
.meta div { min-width:0; }
.meta dt { font-size:11px; text-transform:uppercase; letter-spacing:.08em; opacity:.7; }
.meta dd { margin:0; font-weight:550; overflow-wrap:anywhere; }
.tiernote { margin:14px 0 0; font-size:13px; opacity:.85; }
main { max-width:1180px; margin:0 auto; padding:24px 40px 40px; }
section { margin-bottom:28px; }
h2 { font-size:17px; margin:0 0 10px; color:var(--accent); }
h3 { font-size:15px; margin:18px 0 8px; }
.tiles { display:grid; grid-template-columns:repeat(6,1fr); gap:12px; }
.tile { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.tile .n { font-size:24px; font-weight:700; }
.tile .l { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.06em; }
.tile.passed .n { color:#15803d; } .tile.failed .n { color:#b91c1c; } .tile.error .n { color:#7e22ce; }
.tile.skipped .n { color:#4b5563; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; overflow:hidden; }
table { border-collapse:collapse; width:100%; }
table.req th, table.req td { padding:9px 12px; border-bottom:1px solid var(--line); text-align:left;
  vertical-align:top; }
table.req th { background:#f1f5f9; font-size:12px; text-transform:uppercase; letter-spacing:.05em;
  color:#475569; }
table.req tr:last-child td { border-bottom:none; }
table.req td.num { text-align:right; font-variant-numeric:tabular-nums; width:56px; }
table.req .desc { color:var(--muted); font-size:12.5px; }
table.req td.cat { font-size:13px; color:#334155; }
table.req a { color:inherit; text-decoration:none; }
.badge { display:inline-block; padding:1px 9px; border-radius:999px; font-size:11.5px; font-weight:650;
  letter-spacing:.04em; text-transform:uppercase; border:1px solid transparent; white-space:nowrap; }
.b-pass, .b-passed { background:#dcfce7; color:#166534; border-color:#86efac; }
.b-fail, .b-failed { background:#fee2e2; color:#991b1b; border-color:#fca5a5; }
.b-partial { background:#fef3c7; color:#92400e; border-color:#fcd34d; }
.b-error { background:#f3e8ff; color:#6b21a8; border-color:#d8b4fe; }
.b-skipped { background:#f3f4f6; color:#374151; border-color:#d1d5db; }
header.top .badge { font-size:13px; padding:3px 12px; }
.level { font-size:11px; font-weight:700; color:#475569; }
.level.MUST { color:#b91c1c; }
.chart-card { padding:14px 18px 8px; margin-bottom:14px; }
.chart-card h3 { margin:0 0 6px; }
.note { color:var(--muted); font-size:12.5px; margin:4px 0 8px; }
.check { background:var(--card); border:1px solid var(--line); border-left:4px solid #d1d5db;
  border-radius:8px; padding:10px 14px; margin-bottom:8px; }
.check.passed { border-left-color:#22c55e; } .check.failed { border-left-color:#ef4444; }
.check.error { border-left-color:#a855f7; } .check.skipped { border-left-color:#9ca3af; }
.check-head { display:flex; align-items:center; gap:10px; }
.check-head .name { font-weight:600; overflow-wrap:anywhere; }
.check-head .dur { margin-left:auto; color:var(--muted); font-variant-numeric:tabular-nums; white-space:nowrap; }
.check-sub { color:var(--muted); font-size:12px; margin-top:2px; overflow-wrap:anywhere; }
.reason { margin:6px 0 2px; padding:6px 10px; background:#fff7ed; border-radius:6px; color:#7c2d12;
  white-space:pre-wrap; overflow-wrap:anywhere; }
.check.skipped .reason { background:#f3f4f6; color:#374151; }
.check.error .reason { background:#faf5ff; color:#581c87; }
.chips { margin-top:6px; display:flex; flex-wrap:wrap; gap:6px; }
.chip { background:#eef2ff; color:#3730a3; border-radius:6px; padding:0 8px; font-size:12px; }
details { margin-top:6px; }
details summary { cursor:pointer; color:#334155; font-size:12.5px; font-weight:600; }
table.kv { margin-top:6px; width:auto; max-width:100%; }
table.kv th { text-align:left; font-weight:550; color:#475569; padding:3px 16px 3px 0; vertical-align:top;
  white-space:nowrap; font-size:12.5px; }
table.kv td { padding:3px 0; overflow-wrap:anywhere; }
pre { margin:0; background:#f8fafc; border:1px solid var(--line); border-radius:6px; padding:8px 10px;
  max-height:320px; overflow:auto; white-space:pre-wrap; overflow-wrap:anywhere; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:0 0 28px; }
@media print { header.top { background:#1e3a8a; -webkit-print-color-adjust:exact; print-color-adjust:exact; }
  details { display:block; } }
"""


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _e(value: object) -> str:
    """HTML-escape any value, dropping control characters HTML forbids."""
    return escape(_CONTROL.sub("", str(value)), quote=True)


def _seconds(value: float) -> str:
    if value >= 60:
        minutes, seconds = divmod(value, 60)
        return f"{int(minutes)} m {int(seconds):02d} s"
    return f"{value:.2f} s"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if value else "—"


def _anchor(prefix: str, text: str) -> str:
    return prefix + "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_.-") else "-" for ch in text)


_HEADLINE_BADGE = {Overall.PASSED: "pass", Overall.PARTIAL: "partial", Overall.FAILED: "fail"}


def _header(results: RunResults, head: Headline) -> str:
    info = results.info
    overall = (_HEADLINE_BADGE[head.verdict], head.text)
    wall = (info.finished_at - info.started_at).total_seconds() if info.finished_at else None
    fields = [
        ("Run", info.run_id),
        ("Provider", info.provider),
        ("Tier", info.tier.value),
        ("Profile", info.profile or "—"),
        ("Kubernetes", info.kubernetes_version or "—"),
        ("aiconform", info.harness_version),
        ("Started", _when(info.started_at)),
        ("Finished", _when(info.finished_at)),
        ("Wall time", _seconds(wall) if wall is not None else "—"),
        ("Hypothesis seed", info.seed if info.seed is not None else "—"),
    ]
    meta = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in fields)
    return (
        '<header class="top"><div class="brand">aiconform · Kubernetes AI conformance</div>'
        f'<h1>Conformance report <span class="badge b-{overall[0]}">{overall[1]}</span></h1>'
        f'<dl class="meta">{meta}</dl>'
        f'<p class="tiernote">Tier {_e(info.tier.value)}: {_e(info.tier.note)}.</p></header>'
    )


def _tiles(results: RunResults) -> str:
    counts = results.counts()
    total = sum(c.duration_s for c in results.checks)
    tiles = [("", len(results.checks), "checks")]
    tiles += [(s.value, counts[s], s.value) for s in (Status.PASSED, Status.FAILED, Status.ERROR, Status.SKIPPED)]
    html = "".join(f'<div class="tile {cls}"><div class="n">{n}</div><div class="l">{_e(label)}</div></div>'
                   for cls, n, label in tiles)
    html += f'<div class="tile"><div class="n">{_e(_seconds(total))}</div><div class="l">check time</div></div>'
    return f'<section class="tiles">{html}</section>'


def _musts_table(cov: MustCoverage) -> str:
    """Every CNCF MUST of the run's checklist: evidenced (a check passed or failed) or not."""
    rows = []
    for m in cov.musts:
        req = m.requirement
        shown = ('<span class="badge b-pass">evidenced</span>' if m.evidenced
                 else '<span class="badge b-skipped">not evidenced</span>')
        verdict = (f'<span class="badge b-{m.verdict.value}">{_e(m.verdict.value)}</span>' if m.verdict
                   else '<span class="desc">no check ran</span>')
        checks = len(m.summary.checks) if m.summary else 0
        name = (f'<a class="mono" href="#{_anchor("req-", req.id)}">{_e(req.id)}</a>' if m.summary
                else f'<span class="mono">{_e(req.id)}</span>')
        rows.append(f'<tr><td>{name}<div class="desc">{_e(req.description)}</div></td>'
                    f'<td class="cat">{_e(req.category.label)}</td><td>{shown}</td><td>{verdict}</td>'
                    f'<td class="num">{checks or ""}</td></tr>')
    return (
        f'<section id="musts"><h2>CNCF MUSTs (checklist {_e(cov.checklist_label)}): {_e(cov.line)}</h2>'
        + (f'<p class="note">{_e(cov.checklist_note)}.</p>' if cov.checklist_note else "") +
        '<div class="card"><table class="req"><thead><tr><th>Requirement</th><th>Category</th><th>Evidence</th>'
        f'<th>Verdict</th><th class="num">Checks</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
        '<p class="note">A MUST is evidenced when a check that names it passed or failed; skipped and errored '
        "checks show nothing.  The headline reads passed only when every MUST is evidenced and no check failed "
        "or errored.</p></section>"
    )


def _requirements_table(summaries: list[RequirementSummary]) -> str:
    rows = []
    for s in summaries:
        req = s.requirement
        desc = f'<div class="desc">{_e(req.description)}</div>' if req else ""
        category = _e(req.category.label) if req else "—"
        level = f'<span class="level {_e(req.level.value)}">{_e(req.level.value)}</span>' if req else "—"
        counts = "".join(f'<td class="num">{s.count(st) or ""}</td>'
                         for st in (Status.PASSED, Status.FAILED, Status.ERROR, Status.SKIPPED))
        rows.append(
            f'<tr><td><a class="mono" href="#{_anchor("req-", s.requirement_id)}">{_e(s.requirement_id)}</a>'
            f'{desc}</td><td class="cat">{category}</td><td>{level}</td>'
            f'<td><span class="badge b-{s.verdict.value}">{_e(s.verdict.value)}</span></td>{counts}</tr>'
        )
    if not rows:
        rows.append('<tr><td colspan="8" class="desc">No checks ran.</td></tr>')
    return (
        '<section><h2>Verdict per requirement</h2><div class="card"><table class="req"><thead><tr>'
        "<th>Requirement</th><th>Category</th><th>Level</th><th>Verdict</th>"
        '<th class="num">Pass</th><th class="num">Fail</th><th class="num">Error</th><th class="num">Skip</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="note">Verdict rule: fail = a check failed and none passed; partial = some failed, some passed; '
        "error = none failed but the infrastructure broke (inconclusive); pass = some passed, none failed or "
        "errored; skipped = all skipped.</p></section>"
    )


def _facts_table(results: RunResults) -> str:
    """The cluster's facts: present or not, detected or declared, and what was read (none in older results)."""
    facts = results.info.facts
    if not facts:
        return ""
    rows = "".join(
        f'<tr><td class="mono">{_e(f.name)}</td><td>{"yes" if f.present else "no"}</td><td>{_e(f.source)}</td>'
        f'<td class="desc">{_e(f.evidence)}</td></tr>' for f in facts)
    return ('<section><h2>Cluster facts</h2><div class="card"><table class="req"><thead><tr>'
            "<th>Fact</th><th>Present</th><th>Source</th><th>Evidence</th>"
            f"</tr></thead><tbody>{rows}</tbody></table></div></section>")


def _chart(title: str, values: list[tuple[CheckResult, float]], note: str = "") -> str:
    ordered = sorted(values, key=lambda item: item[1], reverse=True)
    shown = ordered[:MAX_CHART_BARS]
    bars = [
        Bar(label=c.name, value=v, color=STATUS_COLORS[c.status],
            tooltip=f"{c.id} ({c.status.value}): {v:.3f} s")
        for c, v in shown
    ]
    hidden = len(ordered) - len(shown)
    more = f" The {hidden} fastest are not shown." if hidden else ""
    legend = " ".join(
        f'<span style="color:{color}">■</span> {_e(status.value)}' for status, color in STATUS_COLORS.items()
    )
    return (
        f'<div class="card chart-card"><h3>{_e(title)}</h3>'
        f'<p class="note">{_e(note)}{_e(more)} Bar colour is the check status: {legend}</p>'
        f"{bar_chart(bars, title=title)}</div>"
    )


def _charts(results: RunResults) -> str:
    if not results.checks:
        return ""
    parts = [_chart("Duration per check", [(c, c.duration_s) for c in results.checks],
                    "Wall time of each check, slowest first.")]
    keys: list[str] = []
    for check in results.checks:
        keys += [k for k in check.timings if k not in keys]
    keys.sort(key=lambda k: (k != "time_to_schedule_s", k))
    for key in keys:
        values = [(c, c.timings[key]) for c in results.checks if key in c.timings]
        title = "Time to schedule per check" if key == "time_to_schedule_s" else f"{key} per check"
        note = ("From pod creation to the scheduler's binding, as the check measured it."
                if key == "time_to_schedule_s" else "")
        parts.append(_chart(title, values, note))
    return f'<section id="timings"><h2>Timings</h2>{"".join(parts)}</section>'


def is_series(value: Any) -> bool:
    """An evidence value recorded with ``Evidence.series`` (drawn as a line chart)."""
    return isinstance(value, dict) and value.get(SERIES_KIND) == "series" and isinstance(value.get("lines"), dict)


def _series_html(value: dict[str, Any]) -> str:
    lines = {str(k): [tuple(p) for p in v if isinstance(p, list) and len(p) == 2]
             for k, v in value["lines"].items() if isinstance(v, list)}
    return line_chart(lines, title=str(value.get("title", "")), x_unit=str(value.get("x", "")),
                      y_unit=str(value.get("y", "")))


def _value_html(value: Any) -> str:
    if isinstance(value, str) and "\n" not in value and len(value) <= 160:
        return f"<code>{_e(value)}</code>"
    if value is None or isinstance(value, bool | int | float):
        return f"<code>{_e(json.dumps(value))}</code>"
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if not isinstance(value, str) and len(text) <= 160:
        return f"<code>{_e(json.dumps(value, ensure_ascii=False))}</code>"
    if len(text) > MAX_EVIDENCE_CHARS:
        cut = len(text) - MAX_EVIDENCE_CHARS
        text = text[:MAX_EVIDENCE_CHARS] + f"\n… {cut} more characters in results.json"
    return f"<pre>{_e(text)}</pre>"


def _check(check: CheckResult) -> str:
    st = check.status.value
    sub = [_e(check.id), f"suite {_e(check.suite or '—')}", f"needs tier {_e(check.tier.value)}"]
    reason = f'<div class="reason">{_e(check.reason)}</div>' if check.reason else ""
    chips = "".join(f'<span class="chip">{_e(k)} = {_e(f"{v:.3f}")} s</span>' for k, v in check.timings.items())
    evidence = ""
    charts = "".join(f'<div class="card chart-card"><h3>{_e(v.get("title") or k)}</h3>{_series_html(v)}</div>'
                     for k, v in check.evidence.items() if is_series(v))
    if check.evidence:
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_value_html(v)}</td></tr>" for k, v in check.evidence.items()
                       if not is_series(v))
        opened = " open" if check.status in (Status.FAILED, Status.ERROR) else ""
        evidence = (f"<details{opened}><summary>Evidence ({len(check.evidence)})</summary>"
                    f'<table class="kv">{rows}</table></details>')
    return (
        f'<article class="check {st}" id="{_anchor("check-", check.id)}"><div class="check-head">'
        f'<span class="badge b-{st}">{_e(st)}</span><span class="name">{_e(check.name)}</span>'
        f'<span class="dur">{_e(_seconds(check.duration_s))}</span></div>'
        f'<div class="check-sub mono">{" · ".join(sub)}</div>{reason}'
        f'{f"<div class=chips>{chips}</div>" if chips else ""}{charts}{evidence}</article>'
    )


def _checks(summaries: Iterable[RequirementSummary]) -> str:
    parts = []
    for s in summaries:
        parts.append(
            f'<h3 id="{_anchor("req-", s.requirement_id)}"><span class="mono">{_e(s.requirement_id)}</span> '
            f'<span class="badge b-{s.verdict.value}">{_e(s.verdict.value)}</span></h3>'
        )
        parts += [_check(c) for c in s.checks]
    return f'<section id="checks"><h2>Checks</h2>{"".join(parts)}</section>' if parts else ""


def render_html(results: RunResults) -> str:
    """The ``report.html`` text."""
    summaries = summarize(results)
    head = headline(results)
    title = f"aiconform report {results.info.run_id} — {head.text}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"{_header(results, head)}<main>{_tiles(results)}{_musts_table(head.coverage)}"
        f"{_requirements_table(summaries)}{_facts_table(results)}"
        f"{_charts(results)}{_checks(summaries)}</main>"
        f"<footer>Generated by aiconform {_e(harness.__version__)} · results schema_version {SCHEMA_VERSION} · "
        "full data in results.json and junit.xml next to this file; the CNCF submission in cncf/</footer></body></html>\n"
    )
