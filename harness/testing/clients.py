"""Fixtures that hand a check the official ``kubernetes`` Python client, configured for the run.

Owns building the official client from a :class:`harness.kube.KubeConfig`: the same object the harness's fast
client uses, so both speak as the same identity whatever the kubeconfig holds (client certificate, token,
tokenFile, OIDC id-token, exec credential plugin).  The kubeconfig is never re-read and os.environ is never
touched.  Before each request the official client asks the KubeConfig for its current credential, so an exec
plugin's token or certificate is renewed before it expires, as the fast client does.

Fixtures (all session-scoped: one connection pool for the whole run)::

    k8s_client        kubernetes.client.ApiClient
    core_v1           CoreV1Api            apps_v1          AppsV1Api
    batch_v1          BatchV1Api           rbac_v1          RbacAuthorizationV1Api
    networking_v1     NetworkingV1Api      scheduling_v1    SchedulingV1Api
    policy_v1         PolicyV1Api          apiextensions_v1 ApiextensionsV1Api
    custom_objects    CustomObjectsApi     dynamic_client   kubernetes.dynamic.DynamicClient (CRDs by kind)

The harness's own client (fixture ``kube``) stays for bulk work: it is several times faster per request.
Must not touch the cluster handle or tenants (harness/pytest_plugin.py owns them).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from harness.kube import KubeConfig

__all__ = [
    "RunApiClient",
    "official_client",
]


class RunApiClient(k8s.ApiClient):
    """An ``ApiClient`` whose credentials come from a :class:`KubeConfig` and are renewed before every request.

    A bearer token goes into the Authorization header; a client certificate (static or from an exec plugin) is
    written, owner-only, to a private directory that :meth:`close` removes, and the connection pool is emptied
    when a plugin hands out a new certificate.
    """

    def __init__(self, config: KubeConfig, *, user_agent: str = "aiconform/0.1 (kubernetes-client)") -> None:
        self.kube_config = config
        self.workdir = Path(tempfile.mkdtemp(prefix="aiconform-k8s-"))
        self._lock = threading.Lock()
        self._cert_in_use: bytes | None = None
        conf = k8s.Configuration(host=config.server)
        conf.verify_ssl = not config.insecure
        if config.ca_data:
            conf.ca_cert_data = config.ca_data.decode()
        if config.tls_server_name:
            conf.tls_server_name = config.tls_server_name
        conf.proxy = None  # never a proxy from the environment: the run talks to the cluster only
        cred = config.credential()
        if cred.has_client_cert():
            conf.cert_file, conf.key_file = self._write_cert(cred.client_cert_data, cred.client_key_data)
            self._cert_in_use = cred.client_cert_data
        conf.api_key_prefix["authorization"] = "Bearer"
        if cred.token:
            conf.api_key["authorization"] = cred.token
        super().__init__(conf)
        self.user_agent = user_agent

    def _write_cert(self, cert: bytes | None, key: bytes | None) -> tuple[str, str]:
        cert_path, key_path = self.workdir / "client.crt", self.workdir / "client.key"
        for path, data in ((cert_path, cert), (key_path, key)):
            tmp = path.with_suffix(".new")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data or b"")
            os.replace(tmp, path)
        return str(cert_path), str(key_path)

    def sync_credentials(self) -> None:
        """Take the KubeConfig's current credential (an exec plugin runs again near expiry)."""
        cred = self.kube_config.credential()
        with self._lock:
            if cred.token:
                self.configuration.api_key["authorization"] = cred.token
            else:
                self.configuration.api_key.pop("authorization", None)
            if cred.has_client_cert() and cred.client_cert_data is not self._cert_in_use:
                if self._cert_in_use is None and not self.configuration.cert_file:
                    return  # no certificate at start: the pool was built without one; tokens only
                self._write_cert(cred.client_cert_data, cred.client_key_data)
                self._cert_in_use = cred.client_cert_data
                self.rest_client.pool_manager.clear()  # new connections load the new certificate

    def update_params_for_auth(self, headers: Any, queries: Any, auth_settings: Any, *args: Any, **kwargs: Any) -> None:
        self.sync_credentials()
        super().update_params_for_auth(headers, queries, auth_settings, *args, **kwargs)

    def close(self) -> None:
        try:
            super().close()  # type: ignore[no-untyped-call]
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def official_client(config: KubeConfig) -> RunApiClient:
    """The official client for ``config``; e.g. a tenant's service account:
    ``official_client(aiconform_cluster.client.config.with_token(tenant.service_account_token()))``.
    Close it when done (``with official_client(...) as api:``)."""
    return RunApiClient(config)


@pytest.fixture(scope="session")
def k8s_client(aiconform_cluster: Any) -> Iterator[RunApiClient]:
    """``kubernetes.client.ApiClient`` for the cluster under test, as the run's admin identity."""
    api = RunApiClient(aiconform_cluster.client.config)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def core_v1(k8s_client: RunApiClient) -> k8s.CoreV1Api:
    """Pods, nodes, namespaces, services, config maps, quotas, events …"""
    return k8s.CoreV1Api(k8s_client)


@pytest.fixture(scope="session")
def apps_v1(k8s_client: RunApiClient) -> k8s.AppsV1Api:
    """Deployments, StatefulSets, DaemonSets, ReplicaSets."""
    return k8s.AppsV1Api(k8s_client)


@pytest.fixture(scope="session")
def batch_v1(k8s_client: RunApiClient) -> k8s.BatchV1Api:
    """Jobs and CronJobs."""
    return k8s.BatchV1Api(k8s_client)


@pytest.fixture(scope="session")
def rbac_v1(k8s_client: RunApiClient) -> k8s.RbacAuthorizationV1Api:
    """Roles, bindings, cluster roles."""
    return k8s.RbacAuthorizationV1Api(k8s_client)


@pytest.fixture(scope="session")
def networking_v1(k8s_client: RunApiClient) -> k8s.NetworkingV1Api:
    """NetworkPolicies, Ingresses."""
    return k8s.NetworkingV1Api(k8s_client)


@pytest.fixture(scope="session")
def scheduling_v1(k8s_client: RunApiClient) -> k8s.SchedulingV1Api:
    """PriorityClasses."""
    return k8s.SchedulingV1Api(k8s_client)


@pytest.fixture(scope="session")
def policy_v1(k8s_client: RunApiClient) -> k8s.PolicyV1Api:
    """PodDisruptionBudgets."""
    return k8s.PolicyV1Api(k8s_client)


@pytest.fixture(scope="session")
def apiextensions_v1(k8s_client: RunApiClient) -> k8s.ApiextensionsV1Api:
    """CustomResourceDefinitions."""
    return k8s.ApiextensionsV1Api(k8s_client)


@pytest.fixture(scope="session")
def custom_objects(k8s_client: RunApiClient) -> k8s.CustomObjectsApi:
    """Custom resources by group, version and plural."""
    return k8s.CustomObjectsApi(k8s_client)


@pytest.fixture(scope="session")
def dynamic_client(k8s_client: RunApiClient) -> DynamicClient:
    """Any kind, CRDs included, found through API discovery: ``dynamic_client.resources.get(api_version=…,
    kind=…)``.  A kind created since the last lookup is found (the discovery cache is refreshed on a miss); the
    cache file lives in the client's private directory, not in /tmp at large."""
    return DynamicClient(k8s_client, cache_file=str(k8s_client.workdir / "discovery.json"))  # type: ignore[no-untyped-call]
