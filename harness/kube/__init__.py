"""A small, fast Kubernetes API client: kubeconfig loading (and writing one for a client certificate), credentials,
API discovery, keep-alive HTTPS, watch-based waits, apply/delete.

Owns talking to a kube-apiserver.  It speaks JSON over the stdlib's http.client with one keep-alive connection per
thread, which is what lets the harness create thousands of pods a second on two cores.  It must never decide
anything a Kubernetes component decides: it only sends requests and reads answers.

Three seams, each replaceable on its own:
- credentials (:class:`Credentials`): a static token or client certificate, a ``tokenFile`` re-read as it
  rotates, an exec credential plugin (EKS, GKE and AKS kubeconfigs) re-run before its credential expires, an OIDC
  ``id-token``.  The official ``kubernetes`` client is configured from the same :class:`KubeConfig` object
  (``harness/testing/clients.py``), so both clients speak as the same identity.
- the transport (:class:`Transport`): how bytes reach the apiserver.  :class:`HttpTransport` by default; unit
  tests hand the client a transport that answers from a table, so nothing here needs a cluster to be tested.
- discovery (:class:`Discovery`): kind → resource path from the server's own API discovery (CRDs included),
  cached, and refreshed when a kind is missing (a CRD created mid-run resolves).

Modules, lowest first: ``credentials`` → ``config`` (the kubeconfig) → ``transport``; ``discovery`` stands alone;
``client`` uses them all.  Import from ``harness.kube``: this face is the public surface.
"""

from harness.kube.client import KubeClient, is_bound, is_running, pod_condition, unschedulable_message
from harness.kube.config import KubeConfig, write_kubeconfig
from harness.kube.credentials import (
    EXEC_API_VERSIONS,
    EXEC_INFO_ENV,
    EXEC_TIMEOUT_S,
    REFRESH_BEFORE_EXPIRY_S,
    TOKEN_FILE_RECHECK_S,
    Credential,
    Credentials,
    ExecCredentials,
    ExecPluginSpec,
    Obj,
    OidcCredentials,
    StaticCredentials,
    TokenFileCredentials,
)
from harness.kube.discovery import Discovery, ResourceInfo
from harness.kube.transport import HttpTransport, Response, Transport

__all__ = [
    "EXEC_API_VERSIONS",
    "EXEC_INFO_ENV",
    "EXEC_TIMEOUT_S",
    "REFRESH_BEFORE_EXPIRY_S",
    "TOKEN_FILE_RECHECK_S",
    "Credential",
    "Credentials",
    "Discovery",
    "ExecCredentials",
    "ExecPluginSpec",
    "HttpTransport",
    "KubeClient",
    "KubeConfig",
    "Obj",
    "OidcCredentials",
    "ResourceInfo",
    "Response",
    "StaticCredentials",
    "TokenFileCredentials",
    "Transport",
    "is_bound",
    "is_running",
    "pod_condition",
    "unschedulable_message",
    "write_kubeconfig",
]
