"""Test-time TLS material (with ``cryptography``): a root CA, an
intermediate CA, server certificates for 127.0.0.1/localhost, and broken
material (an expired certificate, a key that does not match its
certificate), written as PEM files the router's config points at.

Nothing here touches the network or the system trust store; clients trust
the test CA through ``ssl.SSLContext``s built by ``client_context``."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1",)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def new_key(kind: str = "rsa"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(kind)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Switchboard interop tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: object

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, fmt: str = "pkcs8") -> bytes:
        """``pkcs8`` ("BEGIN PRIVATE KEY"), or ``traditional``: PKCS#1
        ("BEGIN RSA PRIVATE KEY") for RSA, SEC1 ("BEGIN EC PRIVATE KEY")
        for EC."""
        formats = {
            "pkcs8": serialization.PrivateFormat.PKCS8,
            "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
        }
        return self.key.private_bytes(
            serialization.Encoding.PEM, formats[fmt], serialization.NoEncryption()
        )


class CA:
    """A certificate authority (root, or intermediate when ``parent`` is
    given) that issues server certificates."""

    def __init__(self, cn: str = "Switchboard interop test CA", parent: "CA | None" = None):
        self.key = new_key("ec")
        self.parent = parent
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(parent.cert.subject if parent else _name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None else 0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
        )
        if parent is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), critical=False
            )
        self.cert = builder.sign(parent.key if parent else self.key, hashes.SHA256())

    def child_ca(self, cn: str = "Switchboard interop intermediate CA") -> "CA":
        return CA(cn, parent=self)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_server_cert(
        self,
        key_kind: str = "rsa",
        names=SERVER_NAMES,
        ips=SERVER_IPS,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    ) -> Issued:
        key = new_key(key_kind)
        now = _now()
        san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0] if names else "server"))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(days=1))
            .not_valid_after(not_after or now + datetime.timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(cert, key)

    def issue_client_cert(self, name: str = "interop-client", key_kind: str = "ec") -> Issued:
        """A TLS client certificate (extended key usage clientAuth)."""
        return self.issue_server_cert(key_kind, names=(name,), ips=(), usage=ExtendedKeyUsageOID.CLIENT_AUTH)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA (and checks the
        hostname / IP address)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ctx.load_verify_locations(cadata=self.cert_pem().decode())
        return ctx


def expired_times() -> tuple[datetime.datetime, datetime.datetime]:
    now = _now()
    return now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def untrusting_context() -> ssl.SSLContext:
    """A client context that trusts an unrelated CA only (not the test CA)."""
    return CA("Some other CA").client_context()
