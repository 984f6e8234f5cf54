"""The fake-gpu-plugin command: validate/labels/health/inventory in-process, serve as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fake_gpu_plugin.cli import main
from fake_gpu_plugin.health import read_unhealthy
from fake_gpu_plugin.testing import FakeKubeletRegistration

GOOD = "gpu:\n  model: H100\n  count: 2\n  sharing:\n    timeSlicing:\n      replicas: 2\n"


@pytest.fixture
def good_config(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    return path


def test_validate_ok(good_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--config", str(good_config)]) == 0
    assert "ok (2 x H100-SXM5-80GB, time-slicing x2)" in capsys.readouterr().out


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpu:\n  model: A100-80GB\n  count: 1\n  mig: {strategy: mixed, layout: [[4g.40gb, 4g.40gb]]}\n")
    for command in ("validate", "labels", "serve"):
        assert main([command, "--config", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "gpu.mig.layout[0]: 2 x 4g.40gb on one A100-SXM4-80GB; at most 1" in err


def test_labels_json(good_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["labels", "--config", str(good_config)]) == 0
    labels = json.loads(capsys.readouterr().out)
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-SHARED"
    assert labels["nvidia.com/gpu.replicas"] == "2"


def test_inventory_lists_advertised_ids(good_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "--config", str(good_config), "--node-name", "n1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["resources"]["nvidia.com/gpu"]) == 4
    assert out["resources"]["nvidia.com/gpu"][0] == out["gpus"][0]["uuid"] + "::0"


def test_health_command_writes_the_control_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uuid = "GPU-00000000-0000-0000-0000-000000000001"
    assert main(["health", "--state-dir", str(tmp_path), "--device", uuid, "--unhealthy"]) == 0
    assert read_unhealthy(tmp_path) == {uuid}
    assert main(["health", "--state-dir", str(tmp_path), "--device", uuid, "--healthy"]) == 0
    assert read_unhealthy(tmp_path) == frozenset()
    capsys.readouterr()


def test_serve_registers_and_exits_cleanly_on_sigterm(sockdir: Path, good_config: Path) -> None:
    argv = [sys.executable, "-m", "fake_gpu_plugin", "serve", "--config", str(good_config), "--node-name", "n1",
            "--device-plugin-dir", str(sockdir), "--state-dir", str(sockdir / "state"), "--metrics-addr", "off",
            "--pod-resources-socket", str(sockdir / "none.sock"), "--no-device-nodes"]
    with FakeKubeletRegistration(sockdir) as kubelet:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            request = kubelet.next_request(timeout_s=10)
            assert request.resource_name == "nvidia.com/gpu"
            assert (sockdir / request.endpoint).exists()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert "received SIGTERM; stopping" in err
        assert not (sockdir / request.endpoint).exists()
        assert sorted(os.listdir(sockdir)) == ["kubelet.sock", "state"]
