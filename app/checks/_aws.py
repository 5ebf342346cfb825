"""What the AWS-backed check types share: botocore settings and the meaning of its errors."""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from app.checks.base import CheckFailed

# Error codes after which retrying with the same configuration cannot help.
_AWS_CREDENTIAL_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "AuthFailure",
    "UnauthorizedOperation",
}


def aws_config(timeout: float) -> Config:
    """botocore settings for a check: network timeouts inside the check's own timeout, one retry.

    Credentials come from the usual AWS chain (environment, shared files, container or instance
    role). boto3 is synchronous: the checks call it through ``asyncio.to_thread``. That costs a
    thread per call in flight, which is nothing at backup-check intervals, and avoids
    aiobotocore, which pins botocore to a narrow range and would hold every other AWS user of
    drwatch to it.
    """
    limit = max(1.0, timeout * 0.4)
    return Config(
        connect_timeout=limit,
        read_timeout=limit,
        retries={"max_attempts": 2, "mode": "standard"},
        user_agent_extra="drwatch",
    )


def aws_failure(exc: Exception, what: str, *, missing: set[str] | None = None) -> CheckFailed:
    """What a botocore error means for a person. ``what`` names the resource ("S3 bucket x");
    error codes in ``missing`` mean it does not exist (permanent).
    """
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in (missing or set()) or (status == 404 and code in ("", "404", "NotFound")):
            return CheckFailed(
                f"{what} does not exist ({code or 'not found'}); the name or region is wrong, "
                "or it was deleted.",
                permanent=True,
            )
        if code in _AWS_CREDENTIAL_CODES or status in (401, 403):
            return CheckFailed(
                f"AWS refused access to {what} ({code or status}); the credentials are wrong, "
                "expired, or lack permission to read it.",
                permanent=True,
            )
        return CheckFailed(f"AWS answered an error for {what} ({code or status}).")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return CheckFailed(
            f"No AWS credentials found to read {what}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, a profile, or give drwatch a role.",
            permanent=True,
        )
    if isinstance(exc, NoRegionError):
        return CheckFailed(
            f"No AWS region configured for {what}; set region in the check.", permanent=True
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return CheckFailed(
            f"Cannot connect to the AWS endpoint for {what}; the network or the endpoint_url "
            "is down."
        )
    if isinstance(exc, ReadTimeoutError):
        return CheckFailed(f"AWS did not answer in time for {what}; it is slow or overloaded.")
    if isinstance(exc, BotoCoreError):
        return CheckFailed(f"Reading {what} from AWS failed ({type(exc).__name__}: {exc}).")
    raise exc


def aws_client(service: str, region: str | None, endpoint_url: str | None, timeout: float) -> Any:
    """A boto3 client of ``service`` for one check (its own session: boto3's default session is
    not thread-safe, and the checks call it from worker threads).
    """
    import boto3

    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        region_name=region,
        endpoint_url=endpoint_url,
        config=aws_config(timeout),
    )


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError ("DBInstanceNotFound"), or ""."""
    return str(exc.response.get("Error", {}).get("Code", ""))
