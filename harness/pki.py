"""The local cluster's PKI: the cluster CA, the apiserver's serving certificate, client certificates per identity, the
service-account signing key, and the aggregation layer's front-proxy CA with the apiserver's proxy client
certificate (signed by that separate CA, as extension apiservers trust only it for request headers).  ECDSA P-256
throughout (fast to generate; every component accepts it).

Owns files under ``<run dir>/pki`` only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID = dt.timedelta(days=365)
FRONT_PROXY_CLIENT = "front-proxy-client"
"""Common name of the apiserver's proxy client certificate (the only name ``--requestheader-allowed-names`` allows)."""


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(path, 0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


class Pki:
    """Creates and finds the cluster's keys and certificates in one directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = CertPair(directory / "ca.crt", directory / "ca.key")
        self.front_proxy_ca = CertPair(directory / "front-proxy-ca.crt", directory / "front-proxy-ca.key")
        self.sa_key = directory / "sa.key"
        self.sa_pub = directory / "sa.pub"

    def create_ca(self, pair: CertPair | None = None, cn: str = "aiconform-ca") -> None:
        """A self-signed CA: the cluster CA by default, or ``pair`` (e.g. ``front_proxy_ca``) named ``cn``."""
        pair = pair or self.ca
        self.dir.mkdir(parents=True, exist_ok=True)
        key = _key()
        now = dt.datetime.now(dt.UTC)
        name = _name(cn)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALID * 10)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(key, pair.key)
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def _load_ca(self, pair: CertPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key

    def issue(
        self,
        stem: str,
        cn: str,
        *,
        org: str | None = None,
        server: bool = False,
        client: bool = False,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        signer: CertPair | None = None,
    ) -> CertPair:
        """A leaf certificate ``<stem>.crt``/``.key`` signed by the cluster CA (or by ``signer``)."""
        ca_cert, ca_key = self._load_ca(signer or self.ca)
        key = _key()
        now = dt.datetime.now(dt.UTC)
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        pair = CertPair(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        _write_key(key, pair.key)
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return pair

    def create_front_proxy(self, client_cn: str = FRONT_PROXY_CLIENT) -> CertPair:
        """The aggregation layer's own CA and the client certificate kube-apiserver presents when it proxies to an
        APIService backend (``--proxy-client-cert-file``); backends trust it through ``--requestheader-client-ca-file``
        (published in kube-system/extension-apiserver-authentication)."""
        self.create_ca(self.front_proxy_ca, cn="aiconform-front-proxy-ca")
        return self.issue("front-proxy-client", client_cn, client=True, signer=self.front_proxy_ca)

    def create_service_account_key(self) -> None:
        key = _key()
        _write_key(key, self.sa_key)
        self.sa_pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
