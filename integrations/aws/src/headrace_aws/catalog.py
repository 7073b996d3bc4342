"""What each AWS block type says about itself: description, documentation URL and code example.

One copy shared by the registrations in :mod:`headrace_aws.plugin` (what listings show without importing
a class) and the block classes (what a saved block type records), so the two cannot drift apart. This
module imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AWS_CREDENTIALS", "AWS_SECRET", "DOCS", "LAMBDA_FUNCTION", "S3_BUCKET", "BlockText"]

DOCS = "https://headrace.dev/integrations/aws/"


@dataclass(frozen=True)
class BlockText:
    slug: str
    description: str
    documentation_url: str
    code_example: str


AWS_CREDENTIALS = BlockText(
    slug="aws-credentials",
    description="Credentials, region and endpoint for AWS, with an optional IAM role to assume; builds boto3 clients.",
    documentation_url=f"{DOCS}#awscredentials",
    code_example="""\
from headrace_aws import AwsCredentials

credentials = AwsCredentials.load("my-aws-credentials")
s3 = credentials.get_client("s3")
""",
)

S3_BUCKET = BlockText(
    slug="s3-bucket",
    description="A bucket and key prefix in Amazon S3 or an S3-compatible service; usable as result storage.",
    documentation_url=f"{DOCS}#s3bucket",
    code_example="""\
from headrace_aws import S3Bucket

bucket = S3Bucket.load("my-s3-bucket")
bucket.write_path("reports/today.csv", b"day,total\\n")
data = bucket.read_path("reports/today.csv")
""",
)

AWS_SECRET = BlockText(
    slug="aws-secret",
    description="A secret in AWS Secrets Manager: read its value, write a new version, or delete it.",
    documentation_url=f"{DOCS}#awssecret",
    code_example="""\
from headrace_aws import AwsSecret

token = AwsSecret.load("my-aws-secret").read_secret()
""",
)

LAMBDA_FUNCTION = BlockText(
    slug="lambda-function",
    description="An AWS Lambda function, invoked with a JSON payload, waiting for its answer or not.",
    documentation_url=f"{DOCS}#lambdafunction",
    code_example="""\
from headrace_aws import LambdaFunction

answer = LambdaFunction.load("my-lambda-function").invoke({"order": 42}).payload
""",
)
