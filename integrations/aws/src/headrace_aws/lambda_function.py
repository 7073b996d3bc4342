"""``LambdaFunction``: invoke an AWS Lambda function with a JSON payload from a flow.

Two invocation types: ``"RequestResponse"`` (the default) waits for the function and returns its JSON
answer; ``"Event"`` queues the call and returns at once (status 202, no payload). The answer is a
:class:`LambdaInvocation`; a function that raised is reported in ``function_error``, and
:meth:`LambdaInvocation.raise_for_error` turns that into an exception when the caller wants one.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from headrace.blocks import Block
from headrace_aws import catalog
from headrace_aws.credentials import AwsCredentials

__all__ = ["InvocationType", "LambdaFunction", "LambdaFunctionError", "LambdaInvocation"]

InvocationType = Literal["RequestResponse", "Event"]


class LambdaFunctionError(RuntimeError):
    """The function ran and failed: ``invocation`` holds what Lambda answered (the error's payload)."""

    def __init__(self, invocation: LambdaInvocation) -> None:
        super().__init__(f"Lambda function {invocation.function_name} failed ({invocation.function_error})")
        self.invocation = invocation


@dataclass(frozen=True)
class LambdaInvocation:
    """What one invocation returned."""

    function_name: str
    status_code: int
    payload: Any
    """The function's JSON answer, decoded (``None`` for an ``Event`` invocation or an empty answer)."""
    raw_payload: bytes
    function_error: str | None = None
    executed_version: str | None = None
    log_tail: str | None = None
    """The last 4 KB of the function's log, when ``invoke(tail_log=True)`` asked for it."""

    def raise_for_error(self) -> LambdaInvocation:
        """Raise :class:`LambdaFunctionError` if the function failed; return ``self`` otherwise."""
        if self.function_error:
            raise LambdaFunctionError(self)
        return self


class LambdaFunction(Block):
    """An AWS Lambda function, invoked with a JSON payload, synchronously or as an event."""

    block_type_name = "Lambda Function"
    block_type_slug = catalog.LAMBDA_FUNCTION.slug
    block_description = catalog.LAMBDA_FUNCTION.description
    block_documentation_url = catalog.LAMBDA_FUNCTION.documentation_url
    block_code_example = catalog.LAMBDA_FUNCTION.code_example

    function_name: str = Field(min_length=1, description="The function's name or ARN.")
    qualifier: str | None = Field(default=None, description="A version or alias to invoke (default: $LATEST).")
    credentials: AwsCredentials = Field(
        default_factory=AwsCredentials, description="How to reach AWS (default: the environment's credentials)."
    )

    def invoke(
        self,
        payload: Any = None,
        invocation_type: InvocationType = "RequestResponse",
        *,
        tail_log: bool = False,
        client_context: dict[str, Any] | None = None,
    ) -> LambdaInvocation:
        """Invoke the function with ``payload`` (anything JSON can encode).

        ``"RequestResponse"`` waits for the answer; ``"Event"`` only queues the call. ``tail_log`` asks
        for the end of the function's log (request-response only); ``client_context`` reaches the
        function as ``context.client_context``.
        """
        if invocation_type not in ("RequestResponse", "Event"):
            raise ValueError(f"invocation_type must be 'RequestResponse' or 'Event', not {invocation_type!r}")
        request: dict[str, Any] = {
            "FunctionName": self.function_name,
            "InvocationType": invocation_type,
            "Payload": json.dumps(payload).encode(),
        }
        if self.qualifier is not None:
            request["Qualifier"] = self.qualifier
        if tail_log and invocation_type == "RequestResponse":
            request["LogType"] = "Tail"
        if client_context is not None:
            request["ClientContext"] = base64.b64encode(json.dumps(client_context).encode()).decode()
        response = self.credentials.get_client("lambda").invoke(**request)
        raw: bytes = response["Payload"].read() if "Payload" in response else b""
        if invocation_type == "Event":
            raw = b""  # AWS answers an event with an empty body (emulators may echo): an event has no answer
        log = response.get("LogResult")
        return LambdaInvocation(
            function_name=self.function_name,
            status_code=int(response["StatusCode"]),
            payload=_decode(raw),
            raw_payload=raw,
            function_error=response.get("FunctionError"),
            executed_version=response.get("ExecutedVersion"),
            log_tail=base64.b64decode(log).decode(errors="replace") if log else None,
        )


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
