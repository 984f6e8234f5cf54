"""Fixtures shared by the unit tests (no cluster)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for unix sockets: their paths must stay under ~107 bytes, which tmp_path can exceed."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="fg"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
