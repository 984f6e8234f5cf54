"""The kind provider end to end, air-gapped: the harness-managed dockerd, the offline node image (built, or found in
the engine), one small kind cluster (a control plane and one GPU worker), the fake GPU plugin as a DaemonSet that
labels its own node, a short suite through ``aiconform run`` at tier R, and teardown that leaves no node behind.

Also: a node image build that fails half-way tags nothing and leaves no build container.  Needs root, Debian's
docker.io and debootstrap (.ci/run installs them); a cold first run builds kind, containerd, kubeadm and the node
image (see the budget table in docs/cold-ci.md).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.contract import GPU_RESOURCE
from harness.errors import ClusterError, ImageBuildError
from harness.images import cache, debian
from harness.images.registry import Built
from harness.kube import KubeClient, KubeConfig
from harness.providers.kind import nodeimage
from harness.providers.kind.engine import Engine, ensure_engine


def _skip_reason() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "the kind provider needs root on Linux (it starts its own dockerd)"
    missing = [t for t in ("dockerd", "runc") if shutil.which(t) is None] + debian.missing_tools()
    if missing:
        return f"needs {', '.join(missing)} (Debian: apt-get install docker.io debootstrap)"
    return None


pytestmark = [pytest.mark.upstream("kind"),
              pytest.mark.kind, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]

PROFILE = {
    "name": "kind-it",
    "provider": "kind",
    "kind": {"workers": [{"name": "t4", "gpu": {"model": "T4", "count": 2, "sharing": {"timeSlicing": {"replicas": 2}}}}]},
}


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    e = ensure_engine()
    yield e
    e.close()


def _nodes_of(engine: Engine, cluster: str) -> list[str]:
    return [c.name for c in engine.client.containers.list(all=True,
                                                          filters={"label": f"io.x-k8s.kind.cluster={cluster}"})]


def test_run_on_a_kind_cluster_then_nothing_is_left(engine: Engine, tmp_path: Path) -> None:
    name = f"kind-it-{secrets.token_hex(2)}"
    profile = tmp_path / "kind-it.yaml"
    profile.write_text(yaml.safe_dump(PROFILE))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    up = subprocess.run([sys.executable, "-m", "harness.cli", "up", "--profile", str(profile), "--name", name],
                        capture_output=True, text=True, timeout=900, env=env)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        with KubeClient(KubeConfig.from_file(kubeconfig)) as client:
            worker = client.get("Node", f"{name}-worker")
            labels = worker["metadata"]["labels"]
            assert labels["nvidia.com/gpu.product"] == "Tesla-T4-SHARED"
            assert worker["status"]["allocatable"][GPU_RESOURCE] == "4"  # 2 GPUs x 2 replicas
            # the GPU labels were written by the plugin from inside the cluster, not by the harness
            owners = {m["manager"] for m in worker["metadata"].get("managedFields", [])
                      if "f:nvidia.com/gpu.product" in json.dumps(m.get("fieldsV1", {}))}
            assert owners and not any("aiconform" in o or "kubeadm" in o for o in owners), owners
            assert len(_nodes_of(engine, name)) == 2
            _dns_across_nodes(client, f"{name}-worker")
        status = subprocess.run([sys.executable, "-m", "harness.cli", "status", "--name", name],
                                capture_output=True, text=True, timeout=60, env=env)
        engine_line = next(ln for ln in status.stdout.splitlines() if ln.startswith("engine"))
        assert engine.description in engine_line  # the engine the nodes run on, as the bring-up chose it
        report = tmp_path / "report"
        run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--profile", str(profile), "--name", name,
                              "--suite", "smoke", "--report-dir", str(report)],
                             capture_output=True, text=True, timeout=600, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        results = json.loads((report / "results.json").read_text())
        assert results["run"]["tier"] == "R" and results["run"]["provider"] == "kind"
        statuses = [c["status"] for c in results["checks"]]
        assert "passed" in statuses and "failed" not in statuses and "error" not in statuses
    finally:
        down = subprocess.run([sys.executable, "-m", "harness.cli", "down", "--name", name],
                              capture_output=True, text=True, timeout=300, env=env)
    assert down.returncode == 0, down.stderr
    assert _nodes_of(engine, name) == []
    assert ensure_engine().client.ping()  # the engine (and its node image cache) stays


def _dns_across_nodes(client: KubeClient, worker: str) -> None:
    """A pod on the worker resolves the ``kubernetes`` Service through CoreDNS, which runs on the control plane: the
    query crosses nodes over the harness's routes, through kube-proxy's Service rules (no kindnetd)."""
    dns = [p for p in client.list("Pod", "kube-system", label_selector="k8s-app=kube-dns")["items"]]
    assert dns and all(p["spec"].get("nodeName") != worker for p in dns)
    ns = f"kind-it-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        client.wait_for("ServiceAccount", namespace=ns, name="default", condition=bool, timeout=60)
        client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dns"}, "spec": {
            "nodeName": worker, "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "q", "image": "aiconform.local/busybox:latest", "imagePullPolicy": "Never",
                            "command": ["nslookup", "kubernetes.default.svc.cluster.local"]}]}}, ns)
        done = client.wait_for("Pod", namespace=ns, name="dns", timeout=90, what="the DNS pod to finish",
                               condition=lambda st: bool(st) and next(iter(st.values()))["status"].get("phase")
                               in ("Succeeded", "Failed"))
        out = str(client.request("GET", client.kind_path("Pod", ns, "dns") + "/log", raw=True))
        service_ip = client.get("Service", "kubernetes", "default")["spec"]["clusterIP"]
        assert next(iter(done.values()))["status"]["phase"] == "Succeeded", out
        assert service_ip in out, out
    finally:
        client.delete("Namespace", ns)


def test_a_node_image_build_that_fails_half_way_leaves_nothing(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = nodeimage.plan()
    broken = cache.images_cache() / f"broken-{secrets.token_hex(4)}.tar"
    broken.write_bytes(b"not an image archive")
    real_build = nodeimage.registry.build
    key = secrets.token_hex(32)  # another key (and tag): the real image, if cached, is not touched

    def build(img: object, progress: object = None) -> Built:
        if getattr(img, "name", "") == "etcd":
            return Built("etcd", "aiconform.local/etcd:broken", broken, "x", True, 0.0)
        return real_build(img, progress)  # type: ignore[arg-type]

    monkeypatch.setattr(nodeimage.registry, "build", build)
    monkeypatch.setattr(nodeimage, "plan", lambda *a, **k: nodeimage.NodeImagePlan(
        plan.kubernetes, plan.base, plan.preload, plan.etcd_tag, plan.coredns_tag, key))
    try:
        with pytest.raises(ImageBuildError, match="import failed"):
            nodeimage.build_node_image(engine, plan.kubernetes, progress=lambda _: None)
    finally:
        broken.unlink()
    ref = f"{nodeimage.NODE_REPO}:v{plan.kubernetes}-{key[:12]}"
    assert not engine.image_exists(ref)
    assert not [c for c in engine.client.containers.list(all=True) if c.name.startswith("aiconform-node-build-")]


def test_a_docker_engine_that_answers_is_used_as_kind_would(engine: Engine, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """DOCKER_HOST (as on a laptop with Docker Desktop or a hosted runner) names the engine the nodes run on: used as
    it is, no dockerd started; AICONFORM_KIND_ENGINE=user refuses to start one when none answers, and the default
    falls back to aiconform's own."""
    monkeypatch.setenv("DOCKER_HOST", engine.host)  # a real engine that answers, standing for the user's
    monkeypatch.setenv("AICONFORM_KIND_ENGINE", "user")
    users = ensure_engine(root=tmp_path / "unused", progress=lambda m: None)
    assert users.description == f"your Docker engine (DOCKER_HOST, {engine.host})" and users.client.ping()
    users.close()
    assert not (tmp_path / "unused").exists()  # nothing of aiconform's own engine was set up
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'nobody.sock'}")
    with pytest.raises(ClusterError, match=r"^AICONFORM_KIND_ENGINE=user: no Docker engine answers: unix://"):
        ensure_engine(root=tmp_path / "unused", progress=lambda m: None)
    monkeypatch.delenv("AICONFORM_KIND_ENGINE")
    own = ensure_engine(progress=lambda m: None)  # auto: the dead DOCKER_HOST is passed over for our own engine
    assert own.description.startswith("aiconform's own dockerd") and own.client.ping()
    own.close()
