"""The official kubernetes client as aiconform configures it: from the run's KubeConfig object (never os.environ),
with renewing credentials reaching every request.  No cluster: the checks look at what the client would send."""

from __future__ import annotations

import base64
import stat
from dataclasses import dataclass, field

import pytest

from harness.kube import Credential, KubeConfig
from harness.testing.clients import RunApiClient


@dataclass
class Rotating:
    """A credential source that hands out the next credential each time it is asked (an exec plugin renewing)."""

    credentials: list[Credential]
    asked: int = 0
    invalidated: list[int] = field(default_factory=list)

    def current(self) -> Credential:
        cred = self.credentials[min(self.asked, len(self.credentials) - 1)]
        self.asked += 1
        return cred

    def invalidate(self) -> None:
        self.invalidated.append(self.asked)


def _auth_header(api: RunApiClient) -> str | None:
    headers: dict[str, str] = {}
    api.update_params_for_auth(headers, [], ["BearerToken"], "/api/v1/nodes", "GET", None)
    return headers.get("authorization")


def test_static_token_and_tls_settings_come_from_the_kubeconfig_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # ignored: the kubeconfig object is the only input
    ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    kc = KubeConfig(server="https://127.0.0.1:6443", ca_data=ca, token="abc", tls_server_name="kubernetes")
    with RunApiClient(kc) as api:
        conf = api.configuration
        assert conf.host == "https://127.0.0.1:6443" and conf.verify_ssl
        assert conf.ca_cert_data == ca.decode() and conf.tls_server_name == "kubernetes"
        assert conf.proxy is None and conf.cert_file is None
        assert _auth_header(api) == "Bearer abc"
    insecure = RunApiClient(KubeConfig(server="https://127.0.0.1:6443", insecure=True))
    try:
        assert insecure.configuration.verify_ssl is False and _auth_header(insecure) is None
    finally:
        insecure.close()


def test_renewed_tokens_reach_every_request() -> None:
    source = Rotating([Credential(token="t1"), Credential(token="t1"), Credential(token="t2")])
    api = RunApiClient(KubeConfig(server="https://127.0.0.1:6443", credentials=source))
    try:
        assert _auth_header(api) == "Bearer t1"
        assert _auth_header(api) == "Bearer t2"
    finally:
        api.close()


def test_renewed_client_certificates_replace_the_files_and_the_pool() -> None:
    first = Credential(client_cert_data=b"CERT-1", client_key_data=b"KEY-1")
    second = Credential(client_cert_data=b"CERT-2", client_key_data=b"KEY-2")
    api = RunApiClient(KubeConfig(server="https://127.0.0.1:6443", credentials=Rotating([first, first, second])))
    cert, key = api.configuration.cert_file, api.configuration.key_file
    try:
        with open(cert, "rb") as f:
            assert f.read() == b"CERT-1"
        assert stat.S_IMODE(api.workdir.joinpath("client.key").stat().st_mode) == 0o600
        api.rest_client.pool_manager.connection_from_url("https://127.0.0.1:6443")
        assert len(api.rest_client.pool_manager.pools) == 1
        api.sync_credentials()  # still the first certificate: nothing changes
        assert len(api.rest_client.pool_manager.pools) == 1
        api.sync_credentials()  # renewed: new files, and pooled connections (with the old certificate) dropped
        with open(cert, "rb") as f, open(key, "rb") as g:
            assert (f.read(), g.read()) == (b"CERT-2", b"KEY-2")
        assert len(api.rest_client.pool_manager.pools) == 0
    finally:
        api.close()
    assert not api.workdir.exists()  # the private key does not outlive the client


def test_kubeconfig_certificate_data_is_written_privately() -> None:
    kc = KubeConfig.from_dict({
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"client-certificate-data": base64.b64encode(b"C").decode(),
                                         "client-key-data": base64.b64encode(b"K").decode()}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x"})
    with RunApiClient(kc) as api:
        assert api.workdir.joinpath("client.crt").read_bytes() == b"C"
        assert api.workdir.joinpath("client.key").read_bytes() == b"K"
        assert _auth_header(api) is None


OFFICIAL_CHECKS = '''
import pytest
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import api_exception


def official(status):
    return ApiException(status=status, reason="Reason")


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422, 401, 410, 429, 500, 503])
def test_official(status):
    raise official(status)


def test_dynamic_invalid():
    raise api_exception(official(422))
'''


def test_official_client_answers_are_graded_like_the_fast_clients(pytester: pytest.Pytester) -> None:
    from tests.unit.test_pytest_seam import statuses, write_info

    pytester.makepyfile(test_official=OFFICIAL_CHECKS)
    info = write_info(pytester.path / "cluster-info.json")
    report = pytester.path / "report"
    pytester.runpytest(f"--aiconform-cluster-info={info}", f"--aiconform-report-dir={report}")
    graded = {k.split("[")[-1].rstrip("]") if "[" in k else k.split("::")[-1]: v for k, v in statuses(report).items()}
    assert graded == {**{s: "failed" for s in ("400", "403", "404", "409", "422")},  # the platform answered, wrongly
                      **{s: "error" for s in ("401", "410", "429", "500", "503")},  # the run broke
                      "test_dynamic_invalid": "failed"}
