"""AWS for headrace: credentials, S3 (blocks and ``s3://`` result storage), Secrets Manager and Lambda.

The block classes are exported lazily: headrace imports this package whenever it loads the plugin
(``headrace_aws.plugin``), and that must stay as cheap as listing plugins, so ``from headrace_aws import
S3Bucket`` imports ``headrace_aws.s3`` only when the name is first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from headrace_aws.__about__ import __version__

if TYPE_CHECKING:
    from headrace_aws.credentials import AwsCredentials
    from headrace_aws.lambda_function import LambdaFunction, LambdaFunctionError, LambdaInvocation
    from headrace_aws.s3 import S3Bucket
    from headrace_aws.secrets_manager import AwsSecret, SecretNotFound

__all__ = [
    "AwsCredentials",
    "AwsSecret",
    "LambdaFunction",
    "LambdaFunctionError",
    "LambdaInvocation",
    "S3Bucket",
    "SecretNotFound",
    "__version__",
]

_LAZY = {
    "AwsCredentials": "headrace_aws.credentials",
    "AwsSecret": "headrace_aws.secrets_manager",
    "SecretNotFound": "headrace_aws.secrets_manager",
    "LambdaFunction": "headrace_aws.lambda_function",
    "LambdaFunctionError": "headrace_aws.lambda_function",
    "LambdaInvocation": "headrace_aws.lambda_function",
    "S3Bucket": "headrace_aws.s3",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headrace_aws' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
