"""The selftest's own report: the power table (requirement → mutation → owning check → verdict, with the reason) as
``selftest.json``, ``selftest.md`` and ``report.html`` in the selftest's report directory; and the ``--list`` text.

Each platform's full ``aiconform run`` report stays in its own sub-directory (``<mutation>/run``), linked from here.
Owns rendering only; nothing here runs or grades.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from harness.bins import load_versions
from harness.report.requirements import Level, cncf_checklist, lookup
from harness.selftest.model import MutationResult, Owner, SelftestSettings, owners_of, why_not_here
from harness.selftest.mutations import MUTATIONS, Mutation

LISTED_SHOULDS = ("gpu_sharing",)
"""SHOULDs ``--list`` always shows, covered or not."""


def must_ids() -> list[str]:
    """The MUST ids of the CNCF checklist for the pinned default Kubernetes version."""
    version = load_versions().kubernetes_default
    return [r.id for r in cncf_checklist(version) if r.level == Level.MUST]


def _level(requirement: str) -> str:
    req = lookup(requirement)
    if req is None:
        return "?"
    return "MUST" if requirement in must_ids() else req.level.value


def _order(requirements: Sequence[str]) -> list[str]:
    musts = must_ids()
    return sorted(dict.fromkeys(requirements), key=lambda r: (r not in musts, musts.index(r) if r in musts else 0, r))


def render_list(owners: Sequence[Owner], max_tier: str) -> str:
    """``aiconform selftest --list``: every MUST (and the listed SHOULDs), its mutations, their owning checks and
    whether they can run here."""

    lines: list[str] = []
    wanted = _order([*must_ids(), *LISTED_SHOULDS, *(r for m in MUTATIONS for r in m.requirements)])
    for req in wanted:
        muts = [m for m in MUTATIONS if req in m.requirements]
        lines.append(f"{req} ({_level(req)}): {len(muts)} mutation(s)" + ("" if muts else "  <- NONE"))
        for m in muts:
            mine = _owners_for(req, m, owners_of(m, owners))
            why = why_not_here(m, owners_of(m, owners), max_tier)
            lines.append(f"  {m.id:<30} tier {m.tier}  {'runs here' if not why else why}")
            lines.append(f"    mistake: {m.mistake}")
            base = m.base + (f" ({'; '.join(e.describe() for e in m.base_edits)})" if m.base_edits else "")
            lines.append(f"    profile: {base}; " + "; ".join(e.describe() for e in m.edits))
            for o in mine:
                lines.append(f"    check:   {o.id}")
            if m.note:
                lines.append(f"    note:    {m.note}")
    return "\n".join(lines)


def _owners_for(req: str, m: Mutation, owners: Sequence[Owner]) -> list[Owner]:
    """The owning checks of ``m`` listed under requirement ``req``: those that evidence it, or (under the mutation's
    own requirement) all of them when none does."""
    mine = [o for o in owners if o.requirement == req]
    return mine or (list(owners) if req == m.requirement else [])


def power_rows(results: Sequence[MutationResult]) -> list[dict[str, object]]:
    """One row per (requirement, mutation, owning check); a mutation that did not run has one row without a check."""
    rows: list[dict[str, object]] = []
    for req in _order([r for res in results for r in res.mutation.requirements]):
        for res in (r for r in results if req in r.mutation.requirements):
            m = res.mutation
            base = {"requirement": req, "level": _level(req), "mutation": m.id, "mistake": m.mistake,
                    "change": [e.describe() for e in m.edits], "tier": m.tier,
                    "mutation_verdict": str(res.verdict), "report": res.report_dir}
            owners = _owners_for(req, m, res.owners)
            grades = {g.check: g for g in res.checks}
            if not grades:
                rows.append({**base, "check": ", ".join(o.id for o in owners) or "-",
                             "verdict": str(res.verdict), "reason": res.why})
                continue
            for o in owners:
                g = grades.get(o.id)
                if g is not None:
                    rows.append({**base, "check": g.check, "verdict": str(g.verdict), "reason": g.reason,
                                 "check_status": g.status})
    return rows


def write_report(report_dir: Path, results: Sequence[MutationResult], *, baselines: Mapping[str, str],
                 started: datetime, settings: SelftestSettings) -> None:
    rows = power_rows(results)
    counts = {v: sum(1 for r in results if str(r.verdict) == v) for v in ("caught", "missed", "error", "not run")}
    doc = {
        "kind": "aiconform-selftest",
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "selection": {"requirements": list(settings.requirements), "checks": list(settings.checks),
                      "mutations": list(settings.mutations), "suite": settings.suite, "max_tier": settings.max_tier,
                      "baseline": settings.baseline, "musts_only": settings.musts_only},
        "summary": counts,
        "baselines": dict(baselines),
        "mutations": [
            {"id": r.mutation.id, "requirements": list(r.mutation.requirements), "verdict": str(r.verdict),
             "why": r.why, "duration_s": round(r.duration_s, 1), "report": r.report_dir,
             "checks": [{"check": g.check, "verdict": str(g.verdict), "status": g.status, "reason": g.reason}
                        for g in r.checks]}
            for r in results
        ],
        "power_table": rows,
    }
    (report_dir / "selftest.json").write_text(json.dumps(doc, indent=1))
    (report_dir / "selftest.md").write_text(_markdown(rows, counts))
    (report_dir / "report.html").write_text(_html(rows, counts, report_dir))


def _summary(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "nothing ran"


def _markdown(rows: Sequence[Mapping[str, object]], counts: Mapping[str, int]) -> str:
    out = ["# aiconform selftest: power table", "", f"Mutations: {_summary(counts)}.", "",
           "| requirement | mutation | check | verdict | reason |", "|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r['requirement']} ({r['level']})", f"`{r['mutation']}`: {r['mistake']}", str(r["check"]),
                 f"**{r['verdict']}**", str(r["reason"])]
        out.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(out) + "\n"


_COLOURS = {"caught": "#1a7f37", "missed": "#cf222e", "error": "#9a6700", "not run": "#57606a"}


def _html(rows: Sequence[Mapping[str, object]], counts: Mapping[str, int], report_dir: Path) -> str:
    def e(v: object) -> str:
        return html.escape(str(v))

    body = []
    for r in rows:
        link = ""
        if r.get("report"):
            rel = Path(str(r["report"])) / "report.html"
            try:
                rel = rel.relative_to(report_dir)
            except ValueError:
                pass
            link = f' <a href="{e(rel)}">run report</a>'
        colour = _COLOURS.get(str(r["verdict"]), "#000")
        body.append(
            f"<tr><td>{e(r['requirement'])} <small>{e(r['level'])}</small></td>"
            f"<td><code>{e(r['mutation'])}</code><br><small>{e(r['mistake'])}</small><br>"
            f"<small><code>{e('; '.join(map(str, r['change'])))}</code></small></td>"  # type: ignore[call-overload]
            f"<td><code>{e(r['check'])}</code></td>"
            f"<td style=\"color:{colour};font-weight:bold\">{e(r['verdict'])}</td>"
            f"<td>{e(r['reason'])}{link}</td></tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aiconform selftest</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}}</style></head>
<body><h1>aiconform selftest: power table</h1>
<p>Each mutation is a platform a vendor could ship by mistake; each check that names it must end <em>failed</em> on
it (caught).  Missed: the check passed or skipped the broken platform (a blind spot).  Error: a grading defect (the
check errored, or does not pass on the unmutated platform).  Mutations: {e(_summary(counts))}.</p>
<table><tr><th>requirement</th><th>mutation</th><th>check</th><th>verdict</th><th>reason</th></tr>
{chr(10).join(body)}
</table></body></html>
"""
