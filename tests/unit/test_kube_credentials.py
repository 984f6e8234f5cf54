"""Credentials a real kubeconfig carries: exec credential plugins (EKS/GKE/AKS), tokenFile, OIDC id-tokens.

The plugins here are small scripts written to tmp and really run; requests go through an injected transport that
records the headers and certificates the client presents.  No cluster.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.bins import pinned_kubernetes
from harness.cli import main
from harness.errors import KubeConfigError
from harness.kube import ExecCredentials, ExecPluginSpec, KubeClient, KubeConfig
from tests.unit.fake_transport import FakeTransport, ok, status

K8S = pinned_kubernetes("default")  # the Kubernetes version harness/versions.toml pins
PLUGIN = """#!{python}
import json, os, sys
from pathlib import Path
state = Path({state!r})
runs = int(state.read_text()) + 1 if state.exists() else 1
state.write_text(str(runs))
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
mode = os.environ.get("PLUGIN_MODE", "token")
if mode == "fail":
    print("error: could not get token: AccessDenied", file=sys.stderr)
    sys.exit(3)
status = {{}}
if mode == "token":
    status["token"] = "tok-%d" % runs
elif mode == "cert":
    status["clientCertificateData"] = "CERT-%d" % runs
    status["clientKeyData"] = "KEY-%d" % runs
if os.environ.get("PLUGIN_EXPIRES"):
    status["expirationTimestamp"] = os.environ["PLUGIN_EXPIRES"]
