"""The CNCF submission folder ``cncf/v1.X/<product>/`` and the program's rules (harness.report.cncf_validate).

A generated folder of a conformant run passes every rule; each broken variant fails the rule it breaks, one line
naming it.  Runs are the sample results (harness.report.sample) with the checks a test needs.
"""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import ConfigError
from harness.report import RunResults, Status, render_main, save_results, write_all
from harness.report.cncf_validate import validate
from harness.report.requirements import Level, published_checklist
from harness.report.sample import sample_results
from harness.report.submission import (
    ADDITIONS_FILE,
    METADATA_FIELDS,
    PRODUCT_FILE,
    build_submission,
    load_product,
)

EXAMPLE_PRODUCT = Path(__file__).resolve().parents[2] / "examples" / "product.yaml"
FOLDER = "cncf/v1.36/example-ai-platform"


def run_on(kubernetes: str, *, statuses: dict[str, tuple[Status, str]] | None = None) -> RunResults:
    """A run on ``kubernetes`` with one passed check per requirement of its checklist (``statuses`` overrides one
    requirement's check: status and reason)."""
    base = sample_results()
    first = base.checks[0]
    version = tuple(int(p) for p in kubernetes.lstrip("v").split(".")[:2])
    checks = []
    for req in published_checklist(version):  # type: ignore[arg-type]
        status, reason = (statuses or {}).get(req.id, (Status.PASSED, ""))
        checks.append(dataclasses.replace(
            first, id=f"scenarios/test_{req.id}.py::test_{req.id}", name=f"test_{req.id}", requirement=req.id,
            status=status, reason=reason, evidence={"created": f"Pod p-{req.id}", "answered": {"phase": "Running"}},
            timings={"time_to_ready_s": 1.25}))
    info = dataclasses.replace(base.info, kubernetes_version=kubernetes)
    return dataclasses.replace(base, info=info, checks=tuple(checks))


def write(results: RunResults, tmp_path: Path, product: Path | None = EXAMPLE_PRODUCT) -> tuple[dict[str, Path],
                                                                                                list[str]]:
    lines: list[str] = []
    paths = write_all(results, tmp_path, product=load_product(product) if product else None, notice=lines.append)
    return paths, lines


def test_a_conformant_run_on_the_previous_pin_passes_every_rule_of_the_v136_checklist(tmp_path: Path) -> None:
    paths, lines = write(run_on("v1.36.1"), tmp_path)
    product = tmp_path / FOLDER / PRODUCT_FILE
    assert paths[f"{FOLDER}/{PRODUCT_FILE}"] == product and lines == []
    assert validate(product) == []
    doc = yaml.safe_load(product.read_text())
    assert set(doc) == {"metadata", "spec"}
    assert doc["metadata"]["kubernetesVersion"] == "v1.36" and doc["metadata"]["vendorName"] == "Example Corp"
    assert set(doc["metadata"]) == set(METADATA_FIELDS)  # repoUrl is empty in the example: left out
    ids = [e["id"] for entries in doc["spec"].values() for e in entries]
    assert ids == [r.id for r in published_checklist((1, 36))] and "dra_support" not in ids
    for entries in doc["spec"].values():
        for e in entries:
            assert e["status"] == "Implemented" and e["evidence"] == [f"{e['id']}.md"]
            assert set(e) == {"id", "description", "level", "status", "evidence", "notes"}
    assert (tmp_path / FOLDER / ADDITIONS_FILE).exists()
    extra = yaml.safe_load((tmp_path / FOLDER / ADDITIONS_FILE).read_text())
    assert extra["checklist"]["version"] == "v1.36" and extra["checklist"]["note"] is None
    assert extra["run"]["kubernetesVersion"] == "v1.36.1"


def test_a_transcript_shows_what_was_created_what_the_platform_answered_and_the_timings(tmp_path: Path) -> None:
    write(run_on("v1.36.1"), tmp_path)
    text = (tmp_path / FOLDER / "pod_autoscaling.md").read_text()
    assert text.startswith("# pod_autoscaling (MUST): Implemented\n")
    assert "> If the platform supports the HorizontalPodAutoscaler" in text  # the checklist's own text
    assert "Kubernetes v1.36.1" in text and "tier S" in text
    assert "### 1. test_pod_autoscaling: passed" in text
    assert "created: Pod p-pod_autoscaling\nanswered:\n  phase: Running" in text
    assert "| time_to_ready_s | 1.250 |" in text


