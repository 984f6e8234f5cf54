"""Tenants: one fresh namespace per check (``<prefix>-<run>-<rand>``, labelled with the run id), removed after it;
and the end-of-run sweep that removes by label whatever a check left behind.

Owns the run label (:data:`LABEL_RUN`); everything the harness creates on a cluster carries it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from harness.errors import Conflict, KubeError, WaitTimeout
from harness.kube import KubeClient
from harness.testing.cluster import ClusterHandle

LABEL_RUN = "aiconform.io/run"
LABEL_TENANT = "aiconform.io/tenant"


@dataclass
class Tenant:
    """A namespace of one test, labelled with the run id; removed after the test."""

    name: str
    client: KubeClient

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.client.create(obj, namespace=self.name)

    def service_account_token(self, sa: str = "default", *, seconds: int = 3600) -> str:
        """A token for a service account of this tenant, from the TokenRequest API."""
        if sa != "default":
            try:
                self.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}})
            except Conflict:
                pass
        self.client.wait_for("ServiceAccount", namespace=self.name, name=sa, condition=bool, timeout=30,
                             what=f"service account {self.name}/{sa}")
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds}}
        path = self.client.kind_path("ServiceAccount", self.name, sa) + "/token"
        return str(self.client.request("POST", path, body)["status"]["token"])


def label_value(v: str) -> str:
    """``v`` as a valid label value (a run id becomes the value of aiconform.io/run)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", v)[:63].strip("-_.")


def namespace_name(prefix: str, run_id: str) -> str:
    run = re.sub(r"[^a-z0-9]", "", run_id.lower())[-10:]
    return f"{prefix}-{run}-{secrets.token_hex(3)}"[:63]


def create_run_namespace(client: KubeClient, name: str, run_id: str, labels: dict[str, str] | None = None) -> None:
    """A namespace labelled with the run id, so :func:`sweep_run` finds it if its check never cleans up."""
    client.create({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": {LABEL_RUN: label_value(run_id), **(labels or {})}}})


def release_tenant(client: KubeClient, namespace: str, timeout: float = 60.0) -> None:
    """Delete a tenant's pods at once and wait until they are gone (their GPUs free for the next check), then
    delete the namespace (the namespace controller removes the rest in the background)."""
    try:
        client.delete_collection("Pod", namespace, grace_period=0)
        client.wait_for("Pod", namespace=namespace, condition=lambda s: not s, timeout=timeout,
                        what=f"pods of {namespace} to be deleted")
    except (KubeError, WaitTimeout):
        pass
    try:
        client.delete("Namespace", namespace, grace_period=0)
    except KubeError:
        pass


def sweep_run(client: KubeClient, run_id: str) -> None:
    """Safety net at the end of a run: remove every namespace labelled with this run's id that a check left
    behind (a crashed teardown, an interrupted property), and sandbox nodes labelled with it, so nothing of the run
    stays on the cluster.  Called once, by the process that owns the report (never by an xdist worker while
    others still run)."""
    selector = f"{LABEL_RUN}={label_value(run_id)}"
    try:
        for kind in ("Namespace", "Node"):
            for obj in client.list(kind, label_selector=selector)["items"]:
                client.delete(kind, obj["metadata"]["name"], grace_period=0)
    except KubeError:
        pass


@pytest.fixture
def tenants(aiconform_cluster: ClusterHandle) -> Iterator[Callable[..., Tenant]]:
    """Factory: ``tenants("team-a", labels={...})`` makes a fresh namespace; all are deleted after the test."""
    made: list[str] = []
    client = aiconform_cluster.client

    def make(prefix: str = "t", *, labels: dict[str, str] | None = None) -> Tenant:
        name = namespace_name(prefix, aiconform_cluster.run_id)
        create_run_namespace(client, name, aiconform_cluster.run_id, {LABEL_TENANT: "true", **(labels or {})})
        made.append(name)
        return Tenant(name, client)

    yield make
    for name in made:
        release_tenant(client, name)


@pytest.fixture
def tenant(tenants: Callable[..., Tenant]) -> Tenant:
    """One fresh namespace for this test."""
    return tenants("t")
