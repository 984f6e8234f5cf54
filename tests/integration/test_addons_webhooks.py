"""Webhook addons through the one installer at tier S, where the controller runs as a host process: JobSet v0.12.0's
own webhooks judge JobSets (the apiserver calls them at https://127.0.0.1:PORT), its controller makes the Jobs and
KWOK runs their pods; and the installer's bad input (a build that fails, a webhook that never answers) ends in one
line naming the addon with nothing left installed.  The tier R path (pods on the real node) is in
test_real_node.py.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import addons, proc
from harness.addons import jobset
from harness.bins import BinaryResolver, Component, load_versions
from harness.config import parse_profile
from harness.contract import SIMULATED_TOLERATION
from harness.errors import ApiError, ConfigError, NotFound
from harness.kube import KubeClient, is_running
from harness.providers import ensure_addons
from harness.providers.local import LocalCluster
from tests.integration.conftest import running_cluster

pytestmark = pytest.mark.upstream("jobset")

POOL = {"name": "cpu", "nodes": 1, "cpu": "16", "memory": "64Gi"}
CRD = "jobsets.jobset.x-k8s.io"


@pytest.fixture(scope="module")
def cluster(state_dir: Path) -> Iterator[LocalCluster]:
    """Tier S with JobSet asked for by the profile."""
    with running_cluster("wh", state_dir, parse_profile({"name": "wh", "pools": [POOL], "addons": ["jobset"]})) as c:
        yield c


def _installed_nothing(c: LocalCluster, client: KubeClient, name: str) -> None:
    for kind, obj in [("CustomResourceDefinition", CRD), ("Namespace", jobset.NAMESPACE),
                      ("ValidatingWebhookConfiguration", "jobset-validating-webhook-configuration"),
                      ("MutatingWebhookConfiguration", "jobset-mutating-webhook-configuration"),
                      ("ClusterRole", "jobset-manager-role")]:
        with pytest.raises(NotFound):
            client.get(kind, obj)
    assert not c.procs.alive(f"addon-{name}")
    assert not (c.dir / "addons" / name).exists()
    assert not list(c.pki.dir.glob(f"addon-{name}-*"))


def _install(c: LocalCluster, addon: addons.Addon, resolver: BinaryResolver | None = None, **kw: Any) -> list[str]:
    """The one installer on the cluster's own addon site (tier S: host processes), with no undo record."""
    site = c.addon_site(real=False, resolver=resolver or BinaryResolver(), record=False)
    return addons.install([addon], site, **kw)


@pytest.fixture(scope="module")
def bare(state_dir: Path) -> Iterator[LocalCluster]:
    """Tier S without addons, for the installs that must fail and leave nothing."""
    with running_cluster("whbad", state_dir, parse_profile({"name": "whbad", "pools": [POOL]})) as c:
        yield c


def test_an_addon_whose_build_fails_is_one_line_and_installs_nothing(
        bare: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = load_versions()
    versions.groups["no-such-controller"] = Component(
        group="no-such-controller", version="0.0.1", module="example.invalid/no-such-controller",
        binaries=("no-such-controller",), packages={"no-such-controller": "example.invalid/no-such-controller"})
    monkeypatch.setenv("GOPROXY", "off")  # the build fails at once, without asking any proxy
    resolver = BinaryResolver(versions, cache_dir=tmp_path, bin_dir=tmp_path / "none", download="never")
    broken = dataclasses.replace(jobset.ADDON, name="no-such-controller", binary="no-such-controller")
    with pytest.raises(addons.AddonFailed) as err:
        _install(bare, broken, resolver)
    msg = str(err.value)
    assert msg.startswith("addon no-such-controller: binary failed: ") and "\n" not in msg
    assert "example.invalid/no-such-controller" in msg
    with bare.client() as client:
        _installed_nothing(bare, client, "no-such-controller")


def _misrouted(ctx: addons.AddonContext) -> list[dict[str, Any]]:
    """JobSet's manifests with its validating webhook sent to a path its server does not serve."""
    objs = copy.deepcopy(jobset.manifests(ctx))
    for o in objs:
        if o["kind"] == "ValidatingWebhookConfiguration":
            for wh in o["webhooks"]:
                wh["clientConfig"]["service"]["path"] = "/no-such-path"
    return objs


def test_a_webhook_that_never_answers_is_one_line_with_the_controller_log_and_nothing_stays(bare: LocalCluster) -> None:
    misrouted = dataclasses.replace(jobset.ADDON, name="jobset-misrouted", manifests=_misrouted)
    shared = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": "jobset-metrics-reader"}, "rules": []}  # in its manifests, but here before it
    with bare.client() as client:
        client.create(shared)
    with pytest.raises(addons.AddonFailed) as err:
        _install(bare, misrouted, webhook_timeout=4)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("addon jobset-misrouted: webhook vjobset.kb.io (https://127.0.0.1:")
    assert "/no-such-path) did not answer in 4s" in msg
    assert "log: " in msg and "addon-jobset-misrouted.log" in msg  # the controller's own last lines
    with bare.client() as client:
        _installed_nothing(bare, client, "jobset-misrouted")
        client.get("ClusterRole", "jobset-metrics-reader")  # what it did not create, its undo leaves alone
        client.delete("ClusterRole", "jobset-metrics-reader")


def _jobset(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    pod = {"restartPolicy": "Never", "containers": [{"name": "w", "image": "aiconform.local/busybox:latest"}],
           "tolerations": [dict(SIMULATED_TOLERATION)]}  # its pods run on simulated nodes
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicatedJobs": [{"name": "workers", "replicas": 2,
                                         "template": {"spec": {"parallelism": 1, "completions": 1,
                                                               "template": {"spec": pod}}}}], **spec}}


