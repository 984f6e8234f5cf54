"""The platform validates custom resources against their schema: an out-of-range value is refused at admission.

Installs a small CRD of its own (``GpuBudget``), so it is marked ``destructive``: it changes the cluster, not
only a namespace.  On an existing cluster it runs only with ``aiconform run --allow-existing``.  Uses the official
client for the CRD (``apiextensions_v1``) and its objects (``custom_objects``: group, version and plural, so it
needs no discovery; the apiserver may publish a new CRD in discovery a moment after it is Established), and shows
the fast client ``kube`` finding the new kind by its name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.client.exceptions import ApiException

if TYPE_CHECKING:
    from kubernetes.client import ApiextensionsV1Api, CustomObjectsApi

    from harness.kube import KubeClient
    from harness.testing import Evidence, Tenant

GROUP, VERSION, KIND, PLURAL = "checks.example.com", "v1", "GpuBudget", "gpubudgets"
CRD_NAME = f"{PLURAL}.{GROUP}"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"kind": KIND, "plural": PLURAL, "singular": "gpubudget"},
        "versions": [{
            "name": VERSION, "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                "type": "object", "required": ["maxGpus"],
                "properties": {"maxGpus": {"type": "integer", "minimum": 0, "maximum": 1024}},
            }}}},
        }],
    },
}


@pytest.fixture
def gpu_budget_crd(apiextensions_v1: ApiextensionsV1Api, kube: KubeClient) -> Iterator[str]:
    """The CRD, installed and Established; removed afterwards."""
    try:
        apiextensions_v1.create_custom_resource_definition(CRD)
    except ApiException as err:
        if err.status != 409:  # 409: left over from an interrupted run; the same definition
            raise
    kube.wait_for(
        "CustomResourceDefinition", name=CRD_NAME, timeout=60, what=f"CRD {CRD_NAME} Established",
        condition=lambda s: any(c.get("type") == "Established" and c.get("status") == "True"
                                for o in s.values() for c in (o.get("status") or {}).get("conditions") or []),
    )
    yield CRD_NAME
    apiextensions_v1.delete_custom_resource_definition(CRD_NAME)


@pytest.mark.aiconform(requirement="myplatform.crd_validation", tier="S", destructive=True)
def test_custom_resources_are_validated_against_their_schema(
    gpu_budget_crd: str, custom_objects: CustomObjectsApi, kube: KubeClient, tenant: Tenant, evidence: Evidence
) -> None:
    good = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": "team-a"}, "spec": {"maxGpus": 16}}
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, tenant.name, PLURAL, good)

    bad = {**good, "metadata": {"name": "team-b"}, "spec": {"maxGpus": -1}}
    with pytest.raises(ApiException) as refused:
        custom_objects.create_namespaced_custom_object(GROUP, VERSION, tenant.name, PLURAL, bad)
    evidence["refused_status"] = refused.value.status
    evidence["refused_message"] = str(refused.value.body)[:300]
    assert refused.value.status == 422, f"expected 422 Invalid, got {refused.value.status}"

    # The fast client finds the new kind by name (API discovery, or the CRD while discovery catches up).
    stored = kube.list(KIND, tenant.name, api_version=f"{GROUP}/{VERSION}")["items"]
    evidence["stored"] = [o["metadata"]["name"] for o in stored]
    assert [o["spec"]["maxGpus"] for o in stored] == [16]
