"""The AWS block types: registrations agree with their classes; blocks save and load with their secrets."""

from __future__ import annotations

import pytest

from headrace.blocks import Block
from headrace.plugins.types import BlockType
from headrace.testing.blocks import assert_block_type_registered
from headrace.testing.contracts import HeadraceEnvironment
from headrace.testing.plugins import plugin_manager_with
from headrace_aws import AwsCredentials, AwsSecret, LambdaFunction, S3Bucket, plugin

from .conftest import REGION, MotoServer


def test_block_types_agree_with_their_classes() -> None:
    registrations = plugin_manager_with(plugin).registrations("headrace_block_types")
    classes = {registration.name: assert_block_type_registered(registration) for registration in registrations}
    assert classes == {
        "aws-credentials": AwsCredentials,
        "s3-bucket": S3Bucket,
        "aws-secret": AwsSecret,
        "lambda-function": LambdaFunction,
    }
    for registration in registrations:
        assert isinstance(registration, BlockType)
        assert registration.code_example, f"{registration.name} has no code example"
        assert registration.documentation_url
    assert S3Bucket.block_capabilities == ("read-path", "write-path", "result-storage")


def test_nested_credentials_are_blocks_and_hold_the_secrets() -> None:
    assert AwsCredentials.secret_fields() == ["aws_secret_access_key", "aws_session_token"]
    for block_class in (S3Bucket, AwsSecret, LambdaFunction):
        assert block_class.secret_fields() == []  # the secrets live in the nested credentials block


def make_credentials(moto: MotoServer) -> AwsCredentials:
    return AwsCredentials(
        aws_access_key_id="AKIASAVED",
        aws_secret_access_key="saved-secret-key",
        aws_session_token="saved-session-token",
        region_name=REGION,
        endpoint_url=moto.url,
    )


class TestSavedBlocks(HeadraceEnvironment):
    def test_credentials_round_trip_with_their_secrets(self, moto: MotoServer) -> None:
        make_credentials(moto).save("aws-prod")
        loaded = AwsCredentials.load("aws-prod")
        assert loaded == make_credentials(moto)
        assert loaded.aws_secret_access_key is not None
        assert loaded.aws_secret_access_key.get_secret_value() == "saved-secret-key"
        assert "saved-secret-key" not in repr(loaded)
        loaded.get_client("s3").list_buckets()  # the loaded block works

    def test_an_s3_bucket_round_trips_with_its_nested_credentials(self, moto: MotoServer, bucket: str) -> None:
        S3Bucket(bucket_name=bucket, prefix="reports", credentials=make_credentials(moto)).save("reports")
        loaded = S3Bucket.load("reports")
        assert loaded.prefix == "reports"
        assert loaded.credentials == make_credentials(moto)
        loaded.write_path("a.txt", b"saved and loaded")
        assert moto.client("s3").get_object(Bucket=bucket, Key="reports/a.txt")["Body"].read() == b"saved and loaded"
        # Loading by slug through the base class finds the class through the plugin.
        assert type(Block.load("s3-bucket/reports")) is S3Bucket

    def test_secret_and_lambda_blocks_round_trip(self, moto: MotoServer) -> None:
        AwsSecret(secret_name="db/password", credentials=make_credentials(moto)).save("db-password")
        LambdaFunction(function_name="echo", qualifier="live", credentials=make_credentials(moto)).save("echo")
        secret = AwsSecret.load("db-password")
        function = LambdaFunction.load("echo")
        assert (secret.secret_name, function.function_name, function.qualifier) == ("db/password", "echo", "live")
        assert secret.credentials == function.credentials == make_credentials(moto)
        secret.write_secret("from a loaded block")
        assert secret.read_secret() == "from a loaded block"

    def test_loading_the_wrong_type_is_a_clear_error(self, moto: MotoServer) -> None:
        from headrace.blocks import BlockTypeMismatch

        AwsSecret(secret_name="x", credentials=make_credentials(moto)).save("not-a-bucket")
        with pytest.raises(BlockTypeMismatch):
            S3Bucket.load("aws-secret/not-a-bucket")