def test_a_platform_fault_is_not_implemented_with_the_part_named(tmp_path: Path) -> None:
    reason = "ControllerInactive: the HorizontalPodAutoscaler controller: HPA ns/m has no status"
    write(run_on("v1.36.1", statuses={"pod_autoscaling": (Status.FAILED, reason)}), tmp_path)
    product = tmp_path / FOLDER / PRODUCT_FILE
    entry = next(e for e in yaml.safe_load(product.read_text())["spec"]["schedulingOrchestration"]
                 if e["id"] == "pod_autoscaling")
    assert entry["status"] == "Not Implemented" and "the HorizontalPodAutoscaler controller" in entry["notes"]
    # every rule holds but the one a non-conformant platform must break
    assert validate(product) == ["requirement 'pod_autoscaling' is MUST level but status is 'Not Implemented'; it "
                                 "must be 'Implemented'"]


def test_an_aiconform_error_or_a_skip_shows_nothing_and_is_left_for_a_person(tmp_path: Path) -> None:
    results = run_on("v1.36.1", statuses={"robust_controller": (Status.ERROR, "ClusterError: addon trainer broke"),
                                          "gpu_sharing": (Status.SKIPPED, "needs tier R")})
    write(results, tmp_path)
    spec = yaml.safe_load((tmp_path / FOLDER / PRODUCT_FILE).read_text())["spec"]
    robust = spec["operator"][0]
    assert robust["status"] == "" and "aiconform itself broke" in robust["notes"]
    sharing = next(e for e in spec["accelerators"] if e["id"] == "gpu_sharing")
    assert sharing["status"] == "" and sharing["evidence"] == [] and "gpu_sharing.md" in sharing["notes"]
    problems = validate(tmp_path / FOLDER / PRODUCT_FILE)  # the unfilled SHOULD passes; the MUST does not
    assert problems and all("'robust_controller'" in p for p in problems)


def test_without_a_product_file_the_folder_is_written_and_one_line_names_the_empty_fields(tmp_path: Path) -> None:
    _, lines = write(run_on("v1.36.1"), tmp_path, product=None)
    product = tmp_path / "cncf/v1.36/product" / PRODUCT_FILE
    assert product.exists() and len(lines) == 1
    assert lines[0].startswith("CNCF submission cncf/v1.36/product/PRODUCT.yaml is incomplete: empty metadata "
                               "fields: platformName, platformVersion, vendorName, websiteUrl, documentationUrl, "
                               "productLogoUrl, description, contactEmailAddress, k8sConformanceUrl")
    problems = validate(product)
    assert "metadata field vendorName is empty" in problems and len(problems) == len(METADATA_FIELDS) - 1


def test_a_newer_cluster_is_judged_against_the_newest_published_list_and_says_so(tmp_path: Path) -> None:
    results = run_on("v1.37.0")
    results = dataclasses.replace(results, info=dataclasses.replace(results.info, kubernetes_version="v1.38.0"))
    sub = build_submission(results, load_product(EXAMPLE_PRODUCT))
    assert sub.folder == "cncf/v1.37/example-ai-platform"
    says = "Kubernetes v1.38 has no published CNCF checklist yet; judged against v1.37"
    assert says in sub.files[PRODUCT_FILE] and says in sub.files["gang_scheduling.md"]
    assert yaml.safe_load(sub.files[ADDITIONS_FILE])["checklist"]["note"] == says
    assert yaml.safe_load(sub.files[PRODUCT_FILE])["metadata"]["kubernetesVersion"] == "v1.38"


def test_a_rerender_replaces_the_folder(tmp_path: Path) -> None:
    results = run_on("v1.36.1")
    save_results(results, tmp_path)
    assert render_main(tmp_path, out=io.StringIO()) == 0
    assert (tmp_path / "cncf/v1.36/product" / PRODUCT_FILE).exists()
    out = io.StringIO()
    assert render_main(tmp_path, out=out, product=load_product(EXAMPLE_PRODUCT)) == 0
    assert f"{tmp_path / FOLDER}/" in out.getvalue()
    assert sorted(p.name for p in (tmp_path / "cncf/v1.36").iterdir()) == ["example-ai-platform"]
    assert validate(tmp_path / FOLDER / PRODUCT_FILE) == []


