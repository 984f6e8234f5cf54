"""What a check author and a tier-G user rely on, against the real session cluster:

- kubeconfigs whose user is an exec credential plugin (client certificate or token), a tokenFile or an OIDC
  id-token work for the fast client, the official client and ``aiconform run --kubeconfig``;
- the fast client resolves kinds through the real apiserver's discovery, including a CRD created mid-run;
- the official client fixtures speak as the run's identity;
- ``aiconform run --suite PATH`` runs a user's folder of checks (the shipped example) into the report.
"""

from __future__ import annotations

import json
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from harness.kube import KubeClient, KubeConfig
from harness.providers.local import LocalCluster
from harness.testing.clients import RunApiClient, official_client

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "my-platform-checks"

# The kinds the fast client used to know from a fixed table: discovery on a real server must agree with it.
FORMER_TABLE: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("v1", "namespaces", False), "Node": ("v1", "nodes", False), "Pod": ("v1", "pods", True),
    "Service": ("v1", "services", True), "ServiceAccount": ("v1", "serviceaccounts", True),
    "Secret": ("v1", "secrets", True), "ConfigMap": ("v1", "configmaps", True), "Event": ("v1", "events", True),
    "ResourceQuota": ("v1", "resourcequotas", True), "LimitRange": ("v1", "limitranges", True),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims", True),
    "Deployment": ("apps/v1", "deployments", True), "DaemonSet": ("apps/v1", "daemonsets", True),
    "StatefulSet": ("apps/v1", "statefulsets", True), "ReplicaSet": ("apps/v1", "replicasets", True),
    "Job": ("batch/v1", "jobs", True), "PriorityClass": ("scheduling.k8s.io/v1", "priorityclasses", False),
    "Role": ("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies", True),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers", True),
    "Lease": ("coordination.k8s.io/v1", "leases", True),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets", True),
    "SelfSubjectAccessReview": ("authorization.k8s.io/v1", "selfsubjectaccessreviews", False),
    "SubjectAccessReview": ("authorization.k8s.io/v1", "subjectaccessreviews", False),
}

PLUGIN = """#!{python}
# A stand-in for aws/gke-gcloud-auth-plugin/kubelogin: prints an ExecCredential for the session cluster.
import json, os, sys
from pathlib import Path
here = Path({here!r})
with open(here / "runs", "a") as runs:  # one line per run; appends are atomic, parallel workers run it too
    runs.write("run\\n")
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
if sys.argv[1] == "cert":
    status = {{"clientCertificateData": (here / "cert.pem").read_text(),
               "clientKeyData": (here / "key.pem").read_text()}}
else:
    status = {{"token": (here / "token").read_text()}}
status["expirationTimestamp"] = "2099-01-01T00:00:00Z"
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}}))
"""


def _whoami(kube: KubeClient) -> str:
    review = kube.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                          {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return str(review["status"]["userInfo"]["username"])


def _kubeconfig(admin_path: Path, user: dict[str, Any], dest: Path) -> Path:
    """The session cluster's kubeconfig with its user replaced."""
    doc = yaml.safe_load(admin_path.read_text())
    ctx = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    doc["users"] = [{"name": ctx["user"], "user": user}]
    dest.write_text(yaml.safe_dump(doc))
    return dest


@pytest.fixture(scope="module")
def admin_sa_token(kube: KubeClient) -> Iterator[str]:
    """A service-account token (TokenRequest API) bound to cluster-admin; binding and namespace removed after."""
    ns = f"it-admin-{secrets.token_hex(3)}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ci", "namespace": ns}})
    kube.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                 "metadata": {"name": ns},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                 "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": ns}]})
    answer = kube.request("POST", kube.kind_path("ServiceAccount", ns, "ci") + "/token",
                          {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                           "spec": {"expirationSeconds": 3600}})
    try:
        yield str(answer["status"]["token"])
    finally:
        kube.delete("ClusterRoleBinding", ns)
        kube.delete("Namespace", ns, grace_period=0)


@pytest.fixture
def exec_plugin(tmp_path: Path, local_cluster: LocalCluster) -> Path:
    admin = KubeConfig.from_file(local_cluster.kubeconfig())
    assert admin.client_cert_data and admin.client_key_data
    (tmp_path / "cert.pem").write_bytes(admin.client_cert_data)
    (tmp_path / "key.pem").touch(0o600)
    (tmp_path / "key.pem").write_bytes(admin.client_key_data)
    script = tmp_path / "fake-cloud-auth-plugin"
    script.write_text(PLUGIN.format(python=sys.executable, here=str(tmp_path)))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _exec_user(script: Path, mode: str) -> dict[str, Any]:
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script), "args": [mode],
                     "interactiveMode": "Never", "installHint": "this plugin is written by the test"}}


def _run(args: list[str], cli_env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", *args], capture_output=True, text=True,
                          timeout=300, env=cli_env, cwd=cwd)


def test_fast_client_discovery_agrees_with_the_former_table(kube: KubeClient) -> None:
    found = {kind: kube.resource_info(None, kind) for kind in FORMER_TABLE}
    assert found == FORMER_TABLE


