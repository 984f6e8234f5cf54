"""GPU governance on one tier S cluster of profile ``gang``: native gang scheduling (GenericWorkload) and Kueue
installed by the addon installer as a host process with its real webhooks.

The gang, Kueue and Kueue-property suites run through the aiconform pytest plugin against it and must all pass; the
installer's own promises (the facts, the webhook answering, upstream's objects read from the module cache, the
controller a supervised process of the cluster, so teardown stops it) are checked directly.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.addons import kueue as kueue_addon
from harness.config import load_profile
from harness.errors import Forbidden
from harness.kube import KubeClient
from harness.providers.local import LocalCluster
from harness.testing import ClusterInfo
from tests.integration.conftest import running_cluster

pytestmark = pytest.mark.upstream("jobset", "kueue")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster("gov", tmp_path_factory.mktemp("gov"), load_profile("gang")) as c:
        pids = [c.running_components()["addon-kueue"], *_chrooted(c.dir / "addons" / "kueue" / "root")]
        assert len(pids) == 2, f"expected unshare and Kueue in its private root, found pids {pids}"
        yield c
    alive = [p for p in pids if Path(f"/proc/{p}").exists()]
    assert not alive, f"Kueue processes {alive} outlived their cluster"


def _chrooted(root: Path) -> list[int]:
    """Processes whose root directory is ``root`` (Kueue in its private root)."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and (d / "root").readlink() == root:
                out.append(int(d.name))
        except OSError:
            continue
    return out


def test_kueue_is_installed_with_its_webhooks_and_declared(cluster: LocalCluster, client: KubeClient) -> None:
    facts = cluster.info().facts
    assert {"kueue", "native-gang", "gang-scheduling", "simulated-nodes"} <= facts, facts
    assert "addon-kueue" in cluster.running_components()
    with pytest.raises(Forbidden, match='admission webhook "vclusterqueue.kb.io" denied the request') as err:
        client.create(kueue_addon.REFUSED_PROBE, dry_run=True)
    assert "lendingLimit" in err.value.message
    crds = {c["metadata"]["name"]: c for c in client.list("CustomResourceDefinition")["items"]}
    conv = crds["workloads.kueue.x-k8s.io"]["spec"]["conversion"]["webhook"]["clientConfig"]
    assert conv["url"].startswith("https://127.0.0.1:") and conv["url"].endswith("/convert") and conv["caBundle"]
    hooks = client.get("ValidatingWebhookConfiguration", "kueue-validating-webhook-configuration")
    names = {h["name"] for h in hooks["webhooks"]}
    assert {"vclusterqueue.kb.io", "vjob.kb.io", "vjobset.kb.io"} <= names and "vpod.kb.io" not in names, names
    assert not client.list("APIService", label_selector="app.kubernetes.io/name=kueue")["items"]


def test_governance_suites_pass(cluster: LocalCluster, tmp_path: Path) -> None:
    info = cluster.info()
    cluster_info = ClusterInfo(kubeconfig=str(cluster.kubeconfig()), run_id=f"gov-{secrets.token_hex(2)}",
                               provider="local", profile="gang", tier="S",
                               capabilities=info.facts).write(tmp_path / "cluster-info.json")
    suites = [str(REPO / "scenarios" / f) for f in ("test_gang.py", "test_kueue.py", "test_kueue_properties.py")]
    argv = [sys.executable, "-m", "pytest", *suites, "-p", "no:cacheprovider", "-q", f"--rootdir={REPO}",
            f"--aiconform-cluster-info={cluster_info}", f"--aiconform-report-dir={tmp_path}"]
    env = {**os.environ, "AICONFORM_KUEUE_EXAMPLES": "2"}  # the warm-test budget; `aiconform run` uses 3
    res = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    checks = {c["id"].rsplit("::", 1)[-1]: c for c in json.loads((tmp_path / "results.json").read_text())["checks"]}
    assert all(c["status"] == "passed" for c in checks.values()), {k: c["status"] for k, c in checks.items()}
    assert len(checks) == 8, sorted(checks)
    assert checks["test_two_competing_gangs_one_binds_whole_the_other_none"]["status"] == "passed"
    prop = checks["test_kueue_admission_respects_quota_model"]["evidence"]["invariants"]
    assert set(prop) == {"usage_within_limits", "gang_whole_or_nothing", "no_starved_nominal"}
    assert all(v["checked"] > 0 for k, v in prop.items() if k != "no_starved_nominal"), prop

