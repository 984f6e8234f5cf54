"""The CNCF Kubernetes AI Conformance submission folder of a run: ``cncf/v1.X/<product>/``.

What the program (github.com/cncf/k8s-ai-conformance) takes in a pull request, judged by its validator against the
published checklist of that version:

* ``PRODUCT.yaml``: ``metadata`` (the ten fields, from the vendor's ``--product`` file) and ``spec.<category>`` with
  every requirement of the checklist, ``id``, ``description`` and ``level`` exactly as published, ``status``,
  ``evidence`` and ``notes``.  Nothing the program does not define.
* one Markdown transcript per requirement, ``<id>.md``, next to it and named in its ``evidence``: the checks that
  name the requirement, what each created and what the platform answered (its evidence record), its timings, and
  the verdict with its reason.
* ``aiconform.yaml``: aiconform's additions (the run, the checklist it was judged against and why, each check's
  status and one short observation, the project's own requirement ids), kept out of PRODUCT.yaml.

``v1.X`` is the checklist the run was judged against (``requirements.choose_checklist``): the cluster's own minor
version when the program published one, else the nearest, and then the transcripts and ``aiconform.yaml`` say so.

Status per requirement (the verdict rule of ``harness.report.verdicts``): pass → ``Implemented``, partial →
``Partially Implemented``, fail → ``Not Implemented`` (a check failed: the platform lacks or breaks it; the notes
name the part).  A requirement this run did not show either way (its checks errored or were skipped, or none ran)
gets status ``""``: a MUST so is a finding the validator reports, a SHOULD so is "not filled in", which the
validator accepts when its ``evidence`` is empty (the notes then name the transcript).  aiconform never writes
``N/A``: whether a requirement does not apply to a product is the vendor's statement, with notes.

Renders text only; ``writers`` puts it on disk.  Reads the vendor's product file (:func:`load_product`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.report.checklists import SOURCE_REPO, SOURCES
from harness.report.model import CheckResult, RunResults, Status
from harness.report.requirements import (
    ChecklistChoice,
    Level,
    PublishedRequirement,
    choose_checklist,
    published_checklist,
)
from harness.report.verdicts import UNMAPPED, RequirementSummary, Verdict, headline, summarize

PRODUCT_FILE = "PRODUCT.yaml"
ADDITIONS_FILE = "aiconform.yaml"
SUBMISSION_ROOT = "cncf"

METADATA_FIELDS = ("kubernetesVersion", "platformName", "platformVersion", "vendorName", "websiteUrl",
                   "documentationUrl", "productLogoUrl", "description", "contactEmailAddress", "k8sConformanceUrl")
"""The metadata fields the program's validator requires, in its template's order."""
OPTIONAL_METADATA_FIELDS = ("repoUrl",)
"""Metadata the validator knows but does not require."""
VALID_STATUSES = ("Implemented", "Not Implemented", "Partially Implemented", "N/A")
REQUIREMENT_KEYS = ("id", "description", "level", "status", "evidence", "notes")

K8S_CONFORMANCE_URL = re.compile(r"^https://github\.com/cncf/k8s-conformance/tree/(master|main)/v\d+\.\d+/[^/]+/?$")
"""The validator's pattern for ``k8sConformanceUrl``."""

MAX_OBSERVATION_CHARS = 200


# -- the vendor's product file ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """The vendor's answers for ``metadata`` (``--product FILE``; template: examples/product.yaml)."""

    fields: Mapping[str, str] = field(default_factory=dict)
    """Field → value, only the fields the file sets (non-empty)."""
    source: str = ""
    """The file it came from, for messages."""

    @property
    def folder_name(self) -> str:
        """The ``<product>`` folder: the last part of ``k8sConformanceUrl`` (the program files a product under the
        same name in both repositories), else the platform name made a path part, else ``product``."""
        url = self.fields.get("k8sConformanceUrl", "")
        name = url.rstrip("/").rsplit("/", 1)[-1] if K8S_CONFORMANCE_URL.match(url) else ""
        if name not in ("", ".", ".."):
            return name
        slug = re.sub(r"[^a-z0-9]+", "-", self.fields.get("platformName", "").lower()).strip("-")
        return slug or "product"


