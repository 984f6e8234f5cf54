"""The training stack's bad input at tier R (a real kubelet node, Kubeflow Trainer and JobSet through the one
installer): a TrainJob the webhook refuses, a worker image that is missing, a checkpoint volume that cannot be
mounted, a job that fails and a job that never completes each end in an error carrying the operator's, the pod's or
the kubelet's own message, within its deadline; and ``down`` leaves no training process, checkpoint data or webhook
behind.  The passing paths are the scenarios in scenarios/test_training.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import images
from harness.addons import trainer
from harness.config import load_profile
from harness.errors import ApiError, WaitFailed, WaitTimeout
from harness.kube import KubeClient
from harness.providers import ensure_addons
from harness.providers.local import LocalCluster, realnode
from harness.testing.tenants import create_run_namespace
from harness.workloads import real_node_selector
from reference_workloads.training import cluster as tc
from reference_workloads.training import manifests
from tests.integration.conftest import running_cluster


def _skip_reason() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "tier R needs root on Linux (a real kubelet, containerd and network interfaces)"
    missing = realnode.missing_packages()
    return f"the real node needs: apt-get install {' '.join(missing)}" if missing else None


pytestmark = [pytest.mark.upstream("kube-router", "jobset", "trainer"),
              pytest.mark.realnode, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]
NS = "training-bad-input"


@dataclass(frozen=True)
class Stack:
    cluster: LocalCluster
    client: KubeClient
    image: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_cluster("trn", tmp_path_factory.mktemp("trn"), load_profile("local-real")) as c:
        ensure_addons(c, "jobset", "trainer")
        built = images.build("jax-training", progress=lambda line: None)
        c.load_image(built.archive)
        with c.client() as client:
            create_run_namespace(client, NS, "itest")
            yield Stack(c, client, built.ref)


def _runtime(s: Stack, name: str, claim: str, path: Path, path_type: str = "DirectoryOrCreate") -> None:
    pv = f"{NS}-{claim}"
    s.client.create(manifests.checkpoint_volume(pv, path=str(path), claim_namespace=NS, claim=claim,
                                                path_type=path_type))
    s.client.create(manifests.checkpoint_claim(claim, NS, volume=pv), namespace=NS)
    s.client.create(manifests.training_runtime(name, NS, image=s.image, claim=claim, max_restarts=0,
                                               node_selector=real_node_selector()), namespace=NS)
    tc.wait_runtime_known(s.client, NS, name)


def test_bad_trainjobs_end_with_the_operators_and_pods_messages(stack: Stack) -> None:
    s, c = stack, stack.client
    with pytest.raises(ApiError) as refused:
        c.create(trainer.invalid_trainjob(NS, "no-runtime"))
    assert f'admission webhook "{trainer.TRAINJOB_VALIDATOR}" denied the request' in refused.value.message
    assert "specified trainingRuntime must be created before the TrainJob is created" in refused.value.message

    _runtime(s, "jax", "ckpt", s.cluster.dir / "training-checkpoints" / "ok")
    c.create(manifests.train_job("no-image", NS, runtime="jax", steps=5, image="aiconform.local/no-such-image:1"),
             namespace=NS)
    with pytest.raises(WaitFailed) as missing:
        tc.wait_pods_running(c, NS, "no-image", 2, timeout=120)
    assert "ErrImageNeverPull" in str(missing.value) and "no-such-image" in str(missing.value)

    c.create(manifests.train_job("bad-settings", NS, runtime="jax", steps=0), namespace=NS)
    with pytest.raises(WaitFailed) as failed:
        tc.wait_trainjob(c, NS, "bad-settings", timeout=180)
    msg = str(failed.value)
    assert "TrainJob training-bad-input/bad-settings Failed" in msg  # the operator's condition ...
    assert "steps must be >= 1" in msg  # ... and the pod's own last words (FallbackToLogsOnError)

    c.create(manifests.train_job("forever", NS, runtime="jax", steps=100000, min_step_seconds=0.5), namespace=NS)
    tc.wait_pods_running(c, NS, "forever", 2, timeout=120)
    with pytest.raises(WaitTimeout) as never:
        tc.wait_trainjob(c, NS, "forever", timeout=5)
    assert "forever-node-0-0" in str(never.value) and "Running" in str(never.value)

    _runtime(s, "unmountable", "gone", s.cluster.dir / "no-such-dir", path_type="Directory")
    c.create(manifests.train_job("no-volume", NS, runtime="unmountable", steps=5), namespace=NS)
    with pytest.raises(WaitFailed) as unmountable:
        tc.wait_pods_running(c, NS, "no-volume", 2, timeout=120)
    assert "FailedMount" in str(unmountable.value) and "no-such-dir" in str(unmountable.value)


def test_down_leaves_no_training_process_checkpoint_or_webhook(stack: Stack) -> None:
    s = stack
    ckpt = s.cluster.dir / "training-checkpoints"
    assert ckpt.exists()  # the earlier test's volume was created on the node
    hook = s.client.get("ValidatingWebhookConfiguration", trainer.VALIDATING_WEBHOOK)
    assert all(w["clientConfig"].get("caBundle") for w in hook["webhooks"])  # wired to the harness CA
    s.cluster.delete()
    assert not ckpt.exists() and not s.cluster.dir.exists()  # the checkpoints and etcd (webhook objects) are gone
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "reference_workloads.training.train" in cmd or "trainer-controller-manager" in cmd:
            leftovers.append(f"{pid}: {cmd[:120]}")
    assert leftovers == []
