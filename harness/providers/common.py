"""What every provider that makes clusters shares: the state root, cluster names, and the owner record that lets
``aiconform down/status/kubeconfig`` find a cluster's provider by name alone.  (Free ports and the process supervisor
are harness/hostproc.py, the bring-up pipeline kit.py.)

A provider that makes clusters keeps each one in a run directory ``<state root>/<name>`` and, before it starts
anything there, writes its registry name with :func:`mark_owner`.  Owns those conventions; starts nothing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from harness.errors import ConfigError

OWNER_FILE = "provider"


def state_root() -> Path:
    env = os.environ.get("AICONFORM_STATE_DIR")
    return Path(env) if env else Path.home() / ".local" / "state" / "aiconform"


def validate_cluster_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", name):
        raise ConfigError(f"--name: must be a DNS-1123 label of at most 40 characters, got {name!r}")
    return name


def mark_owner(run_dir: Path, provider: str) -> None:
    """Record which provider made the cluster in ``run_dir`` (before anything of it starts)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / OWNER_FILE).write_text(provider + "\n")


def owner_of(run_dir: Path) -> str | None:
    """The provider that made the cluster in ``run_dir``; None when there is no such cluster.  Run directories
    from before owner records carry it in state.json."""
    try:
        return (run_dir / OWNER_FILE).read_text().strip() or None
    except OSError:
        pass
    try:
        provider = json.loads((run_dir / "state.json").read_text()).get("provider")
    except (OSError, ValueError, AttributeError):
        return None
    return provider if isinstance(provider, str) and provider else None