def load_product(path: str | Path) -> Product:
    """Read a product file; a missing or malformed one is one ConfigError line naming the file and the field."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"--product {p}: cannot read it: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--product {p}: not valid YAML: {' '.join(str(err).split())}") from None
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict) and len(data) == 1:
        data = data["metadata"]  # a PRODUCT.yaml-style file: only its metadata is read
    if not isinstance(data, dict):
        raise ConfigError(f"--product {p}: expected a mapping of the metadata fields ({', '.join(METADATA_FIELDS)})")
    known = set(METADATA_FIELDS) | set(OPTIONAL_METADATA_FIELDS)
    fields: dict[str, str] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"--product {p}: unknown field {key!r}; the CNCF metadata fields are "
                              f"{', '.join(METADATA_FIELDS + OPTIONAL_METADATA_FIELDS)}")
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise ConfigError(f"--product {p}: {key} must be a string, got {type(value).__name__}")
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            raise ConfigError(f"--product {p}: {key} is still the template's placeholder {value}")
        if key == "k8sConformanceUrl" and not K8S_CONFORMANCE_URL.match(value):
            raise ConfigError(f"--product {p}: k8sConformanceUrl {value!r} is not "
                              "https://github.com/cncf/k8s-conformance/tree/master/vX.Y/<product>")
        if key == "productLogoUrl" and not value.lower().endswith((".svg", ".eps", ".ai")):
            raise ConfigError(f"--product {p}: productLogoUrl must link to an SVG, EPS or AI file: {value}")
        fields[key] = value
    return Product(fields, str(p))


# -- the folder -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """A rendered submission folder: its path under the report directory and its files' texts."""

    folder: str
    """``cncf/v1.36/<product>`` (relative to the report directory)."""
    files: dict[str, str]
    """File name → text: PRODUCT.yaml, aiconform.yaml and one ``<id>.md`` per requirement."""
    checklist: ChecklistChoice
    empty_fields: tuple[str, ...]
    """Required metadata fields left empty (no ``--product``, or a product file without them)."""
    notes: tuple[str, ...] = ()
    """Other things about the metadata the vendor should know (a kubernetesVersion that is not the cluster's)."""

    def incomplete_line(self) -> str | None:
        """One line when the metadata is incomplete, naming the empty fields; None when complete."""
        if not self.empty_fields and not self.notes:
            return None
        parts = []
        if self.empty_fields:
            parts.append(f"empty metadata fields: {', '.join(self.empty_fields)} (write them in a product file, "
                         "template examples/product.yaml, and pass --product FILE)")
        parts += self.notes
        return f"CNCF submission {self.folder}/{PRODUCT_FILE} is incomplete: {'; '.join(parts)}"


def transcript_name(requirement_id: str) -> str:
    return f"{requirement_id}.md"


def _minor(kubernetes_version: str) -> str:
    m = re.match(r"v?(\d+)\.(\d+)", kubernetes_version.strip())
    return f"v{m.group(1)}.{m.group(2)}" if m else kubernetes_version


def build_submission(results: RunResults, product: Product | None = None) -> Submission:
    """Render the submission folder of ``results`` for ``product`` (None: metadata left empty)."""
    product = product or Product()
    choice = choose_checklist(results.info.kubernetes_version)
    checklist = published_checklist(choice.version)
    by_id = {s.requirement_id: s for s in summarize(results)}

    metadata: dict[str, str] = {}
    notes: list[str] = []
    cluster_minor = _minor(results.info.kubernetes_version)
    for name in METADATA_FIELDS:
        value = product.fields.get(name, "")
        if name == "kubernetesVersion":
            if value and value != cluster_minor:
                notes.append(f"kubernetesVersion {value} in {product.source} is not the cluster's; "
                             f"{cluster_minor} is written")
            value = cluster_minor
        metadata[name] = value
    for name in OPTIONAL_METADATA_FIELDS:
        if product.fields.get(name):
            metadata[name] = product.fields[name]
    empty = tuple(n for n in METADATA_FIELDS if not metadata[n])

    files: dict[str, str] = {}
    spec: dict[str, list[dict[str, Any]]] = {}
    for req in checklist:
        summary = by_id.get(req.id)
        spec.setdefault(req.category_key, []).append(_entry(req, summary, results))
        files[transcript_name(req.id)] = render_transcript(req, summary, results, choice)
    folder = f"{SUBMISSION_ROOT}/{choice.label}/{product.folder_name}"
    files[PRODUCT_FILE] = _render_product(results, choice, metadata, spec)
    files[ADDITIONS_FILE] = _render_additions(results, choice, checklist, by_id, product)
    return Submission(folder, files, choice, empty, tuple(notes))


