"""``Webhook``: an outgoing HTTP call with a templated JSON body and secret headers; also a notifier.

::

    hook = Webhook(
        url="https://chat.example.com/hooks/T0KEN",
        headers={"Authorization": "Bearer abc"},
        body={"text": "*{{ subject }}*\\n{{ body }}", "channel": "ops"},
    )
    hook.call(subject="Nightly load", body="3 runs failed")  # -> httpx.Response
    hook.notify("Nightly load", "3 runs failed")  # the same, as a notifier

Templating is deliberately tiny, so that a saved block can never run code: in the ``body`` (any JSON
value), every *string* may hold placeholders ``{{ name }}`` (a Python identifier, spaces optional). A
string that is exactly one placeholder is replaced by the value itself, keeping its JSON type (a number,
a list, an object); elsewhere a placeholder is replaced by the value as text (strings as they are, other
values as JSON). Keys are never templated, substituted text is never scanned again, and a placeholder
without a value is an error naming it. With no ``body``, the values themselves are sent as the JSON body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, JsonValue, SecretStr, field_validator

from headrace.blocks import SecretDict
from headrace.blocks.notifications import NotificationBlock, NotificationError, redact, redacting_logs

if TYPE_CHECKING:
    import httpx

__all__ = ["MissingTemplateValue", "Webhook", "WebhookError", "render_template", "template_placeholders"]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_WHOLE = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class WebhookError(NotificationError):
    """A webhook call failed: no answer, or an answer that is not 2xx. The message holds no secret."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class MissingTemplateValue(WebhookError, ValueError):
    """A placeholder in a webhook body has no value (raised before anything is sent)."""


def template_placeholders(template: Any) -> set[str]:
    """The names of every placeholder in a JSON template."""
    if isinstance(template, str):
        return set(PLACEHOLDER.findall(template))
    if isinstance(template, Mapping):
        return set().union(*(template_placeholders(value) for value in template.values()))
    if isinstance(template, list):
        return set().union(*(template_placeholders(value) for value in template))
    return set()


def render_template(template: Any, values: Mapping[str, Any]) -> Any:
    """``template`` (a JSON value) with its placeholders filled from ``values``; see the module docstring."""
    if isinstance(template, str):
        return _render_string(template, values)
    if isinstance(template, Mapping):
        return {key: render_template(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render_template(value, values) for value in template]
    return template


def _render_string(template: str, values: Mapping[str, Any]) -> Any:
    whole = _WHOLE.match(template)
    if whole:
        return _value(whole.group(1), values)

    def text(match: re.Match[str]) -> str:
        value = _value(match.group(1), values)
        return value if isinstance(value, str) else json.dumps(value, default=str)

    return PLACEHOLDER.sub(text, template)


def _value(name: str, values: Mapping[str, Any]) -> Any:
    if name not in values:
        given = ", ".join(sorted(values)) or "none"
        raise MissingTemplateValue(
            f"the webhook body uses {{{{ {name} }}}} but no value {name!r} was given (given: {given})"
        )
    return values[name]


class Webhook(NotificationBlock):
    """Call an HTTP endpoint: method, URL, secret headers and a JSON body with ``{{ placeholders }}``."""

    block_description: ClassVar[str] = (
        "An outgoing HTTP call with a templated JSON body and secret headers; also a notifier."
    )
    block_code_example: ClassVar[str | None] = (
        "from headrace.blocks.webhook import Webhook\n\n"
        'Webhook.load("deploy-hook").call(subject="Deployed", body="version 1.4 is live")'
    )

    method: HttpMethod = Field(default="POST", description="The HTTP method.")
    url: SecretStr = Field(description="The endpoint. Secret: webhook URLs often carry their token.")
    headers: SecretDict = Field(default_factory=SecretDict, description="Extra headers (values are secret).")
    body: JsonValue = Field(
        default=None,
        description='A JSON template: string values may hold placeholders such as "{{ subject }}". '
        "Empty: the call's values are sent as they are.",
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for the answer.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        scheme = value.get_secret_value().partition("://")[0].lower()
        if scheme not in ("http", "https"):
            raise ValueError("the webhook URL must start with http:// or https://")
        return value

    # -- calling ---------------------------------------------------------------------------------------

    def render(self, **values: Any) -> Any:
        """The JSON body this call would send (``None``: no body)."""
        if self.body is None:
            return dict(values) if values else None
        return render_template(self.body, values)

    def _request(self, values: dict[str, Any]) -> dict[str, Any]:
        headers = {str(key): str(value) for key, value in self.headers.get_secret_value().items()}
        request: dict[str, Any] = {"method": self.method, "url": self.url.get_secret_value(), "headers": headers}
        payload = self.render(**values)
        if payload is not None:
            request["json"] = payload
        return request

    def _where(self) -> str:
        parts = self.url.get_secret_value().split("/", 3)
        return f"{self.method} {'/'.join(parts[:3])}/…"

    def _failed(self, exc: Exception, secrets: set[str]) -> WebhookError:
        reason = str(exc) or type(exc).__name__
        return WebhookError(redact(f"webhook {self._where()} failed: {type(exc).__name__}: {reason}", secrets))

    def _check(self, response: httpx.Response, secrets: set[str]) -> httpx.Response:
        if response.is_success:
            return response
        excerpt = " ".join(response.text[:200].split())
        detail = f": {excerpt}" if excerpt else ""
        message = f"webhook {self._where()} answered {response.status_code} {response.reason_phrase}{detail}"
        raise WebhookError(redact(message, secrets), status_code=response.status_code)

    def call(self, **values: Any) -> httpx.Response:
        """Make the call with the body rendered from ``values``; :class:`WebhookError` unless it answers 2xx."""
        import httpx

        request = self._request(values)
        secrets = self._secrets()
        with redacting_logs(secrets):
            try:
                with httpx.Client(timeout=self.timeout) as client:
                    response = client.request(**request)
            except httpx.HTTPError as exc:
                raise self._failed(exc, secrets) from None
        return self._check(response, secrets)

    async def acall(self, **values: Any) -> httpx.Response:
        """The async form of :meth:`call`."""
        import httpx

        request = self._request(values)
        secrets = self._secrets()
        with redacting_logs(secrets):
            try:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.request(**request)
            except httpx.HTTPError as exc:
                raise self._failed(exc, secrets) from None
        return self._check(response, secrets)

    # -- as a notifier ---------------------------------------------------------------------------------

    def notify(self, subject: str, body: str) -> None:
        """Call the webhook with the values ``subject`` and ``body``."""
        self.call(subject=subject, body=body)

    async def anotify(self, subject: str, body: str) -> None:
        await self.acall(subject=subject, body=body)
