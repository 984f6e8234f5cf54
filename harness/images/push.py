"""Pushing built image archives to a registry the user names (OCI distribution API), and the names pods use then.

On a cluster aiconform did not build, the reference stacks' pods cannot run ``aiconform.local/...`` images (nothing is
imported into that cluster's nodes): ``aiconform images push --registry REG`` puts the archives there, and
``aiconform run --image-registry REG`` makes every image name :func:`harness.images.image_ref` gives start with REG
(:data:`IMAGE_REGISTRY_ENV` carries it into the suites' pytest process).

Owns: parsing a registry argument (``HOST[:PORT][/PATH]``, an optional ``http://`` or ``https://``), the push itself
(a blob is sent only when the registry lacks it, the manifest last, under the image's tag), the registry's Basic or
Bearer challenge with credentials from the Docker config file (``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``; credential helpers are not read), and asking whether a manifest is there.  Plain HTTP only
for a loopback registry or an explicit ``http://``; HTTPS verifies against the system's CAs (``SSL_CERT_FILE``).
Knows nothing about clusters.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import re
import ssl
import tarfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.errors import AiconformError, ConfigError
from harness.images.registry import REGISTRY_HOST

IMAGE_REGISTRY_ENV = "AICONFORM_IMAGE_REGISTRY"
"""Set (by ``aiconform run --image-registry``): the registry every image name of the run points at."""

MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
CHUNK = 1 << 20
TIMEOUT_S = 120.0


class RegistryError(AiconformError):
    """A registry refused or failed a request; names the registry, the request and its answer."""


@dataclass(frozen=True)
class Registry:
    """Where images go: ``host`` (with its port), a repository ``path`` prefix (may be empty), the scheme."""

    host: str
    path: str
    plain_http: bool

    @property
    def prefix(self) -> str:
        """What an image name starts with there: ``host[/path]``."""
        return f"{self.host}/{self.path}" if self.path else self.host

    def ref(self, local_ref: str) -> str:
        """The name of ``aiconform.local/<name>:<tag>`` in this registry: ``host[/path]/<name>:<tag>``."""
        return self.prefix + "/" + local_ref.removeprefix(REGISTRY_HOST + "/")

    def repository(self, local_ref: str) -> tuple[str, str]:
        """(repository, tag) of ``local_ref`` in this registry, as the distribution API names them."""
        rest = self.ref(local_ref).removeprefix(self.host + "/")
        repo, _, tag = rest.rpartition(":") if ":" in rest.rpartition("/")[2] else (rest, ":", "latest")
        return repo, tag


_HOST = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
_PATH = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


def parse_registry(text: str) -> Registry:
    """``HOST[:PORT][/PATH]``, optionally after ``http://`` (plain HTTP) or ``https://``; ConfigError naming the
    bad part.  Without a scheme, a loopback host (127.0.0.0/8, ::1, localhost) is spoken to over plain HTTP, like
    containerd and Docker do, and any other over HTTPS."""
    raw = text.strip()
    scheme = ""
    if "://" in raw:
        scheme, _, raw = raw.partition("://")
        if scheme not in ("http", "https"):
            raise ConfigError(f"--registry {text!r}: the scheme may be http:// or https://, not {scheme}://")
    host, _, path = raw.rstrip("/").partition("/")
    if not host or not _HOST.match(host):
        raise ConfigError(f"--registry {text!r}: give HOST[:PORT][/PATH], e.g. registry.example.com/team or "
                          "127.0.0.1:5000/aiconform")
    if path and not _PATH.match(path):
        raise ConfigError(f"--registry {text!r}: the path {path!r} is not a repository name (lowercase letters, "
                          "digits, '.', '_', '-', '/')")
    plain = scheme == "http" or (not scheme and _is_loopback(host))
    return Registry(host=host, path=path, plain_http=plain)


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:host.index("]")]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def image_registry(env: Mapping[str, str] | None = None) -> Registry | None:
    """The registry of this run (:data:`IMAGE_REGISTRY_ENV`), or None: images are imported into the nodes."""
    value = (os.environ if env is None else env).get(IMAGE_REGISTRY_ENV, "").strip()
    return parse_registry(value) if value else None


# -- the archive -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str


def archive_manifest(archive: Path) -> tuple[bytes, list[Blob]]:
    """The image manifest's bytes and the blobs it references (config first), from an archive of
    :func:`harness.images.oci.write_archive`."""
    with tarfile.open(archive) as tar:
        index = json.loads(_member(tar, "index.json", archive))
        try:
            desc = index["manifests"][0]
        except (KeyError, IndexError, TypeError):
            raise RegistryError(f"{archive}: index.json names no manifest") from None
        raw = _member(tar, _blob_path(desc["digest"]), archive)
    manifest = json.loads(raw)
    blobs = [Blob(d["digest"], int(d["size"]), d.get("mediaType", "")) for d in [manifest["config"], *manifest["layers"]]]
    return raw, blobs


def _blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def _member(tar: tarfile.TarFile, name: str, archive: Path) -> bytes:
    try:
        fh = tar.extractfile(name)
    except KeyError:
        fh = None
    if fh is None:
        raise RegistryError(f"{archive}: no {name} in the archive")
    return fh.read()


# -- talking to the registry -------------------------------------------------------------------------------------------


def docker_credentials(host: str, env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(user, password) for ``host`` from the Docker config file's ``auths``, or None."""
    env = os.environ if env is None else env
    base = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path(env.get("HOME", "~")).expanduser() / ".docker"
    try:
        auths = json.loads((base / "config.json").read_text()).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return None
    for key in (host, f"https://{host}", f"http://{host}", f"https://{host}/v2/", f"https://{host}/v1/"):
        entry = auths.get(key)
        if isinstance(entry, dict) and entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            return user, password
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` → ("bearer", {realm, service, …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class RegistryClient:
    """One registry, one repository at a time; answers a challenge once per repository."""

    def __init__(self, registry: Registry, *, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S) -> None:
        self.registry = registry
        self.timeout = timeout
        self.creds = docker_credentials(registry.host, env)
        self._auth: dict[str, str] = {}  # repository -> Authorization header
        self._ssl = None if registry.plain_http else ssl.create_default_context()

    def _connect(self, host: str | None = None, plain: bool | None = None) -> http.client.HTTPConnection:
        host = host or self.registry.host
        if self.registry.plain_http if plain is None else plain:
            return http.client.HTTPConnection(host, timeout=self.timeout)
        return http.client.HTTPSConnection(host, timeout=self.timeout, context=self._ssl or ssl.create_default_context())

    def request(self, method: str, url: str, repo: str, *, body: bytes | IO[bytes] | None = None,
                headers: Mapping[str, str] | None = None, length: int | None = None) -> http.client.HTTPResponse:
        """One request (``url`` a path, or an absolute URL of this registry from a Location header); a 401 is
        answered once with the registry's challenge, then the request is sent again."""
        for attempt in (1, 2):
            hdrs = dict(headers or {})
            if repo in self._auth:
                hdrs["Authorization"] = self._auth[repo]
            if length is not None:
                hdrs["Content-Length"] = str(length)
            parsed = urllib.parse.urlsplit(url)
            path = urllib.parse.urlunsplit(("", "", parsed.path, parsed.query, "")) if parsed.scheme else url
            conn = self._connect(parsed.netloc or None, parsed.scheme == "http" if parsed.scheme else None)
            try:
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                scheme = "http" if self.registry.plain_http else "https"
                raise RegistryError(f"registry {self.registry.host}: {method} {scheme}://{self.registry.host}{path} "
                                    f"failed: {err}") from err
            if resp.status != 401 or attempt == 2:
                return resp
            challenge = resp.getheader("WWW-Authenticate") or ""
            resp.read()
            conn.close()
            self._auth[repo] = self._answer(challenge, repo)
            if hasattr(body, "seek"):
                body.seek(0)  # type: ignore[union-attr]
        raise AssertionError("unreachable")

    def _answer(self, challenge: str, repo: str) -> str:
        scheme, params = parse_challenge(challenge)
        where = f"registry {self.registry.host} asks for credentials ({challenge or 'no challenge'})"
        if scheme == "basic":
            if self.creds is None:
                raise RegistryError(f"{where}: `docker login {self.registry.host}` (or an `auths` entry in "
                                    "$DOCKER_CONFIG/config.json; credential helpers are not read)")
            return "Basic " + base64.b64encode(":".join(self.creds).encode()).decode()
        if scheme == "bearer" and params.get("realm"):
            query = {"scope": f"repository:{repo}:pull,push"}
            if params.get("service"):
                query["service"] = params["service"]
            realm = urllib.parse.urlsplit(params["realm"])
            conn = self._connect(realm.netloc, realm.scheme == "http")
            hdrs = {}
            if self.creds is not None:
                hdrs["Authorization"] = "Basic " + base64.b64encode(":".join(self.creds).encode()).decode()
            try:
                conn.request("GET", f"{realm.path or '/'}?{urllib.parse.urlencode(query)}", headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as err:
                raise RegistryError(f"{where}: its token service {params['realm']} failed: {err}") from err
            finally:
                conn.close()
            if resp.status != 200:
                hint = "" if self.creds else f"; `docker login {self.registry.host}` first"
                raise RegistryError(f"{where}: its token service {params['realm']} answered {resp.status}{hint}")
            try:
                doc = json.loads(data)
                token = doc.get("token") or doc.get("access_token")
            except ValueError:
                token = None
            if not token:
                raise RegistryError(f"{where}: its token service {params['realm']} gave no token")
            return f"Bearer {token}"
        raise RegistryError(f"{where}: only Basic and Bearer challenges are answered")

    def has_blob(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo)
        resp.read()
        return resp.status == 200

    def manifest_digest(self, repo: str, tag: str) -> str | None:
        """The digest of ``repo:tag`` there, or None when the registry has no such manifest."""
        resp = self.request("HEAD", f"/v2/{repo}/manifests/{tag}", repo, headers={"Accept": ", ".join(MANIFEST_TYPES)})
        resp.read()
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise RegistryError(f"registry {self.registry.host}: HEAD {repo}:{tag} answered {resp.status}")
        return resp.getheader("Docker-Content-Digest") or "present"

    def upload_blob(self, repo: str, blob: Blob, data: IO[bytes]) -> None:
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", repo, length=0, body=b"")
        body = resp.read()
        location = resp.getheader("Location")
        if resp.status != 202 or not location:
            raise RegistryError(f"registry {self.registry.host}: starting an upload to {repo} answered {resp.status}: "
                                f"{_text(body)}")
        url = location + ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": blob.digest})
        resp = self.request("PUT", url, repo, body=data, length=blob.size,
                            headers={"Content-Type": "application/octet-stream"})
        body = resp.read()
        if resp.status not in (201, 204):
            raise RegistryError(f"registry {self.registry.host}: uploading {blob.digest[:19]} to {repo} answered "
                                f"{resp.status}: {_text(body)}")

    def put_manifest(self, repo: str, tag: str, manifest: bytes, media_type: str) -> str:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{tag}", repo, body=manifest, length=len(manifest),
                            headers={"Content-Type": media_type})
        body = resp.read()
        if resp.status not in (200, 201):
            raise RegistryError(f"registry {self.registry.host}: putting the manifest {repo}:{tag} answered "
                                f"{resp.status}: {_text(body)}")
        return resp.getheader("Docker-Content-Digest") or ""


def _text(body: bytes) -> str:
    text = body.decode(errors="replace").strip().replace("\n", " ")
    return text[:300] or "(no body)"


@dataclass(frozen=True)
class Pushed:
    ref: str
    digest: str
    sent: int
    """Blobs uploaded now."""
    present: int
    """Blobs the registry had already."""
    bytes_sent: int


def push_archive(archive: Path, local_ref: str, registry: Registry, *, env: Mapping[str, str] | None = None,
                 progress: Callable[[str], None] = lambda _line: None) -> Pushed:
    """Push one image archive under ``registry.ref(local_ref)``: each blob the registry lacks, then the manifest."""
    manifest, blobs = archive_manifest(archive)
    media_type = json.loads(manifest).get("mediaType") or MANIFEST_TYPES[0]
    client = RegistryClient(registry, env=env)
    repo, tag = registry.repository(local_ref)
    sent = present = sent_bytes = 0
    with tarfile.open(archive) as tar:
        for blob in blobs:
            if client.has_blob(repo, blob.digest):
                present += 1
                continue
            fh = tar.extractfile(_blob_path(blob.digest))
            if fh is None:
                raise RegistryError(f"{archive}: blob {blob.digest} is missing from the archive")
            if blob.size >= 16 * CHUNK:
                progress(f"  {repo}: uploading {blob.digest[:19]} ({blob.size / 1e6:.0f} MB)")
            client.upload_blob(repo, blob, fh)  # http.client sends a file-like body piece by piece
            sent += 1
            sent_bytes += blob.size
    digest = client.put_manifest(repo, tag, manifest, media_type)
    return Pushed(registry.ref(local_ref), digest, sent, present, sent_bytes)