def _status(summary: RequirementSummary | None) -> str:
    return summary.verdict.cncf_status if summary is not None else ""


def _entry(req: PublishedRequirement, summary: RequirementSummary | None, results: RunResults) -> dict[str, Any]:
    status = _status(summary)
    transcript = transcript_name(req.id)
    unfilled_should = req.level is Level.SHOULD and status == ""  # the validator's "not filled in" case
    return {
        "id": req.id,
        "description": req.description,
        "level": req.level.value,
        "status": status,
        "evidence": [] if unfilled_should else [transcript],
        "notes": _notes(summary, results) + (f" Transcript: {transcript}." if unfilled_should else ""),
    }


def _first_reason(summary: RequirementSummary, status: Status) -> str:
    for c in summary.checks:
        if c.status is status and c.reason:
            return " ".join(c.reason.split())[:300]
    return ""


def _notes(summary: RequirementSummary | None, results: RunResults) -> str:
    """One paragraph: what the run showed, and for a non-pass whose fault it is (the reason names the part)."""
    info = results.info
    run = f"aiconform {info.harness_version} run {info.run_id}, tier {info.tier.value}"
    if summary is None:
        return f"Not shown by this run: no aiconform check for this requirement ran ({run})."
    counts = ", ".join(f"{summary.count(s)} {s.value}" for s in (Status.PASSED, Status.FAILED, Status.ERROR,
                                                                 Status.SKIPPED) if summary.count(s))
    text = f"Checked by {run}: {counts}."
    if summary.verdict in (Verdict.FAIL, Verdict.PARTIAL):
        text += f" Not implemented as checked: {_first_reason(summary, Status.FAILED)}"
    elif summary.verdict is Verdict.ERROR:
        text += (" Not shown either way: aiconform itself broke while checking it "
                 f"({_first_reason(summary, Status.ERROR)}); rerun.")
    elif summary.verdict is Verdict.SKIPPED:
        text += f" Not shown either way: {_first_reason(summary, Status.SKIPPED) or 'every check was skipped'}."
    return text


_HEADER = """\
# Kubernetes AI Conformance Checklist - {label}
# Generated by aiconform {version} from run {run_id} (results.json next to the report); review before submitting.
# Evidence: the Markdown transcripts next to this file.  aiconform's own additions are in aiconform.yaml.
{note}
"""


def _render_product(results: RunResults, choice: ChecklistChoice, metadata: dict[str, str],
                    spec: dict[str, list[dict[str, Any]]]) -> str:
    note = f"# {choice.note}.\n" if choice.note else ""
    head = _HEADER.format(label=choice.label, version=results.info.harness_version, run_id=results.info.run_id,
                          note=note).rstrip("\n") + "\n\n"
    body = yaml.safe_dump({"metadata": metadata, "spec": spec}, sort_keys=False, allow_unicode=True, width=10_000)
    return head + body


# -- transcripts ------------------------------------------------------------------------------------------------------


def _code(value: Any) -> str:
    text = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=120, default_flow_style=False)
    return text.replace("```", "` ` `").rstrip("\n")


