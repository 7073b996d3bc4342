"""The ``s3`` result-storage backend: ``s3://bucket/prefix`` URLs served by s3fs.

The plugin registers :data:`s3_filesystem` by a lazy reference, so s3fs (and through it botocore) is
imported only when a flow actually resolves an ``s3://`` URL, never when plugins are listed.

Without options the filesystem finds credentials, region and endpoint the way every AWS SDK does: the
``AWS_*`` environment variables (``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` for an S3-compatible
service), ``~/.aws/config`` and ``~/.aws/credentials``, then instance metadata. Pass ``credentials=`` (an
:class:`~headrace_aws.credentials.AwsCredentials` block) to use the block's instead, which is what
``S3Bucket.result_storage()`` does; any other keyword goes to :class:`s3fs.S3FileSystem` unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from headrace_aws.credentials import AwsCredentials

__all__ = ["S3FileSystemFactory", "s3_filesystem"]


class S3FileSystemFactory:
    """Builds :class:`s3fs.S3FileSystem` objects; an instance is the backend's ``implementation``.

    A class rather than a function because headrace asks a factory for ``_get_kwargs_from_urls`` (the
    options a URL itself carries), and s3fs answers that question.
    """

    def __call__(self, *, credentials: AwsCredentials | None = None, **options: Any) -> AbstractFileSystem:
        from s3fs import S3FileSystem  # type: ignore[import-untyped]

        settings: dict[str, Any] = credentials.s3fs_options() if credentials is not None else {}
        client_kwargs = {**settings.pop("client_kwargs", {}), **options.pop("client_kwargs", {})}
        settings.update(options)
        if client_kwargs:
            settings["client_kwargs"] = client_kwargs
        filesystem: AbstractFileSystem = S3FileSystem(**settings)
        return filesystem

    @staticmethod
    def _get_kwargs_from_urls(url: str) -> dict[str, Any]:
        from s3fs import S3FileSystem

        return dict(S3FileSystem._get_kwargs_from_urls(url))

    def __repr__(self) -> str:
        return "s3_filesystem"


s3_filesystem = S3FileSystemFactory()
"""The factory the ``s3`` storage backend names: ``s3_filesystem(**options) -> s3fs.S3FileSystem``."""
