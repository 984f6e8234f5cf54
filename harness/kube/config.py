"""The kubeconfig: :class:`KubeConfig` (one apiserver as one user, never built from os.environ), loading it
from a file, and writing one for a client certificate.

Owns parsing kubeconfig sections into credentials and TLS settings; it must not send a request.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import KubeConfigError
from harness.kube.credentials import (
    EXEC_API_VERSIONS,
    Credential,
    Credentials,
    ExecCredentials,
    ExecPluginSpec,
    Obj,
    OidcCredentials,
    TokenFileCredentials,
)


@dataclass(frozen=True)
class KubeConfig:
    """Everything needed to reach one apiserver as one user.  Built from a kubeconfig file, never from os.environ.

    Static credentials sit in ``token``/``client_cert_*``; a ``tokenFile``, exec plugin or OIDC user is a
    ``credentials`` source that renews itself.  :meth:`credential` is what a request uses either way.
    """

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    source: str = ""
    context: str = ""
    tls_server_name: str | None = None
    credentials: Credentials | None = field(default=None, compare=False, repr=False)
    auth_kind: str = "token"
    """How the user authenticates: token, tokenFile, client-certificate, exec, oidc or none (for messages)."""
    _static: Credential = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_static", Credential(self.token, self.client_cert_data, self.client_key_data))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], context: str | None = None) -> KubeConfig:
        p = Path(path)
        try:
            doc = yaml.safe_load(p.read_text())
        except FileNotFoundError:
            raise KubeConfigError(f"kubeconfig {p} does not exist") from None
        except OSError as err:
            raise KubeConfigError(f"cannot read kubeconfig {p}: {err.strerror}") from err
        except yaml.YAMLError as err:
            raise KubeConfigError(f"kubeconfig {p} is not valid YAML") from err
        if not isinstance(doc, dict):
            raise KubeConfigError(f"kubeconfig {p} is not a kubeconfig (no mapping at top level)")
        return cls.from_dict(doc, base_dir=p.resolve().parent, context=context, source=str(p))

    @classmethod
    def from_dict(
        cls, doc: Mapping[str, Any], *, base_dir: Path = Path("."), context: str | None = None, source: str = ""
    ) -> KubeConfig:
        """Relative file paths (certificates, tokenFile, an exec command with a path separator) resolve against
        ``base_dir``, the kubeconfig's own directory, as client-go resolves them."""
        where = source or "kubeconfig"

        def named(section: str, name: str) -> dict[str, Any]:
            for item in doc.get(section) or []:
                if isinstance(item, dict) and item.get("name") == name:
                    inner = item.get(section[:-1]) or {}
                    if not isinstance(inner, dict):
                        break
                    return inner
            raise KubeConfigError(f"{where}: no {section[:-1]} named {name!r}")

        def resolve(value: str) -> Path:
            fp = Path(os.path.expanduser(value))
            return fp if fp.is_absolute() else base_dir / fp

        ctx_name = context or doc.get("current-context")
        if not ctx_name:
            raise KubeConfigError(f"{where}: no current-context set and no context given")
        ctx = named("contexts", ctx_name)
        cluster = named("clusters", ctx.get("cluster", ""))
        user_name = str(ctx.get("user") or "")
        user = named("users", user_name) if user_name else {}
        server = cluster.get("server")
        if not server or not str(server).startswith(("https://", "http://")):
            raise KubeConfigError(f"{where}: cluster {ctx.get('cluster')!r} has no https:// server")
        who = f"{where}: user {user_name!r}"

        def blob(data_key: str, file_key: str, holder: Mapping[str, Any]) -> bytes | None:
            if holder.get(data_key):
                try:
                    return base64.b64decode(holder[data_key], validate=True)
                except ValueError as err:
                    raise KubeConfigError(f"{where}: {data_key} is not base64") from err
            if holder.get(file_key):
                fp = resolve(str(holder[file_key]))
                try:
                    return fp.read_bytes()
                except OSError as err:
                    raise KubeConfigError(f"{where}: cannot read {file_key} {fp}: {err.strerror}") from err
            return None

        ca_data = blob("certificate-authority-data", "certificate-authority", cluster)
        insecure = bool(cluster.get("insecure-skip-tls-verify", False))
        cert = blob("client-certificate-data", "client-certificate", user)
        key = blob("client-key-data", "client-key", user)
        token = str(user["token"]) if user.get("token") else None
        creds: Credentials | None = None
        kind = "token" if token else "client-certificate" if cert else "none"
        if user.get("exec"):
            spec = _exec_spec(user["exec"], who, base_dir=base_dir, server=str(server), ca_data=ca_data,
                              insecure=insecure, cluster=cluster)
            creds, kind = ExecCredentials(spec, who), "exec"
        elif user.get("auth-provider"):
            creds, kind = _auth_provider(user["auth-provider"], who), "oidc"
        elif user.get("tokenFile"):  # client-go: the file's token takes precedence over a token beside it
            creds, kind = TokenFileCredentials(resolve(str(user["tokenFile"])), who), "tokenFile"
        return cls(
            server=str(server).rstrip("/"),
            ca_data=ca_data,
            insecure=insecure,
            token=token,
            client_cert_data=cert,
            client_key_data=key,
            source=source,
            context=str(ctx_name),
            tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
            credentials=creds,
            auth_kind=kind,
        )

    def credential(self) -> Credential:
        """The credential for the next request: static, or from the renewing source (which may run a plugin)."""
        if self.credentials is not None:
            cred = self.credentials.current()
            if cred.has_client_cert() or not (self.client_cert_data and self.client_key_data):
                return cred
            # a token source beside a certificate written in the kubeconfig: both go out, as in client-go
            return Credential(cred.token, self.client_cert_data, self.client_key_data, cred.expires_at)
        return self._static

    def with_token(self, token: str) -> KubeConfig:
        """The same cluster as another identity (e.g. a tenant's service account)."""
        return KubeConfig(self.server, self.ca_data, self.insecure, token, None, None, self.source, self.context,
                          self.tls_server_name)

    def ssl_context(self, cert: bytes | None = None, key: bytes | None = None) -> ssl.SSLContext:
        """TLS settings for this cluster, with the client certificate ``cert``/``key`` (default: the static one)."""
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            try:
                ctx.load_verify_locations(cadata=self.ca_data.decode())
            except (ssl.SSLError, ValueError) as err:
                raise KubeConfigError(f"{self.source or 'kubeconfig'}: the certificate authority is not PEM") from err
        if cert is None and key is None:
            cert, key = self.client_cert_data, self.client_key_data
        if cert and key:
            # ssl wants files; write them to a private temp dir once per context.
            with tempfile.TemporaryDirectory(prefix="aiconform-kc-") as tmp:
                cert_path = Path(tmp, "c.pem")
                key_path = Path(tmp, "k.pem")
                cert_path.write_bytes(cert)
                key_path.touch(mode=0o600)
                key_path.write_bytes(key)
                try:
                    ctx.load_cert_chain(str(cert_path), str(key_path))
                except ssl.SSLError as err:
                    raise KubeConfigError(f"{self.source or 'kubeconfig'}: the client certificate or key is not "
                                          "valid PEM (or they do not match)") from err
        return ctx


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, cluster: str) -> None:
    """Write a kubeconfig (mode 0600) for a client-certificate identity of the cluster ``cluster`` at ``server``."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": f"{cluster}-user", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": f"{cluster}-user"}}],
        "current-context": cluster,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    os.chmod(path, 0o600)


def _exec_spec(
    section: Any, who: str, *, base_dir: Path, server: str, ca_data: bytes | None, insecure: bool,
    cluster: Mapping[str, Any],
) -> ExecPluginSpec:
    if not isinstance(section, dict) or not section.get("command"):
        raise KubeConfigError(f"{who}: exec has no command")
    api_version = str(section.get("apiVersion") or "")
    if api_version not in EXEC_API_VERSIONS:
        raise KubeConfigError(f"{who}: exec apiVersion {api_version!r} is not one of {', '.join(EXEC_API_VERSIONS)}")
    command = str(section["command"])
    if os.sep in command and not os.path.isabs(command):
        command = str(base_dir / command)  # client-go: a relative path with a separator is relative to the kubeconfig
    env: list[tuple[str, str]] = []
    for item in section.get("env") or []:
        if not isinstance(item, dict) or "name" not in item:
            raise KubeConfigError(f"{who}: exec env entries need a name and a value")
        env.append((str(item["name"]), str(item.get("value", ""))))
    info: Obj = {"server": server, "insecure-skip-tls-verify": insecure}
    if ca_data:
        info["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    if cluster.get("tls-server-name"):
        info["tls-server-name"] = cluster["tls-server-name"]
    for ext in cluster.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == "client.authentication.k8s.io/exec":
            info["config"] = ext.get("extension")
    return ExecPluginSpec(
        command=command,
        args=tuple(str(a) for a in section.get("args") or ()),
        env=tuple(env),
        api_version=api_version,
        install_hint=str(section.get("installHint") or ""),
        provide_cluster_info=bool(section.get("provideClusterInfo")),
        interactive_mode=str(section.get("interactiveMode") or "IfAvailable"),
        cluster_info=info,
        cwd=base_dir,
    )


def _auth_provider(section: Any, who: str) -> Credentials:
    name = section.get("name") if isinstance(section, dict) else None
    if name != "oidc":
        raise KubeConfigError(
            f"{who}: auth-provider {name!r} was removed from Kubernetes clients; use its exec plugin instead "
            "(gke-gcloud-auth-plugin for gcp, kubelogin for azure)"
        )
    config = section.get("config") or {}
    id_token = config.get("id-token") if isinstance(config, dict) else None
    if not id_token:
        raise KubeConfigError(f"{who}: auth-provider oidc has no id-token; log in first (e.g. with kubelogin)")
    return OidcCredentials(str(id_token), who)
