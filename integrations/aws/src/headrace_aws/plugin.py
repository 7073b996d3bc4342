"""headrace-aws hook implementations: four block types and the ``s3`` result-storage backend.

Everything here is a lazy ``"module:attribute"`` reference. Listing plugins or block types imports this
module and nothing heavier: boto3, botocore and s3fs are imported only when a block does AWS work or a
flow resolves an ``s3://`` URL (tests/integrations/aws/test_isolation.py holds us to that).
"""

from __future__ import annotations

from collections.abc import Iterable

from headrace.plugins import hookimpl
from headrace.plugins.types import BlockType, StorageBackend
from headrace_aws import catalog

BLOCK_TYPES = {
    catalog.AWS_CREDENTIALS: "headrace_aws.credentials:AwsCredentials",
    catalog.S3_BUCKET: "headrace_aws.s3:S3Bucket",
    catalog.AWS_SECRET: "headrace_aws.secrets_manager:AwsSecret",
    catalog.LAMBDA_FUNCTION: "headrace_aws.lambda_function:LambdaFunction",
}


@hookimpl
def headrace_block_types() -> Iterable[BlockType]:
    return [
        BlockType(
            name=text.slug,
            implementation=implementation,
            description=text.description,
            documentation_url=text.documentation_url,
            code_example=text.code_example,
        )
        for text, implementation in BLOCK_TYPES.items()
    ]


@hookimpl
def headrace_storage_backends() -> Iterable[StorageBackend]:
    return [
        StorageBackend(
            name="s3",
            protocols=("s3", "s3a"),
            implementation="headrace_aws.storage:s3_filesystem",
            credentials_block="aws-credentials",
            description="Amazon S3 or an S3-compatible service (s3://bucket/prefix), through s3fs.",
        )
    ]
