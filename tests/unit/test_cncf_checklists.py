"""The published CNCF checklists aiconform judges against (harness/report/checklists.py) are the program's texts.

The source texts are stored as read from github.com/cncf/k8s-ai-conformance in tests/unit/data/cncf/:
``docs/AIConformance-1.33/1.34/1.35.md`` and ``docs/AIConformance-1.37.yaml`` whole; for v1.36 (whose
``docs/AIConformance-1.36.yaml`` is not in the index read) the requirement lines of its accepted submissions.  Each
is parsed here independently of the data module and must agree with it: every id, level, category and description,
in order.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from harness.report.checklists import PUBLISHED
from harness.report.requirements import CATALOG, CHECKLISTS, Category, choose_checklist, published_checklist

DATA = Path(__file__).parent / "data" / "cncf"
SECTION_KEYS = {c.label: c.yaml_key for c in Category}
"""The markdown's section titles → the YAML keys under ``spec`` (Scheduling & Orchestration → schedulingOrchestration)."""

Entry = tuple[str, str, str, str]


def parse_markdown(text: str) -> list[Entry]:
    """(category key, id, level, description) from a checklist's generated Markdown."""
    out: list[Entry] = []
    category = level = description = None
    for line in text.splitlines():
        if m := re.fullmatch(r"## \S+ (.+)", line):
            category = SECTION_KEYS.get(m.group(1), category)
        elif m := re.fullmatch(r"\*\*Level:\*\* \S+ \*\*(MUST|SHOULD)\*\*", line):
            level = m.group(1)
        elif line.startswith("> ") and level is not None:
            description = line[2:]
        elif m := re.fullmatch(r"\| `id` \| `(\w+)` \|", line):
            assert category and level and description, f"incomplete requirement before id {m.group(1)}"
            out.append((category, m.group(1), level, description))
            level = description = None
    return out


def parse_yaml(text: str) -> list[Entry]:
    doc = yaml.safe_load(text)
    return [(key, r["id"], r["level"], r["description"]) for key, reqs in doc["spec"].items() for r in reqs]


SOURCES = {
    (1, 33): ("AIConformance-1.33.md", parse_markdown),
    (1, 34): ("AIConformance-1.34.md", parse_markdown),
    (1, 35): ("AIConformance-1.35.md", parse_markdown),
    (1, 36): ("AIConformance-1.36.requirements.yaml", parse_yaml),
    (1, 37): ("AIConformance-1.37.yaml", parse_yaml),
}


@pytest.mark.parametrize("version", sorted(SOURCES), ids=lambda v: f"v{v[0]}.{v[1]}")
def test_the_stored_checklist_is_the_published_text(version: tuple[int, int]) -> None:
    name, parse = SOURCES[version]
    source = parse((DATA / name).read_text(encoding="utf-8"))
    assert source, f"nothing parsed from {name}"
    assert list(PUBLISHED[version]) == source


def test_the_markdown_overview_counts_agree_with_the_parsed_requirements() -> None:
    for version in ((1, 33), (1, 34), (1, 35)):
        text = (DATA / SOURCES[version][0]).read_text(encoding="utf-8")
        m = re.search(r"\| \*\*v1\.\d+\*\* \| (\d+) \| (\d+) \| (\d+) \|", text)
        assert m is not None
        total, musts, shoulds = map(int, m.groups())
        levels = [e[2] for e in PUBLISHED[version]]
        assert (len(levels), levels.count("MUST"), levels.count("SHOULD")) == (total, musts, shoulds)


def test_every_published_version_is_stored_and_known_to_the_catalogue() -> None:
    assert sorted(PUBLISHED) == sorted(SOURCES) == sorted(CHECKLISTS)
    for version in PUBLISHED:
        for req in published_checklist(version):
            assert req.id in CATALOG, f"{req.id} of v{version} has no catalogue entry"
            assert CATALOG[req.id].category.yaml_key == req.category_key


def test_what_changed_between_versions() -> None:
    musts = {v: {e[1] for e in PUBLISHED[v] if e[2] == "MUST"} for v in PUBLISHED}
    assert "dra_support" not in musts[(1, 33)] and "dra_support" in musts[(1, 34)] | musts[(1, 35)]
    assert len(musts[(1, 35)]) == 9 and "dra_support" not in {e[1] for e in PUBLISHED[(1, 36)]}
    assert len(musts[(1, 36)]) == 8 and musts[(1, 36)] == musts[(1, 37)]
    assert "workload_sandboxing" in {e[1] for e in PUBLISHED[(1, 37)]} - {e[1] for e in PUBLISHED[(1, 36)]}


@pytest.mark.parametrize(("kubernetes", "label", "says"), [
    ("v1.36.1", "v1.36", ""),  # the `previous` pin: its own list, not 1.35's
    ("1.33.0", "v1.33", ""),
    ("v1.37.0", "v1.37", ""),
    ("v1.38.0", "v1.37", "Kubernetes v1.38 has no published CNCF checklist yet; judged against v1.37"),
    ("v1.30.1", "v1.33", "Kubernetes v1.30 is older than the first published CNCF checklist; judged against v1.33"),
    ("latest", "v1.37", "is not vX.Y[.Z]; judged against the newest published checklist, v1.37"),
])
def test_a_cluster_is_judged_against_its_own_minors_checklist_or_says_which(kubernetes: str, label: str,
                                                                           says: str) -> None:
    choice = choose_checklist(kubernetes)
    assert choice.label == label
    assert (says in choice.note) if says else choice.note == ""