Path({echo!r}).write_text(json.dumps({{"argv": sys.argv[1:], "info": info, "cwd": os.getcwd(),
                                       "env": os.environ.get("PLUGIN_EXTRA")}}))
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}}))
"""


def _plugin(tmp_path: Path, name: str = "plugin") -> Path:
    script = tmp_path / name
    script.write_text(PLUGIN.format(python=sys.executable, state=str(tmp_path / "runs"), echo=str(tmp_path / "echo")))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _doc(user: dict[str, Any], **cluster: Any) -> dict[str, Any]:
    return {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }


def _exec(command: str, mode: str = "token", **extra: Any) -> dict[str, Any]:
    env = [{"name": "PLUGIN_MODE", "value": mode}, *extra.pop("env", [])]
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": command, "env": env,
                     "interactiveMode": "Never", **extra}}


def _client(kc: KubeConfig, *routes: tuple[str, Any]) -> tuple[KubeClient, FakeTransport]:
    t = FakeTransport()
    t.routes[("GET", "/version")] = ok({"gitVersion": f"v{K8S}"})
    for path, resp in routes:
        t.routes[("GET", path)] = resp
    return KubeClient(kc, transport=t), t


def test_exec_plugin_token_is_sent_and_cached(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    kc = KubeConfig.from_dict(_doc(_exec(str(plugin), args=["eks", "get-token", "--cluster-name", "gpu"],
                                         env=[{"name": "PLUGIN_EXTRA", "value": "x"}], provideClusterInfo=True),
                                   **{"certificate-authority-data": base64.b64encode(b"CA").decode()}))
    kube, t = _client(kc)
    assert kube.server_version() == f"v{K8S}"
    kube.server_version()
    assert [c.headers["Authorization"] for c in t.calls] == ["Bearer tok-1", "Bearer tok-1"]
    echo = json.loads((tmp_path / "echo").read_text())
    assert echo["argv"] == ["eks", "get-token", "--cluster-name", "gpu"] and echo["env"] == "x"
    assert echo["info"]["kind"] == "ExecCredential" and echo["info"]["spec"]["interactive"] is False
    assert echo["info"]["spec"]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert echo["info"]["spec"]["cluster"]["certificate-authority-data"] == base64.b64encode(b"CA").decode()
    assert kc.auth_kind == "exec"


def test_exec_plugin_runs_again_before_expiry(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    expires = datetime.now(UTC).timestamp() + 600
    now = [time.time()]
    env = (("PLUGIN_MODE", "token"), ("PLUGIN_EXPIRES", datetime.fromtimestamp(expires, UTC).isoformat()))
    creds = ExecCredentials(ExecPluginSpec(command=str(plugin), env=env), "kc", clock=lambda: now[0])
    first = creds.current()
    assert first.token == "tok-1" and first.expires_at == pytest.approx(expires, abs=1)
    now[0] = expires - 120  # two minutes left: still good
    assert creds.current().token == "tok-1" and creds.runs == 1
    now[0] = expires - 30  # inside the renewal window: the plugin runs again
    assert creds.current().token == "tok-2" and creds.runs == 2


def test_a_401_renews_an_exec_credential_once(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    kc = KubeConfig.from_dict(_doc(_exec(str(plugin))))

    def version(method: str, path: str, body: Any, headers: Any) -> Any:
        if headers["Authorization"] == "Bearer tok-1":
            return status(401, "Unauthorized", "token expired")
        return ok({"gitVersion": f"v{K8S}"})

    kube, t = _client(kc, ("/version", version))
    assert kube.server_version() == f"v{K8S}"
    assert [c.headers["Authorization"] for c in t.calls] == ["Bearer tok-1", "Bearer tok-2"]


def test_exec_plugin_client_certificate_is_presented(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    kube, t = _client(KubeConfig.from_dict(_doc(_exec(str(plugin), mode="cert"))))
    kube.server_version()
    kube.server_version()
    assert t.client_certs == [(b"CERT-1", b"KEY-1")]
    assert "Authorization" not in t.calls[0].headers


def test_relative_command_resolves_against_the_kubeconfig_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").mkdir()
    _plugin(tmp_path / "bin")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(_doc(_exec("./bin/plugin"))))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    kube, t = _client(KubeConfig.from_file("../kubeconfig"))
    kube.server_version()
    assert t.calls[0].headers["Authorization"] == "Bearer tok-1"


def test_missing_plugin_command_names_it_and_gives_the_install_hint(tmp_path: Path) -> None:
    kc = KubeConfig.from_dict(_doc(_exec("aws-iam-authenticator-not-installed",
                                         installHint="Install aws-iam-authenticator:\n  see your platform's docs")),
                              source="kc.yaml")
    with pytest.raises(KubeConfigError) as err:
        kc.credential()
    msg = str(err.value)
    assert "'aws-iam-authenticator-not-installed' not found" in msg and "Install aws-iam-authenticator" in msg
    assert "\n" not in msg


def test_failing_plugin_says_why_in_one_line(tmp_path: Path) -> None:
    kc = KubeConfig.from_dict(_doc(_exec(str(_plugin(tmp_path)), mode="fail")))
    with pytest.raises(KubeConfigError, match=r"exited with status 3: error: could not get token: AccessDenied$"):
        kc.credential()


@pytest.mark.parametrize(("section", "message"), [
    ({"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}, "apiVersion"),
    ({"apiVersion": "client.authentication.k8s.io/v1"}, "exec has no command"),
])
def test_malformed_exec_section(section: dict[str, Any], message: str) -> None:
    with pytest.raises(KubeConfigError, match=message):
        KubeConfig.from_dict(_doc({"exec": section}))


def test_plugin_printing_garbage(tmp_path: Path) -> None:
    script = tmp_path / "garbage"
    script.write_text(f"#!{sys.executable}\nprint('hello')\n")
    script.chmod(0o755)
    kc = KubeConfig.from_dict(_doc(_exec(str(script))))
    with pytest.raises(KubeConfigError, match="printed no ExecCredential"):
        kc.credential()


def test_aiconform_run_with_a_missing_plugin_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(yaml.safe_dump(_doc(_exec("gke-gcloud-auth-plugin-missing",
                                                    installHint="Install gke-gcloud-auth-plugin for use with kubectl"))))
    rc = main(["run", "--kubeconfig", str(kubeconfig), "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1
    assert err[0].startswith("aiconform: ") and "gke-gcloud-auth-plugin-missing' not found" in err[0]
    assert "Install gke-gcloud-auth-plugin" in err[0]


def test_token_file_is_read_and_reread_after_a_401(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(yaml.safe_dump(_doc({"tokenFile": "token"})))  # relative to the kubeconfig
    seen: list[str] = []

    def version(method: str, path: str, body: Any, headers: Any) -> Any:
        seen.append(headers["Authorization"])
        if headers["Authorization"] == "Bearer first":
            token.write_text("second")  # the token rotated on disk; the old one is refused
            return status(401, "Unauthorized", "")
        return ok({"gitVersion": f"v{K8S}"})

    kube, _ = _client(KubeConfig.from_file(kubeconfig), ("/version", version))
    assert kube.server_version() == f"v{K8S}"
    assert seen == ["Bearer first", "Bearer second"]


def _jwt(exp: float) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256'})}.{part({'iss': 'https://idp.invalid', 'exp': int(exp)})}.sig"


def test_oidc_id_token_is_the_bearer_token() -> None:
    id_token = _jwt(time.time() + 3600)
    kc = KubeConfig.from_dict(_doc({"auth-provider": {"name": "oidc", "config": {
        "client-id": "k8s", "idp-issuer-url": "https://idp.invalid", "id-token": id_token}}}))
    kube, t = _client(kc)
    kube.server_version()
    assert t.calls[0].headers["Authorization"] == f"Bearer {id_token}" and kc.auth_kind == "oidc"


def test_expired_oidc_id_token_says_to_log_in_again() -> None:
    kc = KubeConfig.from_dict(_doc({"auth-provider": {"name": "oidc", "config": {"id-token": _jwt(time.time() - 5)}}}))
    with pytest.raises(KubeConfigError, match="id-token expired"):
        kc.credential()


def test_removed_auth_providers_point_at_their_exec_plugins() -> None:
    with pytest.raises(KubeConfigError, match="gke-gcloud-auth-plugin"):
        KubeConfig.from_dict(_doc({"auth-provider": {"name": "gcp", "config": {}}}))


def test_static_client_certificate_files_resolve_against_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "c.pem").write_bytes(b"C")
    (tmp_path / "pki" / "k.pem").write_bytes(b"K")
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(yaml.safe_dump(_doc({"client-certificate": "pki/c.pem", "client-key": "pki/k.pem"})))
    cwd = os.getcwd()
    kc = KubeConfig.from_file(kubeconfig)
    assert os.getcwd() == cwd
    assert kc.credential().client_cert_data == b"C" and kc.auth_kind == "client-certificate"


def test_token_file_wins_over_a_token_beside_it(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file")
    kc = KubeConfig.from_dict(_doc({"token": "inline", "tokenFile": "token"}), base_dir=tmp_path)
    assert kc.credential().token == "from-file" and kc.auth_kind == "tokenFile"


def test_a_plugin_waiting_for_a_login_times_out_with_the_command_to_run(tmp_path: Path) -> None:
    script = tmp_path / "login"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.stdin.read()\nimport time\ntime.sleep(30)\n")
    script.chmod(0o755)
    creds = ExecCredentials(ExecPluginSpec(command=str(script), args=("--device-code",)), "kc", timeout=1)
    with pytest.raises(KubeConfigError, match=r"gave no credential within 1s .*run it once in a terminal: .*login --device-code"):
        creds.current()
