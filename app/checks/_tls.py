"""TLS helpers shared by the ``tls`` check and the HTTP engine: trust contexts, certificate
expiry, and what a failed certificate verification means for a person.
"""

from __future__ import annotations

import functools
import ssl

from cryptography import x509

from app.checks.base import CheckFailed


@functools.lru_cache(maxsize=32)
def tls_context(ca_file: str | None = None, *, verify: bool = True) -> ssl.SSLContext:
    """The shared client TLS context: the system trust store, or only ``ca_file`` (a PEM bundle)."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise CheckFailed(
            f"The CA bundle {ca_file} cannot be loaded ({exc}); fix the ca_file setting.",
            permanent=True,
        ) from None


def certificate_expiry(der: bytes) -> float:
    """Unix seconds of the notAfter of a DER-encoded certificate."""
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


def describe_verification_error(error: ssl.SSLCertVerificationError, host: str) -> str:
    """A sentence for a failed certificate verification, by OpenSSL's verify code."""
    code = getattr(error, "verify_code", None)
    reason = getattr(error, "verify_message", None) or str(error)
    if code == 10:
        return (
            f"The TLS certificate of {host} has expired; renew it (clients refuse the connection)."
        )
    if code == 9:
        return f"The TLS certificate of {host} is not valid yet; check the issuer and the clocks."
    if code == 62 or "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
        return (
            f"The TLS certificate of {host} is not issued for that name ({reason}); "
            "the wrong certificate is installed or the name points at the wrong server."
        )
    if code in (18, 19, 20, 21, 2):
        return (
            f"The TLS certificate of {host} is not trusted ({reason}); it is self-signed or its "
            "chain is incomplete, so clients will refuse it."
        )
    return f"The TLS certificate of {host} failed verification ({reason})."
