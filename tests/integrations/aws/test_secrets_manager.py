"""``AwsSecret`` against moto's Secrets Manager: write (create, then new versions), read, delete."""

from __future__ import annotations

import pytest

from headrace_aws import AwsCredentials, AwsSecret, SecretNotFound

from .conftest import REGION, MotoServer


@pytest.fixture
def secret(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> AwsSecret:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # only the block's endpoint reaches moto
    return AwsSecret(
        secret_name="warehouse/password", credentials=AwsCredentials(region_name=REGION, endpoint_url=moto.url)
    )


def test_write_creates_then_read(secret: AwsSecret, moto: MotoServer) -> None:
    arn = secret.write_secret("first-password")
    assert arn.startswith("arn:aws:secretsmanager:us-east-1:")
    assert secret.read_secret() == "first-password"
    stored = moto.client("secretsmanager").get_secret_value(SecretId="warehouse/password")
    assert stored["SecretString"] == "first-password"


def test_writing_again_adds_a_version(secret: AwsSecret, moto: MotoServer) -> None:
    first_arn = secret.write_secret("first-password")
    assert secret.write_secret("second-password") == first_arn
    assert secret.read_secret() == "second-password"
    assert secret.read_secret(version_stage="AWSPREVIOUS") == "first-password"
    versions = moto.client("secretsmanager").list_secret_version_ids(SecretId="warehouse/password")["Versions"]
    assert len(versions) == 2


def test_binary_secrets(secret: AwsSecret) -> None:
    secret.write_secret(b"\x00\x01binary\xff")
    assert secret.read_secret() == b"\x00\x01binary\xff"


def test_reading_a_missing_secret(secret: AwsSecret) -> None:
    with pytest.raises(SecretNotFound, match="no secret 'warehouse/password' in AWS Secrets Manager"):
        secret.read_secret()


def test_delete_at_once(secret: AwsSecret, moto: MotoServer) -> None:
    arn = secret.write_secret("short-lived")
    assert secret.delete_secret(force=True) == arn
    with pytest.raises(SecretNotFound):
        secret.read_secret()
    assert moto.client("secretsmanager").list_secrets()["SecretList"] == []
    with pytest.raises(SecretNotFound):
        secret.delete_secret()  # AWS (and moto) accept a forced delete of nothing, but not a scheduled one


def test_delete_with_a_recovery_window(secret: AwsSecret, moto: MotoServer) -> None:
    secret.write_secret("restorable")
    secret.delete_secret(recovery_window_in_days=7)
    described = moto.client("secretsmanager").describe_secret(SecretId="warehouse/password")
    assert "DeletedDate" in described
    with pytest.raises(SecretNotFound, match="scheduled for deletion"):
        secret.read_secret()
    moto.client("secretsmanager").restore_secret(SecretId="warehouse/password")
    assert secret.read_secret() == "restorable"


def test_a_recovery_window_out_of_range_is_refused(secret: AwsSecret) -> None:
    with pytest.raises(ValueError, match="between 7 and 30"):
        secret.delete_secret(recovery_window_in_days=3)
