"""One owner per cross-layer fact: the labels, ports and versions in harness.contract / fake_gpu_plugin.names /
harness/versions.toml appear as literals in their owner only, so changing one is a one-line change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fake_gpu_plugin.names as gpu_names
import harness.contract as contract
from harness.bins import pinned_kubernetes

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("harness", "fake_gpu_plugin", "scenarios", "reference_workloads", "bench", "tests")
OWNED = {
    contract.SIMULATED_LABEL: "harness/contract.py",
    contract.REAL_NODE_LABEL: "harness/contract.py",
    contract.POOL_LABEL: "harness/contract.py",
    contract.CLUSTER_LABEL: "harness/contract.py",
    contract.PROMETHEUS_PORT: "harness/contract.py",
    contract.GATEWAY_PORT: "harness/contract.py",
    gpu_names.FAKE_GPU_LABEL: "fake_gpu_plugin/names.py",
    gpu_names.FAKE_DRIVER_VERSION: "fake_gpu_plugin/names.py",
    gpu_names.FAKE_CUDA_DRIVER_VERSION: "fake_gpu_plugin/names.py",
    gpu_names.DCGM_EXPORTER_PORT: "fake_gpu_plugin/names.py",
}


def _sources() -> list[Path]:
    return sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py") if "_pb2" not in p.name)


def _literal(value: str | int) -> re.Pattern[str]:
    if isinstance(value, int):
        return re.compile(rf"(?<![\w.]){value}(?![\w.])")
    return re.compile(rf"[\"']{re.escape(value)}[\"'=]")  # a string literal, or a label selector "key=value"


@pytest.mark.parametrize("value", list(OWNED), ids=str)
def test_a_cross_layer_literal_lives_in_its_owner_only(value: str | int) -> None:
    pattern = _literal(value)
    found = [str(p.relative_to(ROOT)) for p in _sources() if pattern.search(p.read_text())]
    assert found == [OWNED[value]], f"{value!r} repeated outside its owner: import it from {OWNED[value]}"


def test_no_test_repeats_a_pinned_kubernetes_version() -> None:
    pins = {pinned_kubernetes("default"), pinned_kubernetes("previous")}
    found = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").rglob("*.py"))
             if any(re.search(rf"(?<![\w.])v?{re.escape(v)}(?![\w])", p.read_text()) for v in pins)]
    assert found == [], f"tests repeat a pin of harness/versions.toml ({', '.join(sorted(pins))}): {found}"


def test_tiers_are_ordered_s_r_g() -> None:
    assert contract.TIERS == ("S", "R", "G")
    assert contract.highest_tier() is contract.Tier.S
    assert contract.highest_tier("G", "S", "R") is contract.Tier.G
    with pytest.raises(ValueError):
        contract.highest_tier("X")
