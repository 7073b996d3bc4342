"""``S3Bucket``: a bucket and a key prefix, for files a flow reads and writes and for its results.

Paths given to the methods are relative to ``prefix`` (``write_path("daily/x.csv", ...)`` writes
``<prefix>/daily/x.csv``). The object methods use a boto3 client from the nested
:class:`~headrace_aws.credentials.AwsCredentials`; :meth:`S3Bucket.result_storage` hands headrace an
s3fs filesystem with the same credentials, so ``result_storage=S3Bucket.load("x")`` works where a
``s3://`` URL would need the credentials to come from the environment.

boto3 and s3fs are imported inside the methods: loading the block type must not import them.
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from headrace.blocks import Block
from headrace_aws import catalog
from headrace_aws.credentials import AwsCredentials

if TYPE_CHECKING:
    from headrace.results import ResultStorage

__all__ = ["S3Bucket"]


class S3Bucket(Block):
    """A bucket in Amazon S3 (or an S3-compatible service) and a key prefix in it.

    Reads, writes, lists, deletes, uploads and downloads objects, and serves as a flow's or task's
    ``result_storage``.
    """

    block_type_name = "S3 Bucket"
    block_type_slug = catalog.S3_BUCKET.slug
    block_description = catalog.S3_BUCKET.description
    block_documentation_url = catalog.S3_BUCKET.documentation_url
    block_code_example = catalog.S3_BUCKET.code_example
    block_capabilities = ("read-path", "write-path", "result-storage")

    bucket_name: str = Field(description="The bucket's name.")
    prefix: str = Field(default="", description="A key prefix (a 'folder') that every path is relative to.")
    credentials: AwsCredentials = Field(
        default_factory=AwsCredentials, description="How to reach S3 (default: the environment's credentials)."
    )

    @field_validator("bucket_name")
    @classmethod
    def _check_bucket(cls, value: str) -> str:
        if not value or "/" in value or value != value.strip():
            raise ValueError(f"bucket_name must be a bucket's name alone, such as 'my-data', not {value!r}")
        return value

    @field_validator("prefix")
    @classmethod
    def _normalize_prefix(cls, value: str) -> str:
        return value.strip("/")

    # -- where things are ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``: the location this block stands for."""
        return f"s3://{self.bucket_name}/{self.prefix}".rstrip("/")

    def key(self, path: str) -> str:
        """The object key for ``path`` (relative to the prefix)."""
        path = str(path).strip("/")
        if not path or any(part in ("", ".", "..") for part in path.split("/")):
            raise ValueError(f"invalid path {path!r} in bucket {self.bucket_name}: use '/'-separated names")
        return f"{self.prefix}/{path}" if self.prefix else path

    def _client(self) -> Any:
        return self.credentials.get_client("s3")

    # -- objects ---------------------------------------------------------------------------------------

    def read_path(self, path: str) -> bytes:
        """The content of the object at ``path``; :class:`FileNotFoundError` if there is none."""
        key = self.key(path)
        client = self._client()
        try:
            response = client.get_object(Bucket=self.bucket_name, Key=key)
        except client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"no object s3://{self.bucket_name}/{key}") from None
        content: bytes = response["Body"].read()
        return content

    def write_path(self, path: str, content: bytes | str) -> str:
        """Store ``content`` (text is encoded as UTF-8) at ``path``, replacing it; returns the object key."""
        key = self.key(path)
        body = content.encode() if isinstance(content, str) else content
        self._client().put_object(Bucket=self.bucket_name, Key=key, Body=body)
        return key

    def delete_path(self, path: str) -> None:
        """Delete the object at ``path``; deleting a missing object is not an error.

        (Named ``delete_path`` because ``S3Bucket.delete(name)`` deletes the saved block document.)
        """
        self._client().delete_object(Bucket=self.bucket_name, Key=self.key(path))

    def upload_from_path(self, from_path: str | Path, to_path: str | None = None) -> str:
        """Upload the local file ``from_path`` to ``to_path`` (default: its file name); returns the key."""
        source = Path(from_path)
        if not source.is_file():
            raise FileNotFoundError(f"cannot upload {source}: no such file")
        key = self.key(to_path if to_path is not None else source.name)
        self._client().upload_file(str(source), self.bucket_name, key)
        return key

    def download_to_path(self, from_path: str, to_path: str | Path | None = None) -> Path:
        """Download the object at ``from_path`` into the local file ``to_path`` (default: its name, here)."""
        key = self.key(from_path)
        target = Path(to_path) if to_path is not None else Path(key.rsplit("/", 1)[-1])
        target.parent.mkdir(parents=True, exist_ok=True)
        client = self._client()
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        try:
            client.download_file(self.bucket_name, key, str(target))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"no object s3://{self.bucket_name}/{key}") from None
            raise
        return target

    # -- results ---------------------------------------------------------------------------------------

    def result_storage(self) -> ResultStorage:
        """Where results go when this block is a ``result_storage``: the prefix, through s3fs."""
        from headrace.results import resolve_storage

        # The options in clear, not the block: resolved storages are reused by URL and options, and a
        # block's repr masks its secrets, so two blocks differing only in a secret would look alike.
        return resolve_storage(self.url, **self.credentials.s3fs_options())

    # ``list`` comes last: inside the class body, later annotations would otherwise see the method.
    def list(self, path: str = "") -> builtins.list[str]:
        """Paths (relative to the prefix) of every object under ``path``, recursively, sorted."""
        folder = str(path).strip("/")
        base = f"{self.prefix}/" if self.prefix else ""
        start = f"{base}{folder}/" if folder else base
        found: builtins.list[str] = []
        paginator = self._client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=start):
            found.extend(item["Key"][len(base) :] for item in page.get("Contents", []))
        return sorted(found)
