"""The files of a report directory: junit.xml, report.html, report.md, the CNCF submission folder."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.report import ReportError, RunResults, Status, load_results, render_main, save_results, write_all
from harness.report.html_report import render_html
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.report.requirements import Level, cncf_checklist
from harness.report.sample import sample_results
from harness.report.submission import ADDITIONS_FILE, PRODUCT_FILE, Submission, build_submission
from harness.report.verdicts import headline
from harness.report.writers import render_files

HOSTILE = "<script>alert('x')</script>"


def _with_hostile_evidence() -> RunResults:
    results = sample_results()
    first = results.checks[0]
    hostile = dataclasses.replace(
        first, id="scenarios/test_x.py::test_<b>", name="test_<b>", status=Status.FAILED, reason=f"bad {HOSTILE}",
        evidence={"html": HOSTILE, "nested": {"k": HOSTILE, "list": list(range(40))}, "ctl": "a\x01b"},
    )
    return dataclasses.replace(results, checks=results.checks + (hostile,))


def test_junit_parses_and_counts_match() -> None:
    results = _with_hostile_evidence()
    root = ET.fromstring(render_junit(results))
    counts = results.counts()
    assert root.tag == "testsuites"
    assert int(root.get("tests", "")) == len(results.checks)
    assert int(root.get("failures", "")) == counts[Status.FAILED]
    assert int(root.get("errors", "")) == counts[Status.ERROR]
    assert int(root.get("skipped", "")) == counts[Status.SKIPPED]
    cases = root.findall("testsuite/testcase")
    assert len(cases) == len(results.checks)
    assert len(root.findall("testsuite/testcase/failure")) == counts[Status.FAILED]
    assert len(root.findall("testsuite/testcase/error")) == counts[Status.ERROR]
    assert len(root.findall("testsuite/testcase/skipped")) == counts[Status.SKIPPED]
    assert sum(int(s.get("tests", "")) for s in root.findall("testsuite")) == len(results.checks)
    gang = next(c for c in cases if c.get("name") == "test_gang_all_or_nothing")
    props = {p.get("name"): p.get("value") for p in gang.findall("properties/property")}
    assert props["requirement"] == "gang_scheduling" and props["tier"] == "S"
    assert gang.get("classname") == "scenarios.test_scheduling"
    suite_props = {p.get("name"): p.get("value") for p in root.findall("testsuite[1]/properties/property")}
    assert suite_props["run_id"] == results.info.run_id and suite_props["tier"] == "S"
    hostile = next(c for c in cases if c.get("name") == "test_<b>")
    assert HOSTILE in (hostile.findtext("system-out") or "")


def test_html_is_self_contained_and_has_charts() -> None:
    page = render_html(sample_results())
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert page.count("<svg") == 2  # duration per check, time to schedule per check
    assert "Time to schedule per check" in page
    assert "Verdict per requirement" in page
    # requirement table sits above the checks
    assert page.index("Verdict per requirement") < page.index('id="checks"')
    assert 'class="badge b-partial">partial' in page


def test_html_escapes_evidence_reason_and_names() -> None:
    page = render_html(_with_hostile_evidence())
    assert HOSTILE not in page
    assert "test_<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "test_&lt;b&gt;" in page


def test_markdown_summarises_verdicts_and_failures() -> None:
    md = render_markdown(sample_results())
    assert md.startswith("## aiconform conformance: ❌ failed")
    assert "**16 checks: 10 passed, 2 failed, 1 errored, 3 skipped in 244.3 s**" in md
    assert "| `gang_scheduling` | MUST | 🟡 partial | 1 | 1 | 0 | 0 |" in md
    assert "| `accelerator_metrics` | MUST | ⏭️ skipped | 0 | 0 | 0 | 1 |" in md
    assert "- **failed** `scenarios/test_scheduling.py::test_quota_counts_mig_slices` (aiconform.quota): pod" in md
    assert "- **error** `scenarios/test_autoscaling.py::test_hpa_scales_on_custom_metric`" in md
    assert "test_gpu_pod_fits" not in md  # passed checks are only counted


def test_markdown_of_a_clean_run_has_no_failure_section() -> None:
    results = sample_results()
    passed = tuple(c for c in results.checks if c.status is Status.PASSED)
    md = render_markdown(dataclasses.replace(results, checks=passed))
    # no check failed, but only gang_scheduling and cluster_autoscaling of the nine v1.34 MUSTs have a check
    assert md.startswith("## aiconform conformance: 🟡 partial: 2 of 9 MUSTs evidenced")
    assert "**CNCF MUSTs (checklist v1.34): 2 of 9 MUSTs evidenced.**" in md
    assert "`ai_inference`" in md.split("Not evidenced (no check passed or failed):")[1].split("\n")[0]
    assert "Failed and errored" not in md


def _every_must_passed() -> RunResults:
    """The sample's clean checks plus one passed check for every v1.34 MUST."""
    results = sample_results()
    first = results.checks[0]
    extra = tuple(
        dataclasses.replace(first, id=f"scenarios/test_m.py::test_{r.id}", name=f"test_{r.id}", requirement=r.id)
        for r in cncf_checklist(results.info.kubernetes_version) if r.level is Level.MUST
    )
    passed = tuple(c for c in results.checks if c.status is Status.PASSED)
    return dataclasses.replace(results, checks=passed + extra)


