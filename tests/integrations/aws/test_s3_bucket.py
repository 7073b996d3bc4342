"""``S3Bucket`` against moto: objects under a prefix, and the block as a flow's result storage."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from headrace.cache_policies import INPUTS
from headrace.flows import flow
from headrace.results import ResultReference, resolve_storage
from headrace.tasks import task
from headrace.testing.contracts import HeadraceEnvironment, StorageContract, read_task_runs
from headrace_aws import AwsCredentials, S3Bucket
from headrace_aws.storage import s3_filesystem

from .conftest import REGION, MotoServer

DEAD_ENDPOINT = "http://127.0.0.1:9"


def make_bucket(moto: MotoServer, bucket: str, prefix: str = "team/data") -> S3Bucket:
    credentials = AwsCredentials(
        aws_access_key_id="AKIABLOCK", aws_secret_access_key="block-secret", region_name=REGION, endpoint_url=moto.url
    )
    return S3Bucket(bucket_name=bucket, prefix=prefix, credentials=credentials)


@pytest.fixture
def s3_bucket(moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A block whose credentials alone reach moto: the environment's endpoint leads nowhere."""
    block = make_bucket(moto, bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD_ENDPOINT)
    return block


def object_keys(moto: MotoServer, bucket: str) -> list[str]:
    listing = moto.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


# -- objects -------------------------------------------------------------------------------------------


def test_write_then_read_under_the_prefix(s3_bucket: S3Bucket, moto: MotoServer, bucket: str) -> None:
    assert s3_bucket.write_path("reports/day.csv", b"day,total\n1,2\n") == "team/data/reports/day.csv"
    s3_bucket.write_path("notes.txt", "text is stored as UTF-8: é")
    assert s3_bucket.read_path("reports/day.csv") == b"day,total\n1,2\n"
    assert s3_bucket.read_path("/notes.txt") == "text is stored as UTF-8: é".encode()
    assert object_keys(moto, bucket) == ["team/data/notes.txt", "team/data/reports/day.csv"]


def test_writing_again_replaces(s3_bucket: S3Bucket) -> None:
    s3_bucket.write_path("x", b"old")
    s3_bucket.write_path("x", b"new")
    assert s3_bucket.read_path("x") == b"new"


def test_reading_a_missing_object_is_file_not_found(s3_bucket: S3Bucket) -> None:
    with pytest.raises(FileNotFoundError, match=r"s3://headrace-test/team/data/missing\.csv"):
        s3_bucket.read_path("missing.csv")


def test_list_is_recursive_relative_and_stays_inside_the_prefix(
    s3_bucket: S3Bucket, moto: MotoServer, bucket: str
) -> None:
    moto.client("s3").put_object(Bucket=bucket, Key="team/other/outside.txt", Body=b"not ours")
    moto.client("s3").put_object(Bucket=bucket, Key="team/data-old/lookalike.txt", Body=b"not ours either")
    for path in ("b.txt", "a/1.txt", "a/2/deep.txt"):
        s3_bucket.write_path(path, b"x")
    assert s3_bucket.list() == ["a/1.txt", "a/2/deep.txt", "b.txt"]
    assert s3_bucket.list("a") == ["a/1.txt", "a/2/deep.txt"]
    assert s3_bucket.list("a/2/") == ["a/2/deep.txt"]
    assert s3_bucket.list("nothing-here") == []


def test_delete_path(s3_bucket: S3Bucket) -> None:
    s3_bucket.write_path("gone.txt", b"x")
    s3_bucket.delete_path("gone.txt")
    assert s3_bucket.list() == []
    s3_bucket.delete_path("gone.txt")  # deleting what is not there is fine


