"""The CNCF AI Conformance program's submission rules, checked offline: ``validate(PATH/vX.Y/<product>/PRODUCT.yaml)``.

The rules of the program's validator (``scripts/validate.go`` in github.com/cncf/k8s-ai-conformance), against the
published checklist of the version the path names (``harness.report.checklists``):

* the version comes from the path (``vX.Y/``) and has a published checklist;
* ``metadata`` has every required field (camelCase or snake_case), each a non-empty string that is not a
  ``[placeholder]``; ``k8sConformanceUrl`` matches ``https://github.com/cncf/k8s-conformance/tree/master/vX.Y/<p>``;
  ``productLogoUrl`` ends in .svg, .eps or .ai;
* every category and requirement of the checklist is present; a SHOULD with status ``""`` and no evidence is "not
  filled in" and passes; otherwise ``status`` is one of Implemented, Not Implemented, Partially Implemented, N/A;
  every MUST is ``Implemented``; ``N/A`` has notes; every evidence item is an http(s) URL or a file that exists
  next to PRODUCT.yaml.

Stricter than the program's validator, as aiconform's own output must be: ``description`` and ``level`` are the
checklist's, unchanged, and PRODUCT.yaml holds nothing the program does not define (no other top-level key,
metadata field, category, requirement or requirement key).  Not checked here (they need the network): that URLs
answer and that ``vendorName`` is a CNCF member.

Pure: reads the folder, never writes.  ``python -m harness.report.cncf_validate PATH...`` prints each problem and
exits 1 when there is one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

from harness.report.requirements import CHECKLISTS, Level, published_checklist
from harness.report.submission import (
    K8S_CONFORMANCE_URL,
    METADATA_FIELDS,
    OPTIONAL_METADATA_FIELDS,
    REQUIREMENT_KEYS,
    VALID_STATUSES,
)

_VERSION_IN_PATH = re.compile(r"(?:^|/)v(\d+)\.(\d+)/")


def _snake(name: str) -> str:
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()


def validate(product_yaml: str | Path) -> list[str]:
    """Every rule the file breaks, one line each; empty when it would pass."""
    path = Path(product_yaml)
    match = _VERSION_IN_PATH.search(path.resolve().as_posix())
    if not match:
        return [f"cannot tell the checklist version from the path {path} (expected .../vX.Y/<product>/PRODUCT.yaml)"]
    version = (int(match.group(1)), int(match.group(2)))
    if version not in CHECKLISTS:
        return [f"no published CNCF checklist for v{version[0]}.{version[1]} (published: "
                f"{', '.join(f'v{a}.{b}' for a, b in sorted(CHECKLISTS))})"]
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        return [f"cannot read {path}: {err.strerror or err}"]
    except yaml.YAMLError as err:
        return [f"{path} is not valid YAML: {' '.join(str(err).split())}"]
    if not isinstance(doc, dict):
        return [f"{path} is not a mapping with metadata and spec"]
    errors = [f"unknown top-level key {key!r}" for key in doc if key not in ("metadata", "spec")]
    errors += _metadata_errors(doc.get("metadata"))
    errors += _spec_errors(doc.get("spec"), version, path.parent)
    return errors


def _metadata_errors(metadata: Any) -> list[str]:
    if not isinstance(metadata, dict):
        return ["missing 'metadata' section"]
    errors = []
    known = set(METADATA_FIELDS) | set(OPTIONAL_METADATA_FIELDS)
    known |= {_snake(f) for f in known}
    errors += [f"unknown metadata field {key!r}" for key in metadata if key not in known]
    for name in METADATA_FIELDS + OPTIONAL_METADATA_FIELDS:
        required = name in METADATA_FIELDS
        value = metadata.get(name, metadata.get(_snake(name)))
        if value is None:
            if required:
                errors.append(f"missing metadata field: {name}")
            continue
        if not isinstance(value, str):
            errors.append(f"metadata field {name} is not a string")
        elif value == "":
            if required:
                errors.append(f"metadata field {name} is empty")
        elif value.startswith("[") and value.endswith("]"):
            errors.append(f"metadata field {name} has placeholder value: {value}")
        elif name == "k8sConformanceUrl" and not K8S_CONFORMANCE_URL.match(value):
            errors.append(f"invalid k8sConformanceUrl format: {value} (expected "
                          "https://github.com/cncf/k8s-conformance/tree/master/vX.Y/<product>)")
        elif name == "productLogoUrl" and value.startswith("http") and \
                not value.lower().endswith((".svg", ".eps", ".ai")):
            errors.append(f"productLogoUrl must link to an SVG, EPS, or AI file: {value}")
    return errors


def _spec_errors(spec: Any, version: tuple[int, int], folder: Path) -> list[str]:
    if not isinstance(spec, dict):
        return ["missing 'spec' section"]
    checklist = published_checklist(version)
    categories = list(dict.fromkeys(r.category_key for r in checklist))
    errors = [f"unknown spec category {key!r}" for key in spec if key not in categories]
    for category in categories:
        entries = spec.get(category)
        if not isinstance(entries, list):
            errors.append(f"missing spec category: {category}")
            continue
        given: dict[str, dict[str, Any]] = {}
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("id"), str):
                errors.append(f"a requirement of {category} is not a mapping with an id")
                continue
            given[e["id"]] = e
        wanted = [r for r in checklist if r.category_key == category]
        errors += [f"unknown requirement {rid!r} in category {category!r}" for rid in given
                   if rid not in {r.id for r in wanted}]
        for req in wanted:
            entry = given.get(req.id)
            if entry is None:
                errors.append(f"missing requirement {req.id!r} in category {category!r}")
                continue
            errors += _requirement_errors(req.id, req.description, req.level, entry, folder)
    return errors


def _requirement_errors(rid: str, description: str, level: Level, entry: dict[str, Any], folder: Path) -> list[str]:
    errors = [f"unknown key {key!r} in requirement {rid!r}" for key in entry if key not in REQUIREMENT_KEYS]
    if entry.get("description") != description:
        errors.append(f"description of {rid!r} is not the checklist's text")
    if entry.get("level") != level.value:
        errors.append(f"level of {rid!r} is {entry.get('level')!r}, the checklist says {level.value}")
    status = entry.get("status") if entry.get("status") is not None else ""
    evidence = entry.get("evidence") or []
    notes = entry.get("notes") or ""
    if not isinstance(evidence, list):
        return [*errors, f"evidence of {rid!r} is not a list"]
    if level is Level.SHOULD and status == "" and not evidence:
        return errors  # the validator's "not filled in" SHOULD
    if status not in VALID_STATUSES:
        errors.append(f"invalid status {status!r} for {rid!r}; must be one of {', '.join(VALID_STATUSES)}")
    if level is Level.MUST and status != "Implemented":
        errors.append(f"requirement {rid!r} is MUST level but status is {status!r}; it must be 'Implemented'")
    if status == "N/A" and not notes:
        errors.append(f"notes required for {rid!r} when status is N/A")
    for item in evidence:
        if not isinstance(item, str) or item == "":
            continue
        if item.startswith(("http://", "https://")):
            continue
        if not (folder / item).exists():
            errors.append(f"invalid evidence file for {rid!r}: {item} (not found at {folder / item})")
    return errors


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m harness.report.cncf_validate PATH/vX.Y/<product>/PRODUCT.yaml ...", file=sys.stderr)
        return 2
    ok = True
    for p in paths:
        problems = validate(p)
        print(f"{p}: {'passes' if not problems else f'{len(problems)} problem(s)'}")
        for line in problems:
            print(f"  - {line}")
        ok = ok and not problems
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
