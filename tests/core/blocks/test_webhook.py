"""Webhook: the call against a real local HTTP receiver, and the tiny body templating."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from headrace.blocks.notifications import NotificationError
from headrace.blocks.webhook import MissingTemplateValue, Webhook, WebhookError, render_template, template_placeholders
from headrace.testing.receivers import HttpReceiver, closed_port, http_receiver

TOKEN = "whk-7f3c9a1b2d4e"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as running:
        yield running


# -- templating ------------------------------------------------------------------------------------------


def test_placeholders_inside_text_become_text() -> None:
    template = {"text": "{{subject}}: {{ body }} ({{ count }} runs, ok={{ ok }})"}
    rendered = render_template(template, {"subject": "Load", "body": "done", "count": 3, "ok": True})
    assert rendered == {"text": "Load: done (3 runs, ok=true)"}


def test_a_whole_placeholder_keeps_the_value_type() -> None:
    template = {"n": "{{ n }}", "tags": "{{tags}}", "extra": {"nested": ["{{ n }}", "x"]}, "none": "{{ missing_ok }}"}
    values = {"n": 7, "tags": ["a", "b"], "missing_ok": None}
    assert render_template(template, values) == {
        "n": 7,
        "tags": ["a", "b"],
        "extra": {"nested": [7, "x"]},
        "none": None,
    }


def test_keys_and_non_strings_are_left_alone() -> None:
    template = {"{{ subject }}": 1, "flag": False, "num": 2.5, "empty": None}
    assert render_template(template, {"subject": "s"}) == template


def test_substituted_text_is_not_expanded_again() -> None:
    rendered = render_template("say {{ body }}", {"body": "{{ secret }}", "secret": "leaked"})
    assert rendered == "say {{ secret }}"


def test_lookalikes_are_not_placeholders() -> None:
    template = "{{ 1+1 }} {{ a.b }} {{__import__('os')}} { single } {{ ok }}"
    assert template_placeholders(template) == {"ok"}
    assert render_template(template, {"ok": "yes"}) == "{{ 1+1 }} {{ a.b }} {{__import__('os')}} { single } yes"


def test_a_placeholder_without_a_value_is_a_clear_error() -> None:
    with pytest.raises(MissingTemplateValue, match=r"uses \{\{ region \}\} but no value 'region' was given"):
        render_template({"where": "{{ region }}"}, {"subject": "s"})


# -- the block ---------------------------------------------------------------------------------------------


def test_the_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match="must start with http:// or https://"):
        Webhook(url="ftp://example.com/hook")
    with pytest.raises(ValidationError):
        Webhook(url="https://example.com", method="TRACE")  # type: ignore[arg-type]


def test_call_sends_method_headers_and_rendered_body(receiver: HttpReceiver) -> None:
    hook = Webhook(
        method="PUT",
        url=receiver.url(f"/hooks/{TOKEN}?team=ops"),
        headers={"Authorization": f"Bearer {TOKEN}", "X-Source": "headrace"},
        body={"title": "{{ subject }}", "count": "{{ count }}", "fixed": [1, 2]},
    )
    response = hook.call(subject="Nightly", count=4)
    assert response.status_code == 200
    (request,) = receiver.requests
    assert request.method == "PUT"
    assert request.path == f"/hooks/{TOKEN}?team=ops"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["x-source"] == "headrace"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"title": "Nightly", "count": 4, "fixed": [1, 2]}


def test_without_a_body_the_values_are_the_body(receiver: HttpReceiver) -> None:
    hook = Webhook(url=receiver.url("/plain"))
    hook.call(run="r-1", ok=True)
    hook.notify("Subject", "Body")
    first, second = receiver.requests
    assert first.json() == {"run": "r-1", "ok": True}
    assert second.json() == {"subject": "Subject", "body": "Body"}


def test_a_get_without_values_sends_no_body(receiver: HttpReceiver) -> None:
    Webhook(method="GET", url=receiver.url("/ping")).call()
    (request,) = receiver.requests
    assert (request.method, request.body) == ("GET", b"")


def test_acall_is_the_same_call(receiver: HttpReceiver) -> None:
    hook = Webhook(url=receiver.url("/async"), body={"m": "{{ body }}"})
    response = asyncio.run(hook.acall(body="hi"))
    assert response.status_code == 200
    assert receiver.requests[0].json() == {"m": "hi"}


def test_the_answer_is_returned(receiver: HttpReceiver) -> None:
    receiver.respond_with(201, '{"id": 42}')
    assert Webhook(url=receiver.url("/create")).call().json() == {"id": 42}


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_a_non_2xx_answer_raises_with_the_status(receiver: HttpReceiver, status: int) -> None:
    receiver.respond_with(status, f"nope, token {TOKEN} is wrong")
    hook = Webhook(url=receiver.url(f"/hooks/{TOKEN}"), headers={"X-Key": TOKEN})
    with pytest.raises(WebhookError) as caught:
        hook.call()
    error = caught.value
    assert error.status_code == status
    assert isinstance(error, NotificationError)
    assert f"answered {status}" in str(error)
    assert f"POST http://127.0.0.1:{receiver.port}/" in str(error)
    assert TOKEN not in str(error)
    assert "nope, token ******** is wrong" in str(error)


def test_an_unreachable_endpoint_raises() -> None:
    hook = Webhook(url=f"http://127.0.0.1:{closed_port()}/hooks/{TOKEN}")
    with pytest.raises(WebhookError, match="failed: ConnectError") as caught:
        hook.call()
    assert caught.value.status_code is None
    assert TOKEN not in str(caught.value)
    with pytest.raises(WebhookError, match="failed: ConnectError"):
        asyncio.run(hook.acall())


def test_a_missing_value_is_raised_before_anything_is_sent(receiver: HttpReceiver) -> None:
    hook = Webhook(url=receiver.url("/x"), body={"where": "{{ region }}"})
    with pytest.raises(MissingTemplateValue):
        hook.notify("s", "b")
    assert receiver.requests == []


def test_the_url_and_headers_are_secret() -> None:
    hook = Webhook(url=f"https://chat.example.com/hooks/{TOKEN}", headers={"Authorization": TOKEN})
    assert Webhook.secret_fields() == ["url", "headers.*"]
    assert TOKEN not in repr(hook)
    assert TOKEN not in hook.model_dump_json()
    assert hook.model_dump_with_secrets()["url"] == f"https://chat.example.com/hooks/{TOKEN}"
