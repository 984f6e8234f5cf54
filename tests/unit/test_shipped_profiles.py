"""Every shipped profile parses to exactly the profile recorded in data/shipped-profiles.json.

The snapshot was written from the flat profiles before they were made to extend each other; it holds every field
the parser fills in, the tier and the node count.  An edit of one profile that changes another one through
``extends`` shows here, in the diff of the snapshot.  After an intended change, rewrite it with
``PYTHONPATH=. python -m tests.unit.test_shipped_profiles`` and review that diff.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from harness.config import Profile, load_profile, shipped_profiles

SNAPSHOT = Path(__file__).with_name("data") / "shipped-profiles.json"


def flat(profile: Profile) -> dict[str, Any]:
    """The parsed profile as plain JSON data: every dataclass field (the provider's spec included) but the file it
    came from, plus the tier and the node count its provider states."""
    data = dataclasses.asdict(profile)
    data.pop("source")
    data["tier"] = profile.tier
    data["node_count"] = profile.node_count()
    parsed: dict[str, Any] = json.loads(json.dumps(data, sort_keys=True, default=str))
    return parsed


def snapshot() -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads(SNAPSHOT.read_text())
    return recorded


def test_the_snapshot_covers_every_shipped_profile() -> None:
    assert sorted(snapshot()) == shipped_profiles()


@pytest.mark.parametrize("name", shipped_profiles())
def test_shipped_profile_parses_to_its_snapshot(name: str) -> None:
    assert flat(load_profile(name)) == snapshot()[name]


def main() -> None:
    SNAPSHOT.write_text(json.dumps({n: flat(load_profile(n)) for n in shipped_profiles()}, indent=1, sort_keys=True)
                        + "\n")
    print(f"wrote {SNAPSHOT}")


if __name__ == "__main__":
    main()