def test_fast_client_resolves_a_crd_created_mid_run(kube: KubeClient, tenant: Any) -> None:
    group = f"t{secrets.token_hex(3)}.aiconform.test"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}
    kube.kind_path("Pod")  # discovery is cached before the CRD exists
    loads = kube.discovery.loads
    kube.create(crd)
    try:
        kube.wait_for("CustomResourceDefinition", name=f"widgets.{group}", timeout=60, what="CRD Established",
                      condition=lambda s: any(c["type"] == "Established" and c["status"] == "True"
                                              for o in s.values() for c in (o.get("status") or {}).get("conditions") or []))
        kube.create({"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}},
                    namespace=tenant.name)
        assert kube.get("Widget", "w", tenant.name)["spec"] == {"size": 3}
        assert kube.resource("Widget").api_version == f"{group}/v1"
        assert kube.discovery.loads == loads + 1
    finally:
        kube.delete("CustomResourceDefinition", f"widgets.{group}")


def test_official_client_fixtures_speak_as_the_run(
    kube: KubeClient, k8s_client: RunApiClient, core_v1: CoreV1Api, dynamic_client: DynamicClient, tenant: Any
) -> None:
    review = dynamic_client.resources.get(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
    me = review.create(body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert me.status.userInfo.username == _whoami(kube)
    names = {n.metadata.name for n in core_v1.list_node().items}
    assert names == {n["metadata"]["name"] for n in kube.list("Node")["items"]}
    # the same cluster as a tenant's service account: RBAC (the real authorizer) refuses listing nodes
    with official_client(kube.config.with_token(tenant.service_account_token())) as as_tenant:
        with pytest.raises(ApiException) as refused:
            CoreV1Api(as_tenant).list_node()
    assert refused.value.status == 403


def test_token_file_and_oidc_id_token_users(
    admin_sa_token: str, local_cluster: LocalCluster, tmp_path: Path
) -> None:
    (tmp_path / "sa-token").write_text(admin_sa_token)
    token_file = _kubeconfig(local_cluster.kubeconfig(), {"tokenFile": "sa-token"}, tmp_path / "kc-tokenfile")
    oidc = _kubeconfig(local_cluster.kubeconfig(), {"auth-provider": {"name": "oidc", "config": {
        "client-id": "aiconform", "idp-issuer-url": "https://idp.invalid", "id-token": admin_sa_token}}},
        tmp_path / "kc-oidc")
    for path in (token_file, oidc):
        with KubeClient.from_kubeconfig(path) as kube:
            assert _whoami(kube).startswith("system:serviceaccount:it-admin-")


def test_aiconform_run_with_an_exec_plugin_client_certificate_runs_the_example_suite(
    exec_plugin: Path, local_cluster: LocalCluster, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    kc = _kubeconfig(local_cluster.kubeconfig(), _exec_user(exec_plugin, "cert"), tmp_path / "kc-exec-cert")
    with KubeClient.from_kubeconfig(kc) as kube, KubeClient.from_kubeconfig(local_cluster.kubeconfig()) as admin:
        assert _whoami(kube) == _whoami(admin)
    report = tmp_path / "report"
    res = _run(["--kubeconfig", str(kc), "--suite", str(EXAMPLE), "--allow-existing", "--report-dir", str(report)],
               cli_env, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    results = json.loads((report / "results.json").read_text())
    checks = {c["id"].split("::")[-1]: c for c in results["checks"]}
    assert set(checks) == {"test_every_gpu_node_says_which_gpu_it_has", "test_training_job_workers_land_on_gpu_nodes",
                           "test_custom_resources_are_validated_against_their_schema"}, checks
    assert {c["status"] for c in checks.values()} == {"passed"}, {k: c["reason"] for k, c in checks.items()}
    crd = checks["test_custom_resources_are_validated_against_their_schema"]
    assert crd["requirement"] == "myplatform.crd_validation" and crd["evidence"]["refused_status"] == 422
    assert results["run"]["provider"] == "existing"
    md = (report / "report.md").read_text()
    assert "myplatform.gpu_node_labels" in md and "myplatform.crd_validation" in md
    assert len((tmp_path / "runs").read_text().splitlines()) >= 2  # the runner's and the checks' clients ran it


def test_aiconform_run_with_an_exec_plugin_token(
    exec_plugin: Path, admin_sa_token: str, local_cluster: LocalCluster, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    (tmp_path / "token").write_text(admin_sa_token)
    kc = _kubeconfig(local_cluster.kubeconfig(), _exec_user(exec_plugin, "token"), tmp_path / "kc-exec-token")
    report = tmp_path / "report"
    res = _run(["--kubeconfig", str(kc), "--suite", str(EXAMPLE), "-k", "gpu_node or training",
                "--report-dir", str(report)], cli_env, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    statuses = {c["id"].split("::")[-1]: c["status"] for c in json.loads((report / "results.json").read_text())["checks"]}
    assert statuses == {"test_every_gpu_node_says_which_gpu_it_has": "passed",
                        "test_training_job_workers_land_on_gpu_nodes": "passed"}


def test_destructive_example_is_skipped_on_an_existing_cluster_without_allow_existing(
    local_cluster: LocalCluster, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    report = tmp_path / "report"
    res = _run(["--kubeconfig", str(local_cluster.kubeconfig()), "--suite", str(EXAMPLE), "-k", "schema",
                "--report-dir", str(report)], cli_env, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (check,) = json.loads((report / "results.json").read_text())["checks"]
    assert check["status"] == "skipped" and "--allow-existing" in check["reason"]


def test_a_suite_folder_whose_files_hold_no_checks_is_one_line(
    local_cluster: LocalCluster, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "test_nothing.py").write_text('"""No checks yet."""\n')
    res = _run(["--kubeconfig", str(local_cluster.kubeconfig()), "--suite", "mine",
                "--report-dir", str(tmp_path / "report")], cli_env, tmp_path)
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("aiconform: ")]
    assert res.returncode == 2 and lines == ["aiconform: no checks were collected from --suite mine; nothing ran"], \
        res.stderr[-2000:]
    results = tmp_path / "report" / "results.json"
    assert not results.exists() or json.loads(results.read_text())["checks"] == []
