"""The fast client resolves kinds through the server's API discovery, not a fixed table: core and group kinds,
namespaced and cluster-scoped, CRDs, a CRD that appears mid-run, an unknown kind, and servers without aggregated
discovery.  Driven through an injected transport; no cluster."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import NotFound
from harness.kube import KubeClient, KubeConfig
from tests.unit.fake_transport import FakeTransport, ok, status

AGG = "application/json;g=apidiscovery.k8s.io;v=v2"


def _res(plural: str, kind: str, namespaced: bool) -> dict[str, Any]:
    return {"resource": plural, "responseKind": {"group": "", "version": "", "kind": kind},
            "scope": "Namespaced" if namespaced else "Cluster", "verbs": ["get", "list", "create"]}


def _group(name: str, versions: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "versions": [{"version": v, "resources": r, "freshness": "Current"} for v, r in versions.items()]}


def _agg(*groups: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "items": list(groups)}


CORE = _agg(_group("", {"v1": [
    _res("pods", "Pod", True), _res("nodes", "Node", False), _res("namespaces", "Namespace", False),
    _res("events", "Event", True),
]}))
BUILTIN_GROUPS = [
    _group("apps", {"v1": [_res("deployments", "Deployment", True)]}),
    _group("events.k8s.io", {"v1": [_res("events", "Event", True)]}),
    _group("autoscaling", {"v2": [_res("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
                           "v1": [_res("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)]}),
    _group("scheduling.k8s.io", {"v1": [_res("priorityclasses", "PriorityClass", False)]}),
]
KUEUE = _group("kueue.x-k8s.io", {"v1beta1": [_res("workloads", "Workload", True),
                                              _res("clusterqueues", "ClusterQueue", False)]})


class Server:
    """The discovery documents a server publishes; ``groups`` can grow while the client runs (a CRD installed)."""

    def __init__(self, *groups: dict[str, Any]) -> None:
        self.groups = list(groups)
        self.transport = FakeTransport()
        self.transport.routes[("GET", "/api")] = lambda *_: ok(CORE)
        self.transport.routes[("GET", "/apis")] = lambda *_: ok(_agg(*self.groups))

    def client(self) -> KubeClient:
        return KubeClient(KubeConfig(server="https://127.0.0.1:6443", token="t"), transport=self.transport)


def test_core_and_group_kinds_namespaced_and_cluster_scoped() -> None:
    kube = Server(*BUILTIN_GROUPS).client()
    assert kube.path(None, "Pod", "ns", "p") == "/api/v1/namespaces/ns/pods/p"
    assert kube.path("v1", "Node", "ns", "n") == "/api/v1/nodes/n"  # cluster-scoped: the namespace does not apply
    assert kube.kind_path("Deployment", "ns") == "/apis/apps/v1/namespaces/ns/deployments"
    assert kube.kind_path("PriorityClass", name="high") == "/apis/scheduling.k8s.io/v1/priorityclasses/high"
    assert kube.kind_path("Pod") == "/api/v1/pods"  # no namespace: every namespace


def test_discovery_is_asked_once_and_sent_with_the_aggregated_accept_header() -> None:
    server = Server(*BUILTIN_GROUPS)
    kube = server.client()
    for _ in range(3):
        kube.kind_path("Pod", "a")
        kube.kind_path("Deployment", "a")
    assert server.transport.paths() == ["/api", "/apis"]
    assert all(c.headers["Accept"].startswith(AGG) for c in server.transport.calls)
    assert kube.discovery.loads == 1


def test_core_group_wins_and_preferred_version_first() -> None:
    kube = Server(*BUILTIN_GROUPS).client()
    assert kube.resource("Event").api_version == "v1"
    assert kube.resource("Event", "events.k8s.io/v1").base == "/apis/events.k8s.io/v1"
    assert kube.resource("HorizontalPodAutoscaler").api_version == "autoscaling/v2"
    assert kube.path("autoscaling/v1", "HorizontalPodAutoscaler", "ns") == \
        "/apis/autoscaling/v1/namespaces/ns/horizontalpodautoscalers"


def test_a_crd_installed_mid_run_resolves_on_the_next_lookup() -> None:
    server = Server(*BUILTIN_GROUPS)
    kube = server.client()
    kube.kind_path("Pod")
    server.groups.append(KUEUE)  # the CRD is created after the client cached discovery
    info = kube.resource("ClusterQueue")
    assert (info.api_version, info.plural, info.namespaced) == ("kueue.x-k8s.io/v1beta1", "clusterqueues", False)
    assert kube.kind_path("Workload", "team-a", "w") == "/apis/kueue.x-k8s.io/v1beta1/namespaces/team-a/workloads/w"
    assert kube.discovery.loads == 2


def test_custom_resources_go_through_the_discovered_path() -> None:
    server = Server(*BUILTIN_GROUPS, KUEUE)
    created: list[Any] = []

    def create(method: str, path: str, body: bytes | None, headers: Any) -> Any:
        created.append(path)
        return ok({"kind": "Workload", "metadata": {"name": "w", "namespace": "team-a"}}, 201)

    server.transport.routes[("POST", "/apis/kueue.x-k8s.io/v1beta1/namespaces/team-a/workloads")] = create
    kube = server.client()
    obj = kube.create({"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload",
                       "metadata": {"name": "w", "namespace": "team-a"}})
    assert obj["metadata"]["name"] == "w" and created


def test_unknown_kind_is_not_found_after_one_refresh() -> None:
    server = Server(*BUILTIN_GROUPS)
    kube = server.client()
    kube.kind_path("Pod")
    with pytest.raises(NotFound, match="no kind Widget in any API group"):
        kube.kind_path("Widget")
    with pytest.raises(NotFound, match="no kind Deployment in apps/v2"):
        kube.path("apps/v2", "Deployment")
    assert kube.discovery.loads == 3  # one initial load, one refresh per miss, no loop
    assert server.transport.paths().count("/apis") == 3


def test_server_without_aggregated_discovery() -> None:
    transport = FakeTransport()
    transport.routes[("GET", "/api")] = ok({"kind": "APIVersions", "versions": ["v1"]})
    transport.routes[("GET", "/api/v1")] = ok({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "pods", "kind": "Pod", "namespaced": True}, {"name": "pods/status", "kind": "Pod", "namespaced": True},
        {"name": "nodes", "kind": "Node", "namespaced": False}]})
    transport.routes[("GET", "/apis")] = ok({"kind": "APIGroupList", "groups": [
        {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}},
        {"name": "metrics.k8s.io", "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
         "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}},
    ]})
    transport.routes[("GET", "/apis/batch/v1")] = ok({"kind": "APIResourceList", "groupVersion": "batch/v1",
                                                      "resources": [{"name": "jobs", "kind": "Job", "namespaced": True}]})
    # metrics.k8s.io/v1beta1 answers 404 here (an aggregated API that is down): only its own kinds are missing
    kube = KubeClient(KubeConfig(server="https://127.0.0.1:6443"), transport=transport)
    assert kube.kind_path("Job", "ns", "j") == "/apis/batch/v1/namespaces/ns/jobs/j"
    assert kube.kind_path("Pod", "ns") == "/api/v1/namespaces/ns/pods"
    assert kube.kind_path("Node", "ns") == "/api/v1/nodes"


def test_a_client_for_another_identity_shares_discovery() -> None:
    server = Server(*BUILTIN_GROUPS)
    admin = server.client()
    admin.kind_path("Pod")
    tenant = admin.for_config(admin.config.with_token("tenant-token"))
    tenant.transport = server.transport
    assert tenant.kind_path("Deployment", "t") == "/apis/apps/v1/namespaces/t/deployments"
    assert server.transport.paths() == ["/api", "/apis"]


def _crd(kind: str, plural: str, group: str, *, established: bool, scope: str = "Namespaced") -> dict[str, Any]:
    return {"metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": scope, "names": {"kind": kind, "plural": plural},
                     "versions": [{"name": "v1alpha1", "served": True, "storage": False},
                                  {"name": "v1", "served": True, "storage": True}]},
            "status": {"conditions": [{"type": "Established", "status": "True" if established else "False"}]}}


def test_an_established_crd_that_discovery_does_not_list_yet_resolves_from_the_crd() -> None:
    server = Server(*BUILTIN_GROUPS)  # discovery lags: the new group is not published yet
    crds = [_crd("JobSet", "jobsets", "jobset.x-k8s.io", established=True),
            _crd("Pending", "pendings", "p.example.com", established=False)]
    server.transport.routes[("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")] = \
        lambda *_: ok({"kind": "CustomResourceDefinitionList", "items": crds})
    kube = server.client()
    assert kube.kind_path("JobSet", "ns", "js") == "/apis/jobset.x-k8s.io/v1/namespaces/ns/jobsets/js"  # storage version
    assert kube.path("jobset.x-k8s.io/v1alpha1", "JobSet", "ns") == "/apis/jobset.x-k8s.io/v1alpha1/namespaces/ns/jobsets"
    with pytest.raises(NotFound):
        kube.kind_path("Pending")  # not Established: not served yet
    with pytest.raises(NotFound):
        kube.path("jobset.x-k8s.io/v2", "JobSet")  # a version the CRD does not serve


def test_without_read_access_to_crds_an_unknown_kind_is_still_not_found() -> None:
    server = Server(*BUILTIN_GROUPS)
    server.transport.routes[("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")] = \
        lambda *_: status(403, "Forbidden", "tenants cannot list CRDs")
    with pytest.raises(NotFound, match="no kind JobSet"):
        server.client().kind_path("JobSet")