def test_headline_passed_only_when_every_must_is_evidenced() -> None:
    results = _every_must_passed()
    md = render_markdown(results)
    assert md.startswith("## aiconform conformance: ✅ passed")
    assert "9 of 9 MUSTs evidenced" in md and "Not evidenced" not in md
    page = render_html(results)
    assert '<span class="badge b-pass">passed</span></h1>' in page
    assert json.loads(render_files(results)["results.json"])["conformance"]["headline"] == "passed"


@pytest.mark.parametrize(("status", "evidenced"), [
    (Status.SKIPPED, False),  # a skip shows nothing about the platform
    (Status.ERROR, False),  # neither does a broken run
    (Status.FAILED, True),  # a failure is evidence (that it is not implemented)
])
def test_a_must_is_evidenced_only_by_a_passed_or_failed_check(status: Status, evidenced: bool) -> None:
    results = _every_must_passed()
    checks = tuple(dataclasses.replace(c, status=status) if c.requirement == "ai_inference" else c
                   for c in results.checks)
    results = dataclasses.replace(results, checks=checks)
    cov = headline(results).coverage
    assert ("ai_inference" in cov.evidenced) is evidenced
    assert cov.line == f"{8 + evidenced} of 9 MUSTs evidenced"
    data = json.loads(render_files(results)["results.json"])["conformance"]
    must = next(m for m in data["musts"] if m["id"] == "ai_inference")
    assert must["evidenced"] is evidenced and data["musts_evidenced"] == 8 + evidenced
    if status is Status.SKIPPED:  # no failure: the headline says what is missing instead of "passed"
        assert data["headline"] == "partial: 8 of 9 MUSTs evidenced" and data["verdict"] == "partial"
        assert render_markdown(results).startswith("## aiconform conformance: 🟡 partial: 8 of 9 MUSTs evidenced")
    else:
        assert data["headline"] == "failed"


def test_html_shows_every_must_and_the_partial_headline() -> None:
    results = sample_results()
    passed = dataclasses.replace(results, checks=tuple(c for c in results.checks if c.status is Status.PASSED))
    page = render_html(passed)
    assert '<span class="badge b-partial">partial: 2 of 9 MUSTs evidenced</span></h1>' in page
    assert "<title>aiconform report demo-20251120-0930-7f3a — partial: 2 of 9 MUSTs evidenced</title>" in page
    musts = page.split('<section id="musts">')[1].split("</section>")[0]
    assert "CNCF MUSTs (checklist v1.34): 2 of 9 MUSTs evidenced" in musts
    for r in cncf_checklist("v1.34.2"):
        assert f">{r.id}<" in musts  # every MUST is listed, evidenced or not
    assert musts.count("not evidenced</span>") == 7 and musts.count(">evidenced</span>") == 2
    assert page.index('id="musts"') < page.index("Verdict per requirement")


def test_an_empty_run_is_not_passed() -> None:
    results = dataclasses.replace(sample_results(), checks=())
    assert headline(results).text == "partial: 0 of 9 MUSTs evidenced"
    extra = yaml.safe_load(build_submission(results).files[ADDITIONS_FILE])
    assert extra["headline"] == "partial: 0 of 9 MUSTs evidenced"
    assert len(extra["mustsNotEvidenced"]) == 9


def _entries(sub: Submission) -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(sub.files[PRODUCT_FILE])
    return {e["id"]: e for entries in doc["spec"].values() for e in entries}


