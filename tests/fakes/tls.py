"""Certificates made at test time: a trusted CA, leaves valid, expiring, expired, for another
name, and a self-signed one no CA vouches for.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Leaf:
    """A server certificate and key as PEM, with the notAfter it was issued with."""

    cert_chain_pem: bytes
    key_pem: bytes
    not_after: dt.datetime

    def server_context(self, directory: Path, name: str) -> ssl.SSLContext:
        cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
        cert_file.write_bytes(self.cert_chain_pem)
        key_file.write_bytes(self.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


class TestCA:
    """A CA the checks are told to trust through ``ca_file``."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ca = trustme.CA()
        self.ca_file = directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))

    def leaf(
        self,
        *names: str,
        not_after: dt.datetime,
        not_before: dt.datetime | None = None,
    ) -> Leaf:
        now = dt.datetime.now(dt.UTC)
        cert = self._ca.issue_cert(
            *(names or ("127.0.0.1", "localhost")),
            not_before=not_before or now - dt.timedelta(days=1),
            not_after=not_after,
        )
        chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
        return Leaf(chain, cert.private_key_pem.bytes(), not_after)


def self_signed(*, days: int = 90) -> Leaf:
    """A leaf for 127.0.0.1 that signs itself, the way a quick `openssl req -x509` makes one."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drwatch self-signed")])
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Leaf(cert.public_bytes(serialization.Encoding.PEM), key_pem, not_after)
