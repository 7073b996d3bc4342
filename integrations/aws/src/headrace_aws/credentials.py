"""``AwsCredentials``: how to reach AWS, as one block that every other AWS block nests.

It holds what boto3 needs (keys, a profile, a region, an endpoint for S3-compatible services or local
emulators) and, optionally, a role to assume through STS. Fields left empty fall back to boto3's own
chain (environment variables, ``~/.aws``, instance metadata), so ``AwsCredentials()`` on a machine that
is already configured is enough.

boto3 is imported inside the methods, never at module level: looking up the block type (what
``headrace block types`` and ``Block.load("aws-credentials/...")`` do) must not import the AWS SDK.
Sessions and clients are built once per distinct set of credentials in a process and reused (boto3
clients are thread-safe; building one costs tens of milliseconds). The cache lives in this module, not on
the block, so blocks copy and pickle as plain data; assumed-role credentials are renewed before they expire.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, field_validator, model_validator

from headrace.blocks import Block
from headrace_aws import catalog

if TYPE_CHECKING:
    from boto3 import Session  # type: ignore[import-untyped]

__all__ = ["AwsCredentials"]

# Assumed-role credentials are renewed this long before they expire.
_RENEW_BEFORE = timedelta(minutes=5)


class AwsCredentials(Block):
    """Credentials, region and endpoint for AWS, with an optional IAM role to assume; builds boto3 clients.

    Empty fields fall back to boto3's usual sources: environment variables, the shared config and
    credentials files, then instance or container metadata.
    """

    block_type_name = "AWS Credentials"
    block_type_slug = catalog.AWS_CREDENTIALS.slug
    block_description = catalog.AWS_CREDENTIALS.description
    block_documentation_url = catalog.AWS_CREDENTIALS.documentation_url
    block_code_example = catalog.AWS_CREDENTIALS.code_example

    aws_access_key_id: str | None = Field(default=None, description="The access key id (AKIA…/ASIA…).")
    aws_secret_access_key: SecretStr | None = Field(default=None, description="The secret access key.")
    aws_session_token: SecretStr | None = Field(default=None, description="A session token for temporary keys.")
    profile_name: str | None = Field(default=None, description="A profile of ~/.aws/config to use instead of keys.")
    region_name: str | None = Field(default=None, description="The AWS region, such as 'eu-west-1'.")
    endpoint_url: str | None = Field(
        default=None,
        description="An endpoint for every client built from these credentials (S3-compatible services, emulators).",
    )
    role_arn: str | None = Field(default=None, description="An IAM role to assume through STS before any call.")
    role_session_name: str = Field(default="headrace", description="The session name recorded when assuming the role.")
    role_external_id: str | None = Field(default=None, description="The external id the role's trust policy asks for.")
    role_duration_seconds: int = Field(
        default=3600, ge=900, le=43200, description="How long assumed-role credentials last."
    )

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint_url must be an http:// or https:// URL, not {value!r}")
        return value.rstrip("/") if value else value

    @field_validator("role_arn")
    @classmethod
    def _check_role(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("arn:"):
            raise ValueError(f"role_arn must be an ARN such as 'arn:aws:iam::123456789012:role/name', not {value!r}")
        return value

    @model_validator(mode="after")
    def _check_key_pair(self) -> AwsCredentials:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("give both aws_access_key_id and aws_secret_access_key, or neither")
        return self

    # -- boto3 -----------------------------------------------------------------------------------------

    def get_boto3_session(self) -> Session:
        """A boto3 session with these credentials (the assumed role's, when ``role_arn`` is set)."""
        with _cache_lock:
            return self._cached().session

    def get_client(self, service_name: str, **client_options: Any) -> Any:
        """A boto3 client for ``service_name`` (``"s3"``, ``"secretsmanager"``, …), reused across calls.

        ``endpoint_url`` and ``region_name`` come from the block; ``client_options`` (such as a botocore
        ``config``) are passed to ``session.client`` and make the client a new one.
        """
        options = {"region_name": self.region_name, "endpoint_url": self.endpoint_url, **client_options}
        options = {key: value for key, value in options.items() if value is not None}
        with _cache_lock:
            cached = self._cached()
            if not client_options:
                client = cached.clients.get(service_name)
                if client is None:
                    client = cached.clients[service_name] = cached.session.client(service_name, **options)
                return client
            session = cached.session
        return session.client(service_name, **options)

    def s3fs_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`s3fs.S3FileSystem` that reach S3 with these credentials."""
        options: dict[str, Any] = {}
        if self.role_arn is not None:
            with _cache_lock:
                assumed = self._cached().assumed or {}
            options.update(key=assumed["AccessKeyId"], secret=assumed["SecretAccessKey"], token=assumed["SessionToken"])
        elif self.aws_access_key_id is not None and self.aws_secret_access_key is not None:
            options.update(key=self.aws_access_key_id, secret=self.aws_secret_access_key.get_secret_value())
            if self.aws_session_token is not None:
                options["token"] = self.aws_session_token.get_secret_value()
        elif self.profile_name is not None:
            options["profile"] = self.profile_name
        client_kwargs = {"region_name": self.region_name, "endpoint_url": self.endpoint_url}
        client_kwargs = {key: value for key, value in client_kwargs.items() if value is not None}
        if client_kwargs:
            options["client_kwargs"] = client_kwargs
        return options

    # -- internals ---------------------------------------------------------------------------------

    def _cached(self) -> _CachedSession:
        """This block's session and clients (call with ``_cache_lock`` held), renewed near expiry."""
        fingerprint = hashlib.sha256(self.model_dump_json(context={"include_secrets": True}).encode()).hexdigest()
        cached = _cache.get(fingerprint)
        if cached is None or cached.expiring():
            cached = _cache[fingerprint] = self._new_session()
        return cached

    def _new_session(self) -> _CachedSession:
        import boto3

        session = boto3.Session(
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=_reveal(self.aws_secret_access_key),
            aws_session_token=_reveal(self.aws_session_token),
            profile_name=self.profile_name,
            region_name=self.region_name,
        )
        if self.role_arn is None:
            return _CachedSession(session)
        request: dict[str, Any] = {
            "RoleArn": self.role_arn,
            "RoleSessionName": self.role_session_name,
            "DurationSeconds": self.role_duration_seconds,
        }
        if self.role_external_id is not None:
            request["ExternalId"] = self.role_external_id
        sts = session.client("sts", **({"endpoint_url": self.endpoint_url} if self.endpoint_url else {}))
        assumed: dict[str, Any] = sts.assume_role(**request)["Credentials"]
        role_session = boto3.Session(
            aws_access_key_id=assumed["AccessKeyId"],
            aws_secret_access_key=assumed["SecretAccessKey"],
            aws_session_token=assumed["SessionToken"],
            region_name=session.region_name,
        )
        return _CachedSession(role_session, assumed)


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


@dataclass
class _CachedSession:
    """A boto3 session, its clients by service, and the assumed-role credentials it was made from."""

    session: Session
    assumed: dict[str, Any] | None = None
    clients: dict[str, Any] = field(default_factory=dict)

    def expiring(self) -> bool:
        if self.assumed is None:
            return False
        expiration: datetime = self.assumed["Expiration"]
        return datetime.now(timezone.utc) >= expiration - _RENEW_BEFORE


# Sessions by a fingerprint of the credentials (copies of a block, such as each Block.load, share them).
_cache: dict[str, _CachedSession] = {}
_cache_lock = threading.Lock()