def test_cncf_status_per_requirement() -> None:
    sub = build_submission(sample_results())
    assert sub.folder == "cncf/v1.34/product"
    doc = yaml.safe_load(sub.files[PRODUCT_FILE])
    assert doc["metadata"]["kubernetesVersion"] == "v1.34"
    assert list(doc["spec"]) == ["accelerators", "networking", "schedulingOrchestration", "observability",
                                 "security", "operator"]
    entries = _entries(sub)
    assert entries["gang_scheduling"]["status"] == "Partially Implemented"  # one passed, one failed
    assert entries["cluster_autoscaling"]["status"] == "Implemented"
    assert entries["pod_autoscaling"]["status"] == ""  # infrastructure error: inconclusive
    assert entries["accelerator_metrics"]["status"] == ""  # skipped below its tier
    assert entries["ai_inference"]["status"] == "" and entries["ai_inference"]["evidence"] == ["ai_inference.md"]
    assert all(e["status"] in {"Implemented", "Not Implemented", "Partially Implemented", "N/A", ""}
               for e in entries.values())
    gang = entries["gang_scheduling"]
    assert gang["level"] == "MUST" and gang["evidence"] == ["gang_scheduling.md"]
    assert gang["notes"].startswith("Checked by aiconform") and "tier S: 1 passed, 1 failed" in gang["notes"]
    assert "partial placement" in gang["notes"]
    assert "test_gang_all_or_nothing" in sub.files["gang_scheduling.md"]
    extra = yaml.safe_load(sub.files[ADDITIONS_FILE])
    assert extra["run"]["tier"] == "S" and "KWOK" in extra["run"]["tierNotes"]
    failed = next(c for r in extra["requirements"] if r["id"] == "gang_scheduling" for c in r["checks"]
                  if c["status"] == "failed")
    assert "partial placement" in failed["observation"]
    others = {o["id"]: o for o in extra["otherRequirements"]}
    assert others["aiconform.quota"]["verdict"] == "partial" and others["aiconform.gpu_scheduling"]["verdict"] == "pass"
    # gpu_sharing is not in the v1.34 checklist but a check evidences it: kept out of PRODUCT.yaml, marked here
    assert "gpu_sharing" not in entries and others["gpu_sharing"]["note"] == "a CNCF id not in the v1.34 checklist"


def test_cncf_not_implemented_when_all_checks_fail() -> None:
    results = sample_results()
    checks = tuple(
        dataclasses.replace(c, status=Status.FAILED, reason="no gang") if c.requirement == "gang_scheduling" else c
        for c in results.checks
    )
    assert _entries(build_submission(dataclasses.replace(results, checks=checks)))["gang_scheduling"]["status"] == \
        "Not Implemented"


def test_unwritable_report_dir_is_one_line_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    target = blocker / "report"
    with pytest.raises(ReportError) as err:
        write_all(sample_results(), target)
    assert str(target) in str(err.value) and "\n" not in str(err.value)


def test_render_main_regenerates_files_from_results_json(tmp_path: Path) -> None:
    save_results(sample_results(), tmp_path)
    out = io.StringIO()
    assert render_main(tmp_path, out=out) == 0
    names = {Path(line).name for line in out.getvalue().split()}
    assert names == {"junit.xml", "report.html", "report.md", "product"}  # the last: cncf/v1.34/product/
    assert (tmp_path / "cncf/v1.34/product/PRODUCT.yaml").is_file()
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert load_results(tmp_path) == sample_results()
    with pytest.raises(ReportError, match="no results file"):
        render_main(tmp_path / "missing")


def test_empty_run_still_renders(tmp_path: Path) -> None:
    results = dataclasses.replace(sample_results(), checks=())
    files = write_all(results, tmp_path)
    assert "No checks ran." in files["report.html"].read_text()
    assert ET.parse(files["junit.xml"]).getroot().get("tests") == "0"
    assert isinstance(yaml.safe_load(files["cncf/v1.34/product/PRODUCT.yaml"].read_text()), dict)



def test_reports_list_each_cluster_fact_with_its_source_and_evidence() -> None:
    from harness.report import ClusterFact

    facts = (ClusterFact("custom-metrics", True, "detected", "APIService v1beta1.custom.metrics.k8s.io Available=True"),
             ClusterFact("networkpolicy", False, "detected", "not detected: no node runs pods | <b>"))
    results = dataclasses.replace(sample_results(), info=dataclasses.replace(sample_results().info, facts=facts))
    md = render_markdown(results)
    assert "| `custom-metrics` | yes | detected | APIService v1beta1.custom.metrics.k8s.io Available=True |" in md
    assert "| `networkpolicy` | no | detected | not detected: no node runs pods \\| <b> |" in md
    page = render_html(results)
    assert "<h2>Cluster facts</h2>" in page and "no node runs pods | &lt;b&gt;" in page
    assert "Cluster facts" not in render_markdown(sample_results())  # nothing to list, no table
