"""The fake nvidia-smi: a POSIX sh script run against an allocation data file, output checked exactly."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fake_gpu_plugin.allocate import render_data_file
from fake_gpu_plugin.config import config_from_pool
from fake_gpu_plugin.hostfiles import nvidia_smi_script
from fake_gpu_plugin.inventory import build_inventory

# busybox's sh where the host has it (the shell of the images the script really runs in), else the host's POSIX sh.
_BUSYBOX = shutil.which("busybox")
SH = [_BUSYBOX, "sh"] if _BUSYBOX else [shutil.which("sh") or "/bin/sh"]


@pytest.fixture
def smi(tmp_path: Path) -> Path:
    script = tmp_path / "nvidia-smi"
    script.write_text(nvidia_smi_script())
    return script


def run(script: Path, data: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env["AICONFORM_FAKE_GPU_DEVICES"] = str(data) if data else "/nonexistent"
    return subprocess.run([*SH, str(script), *args], capture_output=True, text=True, env=env, timeout=10)


@pytest.fixture
def two_gpus(tmp_path: Path) -> tuple[Path, list[str]]:
    inv = build_inventory(config_from_pool({"gpu": {"model": "A100-SXM4-80GB", "count": 8}}), "n")
    gpus = [inv.gpus[6], inv.gpus[1]]
    data = tmp_path / "devices"
    data.write_text(render_data_file(gpus, gpus))
    return data, [g.uuid for g in gpus]


def test_list_gpus(smi: Path, two_gpus: tuple[Path, list[str]]) -> None:
    data, (u0, u1) = two_gpus
    out = run(smi, data, "-L")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (f"GPU 0: NVIDIA A100-SXM4-80GB (UUID: {u0})\n"
                          f"GPU 1: NVIDIA A100-SXM4-80GB (UUID: {u1})\n")


def test_query_gpu_csv(smi: Path, two_gpus: tuple[Path, list[str]]) -> None:
    data, (u0, u1) = two_gpus
    out = run(smi, data, "--query-gpu=index,uuid,name,memory.total", "--format=csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ("index, uuid, name, memory.total [MiB]\n"
                          f"0, {u0}, NVIDIA A100-SXM4-80GB, 81920 MiB\n"
                          f"1, {u1}, NVIDIA A100-SXM4-80GB, 81920 MiB\n")
    out = run(smi, data, "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader")
    assert out.stdout == (f"0, {u0}, NVIDIA A100-SXM4-80GB, 81920 MiB\n"
                          f"1, {u1}, NVIDIA A100-SXM4-80GB, 81920 MiB\n")
    out = run(smi, data, "--query-gpu", "uuid,memory.total,count", "--format", "csv,noheader,nounits")
    assert out.stdout == f"{u0}, 81920, 2\n{u1}, 81920, 2\n"


def test_table_lists_every_gpu(smi: Path, two_gpus: tuple[Path, list[str]]) -> None:
    data, uuids = two_gpus
    out = run(smi, data)
    assert out.returncode == 0, out.stderr
    assert "aiconform fake" in out.stdout
    assert all(u in out.stdout for u in uuids)
    widths = {len(line) for line in out.stdout.splitlines()}
    assert len(widths) == 1, "table rows are not aligned"


def test_mig_devices_are_listed_under_their_gpu(smi: Path, tmp_path: Path) -> None:
    inv = build_inventory(config_from_pool({"gpu": {"model": "A100-SXM4-80GB", "count": 1,
                                                    "mig": {"strategy": "mixed", "layout": "1g.10gb"}}}), "n")
    migs = list(inv.mig_devices[:2])
    data = tmp_path / "devices"
    data.write_text(render_data_file(migs, [inv.gpus[0]]))
    out = run(smi, data, "-L")
    assert out.stdout == (f"GPU 0: NVIDIA A100-SXM4-80GB (UUID: {inv.gpus[0].uuid})\n"
                          f"  MIG 1g.10gb     Device  0: (UUID: {migs[0].uuid})\n"
                          f"  MIG 1g.10gb     Device  1: (UUID: {migs[1].uuid})\n")


def test_errors_look_like_nvidia_smi(smi: Path, two_gpus: tuple[Path, list[str]]) -> None:
    data, _ = two_gpus
    bad_field = run(smi, data, "--query-gpu=index,bogus", "--format=csv")
    assert (bad_field.returncode, bad_field.stderr) == (2, 'Field "bogus" is not a valid field to query.\n')
    no_driver = run(smi, None, "-L")
    assert no_driver.returncode == 9 and "couldn't communicate with the NVIDIA driver" in no_driver.stderr
    assert run(smi, data, "--frobnicate").returncode == 2
