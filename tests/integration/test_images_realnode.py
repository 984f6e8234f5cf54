"""Tier R: a Python image built by harness/images runs as a pod on the real node, with nothing pulled.

The image is imported into the real node's containerd (namespace k8s.io) with :func:`harness.images.import_archive`;
the pod names it with ``imagePullPolicy: Never``, the real kubelet runs it, and its output is read through the pod
log API (apiserver -> kubelet).  Needs root, the real node's packages and debootstrap (.ci/run installs them).  Only
one real node per host: when another cluster holds it, bringing the cluster up fails with "cannot claim".
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import images, proc
from harness.config import load_profile
from harness.images import debian
from harness.kube import KubeClient, unschedulable_message
from harness.providers.local import LocalCluster, realnode
from tests.integration.conftest import REGISTRY_BINARY, loopback_registry


def _skip_reason() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "tier R needs root on Linux (a real kubelet, containerd and network interfaces)"
    missing = realnode.missing_packages() + debian.missing_tools()
    if missing:
        return f"needs packages that are not installed: apt-get install {' '.join(sorted(set(missing)))}"
    return None


pytestmark = [pytest.mark.upstream("kube-router"),
              pytest.mark.realnode, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    archive = images.build("python-prometheus").archive  # before the cluster: a cold build takes minutes
    c = LocalCluster(f"img-{secrets.token_hex(2)}", root=tmp_path_factory.mktemp("img"))
    c.create(load_profile("local-real"))
    try:
        rec = realnode.load_record(c)
        assert rec is not None
        images.import_archive(archive, Path(rec["containerd"]["socket"]))
        yield c
    finally:
        c.delete()


def test_python_image_built_here_runs_as_a_pod(cluster: LocalCluster) -> None:
    client: KubeClient = cluster.client()
    ns = f"img-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    client.wait_for("ServiceAccount", namespace=ns, name="default", condition=bool, timeout=30)
    token = secrets.token_hex(4)
    script = ("import sys, prometheus_client as pc; g = pc.Gauge('aiconform_pod', 'x'); g.set(42); "
              f"print('{token}', sys.version_info[0], sys.version_info[1], "
              "pc.generate_latest().decode().splitlines()[-1])")
    client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "py"},
                   "spec": {"nodeSelector": {"kubernetes.io/hostname": load_profile("local-real").real_node.name},
                            "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                            "containers": [{"name": "main", "image": images.image_ref("python-prometheus"),
                                            "imagePullPolicy": "Never", "command": ["python3", "-c", script]}]}},
                  namespace=ns)

    def failure(state: dict[str, Any]) -> str | None:
        for p in state.values():
            if unschedulable_message(p):
                return f"unschedulable: {unschedulable_message(p)}"
            if p.get("status", {}).get("phase") == "Failed":
                return f"pod failed: {p.get('status')}"
            for cs in p.get("status", {}).get("containerStatuses", []) or []:
                reason = cs.get("state", {}).get("waiting", {}).get("reason")
                if reason in ("ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "CreateContainerError"):
                    return f"container {cs['name']}: {cs['state']['waiting']}"
        return None

    client.wait_for("Pod", namespace=ns, name="py", timeout=90, failure=failure, what="pod py to succeed",
                    condition=lambda s: any(p.get("status", {}).get("phase") == "Succeeded" for p in s.values()))
    log: str = client.request("GET", f"/api/v1/namespaces/{ns}/pods/py/log", params={"container": "main"}, raw=True)
    assert log.strip() == f"{token} 3 11 aiconform_pod 42.0"
    client.delete("Namespace", ns)
    client.close()


@pytest.mark.skipif(not REGISTRY_BINARY.exists(), reason="needs Debian's registry: apt-get install docker-registry")
def test_a_run_with_an_image_registry_pulls_its_images_from_there(cluster: LocalCluster, tmp_path: Path) -> None:
    """A cluster judged with --kubeconfig pulls the suites' images from the registry named with --image-registry
    (pushed by `aiconform images push`): the real node's containerd fetches them over plain HTTP from 127.0.0.1,
    and the smoke suite's third-party probe (busybox, the one pod that always lands on the real node) runs from
    there.  Its GPU pods name the registry's pause too, but the scheduler may put them all on simulated nodes,
    which pull nothing."""
    cli = str(Path(sys.executable).parent / "aiconform")
    with loopback_registry(tmp_path) as reg:
        target = f"{reg.address}/run-{secrets.token_hex(2)}"
        proc.run([cli, "images", "push", "--registry", target, "pause", "busybox"], timeout=300)
        report = tmp_path / "report"
        res = subprocess.run([cli, "run", "--kubeconfig", str(cluster.kubeconfig()), "--allow-existing", "--no-probe",
                              "--image-registry", target, "--suite", "smoke", "--report-dir", str(report)],
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        assert f"images from {target}" in res.stderr
        checks = json.loads((report / "results.json").read_text())["checks"]
        probe = next(c for c in checks if c["id"].endswith("::test_third_party_pod_without_selector_lands_on_a_real_node"))
        assert probe["status"] == "passed", probe
        pulled = [ln for ln in reg.log.read_text().splitlines() if "containerd" in ln and "/manifests/" in ln]
        repo = target.split("/", 1)[1]
        assert any(f"/v2/{repo}/busybox/manifests/latest" in ln for ln in pulled), pulled[-5:]