# -- each rule fails a broken folder ---------------------------------------------------------------------------------

Doc = dict[str, Any]


def _req(doc: Doc, rid: str) -> Doc:
    return next(e for entries in doc["spec"].values() for e in entries if e["id"] == rid)


def _set(rid: str, **kv: Any) -> Callable[[Doc], None]:
    return lambda doc: _req(doc, rid).update(kv)


BREAKS: dict[str, tuple[Callable[[Doc], None], str]] = {
    "missing category": (lambda d: d["spec"].pop("observability"), "missing spec category: observability"),
    "missing requirement": (lambda d: d["spec"]["networking"].pop(0),
                            "missing requirement 'ai_inference' in category 'networking'"),
    "changed description": (_set("gang_scheduling", description="Kueue works."),
                            "description of 'gang_scheduling' is not the checklist's text"),
    "changed level": (_set("pod_autoscaling", level="SHOULD"),
                      "level of 'pod_autoscaling' is 'SHOULD', the checklist says MUST"),
    "invalid status": (_set("gpu_sharing", status="Done"), "invalid status 'Done' for 'gpu_sharing'"),
    "must not implemented": (_set("ai_inference", status="Partially Implemented"),
                             "requirement 'ai_inference' is MUST level but status is 'Partially Implemented'"),
    "n/a without notes": (_set("gpu_sharing", status="N/A", notes=""),
                          "notes required for 'gpu_sharing' when status is N/A"),
    "evidence file missing": (_set("gang_scheduling", evidence=["gone.md"]),
                              "invalid evidence file for 'gang_scheduling': gone.md"),
    "placeholder metadata": (lambda d: d["metadata"].update(vendorName="[Vendor Name]"),
                             "metadata field vendorName has placeholder value: [Vendor Name]"),
    "empty metadata": (lambda d: d["metadata"].update(description=""), "metadata field description is empty"),
    "missing metadata": (lambda d: d["metadata"].pop("contactEmailAddress"),
                         "missing metadata field: contactEmailAddress"),
    "bad k8s conformance url": (lambda d: d["metadata"].update(k8sConformanceUrl="https://example.com/x"),
                                "invalid k8sConformanceUrl format: https://example.com/x"),
    "logo not vector": (lambda d: d["metadata"].update(productLogoUrl="https://example.com/logo.png"),
                        "productLogoUrl must link to an SVG, EPS, or AI file"),
    "extra top-level key": (lambda d: d.update(verification={"tool": "aiconform"}),
                            "unknown top-level key 'verification'"),
    "extra requirement key": (_set("gang_scheduling", checks=[]), "unknown key 'checks' in requirement"),
    "extra metadata field": (lambda d: d["metadata"].update(checklistVersion="v1.36"),
                             "unknown metadata field 'checklistVersion'"),
    "extra requirement": (lambda d: d["spec"]["accelerators"].append({"id": "dra_support", "status": "Implemented"}),
                          "unknown requirement 'dra_support' in category 'accelerators'"),
    "missing metadata section": (lambda d: d.pop("metadata"), "missing 'metadata' section"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_rule_fails_a_folder_that_breaks_it(name: str, tmp_path: Path) -> None:
    write(run_on("v1.36.1"), tmp_path)
    product = tmp_path / FOLDER / PRODUCT_FILE
    doc = yaml.safe_load(product.read_text())
    breaks, expected = BREAKS[name]
    breaks(doc)
    product.write_text(yaml.safe_dump(doc, sort_keys=False))
    problems = validate(product)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_the_version_comes_from_the_path_and_must_be_published(tmp_path: Path) -> None:
    write(run_on("v1.36.1"), tmp_path)
    text = (tmp_path / FOLDER / PRODUCT_FILE).read_text()
    unpublished = tmp_path / "v1.38" / "x" / PRODUCT_FILE
    unpublished.parent.mkdir(parents=True)
    unpublished.write_text(text)
    assert validate(unpublished)[0].startswith("no published CNCF checklist for v1.38")
    against_135 = tmp_path / "cncf" / "v1.35" / "x" / PRODUCT_FILE  # the v1.36 list is not the v1.35 list
    against_135.parent.mkdir(parents=True)
    against_135.write_text(text)
    assert "missing requirement 'dra_support' in category 'accelerators'" in validate(against_135)
    nowhere = tmp_path / PRODUCT_FILE
    nowhere.write_text(text)
    assert validate(nowhere)[0].startswith("cannot tell the checklist version from the path")


def test_the_validator_module_runs_from_the_command_line(tmp_path: Path) -> None:
    write(run_on("v1.36.1"), tmp_path)
    product = tmp_path / FOLDER / PRODUCT_FILE
    ok = subprocess.run([sys.executable, "-m", "harness.report.cncf_validate", str(product)], capture_output=True,
                        text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert ok.returncode == 0 and ok.stdout.strip().endswith("passes")
    _set("ai_inference", status="Not Implemented")(doc := yaml.safe_load(product.read_text()))
    product.write_text(yaml.safe_dump(doc))
    bad = subprocess.run([sys.executable, "-m", "harness.report.cncf_validate", str(product)], capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert bad.returncode == 1 and "1 problem(s)" in bad.stdout and "'ai_inference' is MUST level" in bad.stdout


# -- the product file ------------------------------------------------------------------------------------------------


def test_the_example_product_file_fills_every_required_field() -> None:
    product = load_product(EXAMPLE_PRODUCT)
    assert set(METADATA_FIELDS) - {"kubernetesVersion"} <= set(product.fields)
    assert product.folder_name == "example-ai-platform"


@pytest.mark.parametrize(("text", "message"), [
    ('vendorName: "[Vendor Name]"\n', "vendorName is still the template's placeholder [Vendor Name]"),
    ("vendor: Example Corp\n", "unknown field 'vendor'"),
    ("platformVersion: 2\n", "platformVersion must be a string, got int"),
    ("k8sConformanceUrl: https://example.com/p\n", "k8sConformanceUrl 'https://example.com/p' is not"),
    ("productLogoUrl: https://example.com/logo.png\n", "productLogoUrl must link to an SVG, EPS or AI file"),
    ("- a list\n", "expected a mapping of the metadata fields"),
    ("a: [\n", "not valid YAML"),
])
def test_a_bad_product_file_is_one_line_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "product.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_product(path)
    assert message in str(err.value) and str(err.value).startswith(f"--product {path}: ")
    assert "\n" not in str(err.value)


def test_a_product_yaml_can_serve_as_the_product_file(tmp_path: Path) -> None:
    path = tmp_path / "PRODUCT.yaml"
    path.write_text(yaml.safe_dump({"metadata": {"platformName": "Acme AI", "vendorName": "Acme"}}))
    product = load_product(path)
    assert product.fields == {"platformName": "Acme AI", "vendorName": "Acme"} and product.folder_name == "acme-ai"


def test_levels_in_the_folder_are_the_checklists_levels(tmp_path: Path) -> None:
    write(run_on("v1.33.4"), tmp_path)
    doc = yaml.safe_load((tmp_path / "cncf/v1.33/example-ai-platform" / PRODUCT_FILE).read_text())
    assert _req(doc, "dra_support")["level"] == Level.SHOULD.value  # a SHOULD in v1.33, a MUST in v1.34 and v1.35
    assert validate(tmp_path / "cncf/v1.33/example-ai-platform" / PRODUCT_FILE) == []


def test_a_bad_product_file_stops_the_run_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "product.yaml"
    bad.write_text('vendorName: "[Vendor Name]"\n')
    env = {**os.environ, "AICONFORM_STATE_DIR": str(tmp_path / "state")}
    for args in (["run", "--product", str(bad)], ["report", "render", str(tmp_path), "--product", str(bad)]):
        res = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=60,
                             env=env, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip() == (f"aiconform: --product {bad}: vendorName is still the template's placeholder "
                                      "[Vendor Name]")
    assert not (tmp_path / "state").exists() and not (tmp_path / "reports").exists()


def test_the_report_says_which_checklist_a_newer_cluster_was_judged_against() -> None:
    from harness.report.markdown import render_markdown
    from harness.report.verdicts import conformance_dict

    results = run_on("v1.37.0")
    newer = dataclasses.replace(results, info=dataclasses.replace(results.info, kubernetes_version="v1.38.0"))
    says = "Kubernetes v1.38 has no published CNCF checklist yet; judged against v1.37"
    assert conformance_dict(newer)["checklist_note"] == says and f"{says}." in render_markdown(newer)
    assert conformance_dict(results)["checklist_note"] is None
