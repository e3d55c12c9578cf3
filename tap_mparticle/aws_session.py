"""How the tap signs in to S3: settings, a boto3 session, and an assumed role kept fresh.

Kept apart from `storage` (which lists and reads) so each stays small.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import boto3
import botocore.credentials
import botocore.session

from tap_mparticle.preflight import guard_logs


@dataclasses.dataclass(frozen=True)
class AwsSettings:
    """How to reach S3; every field optional, boto3's default chain fills the gaps."""

    access_key_id: str | None = None
    secret_access_key: str | None = dataclasses.field(default=None, repr=False)
    session_token: str | None = dataclasses.field(default=None, repr=False)
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    role_arn: str | None = None
    external_id: str | None = dataclasses.field(default=None, repr=False)
    max_connections: int = 10


def boto_session(aws: AwsSettings) -> boto3.Session:
    """A boto3 session with the settings' credentials, or the role they name assumed.

    Args:
        aws: Credentials, profile, region, and the role to assume if any.

    Returns:
        The session S3 (and STS) clients are built from.
    """
    session = boto3.Session(
        aws_access_key_id=aws.access_key_id,
        aws_secret_access_key=aws.secret_access_key,
        aws_session_token=aws.session_token,
        profile_name=aws.profile,
        region_name=aws.region,
    )
    _mask_credentials(session)
    if not aws.role_arn:
        return session
    sts = session.client("sts", endpoint_url=_sts_endpoint(aws), region_name=aws.region)
    role_arn = aws.role_arn

    def refresh() -> dict[str, Any]:
        params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": "tap-mparticle"}
        if aws.external_id:
            params["ExternalId"] = aws.external_id
        creds = sts.assume_role(**params)["Credentials"]
        guard_logs([creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]])
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    # Refreshable credentials re-assume the role before expiry, so a run longer
    # than the role's session duration keeps going.
    credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
        metadata=refresh(),
        refresh_using=refresh,
        method="sts-assume-role",
    )
    # A fresh botocore session whose credential chain starts with the role: only
    # public botocore API (no private attribute of the session is set).
    botocore_session = botocore.session.get_session()
    resolver = botocore_session.get_component("credential_provider")
    resolver.insert_before("env", _AssumedRole(credentials))
    return boto3.Session(botocore_session=botocore_session, region_name=aws.region)


def _mask_credentials(session: boto3.Session) -> None:
    """Mask the credentials boto3's chain found, as the secret settings are masked.

    The environment (AWS_SESSION_TOKEN), a profile's files or an instance role hold
    them, not a setting: an error quoting one (a token with a pasted line break, in
    http.client's `Invalid header value`) printed it. Found, they are kept for the first
    request; none found, the chain is looked through again there and the run stops.
    """
    credentials = session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        guard_logs([frozen.access_key, frozen.secret_key, frozen.token])


class _AssumedRole(botocore.credentials.CredentialProvider):
    """A credential provider that hands out the assumed role's refreshable credentials."""

    METHOD = "sts-assume-role"
    CANONICAL_NAME = "tap-mparticle-assume-role"

    def __init__(self, credentials: botocore.credentials.RefreshableCredentials) -> None:
        super().__init__()
        self._assumed = credentials

    def load(self) -> botocore.credentials.RefreshableCredentials:
        return self._assumed


def _sts_endpoint(aws: AwsSettings) -> str | None:
    # A local S3 stand-in (moto, LocalStack) serves STS on the same endpoint; real
    # MinIO/Ceph users do not assume roles, so reusing the endpoint is safe.
    return aws.endpoint_url
