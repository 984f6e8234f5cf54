"""Conformance results and reports: the results model (``results.json``, versioned), the collector the pytest
plugin feeds, the writers (junit.xml, report.html, report.md, the CNCF submission folder cncf/v1.X/<product>/), the diff of two
runs, the CNCF requirement catalogue and the published checklists, and the program's submission rules
(``cncf_validate``).

This package only reads and writes files; it never talks to a cluster and never decides a check's outcome.
The public surface is what this module exports; submodules are private layers below it.
"""

from harness.report.collector import ResultsCollector
from harness.report.diff import DiffResult, diff, diff_main, render_diff
from harness.report.model import (
    RESULTS_FILE,
    SCHEMA_VERSION,
    CheckResult,
    ClusterFact,
    ReportError,
    RunInfo,
    RunResults,
    Status,
    Tier,
    load_results,
    save_results,
)
from harness.report.requirements import CATALOG, Category, Level, Requirement, is_known
from harness.report.verdicts import RequirementSummary, Verdict, summarize
from harness.report.writers import render_main, write_all

__all__ = [
    "CATALOG",
    "RESULTS_FILE",
    "SCHEMA_VERSION",
    "Category",
    "CheckResult",
    "ClusterFact",
    "DiffResult",
    "Level",
    "ReportError",
    "Requirement",
    "RequirementSummary",
    "ResultsCollector",
    "RunInfo",
    "RunResults",
    "Status",
    "Tier",
    "Verdict",
    "diff",
    "diff_main",
    "is_known",
    "load_results",
    "render_diff",
    "render_main",
    "save_results",
    "summarize",
    "write_all",
]
