"""results.json schema, the collector the pytest plugin feeds, and the verdict rule per requirement."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.errors import AiconformError
from harness.report import (
    SCHEMA_VERSION,
    ClusterFact,
    ReportError,
    ResultsCollector,
    Status,
    Tier,
    Verdict,
    load_results,
    save_results,
    summarize,
)
from harness.report.model import from_dict, to_dict
from harness.report.requirements import (
    CATALOG,
    CNCF_REQUIREMENTS,
    PROJECT_REQUIREMENTS,
    Category,
    checklist_version,
    cncf_checklist,
)
from harness.report.sample import sample_results
from harness.report.verdicts import UNMAPPED, verdict_of


def _collector() -> ResultsCollector:
    return ResultsCollector(
        run_id="r1", harness_version="0.1.0", kubernetes_version="v1.34.2", provider="local", tier="S",
        profile="laptop", seed=42, started_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_results_round_trip_through_json_file(tmp_path: Path) -> None:
    from harness.report.verdicts import conformance_dict

    results = sample_results()
    written = save_results(results, tmp_path, {"conformance": conformance_dict(results)})  # as the writers do
    assert written == tmp_path / "results.json"
    loaded = load_results(tmp_path)
    assert loaded == results
    assert load_results(written) == results
    data = json.loads(written.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["summary"] == {"passed": 10, "failed": 2, "skipped": 3, "error": 1}
    conformance = data["conformance"]  # derived for readers, ignored on load
    assert conformance["headline"] == "failed" and conformance["checklist"] == "v1.34"
    assert (conformance["musts_evidenced"], conformance["musts_total"]) == (2, 9)
    assert {m["id"] for m in conformance["musts"] if m["evidenced"]} == {"gang_scheduling", "cluster_autoscaling"}


def test_unsupported_schema_version_is_one_clear_line(tmp_path: Path) -> None:
    data = to_dict(sample_results())
    data["schema_version"] = 99
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(ReportError) as err:
        load_results(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert "schema_version 99" in message and str(tmp_path / "results.json") in message
    assert isinstance(err.value, AiconformError)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["checks"][0].update(status="flaky"), "checks[0].status: expected one of passed/failed"),
        (lambda d: d["checks"][1].update(duration_s=-1), "checks[1].duration_s: expected a non-negative number"),
        (lambda d: d["checks"][2].pop("id"), "checks[2].id: expected a non-empty string"),
        (lambda d: d["checks"][3].update(id=d["checks"][0]["id"]), "checks[3].id: duplicate check id"),
        (lambda d: d["checks"][0].update(evidence=[1]), "checks[0].evidence: expected an object"),
        (lambda d: d["checks"][0].update(timings={"t": "slow"}), "checks[0].timings.t: expected a non-negative"),
        (lambda d: d["run"].update(tier="X"), "run.tier: expected one of S/R/G"),
        (lambda d: d["run"].update(started_at="yesterday"), "run.started_at: expected an ISO 8601 timestamp"),
        (lambda d: d["run"].update(started_at="2025-01-01T00:00:00"), "started_at: expected a timestamp with a UTC"),
        (lambda d: d.pop("run"), "run: expected an object, got NoneType"),
        (lambda d: d.update(checks={}), "checks: expected a list"),
    ],
)
def test_invalid_fields_are_named(mutate: Callable[[dict[str, Any]], object], expected: str) -> None:
    data = to_dict(sample_results())
    mutate(data)
    with pytest.raises(ReportError) as err:
        from_dict(data, "results.json")
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_and_non_json_results_files(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no results file at"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        load_results(tmp_path)


def test_collector_merges_evidence_recorded_before_and_after_the_outcome() -> None:
    collector = _collector()
    collector.record_evidence("t::a", "node", "gpu-0")
    collector.record_timing("t::a", "time_to_schedule_s", 0.5)
    collector.add_check("t::a", name="a", suite="scheduling", status="passed", requirement="gang_scheduling",
                        duration_s=1.5, evidence={"pods": (1, 2)})
    collector.record_evidence("t::a", "after", {"k": [1]})
    results = collector.results(finished_at=datetime(2025, 1, 1, 0, 1, tzinfo=UTC))
    (check,) = results.checks
    assert check.evidence == {"node": "gpu-0", "pods": [1, 2], "after": {"k": [1]}}
    assert check.timings == {"time_to_schedule_s": 0.5}
    assert check.status is Status.PASSED and check.tier is Tier.S
    assert results.info.seed == 42 and results.info.finished_at is not None
    assert from_dict(to_dict(results)) == results


def test_collector_rejects_bad_input() -> None:
    collector = _collector()
    collector.add_check("t::a", name="a", suite="s", status="failed", reason="boom")
    with pytest.raises(ReportError, match="already recorded"):
        collector.add_check("t::a", name="a", suite="s", status="passed")
    replaced = collector.add_check("t::a", name="a", suite="s", status="error", reason="teardown", replace=True)
    assert replaced.status is Status.ERROR
    with pytest.raises(ReportError, match="not JSON-serializable"):
        collector.record_evidence("t::a", "obj", object())
    with pytest.raises(ReportError, match="must not be negative"):
        collector.record_timing("t::a", "time_to_schedule_s", -1)
    with pytest.raises(ValueError):
        collector.add_check("t::b", name="b", suite="s", status="flaky")


def test_collector_write_all_writes_every_file(tmp_path: Path) -> None:
    collector = _collector()
    collector.add_check("t::a", name="a", suite="s", status="passed", requirement="gpu_sharing")
    written = collector.write_all(tmp_path / "report")
    singles = sorted(n for n in written if "/" not in n)
    assert singles == sorted(["results.json", "junit.xml", "report.html", "report.md"])
    assert "cncf/v1.34/product/PRODUCT.yaml" in written and "cncf/v1.34/product/gang_scheduling.md" in written
    assert all(p.is_file() and p.stat().st_size > 0 for p in written.values())
    assert not list((tmp_path / "report").glob(".*.tmp"))


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        (["passed", "passed"], Verdict.PASS),
        (["passed", "skipped"], Verdict.PASS),
        (["passed", "failed"], Verdict.PARTIAL),
        (["failed", "skipped"], Verdict.FAIL),
        (["failed", "error"], Verdict.FAIL),
        (["passed", "error"], Verdict.ERROR),
        (["skipped", "error"], Verdict.ERROR),
        (["skipped", "skipped"], Verdict.SKIPPED),
    ],
)
def test_verdict_rule(statuses: list[str], verdict: Verdict) -> None:
    assert verdict_of([Status(s) for s in statuses]) is verdict


def test_summaries_order_and_levels_follow_the_checklist() -> None:
    results = sample_results()
    unmapped = dataclasses.replace(results.checks[0], id="x::y", requirement=None)
    results = dataclasses.replace(results, checks=results.checks + (unmapped,))
    summaries = summarize(results)
    ids = [s.requirement_id for s in summaries]
    assert ids[0] == "gpu_sharing" and ids[-1] == UNMAPPED
    assert ids.index("secure_accelerator_access") < ids.index("aiconform.gpu_scheduling")
    by_id = {s.requirement_id: s for s in summaries}
    assert by_id["gang_scheduling"].verdict is Verdict.PARTIAL
    assert by_id["pod_autoscaling"].verdict is Verdict.ERROR
    assert by_id["accelerator_metrics"].verdict is Verdict.SKIPPED
    assert by_id[UNMAPPED].requirement is None


def test_catalog_matches_the_cncf_checklists() -> None:
    assert checklist_version("v1.33.4") == (1, 33)
    assert checklist_version("1.36.0") == (1, 36)
    assert checklist_version("v1.20") == (1, 33)
    assert checklist_version("latest") == (1, 37)
    levels_133 = {r.id: r.level.value for r in cncf_checklist("v1.33.0")}
    assert levels_133["dra_support"] == "SHOULD" and len(levels_133) == 9
    levels_135 = {r.id: r.level.value for r in cncf_checklist("v1.35.0")}
    assert levels_135["dra_support"] == "MUST" and levels_135["gpu_sharing"] == "SHOULD" and len(levels_135) == 12
    assert all(r.is_cncf == (r.id in {c.id for c in CNCF_REQUIREMENTS}) for r in CATALOG.values())
    assert all(r.id.startswith("aiconform.") for r in PROJECT_REQUIREMENTS)
    assert Category.SCHEDULING_ORCHESTRATION.yaml_key == "schedulingOrchestration"


def test_an_unevidenced_must_says_what_it_needed() -> None:
    """The headline's list of MUSTs not evidenced names the remedy: the tier and how to get it, or the fact."""
    from harness.report.model import CheckResult
    from harness.report.verdicts import _need_of

    tier = CheckResult(id="a", name="a", suite="s", requirement="gang_scheduling", status=Status.SKIPPED,
                       reason="needs tier R; this cluster is tier S")
    fact = CheckResult(id="b", name="b", suite="s", requirement="gang_scheduling", status=Status.SKIPPED,
                       reason="cluster lacks capability gateway-api")
    passed = CheckResult(id="c", name="c", suite="s", requirement="gang_scheduling", status=Status.PASSED)
    assert _need_of(tier).startswith("needs tier R: a real kubelet node: the conformance profile")
    assert _need_of(fact) == "needs capability gateway-api"
    assert _need_of(passed) == ""


def test_cluster_facts_round_trip_and_older_results_have_none(tmp_path: Path) -> None:
    facts = (ClusterFact("kueue", True, "detected", "ClusterQueue served; webhook answered"),
             ClusterFact("networkpolicy", True, "declared", "declared with --capability networkpolicy"),
             ClusterFact("dra", False, "detected", "no DeviceClass gpu.nvidia.com"))
    results = dataclasses.replace(sample_results(), info=dataclasses.replace(sample_results().info, facts=facts))
    data = json.loads(save_results(results, tmp_path).read_text())
    assert data["cluster"]["facts"][1] == {"name": "networkpolicy", "present": True, "source": "declared",
                                           "evidence": "declared with --capability networkpolicy"}
    assert load_results(tmp_path).info.facts == facts
    assert "cluster" not in to_dict(sample_results())  # no facts: no block, as results written before them
    data["cluster"]["facts"][0]["source"] = "guessed"
    with pytest.raises(ReportError, match=r"cluster.facts\[0\].source: expected one of detected/declared/provider"):
        from_dict(data)
