"""``junit.xml`` from ``RunResults``: testsuites → one testsuite per suite → one testcase per check.

Run metadata goes into each testsuite's ``<properties>``; each testcase carries ``<properties>`` with its
requirement id, tier and timings (the same shape pytest's ``record_property`` produces, which Jenkins, GitLab
and GitHub reporters read), ``<failure>``/``<error>``/``<skipped>`` with the reason, and its evidence as JSON
in ``<system-out>``.  Built with ElementTree, so every value is escaped; characters XML 1.0 forbids are
dropped.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from harness.report.model import CheckResult, RunResults, Status

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _XML_INVALID.sub("", text)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _classname(check: CheckResult) -> str:
    """``scenarios/test_x.py::Class::test_y`` → ``scenarios.test_x.Class`` (what pytest writes); else suite."""
    parts = check.id.split("::")
    if len(parts) < 2:
        return check.suite or "aiconform"
    module = parts[0].removesuffix(".py").replace("/", ".")
    return ".".join([module, *parts[1:-1]])


def _counts(checks: list[CheckResult]) -> dict[str, str]:
    return {
        "tests": str(len(checks)),
        "failures": str(sum(c.status is Status.FAILED for c in checks)),
        "errors": str(sum(c.status is Status.ERROR for c in checks)),
        "skipped": str(sum(c.status is Status.SKIPPED for c in checks)),
        "time": _seconds(sum(c.duration_s for c in checks)),
    }


def _property(parent: ET.Element, name: str, value: object) -> None:
    ET.SubElement(parent, "property", name=name, value=_clean(str(value)))


def render_junit(results: RunResults) -> str:
    """The ``junit.xml`` text."""
    info = results.info
    root = ET.Element("testsuites", {"name": "aiconform", **_counts(list(results.checks))})
    suites: dict[str, list[CheckResult]] = {}
    for check in results.checks:
        suites.setdefault(check.suite or "aiconform", []).append(check)
    for suite_name, checks in suites.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            {"name": _clean(suite_name), "timestamp": info.started_at.isoformat(), **_counts(checks)},
        )
        props = ET.SubElement(suite, "properties")
        for key, value in (
            ("run_id", info.run_id),
            ("harness_version", info.harness_version),
            ("kubernetes_version", info.kubernetes_version),
            ("provider", info.provider),
            ("tier", info.tier.value),
            ("profile", info.profile),
            ("seed", info.seed),
        ):
            if value is not None:
                _property(props, key, value)
        for check in checks:
            case = ET.SubElement(
                suite, "testcase", classname=_clean(_classname(check)), name=_clean(check.name),
                time=_seconds(check.duration_s),
            )
            case_props = ET.SubElement(case, "properties")
            _property(case_props, "id", check.id)
            if check.requirement:
                _property(case_props, "requirement", check.requirement)
            _property(case_props, "tier", check.tier.value)
            for key, seconds in check.timings.items():
                _property(case_props, key, seconds)
            reason = _clean(check.reason)
            if check.status is Status.FAILED:
                ET.SubElement(case, "failure", message=reason).text = reason
            elif check.status is Status.ERROR:
                ET.SubElement(case, "error", message=reason).text = reason
            elif check.status is Status.SKIPPED:
                ET.SubElement(case, "skipped", message=reason)
            if check.evidence:
                out = ET.SubElement(case, "system-out")
                out.text = _clean(json.dumps(dict(check.evidence), indent=2, ensure_ascii=False))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