def test_jobset_webhooks_judge_and_its_controller_runs_jobs_at_tier_s(cluster: LocalCluster) -> None:
    with cluster.client() as client:
        _jobset_at_tier_s(cluster, client)


def _jobset_at_tier_s(cluster: LocalCluster, client: KubeClient) -> None:
    pid = cluster.procs.pid("addon-jobset")
    assert pid is not None  # the profile's addon runs as a host process under the cluster's supervisor
    assert ensure_addons(str(cluster.kubeconfig()), "jobset") == []  # already there (a kubeconfig path works too)
    assert cluster.state()["addons"] == ["jobset"]  # type: ignore[index]
    with pytest.raises(ConfigError, match="addon kube-router runs on the real node; cluster .* has none"):
        ensure_addons(cluster, "kube-router")
    with pytest.raises(ConfigError, match="unknown addon 'kueue-typo'"):
        ensure_addons(cluster, "kueue-typo")
    ns = f"wh-{secrets.token_hex(3)}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    bad = _jobset("bad", ns, successPolicy={"operator": "All", "targetReplicatedJobs": ["drivers"]})
    with pytest.raises(ApiError) as err:
        client.create(bad)
    assert 'admission webhook "vjobset.kb.io" denied the request' in err.value.message
    assert "invalid replicatedJob name 'drivers' does not appear in .spec.ReplicatedJobs" in err.value.message

    client.create(_jobset("good", ns))
    sel = "jobset.sigs.k8s.io/jobset-name=good"
    jobs = client.wait_for("Job", namespace=ns, label_selector=sel, condition=lambda st: len(st) == 2, timeout=60,
                           what="JobSet good's two Jobs")
    assert all(j["metadata"]["ownerReferences"][0]["kind"] == "JobSet" for j in jobs.values())

    def failed(pods: dict[str, Any]) -> str | None:
        return next((p["status"].get("message", "") for p in pods.values() if p.get("status", {}).get("phase") == "Failed"), None)

    pods = client.wait_for("Pod", namespace=ns, label_selector=sel, failure=failed, timeout=60,
                           condition=lambda st: len(st) == 2 and all(is_running(p) for p in st.values()),
                           what="JobSet good's pods running on simulated nodes")
    # the pods passed JobSet's pod webhooks too (mpod/vpod.kb.io, failurePolicy Fail, served by the host process)
    assert sorted(p["metadata"]["labels"]["jobset.sigs.k8s.io/job-index"] for p in pods.values()) == ["0", "1"]
    assert cluster.procs.pid("addon-jobset") == pid


def test_down_stops_the_host_process_and_removes_its_files(cluster: LocalCluster) -> None:
    pid = cluster.procs.pid("addon-jobset")
    assert pid is not None and (cluster.dir / "addons" / "jobset" / "kubeconfig").is_file()
    cluster.delete()
    assert not proc.pid_alive(pid)
    assert not cluster.dir.exists()


def test_a_third_party_addon_installs_through_the_registry_and_the_site(
        bare: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/third_party_addon, registered as pip would install it, asked for by name like aiconform's own: its
    objects land in the real apiserver, the cluster records it, and a second ask changes nothing."""
    import tomllib

    from tests.unit.test_addon_registry import EXAMPLE, installed

    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(installed(tmp_path / "site", project["name"],
                                              project["entry-points"]["aiconform.addons"])))
    with bare.client() as client:
        try:
            assert ensure_addons(bare, "team-defaults") == []  # it adds no fact
            assert client.get("ConfigMap", "gpu-defaults", "team-defaults")["data"] == {
                "gpu.model": "A100-SXM4-80GB", "gpu.count": "1"}
            assert "team-defaults" in bare.state()["addons"]  # type: ignore[index]
            assert not bare.procs.alive("addon-team-defaults")  # manifests only: nothing runs
        finally:
            client.delete("Namespace", "team-defaults")
