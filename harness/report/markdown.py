"""``report.md``: a short Markdown summary for CI job pages (e.g. ``$GITHUB_STEP_SUMMARY``).

A title line with the run's headline (passed / failed / partial: N of M MUSTs evidenced), one counts line, every
CNCF MUST of the checklist evidenced or not, the verdict per requirement, and the failed and errored checks with
their reasons.  Passed and skipped checks are only counted.
"""

from __future__ import annotations

from harness.report.model import RunResults, Status
from harness.report.verdicts import MustCoverage, Overall, headline, summarize

MAX_REASON_CHARS = 300
"""Longer reasons are cut (the HTML report and junit.xml keep them whole)."""

_ICON = {"pass": "✅", "partial": "🟡", "fail": "❌", "error": "⚠️", "skipped": "⏭️"}
_HEADLINE_ICON = {Overall.PASSED: "✅", Overall.PARTIAL: "🟡", Overall.FAILED: "❌"}


def _cell(text: str) -> str:
    """Text safe inside a table cell or list item: one line, pipes and backticks neutralised."""
    return " ".join(text.split()).replace("|", "\\|").replace("`", "'")


def counts_line(results: RunResults) -> str:
    """``12 checks: 10 passed, 1 failed, 0 errored, 1 skipped in 42.0 s``."""
    counts = results.counts()
    total = sum(c.duration_s for c in results.checks)
    return (
        f"{len(results.checks)} checks: {counts[Status.PASSED]} passed, {counts[Status.FAILED]} failed, "
        f"{counts[Status.ERROR]} errored, {counts[Status.SKIPPED]} skipped in {total:.1f} s"
    )


def _musts(cov: MustCoverage) -> list[str]:
    """The CNCF MUSTs of the run's checklist: which a check evidenced, which none did."""
    lines = [f"**CNCF MUSTs (checklist {cov.checklist_label}): {cov.line}.**"]
    if cov.checklist_note:
        lines.append(f"{cov.checklist_note}.")
    if cov.unevidenced:
        lines.append("Not evidenced (no check passed or failed): " + ", ".join(f"`{i}`" for i in cov.unevidenced) + ".")
    return [*lines, ""]


def render_markdown(results: RunResults) -> str:
    """The ``report.md`` text."""
    info = results.info
    head = headline(results)
    overall = f"{_HEADLINE_ICON[head.verdict]} {head.text}"
    lines = [
        f"## aiconform conformance: {overall}",
        "",
        f"Run `{_cell(info.run_id)}` · provider `{_cell(info.provider)}` · tier {info.tier.value} · "
        f"profile `{_cell(info.profile or '-')}` · Kubernetes {_cell(info.kubernetes_version or '-')} · "
        f"aiconform {_cell(info.harness_version)}" + (f" · seed `{info.seed}`" if info.seed is not None else ""),
        "",
        f"**{counts_line(results)}**",
        "",
        *_musts(head.coverage),
    ]
    summaries = summarize(results)
    if summaries:
        lines += [
            "| Requirement | Level | Verdict | Passed | Failed | Errors | Skipped |",
            "|:--|:--:|:--|--:|--:|--:|--:|",
        ]
        for s in summaries:
            level = s.level.value if s.level else "-"
            lines.append(
                f"| `{_cell(s.requirement_id)}` | {level} | {_ICON[s.verdict.value]} {s.verdict.value} | "
                f"{s.count(Status.PASSED)} | {s.count(Status.FAILED)} | {s.count(Status.ERROR)} | "
                f"{s.count(Status.SKIPPED)} |"
            )
        lines.append("")
    bad = [c for c in results.checks if c.status in (Status.FAILED, Status.ERROR)]
    if bad:
        lines += ["### Failed and errored checks", ""]
        for c in bad:
            req = f" ({_cell(c.requirement)})" if c.requirement else ""
            reason = _cell(c.reason) or "no reason recorded"
            if len(reason) > MAX_REASON_CHARS:
                reason = reason[: MAX_REASON_CHARS - 1] + "…"
            lines.append(f"- **{c.status.value}** `{_cell(c.id)}`{req}: {reason}")
        lines.append("")
    if info.facts:
        lines += ["### Cluster facts", "", "| Fact | Present | Source | Evidence |", "|:--|:--:|:--|:--|",
                  *(f"| `{_cell(f.name)}` | {'yes' if f.present else 'no'} | {f.source} | {_cell(f.evidence)} |"
                    for f in info.facts), ""]
    lines.append(f"Tier {info.tier.value}: {info.tier.note}. Full report: `report.html`.")
    return "\n".join(lines) + "\n"
