"""``AwsCredentials`` builds boto3 sessions and clients: keys, profiles, region, endpoint URL, assumed roles."""

from __future__ import annotations

import copy
import pickle
import textwrap
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError
from pydantic import ValidationError

from headrace_aws import AwsCredentials

from .conftest import MotoServer

DEAD_ENDPOINT = "http://127.0.0.1:9"  # a closed loopback port: a client that ends up here fails at once


@pytest.fixture
def no_endpoint_from_environment(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The environment's endpoint leads nowhere: only a block's own ``endpoint_url`` reaches moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD_ENDPOINT)
    return moto


def test_clients_use_the_blocks_endpoint_and_region(no_endpoint_from_environment: MotoServer) -> None:
    moto = no_endpoint_from_environment
    credentials = AwsCredentials(
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key="example-secret",
        region_name="eu-west-1",
        endpoint_url=moto.url,
    )
    s3 = credentials.get_client("s3")
    assert s3.meta.region_name == "eu-west-1"
    assert s3.meta.endpoint_url == moto.url
    s3.create_bucket(Bucket="through-the-block", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert [b["Name"] for b in moto.client("s3").list_buckets()["Buckets"]] == ["through-the-block"]

    # The control: without the block's endpoint the same call goes where the environment says, and fails.
    with pytest.raises(EndpointConnectionError):
        AwsCredentials(region_name="eu-west-1").get_client("s3").list_buckets()


def test_sessions_carry_the_keys(moto: MotoServer) -> None:
    credentials = AwsCredentials(
        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="example-secret", aws_session_token="token-1"
    )
    frozen = credentials.get_boto3_session().get_credentials().get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == ("AKIAEXAMPLE", "example-secret", "token-1")
    assert credentials.s3fs_options() == {"key": "AKIAEXAMPLE", "secret": "example-secret", "token": "token-1"}


def test_empty_fields_fall_back_to_the_environment(moto: MotoServer) -> None:
    session = AwsCredentials().get_boto3_session()
    assert session.get_credentials().access_key == "testing"  # set by the conftest
    assert session.region_name == "us-east-1"
    assert AwsCredentials().s3fs_options() == {}


def test_a_profile_from_the_shared_files(moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, shared = tmp_path / "config", tmp_path / "credentials"
    config.write_text("[profile analytics]\nregion = ap-southeast-2\n", encoding="utf-8")
    shared.write_text(
        textwrap.dedent(
            """\
            [analytics]
            aws_access_key_id = AKIAPROFILE
            aws_secret_access_key = profile-secret
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    credentials = AwsCredentials(profile_name="analytics")
    session = credentials.get_boto3_session()
    assert session.get_credentials().access_key == "AKIAPROFILE"
    assert session.region_name == "ap-southeast-2"
    assert credentials.s3fs_options() == {"profile": "analytics"}
    credentials.get_client("s3").list_buckets()  # reaches moto with the profile's keys


def test_role_assumption_through_sts(no_endpoint_from_environment: MotoServer) -> None:
    moto = no_endpoint_from_environment
    account = moto.client("sts").get_caller_identity()["Account"]
    role_arn = f"arn:aws:iam::{account}:role/etl-runner"
    credentials = AwsCredentials(
        aws_access_key_id="AKIABASEUSER",
        aws_secret_access_key="base-secret",
        region_name="us-east-1",
        endpoint_url=moto.url,
        role_arn=role_arn,
        role_session_name="nightly-etl",
    )

    identity = credentials.get_client("sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{account}:assumed-role/etl-runner/nightly-etl"
    frozen = credentials.get_boto3_session().get_credentials().get_frozen_credentials()
    assert frozen.access_key != "AKIABASEUSER"
    assert frozen.token  # temporary credentials always come with a session token

    options = credentials.s3fs_options()
    assert (options["key"], options["secret"], options["token"]) == (frozen.access_key, frozen.secret_key, frozen.token)
    assert options["client_kwargs"] == {"region_name": "us-east-1", "endpoint_url": moto.url}


def test_clients_are_reused_until_a_field_changes(moto: MotoServer) -> None:
    credentials = AwsCredentials(region_name="us-east-1", endpoint_url=moto.url)
    first = credentials.get_client("s3")
    assert credentials.get_client("s3") is first
    assert AwsCredentials(region_name="us-east-1", endpoint_url=moto.url).get_client("s3") is first  # a copy shares
    from botocore.config import Config

    assert credentials.get_client("s3", config=Config(retries={"max_attempts": 1})) is not first  # options: new client
    credentials.region_name = "eu-central-1"
    moved = credentials.get_client("s3")
    assert moved is not first
    assert moved.meta.region_name == "eu-central-1"


def test_copies_and_pickles_are_plain_data_after_use(moto: MotoServer) -> None:
    credentials = AwsCredentials(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="s3cr3t", endpoint_url=moto.url)
    credentials.get_client("s3").list_buckets()
    restored = pickle.loads(pickle.dumps(credentials))
    assert restored == credentials
    assert restored.aws_secret_access_key is not None
    assert restored.aws_secret_access_key.get_secret_value() == "s3cr3t"
    assert copy.deepcopy(credentials) == credentials
    restored.get_client("s3").list_buckets()


def test_secrets_are_masked(moto: MotoServer) -> None:
    credentials = AwsCredentials(
        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="s3cr3t", aws_session_token="t0ken"
    )
    for text in (repr(credentials), str(credentials), credentials.model_dump_json()):
        assert "s3cr3t" not in text
        assert "t0ken" not in text
    assert AwsCredentials.secret_fields() == ["aws_secret_access_key", "aws_session_token"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"aws_access_key_id": "AKIAONLY"}, "give both aws_access_key_id and aws_secret_access_key"),
        ({"aws_secret_access_key": "only"}, "give both aws_access_key_id and aws_secret_access_key"),
        ({"endpoint_url": "127.0.0.1:5000"}, "endpoint_url must be an http:// or https:// URL"),
        ({"role_arn": "etl-runner"}, "role_arn must be an ARN"),
        ({"role_duration_seconds": 60}, "greater than or equal to 900"),
    ],
)
def test_bad_fields_are_refused_with_a_clear_message(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AwsCredentials.model_validate(fields)
