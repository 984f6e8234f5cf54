"""A pytest plugin for ``aiconform selftest``: collects the checks (nothing runs) and writes, for each, its id and the
``aiconform`` marker fields selftest needs (requirement, tier, mutations) to the JSON file named by
``--aiconform-selftest-collect``.  Loaded with ``-p harness.selftest.collect`` only; inert without the option.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.testing.requirements import spec_of

OPTION = "--aiconform-selftest-collect"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("aiconform").addoption(OPTION, default=None, metavar="PATH",
                                           help="write the collected checks' selftest fields to PATH (JSON)")


def pytest_collection_finish(session: pytest.Session) -> None:
    out = session.config.getoption(OPTION)
    if not out:
        return
    checks = []
    for item in session.items:
        spec = spec_of(item)  # a bad marker already stopped collection (harness.testing.requirements)
        if spec is None:
            continue
        checks.append({"id": item.nodeid, "name": getattr(item, "originalname", item.name),
                       "file": str(item.path), "requirement": spec.requirement, "tier": spec.tier,
                       "mutations": list(spec.mutations)})
    Path(out).write_text(json.dumps(checks, indent=1))