def render_transcript(req: PublishedRequirement, summary: RequirementSummary | None, results: RunResults,
                      choice: ChecklistChoice) -> str:
    """The Markdown transcript of one requirement: the requirement, the run, then each check that names it."""
    info = results.info
    status = _status(summary) or "not shown by this run"
    lines = [
        f"# {req.id} ({req.level.value}): {status}",
        "",
        f"CNCF Kubernetes AI Conformance checklist {choice.label}, category `{req.category_key}`:",
        "",
        f"> {req.description}",
        "",
    ]
    if choice.note:
        lines += [f"**Checklist:** {choice.note}.", ""]
    lines += [
        "## Run",
        "",
        f"- tool: aiconform {info.harness_version}, run `{info.run_id}`, profile `{info.profile}`",
        f"- cluster: Kubernetes {info.kubernetes_version}, provider `{info.provider}`, tier {info.tier.value} "
        f"({info.tier.note})",
        f"- started {info.started_at.isoformat()}"
        + (f", finished {info.finished_at.isoformat()}" if info.finished_at else ""),
        "",
        "## Verdict",
        "",
        _notes(summary, results),
        "",
    ]
    checks = summary.checks if summary else ()
    lines += [f"## Checks ({len(checks)})", ""]
    if not checks:
        lines += ["No aiconform check for this requirement ran in this run.", ""]
    for n, check in enumerate(checks, 1):
        lines += _check_lines(n, check)
    return "\n".join(lines).rstrip("\n") + "\n"


def _check_lines(n: int, check: CheckResult) -> list[str]:
    out = [
        f"### {n}. {check.name}: {check.status.value} ({check.duration_s:.2f} s)",
        "",
        f"- check: `{check.id}` (suite `{check.suite}`, meaningful from tier {check.tier.value})",
    ]
    if check.reason:
        out.append(f"- {'why' if check.status is not Status.PASSED else 'note'}: {' '.join(check.reason.split())}")
    out.append("")
    if check.evidence:
        out += ["What was created and what the platform answered:", "", "```yaml", _code(dict(check.evidence)),
                "```", ""]
    if check.timings:
        out += ["| timing | seconds |", "|:--|--:|"]
        out += [f"| {k} | {v:.3f} |" for k, v in check.timings.items()]
        out.append("")
    return out


# -- aiconform's additions --------------------------------------------------------------------------------------------


def _observation(check: CheckResult) -> str:
    """One short line: the reason for a non-pass, else the first scalar evidence values."""
    if check.status is not Status.PASSED and check.reason:
        text = " ".join(check.reason.split())
    else:
        pairs = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in check.evidence.items()
                 if v is None or isinstance(v, str | int | float | bool)]
        pairs += [f"{k}={v:.3f}s" for k, v in check.timings.items()]
        text = "; ".join(pairs[:4])
    return text if len(text) <= MAX_OBSERVATION_CHARS else text[: MAX_OBSERVATION_CHARS - 1] + "…"


def _checks(summary: RequirementSummary) -> list[dict[str, Any]]:
    return [{"id": c.id, "status": c.status.value, "durationSeconds": round(c.duration_s, 3),
             "observation": _observation(c)} for c in summary.checks]


def _render_additions(results: RunResults, choice: ChecklistChoice, checklist: tuple[PublishedRequirement, ...],
                      by_id: dict[str, RequirementSummary], product: Product) -> str:
    info = results.info
    head = headline(results)
    listed = {r.id for r in checklist}
    doc: dict[str, Any] = {
        "tool": "aiconform",
        "toolVersion": info.harness_version,
        "run": {
            "id": info.run_id, "provider": info.provider, "tier": info.tier.value, "tierNotes": info.tier.note,
            "profile": info.profile, "kubernetesVersion": info.kubernetes_version,
            "startedAt": info.started_at.isoformat(),
            "finishedAt": info.finished_at.isoformat() if info.finished_at else None, "seed": info.seed,
        },
        "checklist": {"version": choice.label, "source": f"{SOURCE_REPO}: {SOURCES[choice.version]}",
                      "note": choice.note or None},
        "productFile": product.source or None,
        "headline": head.text,
        "mustsNotEvidenced": list(head.coverage.unevidenced),
        "requirements": [{"id": r.id, "status": _status(by_id.get(r.id)) or None,
                          "checks": _checks(by_id[r.id]) if r.id in by_id else []} for r in checklist],
        "otherRequirements": [
            {"id": rid, "verdict": s.verdict.value, "checks": _checks(s),
             **({"note": f"a CNCF id not in the {choice.label} checklist"}
                if s.requirement is not None and s.requirement.is_cncf else {})}
            for rid, s in by_id.items() if rid not in listed and rid != UNMAPPED
        ],
        "reportFiles": ["../../../results.json", "../../../junit.xml", "../../../report.html"],
    }
    return ("# aiconform's additions to PRODUCT.yaml (not part of the CNCF submission format).\n"
            + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120))
