"""``LambdaFunction`` against moto's Lambda, without Docker: request-response (moto echoes the payload) and event."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any

import pytest

from headrace_aws import AwsCredentials, LambdaFunction, LambdaFunctionError, LambdaInvocation

from .conftest import REGION, MotoServer

HANDLER = "def handler(event, context):\n    return event\n"


@pytest.fixture
def function(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> LambdaFunction:
    """A function in moto (invoking it echoes the payload) and a block for it that alone knows moto's address."""
    moto.configure({"lambda": {"use_docker": False}})
    iam = moto.client("iam")
    role = iam.create_role(
        RoleName="lambda-runner",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("app.py", HANDLER)
    moto.client("lambda").create_function(
        FunctionName="echo",
        Runtime="python3.11",
        Role=role["Arn"],
        Handler="app.handler",
        Code={"ZipFile": archive.getvalue()},
        Publish=True,
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    return LambdaFunction(function_name="echo", credentials=AwsCredentials(region_name=REGION, endpoint_url=moto.url))


def test_request_response_returns_the_answer(function: LambdaFunction) -> None:
    payload: dict[str, Any] = {"order": 42, "items": ["a", "b"], "rush": True}
    invocation = function.invoke(payload)
    assert invocation.status_code == 200
    assert invocation.function_error is None
    assert invocation.payload == payload  # moto without Docker answers with what it was sent
    assert json.loads(invocation.raw_payload) == payload
    assert invocation.raise_for_error() is invocation


def test_event_invocation_returns_at_once(function: LambdaFunction) -> None:
    invocation = function.invoke({"order": 43}, invocation_type="Event")
    assert invocation.status_code == 202
    assert invocation.payload is None


def test_the_qualifier_and_client_context_travel_with_the_request(function: LambdaFunction) -> None:
    """moto ignores both, so the test reads them off the HTTP request botocore sends."""
    sent: list[Any] = []
    pinned = function.model_copy(update={"qualifier": "1"})
    client = pinned.credentials.get_client("lambda")
    client.meta.events.register("before-send.lambda.Invoke", lambda request, **_: sent.append(request))
    try:
        assert pinned.invoke({"pinned": True}, client_context={"caller": "etl"}).payload == {"pinned": True}
    finally:
        client.meta.events.unregister("before-send.lambda.Invoke")
    (request,) = sent
    assert "Qualifier=1" in request.url
    context = request.headers["X-Amz-Client-Context"]
    assert json.loads(base64.b64decode(context)) == {"caller": "etl"}


def test_an_unknown_invocation_type_is_refused(function: LambdaFunction) -> None:
    with pytest.raises(ValueError, match="invocation_type must be 'RequestResponse' or 'Event'"):
        function.invoke({}, invocation_type="DryRun")  # type: ignore[arg-type]


def test_raise_for_error_reports_a_failed_function() -> None:
    failed = LambdaInvocation(
        function_name="echo",
        status_code=200,
        payload={"errorMessage": "boom", "errorType": "ValueError"},
        raw_payload=b'{"errorMessage": "boom", "errorType": "ValueError"}',
        function_error="Unhandled",
    )
    with pytest.raises(LambdaFunctionError, match=r"Lambda function echo failed \(Unhandled\)") as raised:
        failed.raise_for_error()
    assert raised.value.invocation.payload["errorMessage"] == "boom"
