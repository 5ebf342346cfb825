"""``tls``: a TLS handshake with a server; days until its certificate expires, name and chain."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from app.checks import base
from app.checks._tls import certificate_expiry, describe_verification_error, tls_context
from app.checks.base import Check, CheckFailed, Result
from app.units import rfc3339

_DAY = 86400.0


def _day(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


class TlsCheck(Check["TlsCheck.Params"]):
    """Connects, verifies the chain and the name like a client would, and reads the leaf's notAfter.

    Warns when fewer than ``warn_days`` remain, fails below ``fail_days``, when the certificate has
    expired, is issued for another name, or is not trusted. Reports
    ``tls_cert_expiry_timestamp_seconds`` in details. Defaults to ``critical``: it usually guards
    the application's own endpoint, where an expired certificate is an outage.
    """

    class Params(base.Params):
        host: str = Field(min_length=1, description="Host name or address to connect to.")
        port: int = Field(443, ge=1, le=65535, description="TCP port of the TLS service.")
        server_name: str | None = Field(
            None, description="Name sent as SNI and verified in the certificate; default: host."
        )
        warn_days: float = Field(
            14.0, ge=0, description="Warn when the certificate expires in fewer days than this."
        )
        fail_days: float = Field(
            3.0, ge=0, description="Fail when the certificate expires in fewer days than this."
        )
        ca_file: Path | None = Field(None, description="PEM bundle to trust instead of the system.")

        @model_validator(mode="after")
        def _ordered(self) -> TlsCheck.Params:
            if self.fail_days > self.warn_days:
                raise ValueError("fail_days must not be greater than warn_days")
            return self

    default_criticality: ClassVar[base.Criticality] = "critical"
    default_interval: ClassVar[float] = 300.0
    gauges: ClassVar[Mapping[str, str]] = {
        "tls_cert_expiry_timestamp_seconds": "drwatch_tls_cert_expiry_timestamp_seconds"
    }

    @property
    def _name(self) -> str:
        return self.params.server_name or self.params.host

    @property
    def _where(self) -> str:
        return f"{self.params.host}:{self.params.port}"

    async def run(self) -> Result:
        p = self.params
        context = tls_context(str(p.ca_file) if p.ca_file else None)
        try:
            der = await self._leaf_certificate(context)
        except ssl.SSLCertVerificationError as exc:
            raise await self._verification_failure(exc) from None
        expiry = certificate_expiry(der)
        details: dict[str, Any] = {
            "tls_cert_expiry_timestamp_seconds": expiry,
            "not_after": rfc3339(datetime.fromtimestamp(expiry, UTC)),
            "server_name": self._name,
        }
        days_left = (expiry - time.time()) / _DAY
        measured: dict[str, Any] = {
            "observed_value": round(days_left, 3),
            "observed_unit": "d",
            "details": details,
        }
        said = f"The TLS certificate of {self._name} ({self._where}) expires on {_day(expiry)}"
        if days_left < p.fail_days:
            return self.failed(
                f"{said}, in {days_left:.1f} days (fail below {p.fail_days:g}); renew it now or "
                "clients will refuse the connection.",
                **measured,
            )
        if days_left < p.warn_days:
            return self.warned(
                f"{said}, in {days_left:.1f} days (warn below {p.warn_days:g}); automatic renewal "
                "may be failing.",
                **measured,
            )
        return self.passed(f"{said}, in {days_left:.0f} days.", **measured)

    async def _leaf_certificate(self, context: ssl.SSLContext) -> bytes:
        p = self.params
        try:
            _, writer = await asyncio.open_connection(
                p.host,
                p.port,
                ssl=context,
                server_hostname=self._name,
                ssl_handshake_timeout=self.timeout,
            )
        except ssl.SSLCertVerificationError:
            raise
        except ConnectionRefusedError:
            raise CheckFailed(
                f"{self._where} refused the connection; nothing is listening there "
                "(the service is down or the port is wrong)."
            ) from None
        except ssl.SSLError as exc:
            raise CheckFailed(
                f"The TLS handshake with {self._where} failed ({exc.reason or exc}); the server "
                "does not speak TLS on this port or rejects the protocol versions drwatch offers."
            ) from None
        except TimeoutError:
            raise CheckFailed(
                f"{self._where} did not complete a TLS handshake in time; it is hung, or "
                "something that does not speak TLS is listening."
            ) from None
        except OSError as exc:
            raise CheckFailed(
                f"Cannot connect to {self._where} ({exc.strerror or exc}); check the host and port."
            ) from None
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        if not der:
            raise CheckFailed(f"{self._where} presented no certificate.")
        return bytes(der)

    async def _verification_failure(self, error: ssl.SSLCertVerificationError) -> CheckFailed:
        """The failure, with the certificate's expiry when it can still be read unverified."""
        message = describe_verification_error(error, self._name)
        context: dict[str, Any] = {"server_name": self._name}
        try:
            der = await self._leaf_certificate(tls_context(verify=False))
        except CheckFailed:
            return CheckFailed(message, context=context)
        expiry = certificate_expiry(der)
        context["tls_cert_expiry_timestamp_seconds"] = expiry
        context["not_after"] = rfc3339(datetime.fromtimestamp(expiry, UTC))
        if getattr(error, "verify_code", None) == 10:
            ago = (time.time() - expiry) / _DAY
            message = (
                f"The TLS certificate of {self._name} ({self._where}) expired on {_day(expiry)}, "
                f"{ago:.1f} days ago; renew it (clients refuse the connection)."
            )
        return CheckFailed(
            message,
            context=context,
            observed_value=round((expiry - time.time()) / _DAY, 3),
            observed_unit="d",
        )
