"""``AwsSecret``: one secret in AWS Secrets Manager, read, written and deleted by name.

The block stores only the secret's name and how to reach AWS; the value stays in Secrets Manager and is
fetched when a flow asks for it. Writing creates the secret the first time and adds a new version after.
The methods are ``read_secret``/``write_secret``/``delete_secret`` because ``AwsSecret.delete(name)``
deletes the saved block document itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from headrace.blocks import Block
from headrace_aws import catalog
from headrace_aws.credentials import AwsCredentials

__all__ = ["AwsSecret", "SecretNotFound"]


class SecretNotFound(LookupError):
    """The secret does not exist in Secrets Manager (or is scheduled for deletion)."""


class AwsSecret(Block):
    """A secret in AWS Secrets Manager: read its value, write a new version, or delete it."""

    block_type_name = "AWS Secret"
    block_type_slug = catalog.AWS_SECRET.slug
    block_description = catalog.AWS_SECRET.description
    block_documentation_url = catalog.AWS_SECRET.documentation_url
    block_code_example = catalog.AWS_SECRET.code_example

    secret_name: str = Field(min_length=1, description="The secret's name or ARN.")
    credentials: AwsCredentials = Field(
        default_factory=AwsCredentials, description="How to reach AWS (default: the environment's credentials)."
    )

    def _client(self) -> Any:
        return self.credentials.get_client("secretsmanager")

    def read_secret(self, version_id: str | None = None, version_stage: str | None = None) -> str | bytes:
        """The secret's value: text for a string secret, bytes for a binary one (the current version by default)."""
        request: dict[str, Any] = {"SecretId": self.secret_name}
        if version_id is not None:
            request["VersionId"] = version_id
        if version_stage is not None:
            request["VersionStage"] = version_stage
        client = self._client()
        try:
            response = client.get_secret_value(**request)
        except client.exceptions.ResourceNotFoundException:
            raise SecretNotFound(f"no secret {self.secret_name!r} in AWS Secrets Manager") from None
        except client.exceptions.InvalidRequestException as exc:
            if "marked" not in str(exc) or "delet" not in str(exc):  # "marked for deletion" / "marked deleted"
                raise
            raise SecretNotFound(
                f"secret {self.secret_name!r} is scheduled for deletion in AWS Secrets Manager; restore it to read it"
            ) from None
        if "SecretString" in response:
            text: str = response["SecretString"]
            return text
        binary: bytes = response["SecretBinary"]
        return binary

    def write_secret(self, value: str | bytes) -> str:
        """Store ``value`` as the secret's new current version (creating the secret if needed); returns its ARN."""
        field = "SecretString" if isinstance(value, str) else "SecretBinary"
        client = self._client()
        try:
            response = client.put_secret_value(SecretId=self.secret_name, **{field: value})
        except client.exceptions.ResourceNotFoundException:
            response = client.create_secret(Name=self.secret_name, **{field: value})
        arn: str = response["ARN"]
        return arn

    def delete_secret(self, recovery_window_in_days: int | None = 30, force: bool = False) -> str:
        """Delete the secret; returns its ARN.

        By default AWS keeps it restorable for ``recovery_window_in_days`` (7 to 30); ``force=True``
        deletes it at once, without recovery.
        """
        request: dict[str, Any] = {"SecretId": self.secret_name}
        if force:
            request["ForceDeleteWithoutRecovery"] = True
        elif recovery_window_in_days is not None:
            if not 7 <= recovery_window_in_days <= 30:
                raise ValueError(f"recovery_window_in_days must be between 7 and 30, not {recovery_window_in_days}")
            request["RecoveryWindowInDays"] = recovery_window_in_days
        client = self._client()
        try:
            response = client.delete_secret(**request)
        except client.exceptions.ResourceNotFoundException:
            raise SecretNotFound(f"no secret {self.secret_name!r} in AWS Secrets Manager") from None
        arn: str = response["ARN"]
        return arn