def test_upload_and_download(s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "local" / "input.bin"
    source.parent.mkdir()
    source.write_bytes(bytes(range(256)) * 100)
    assert s3_bucket.upload_from_path(source) == "team/data/input.bin"
    assert s3_bucket.upload_from_path(source, "archive/2026/input.bin") == "team/data/archive/2026/input.bin"

    target = s3_bucket.download_to_path("archive/2026/input.bin", tmp_path / "out" / "copy.bin")
    assert target == tmp_path / "out" / "copy.bin"
    assert target.read_bytes() == source.read_bytes()

    monkeypatch.chdir(tmp_path)
    assert s3_bucket.download_to_path("input.bin") == Path("input.bin")
    assert (tmp_path / "input.bin").read_bytes() == source.read_bytes()


def test_upload_and_download_of_missing_things(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        s3_bucket.upload_from_path(tmp_path / "absent.txt")
    with pytest.raises(FileNotFoundError, match=r"s3://headrace-test/team/data/absent\.txt"):
        s3_bucket.download_to_path("absent.txt", tmp_path / "absent.txt")


@pytest.mark.parametrize("path", ["", "/", "a/../b", "a//b", "./x", ".."])
def test_invalid_paths_are_refused(s3_bucket: S3Bucket, path: str) -> None:
    with pytest.raises(ValueError, match="invalid path"):
        s3_bucket.write_path(path, b"x")


def test_prefix_and_bucket_name() -> None:
    assert S3Bucket(bucket_name="b-1", prefix="/a/b/").url == "s3://b-1/a/b"
    assert S3Bucket(bucket_name="b-1").url == "s3://b-1"
    assert S3Bucket(bucket_name="b-1").key("x/y") == "x/y"
    with pytest.raises(ValidationError, match="bucket_name must be a bucket's name alone"):
        S3Bucket(bucket_name="s3://b-1/prefix")


# -- the storage backend's factory ----------------------------------------------------------------------


def test_the_factory_takes_a_credentials_block(moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD_ENDPOINT)
    credentials = AwsCredentials(region_name=REGION, endpoint_url=moto.url)
    filesystem = s3_filesystem(credentials=credentials, client_kwargs={"region_name": REGION}, skip_instance_cache=True)
    filesystem.pipe_file(f"{bucket}/through/factory", b"ok")
    assert moto.client("s3").get_object(Bucket=bucket, Key="through/factory")["Body"].read() == b"ok"


# -- as result storage ----------------------------------------------------------------------------------


class TestS3BucketStorage(StorageContract):
    """The storage contract, with the results going through an ``S3Bucket`` block's storage."""

    @pytest.fixture
    def storage_url(self, moto: MotoServer, bucket: str) -> str:
        from headrace.results import as_result_storage

        block = make_bucket(moto, bucket, prefix=f"results-{uuid.uuid4().hex}")
        storage = as_result_storage(block)
        assert storage.url == block.url
        return block.url


class TestS3BucketInFlows(HeadraceEnvironment):
    def test_a_block_is_a_tasks_result_storage(self, s3_bucket: S3Bucket, moto: MotoServer, bucket: str) -> None:
        calls: list[int] = []

        @task(cache_policy=INPUTS, result_storage=s3_bucket)
        def expensive(x: int) -> dict[str, int]:
            calls.append(x)
            return {"x": x, "cube": x**3}

        @flow
        def twice() -> list[dict[str, int]]:
            return [expensive(3), expensive(3)]

        state = twice(return_state=True)
        assert state.result() == [{"x": 3, "cube": 27}] * 2
        assert calls == [3]
        flow_run_id = state.state_details.flow_run_id
        assert flow_run_id is not None
        runs = read_task_runs(flow_run_id)
        assert sorted(run.state.name for run in runs) == ["Cached", "Completed"]
        references = [ResultReference.from_data(run.state.data) for run in runs]
        assert {reference.storage for reference in references if reference} == {"s3://headrace-test/team/data"}
        # Written through the block's credentials (the environment's endpoint leads nowhere) under its prefix.
        keys = object_keys(moto, bucket)
        assert len(keys) == 1
        assert keys[0].startswith("team/data/")
        # A reference is read back through the same block in this process.
        reference = references[0]
        assert reference is not None
        assert reference.load() == {"x": 3, "cube": 27}
        assert resolve_storage(reference.storage) is s3_bucket.result_storage()

    def test_a_block_is_a_flows_result_storage(self, s3_bucket: S3Bucket, moto: MotoServer, bucket: str) -> None:
        @task(persist_result=True)
        def produce() -> str:
            return "kept in S3"

        @flow(result_storage=s3_bucket, persist_result=True)
        def producing() -> str:
            return produce()

        assert producing() == "kept in S3"
        assert object_keys(moto, bucket), "nothing was written to the bucket"
        assert all(key.startswith("team/data/") for key in object_keys(moto, bucket))
