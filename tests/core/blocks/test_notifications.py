"""The built-in notifiers pass the notifier contract against real local receivers (HTTP and SMTP).

AppriseNotification is exercised through two of Apprise's services — ``json://`` posting to the HTTP
receiver and ``mailto://`` speaking SMTP to aiosmtpd — and Webhook through the HTTP receiver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from headrace.blocks.notifications import (
    AppriseNotification,
    NotificationBlock,
    NotificationError,
    redact,
    redacting_logs,
    secret_strings,
)
from headrace.blocks.webhook import Webhook
from headrace.testing.contracts import Delivery, NotifierContract
from headrace.testing.receivers import HttpReceiver, SmtpReceiver, closed_port, http_receiver, smtp_receiver

PASSWORD = "hunter2-correct-horse"
TOKEN = "tok-0123456789abcdef"


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded database for the module's contract classes (creating one takes seconds)."""
    return tmp_path_factory.mktemp("headrace-home")


class SharedHome(NotifierContract):
    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_home: Path) -> Path:
        return shared_home


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as running:
        yield running


@pytest.fixture
def mailbox() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as running:
        yield running


# -- Apprise over json:// ---------------------------------------------------------------------------------


def _json_url(port: int) -> str:
    return f"json://alerts:{PASSWORD}@127.0.0.1:{port}/hooks/{TOKEN}?+X-Api-Key=key-{TOKEN}"


class TestAppriseJson(SharedHome):
    notifier_name = "apprise"

    @pytest.fixture
    def notifier(self, receiver: HttpReceiver) -> NotificationBlock:
        return AppriseNotification(url=_json_url(receiver.port))

    @pytest.fixture
    def delivered(self, receiver: HttpReceiver) -> Callable[[], list[Delivery]]:
        def read() -> list[Delivery]:
            return [Delivery(subject=r.json()["title"], body=r.json()["message"]) for r in receiver.requests]

        return read

    @pytest.fixture
    def failing_notifier(self, receiver: HttpReceiver) -> NotificationBlock:
        receiver.respond_with(500, "internal error")
        return AppriseNotification(url=_json_url(receiver.port))

    @pytest.fixture
    def unreachable_notifier(self) -> NotificationBlock:
        return AppriseNotification(url=_json_url(closed_port()))

    @pytest.fixture
    def secret_values(self, notifier: NotificationBlock) -> list[str]:
        return [AppriseNotification.model_validate(notifier).url.get_secret_value(), PASSWORD, TOKEN]

    def test_the_request_carries_the_credentials(self, notifier: NotificationBlock, receiver: HttpReceiver) -> None:
        notifier.notify("s", "b")
        (request,) = receiver.requests
        assert request.method == "POST"
        assert request.path == f"/hooks/{TOKEN}"
        assert request.headers["x-api-key"] == f"key-{TOKEN}"
        assert request.headers["authorization"].startswith("Basic ")


# -- Apprise over mailto:// (SMTP) ------------------------------------------------------------------------


def _mail_url(port: int) -> str:
    return f"mailto://127.0.0.1:{port}?from=robot@example.com&to=oncall-{TOKEN}@example.com"


class TestAppriseMail(SharedHome):
    notifier_name = "apprise"

    @pytest.fixture
    def notifier(self, mailbox: SmtpReceiver) -> NotificationBlock:
        return AppriseNotification(url=_mail_url(mailbox.port))

    @pytest.fixture
    def delivered(self, mailbox: SmtpReceiver) -> Callable[[], list[Delivery]]:
        def read() -> list[Delivery]:
            return [Delivery(subject=mail.subject, body=mail.text) for mail in mailbox.messages]

        return read

    @pytest.fixture
    def failing_notifier(self, mailbox: SmtpReceiver) -> NotificationBlock:
        mailbox.respond_with("554 5.7.1 Message rejected")
        return AppriseNotification(url=_mail_url(mailbox.port))

    @pytest.fixture
    def unreachable_notifier(self) -> NotificationBlock:
        return AppriseNotification(url=_mail_url(closed_port()))

    @pytest.fixture
    def secret_values(self, notifier: NotificationBlock) -> list[str]:
        return [AppriseNotification.model_validate(notifier).url.get_secret_value(), TOKEN]

    def test_the_mail_goes_to_the_recipient(self, notifier: NotificationBlock, mailbox: SmtpReceiver) -> None:
        notifier.notify("Nightly load", "all good")
        (mail,) = mailbox.messages
        assert mail.mail_from == "robot@example.com"
        assert mail.rcpt_tos == [f"oncall-{TOKEN}@example.com"]
        assert mail.subject == "Nightly load"


# -- Webhook -------------------------------------------------------------------------------------------------


def _webhook(port: int) -> Webhook:
    return Webhook(
        url=f"http://127.0.0.1:{port}/hooks/{TOKEN}",
        headers={"Authorization": f"Bearer {PASSWORD}"},
        body={"title": "{{ subject }}", "text": "{{ body }}", "source": "headrace"},
    )


class TestWebhookNotifier(SharedHome):
    notifier_name = "webhook"

    @pytest.fixture
    def notifier(self, receiver: HttpReceiver) -> NotificationBlock:
        return _webhook(receiver.port)

    @pytest.fixture
    def delivered(self, receiver: HttpReceiver) -> Callable[[], list[Delivery]]:
        def read() -> list[Delivery]:
            return [Delivery(subject=r.json()["title"], body=r.json()["text"]) for r in receiver.requests]

        return read

    @pytest.fixture
    def failing_notifier(self, receiver: HttpReceiver) -> NotificationBlock:
        receiver.respond_with(500, f"boom; you sent Bearer {PASSWORD}")  # a server echoing the secret back
        return _webhook(receiver.port)

    @pytest.fixture
    def unreachable_notifier(self) -> NotificationBlock:
        return _webhook(closed_port())

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [PASSWORD, TOKEN]


# -- AppriseNotification's own behaviour --------------------------------------------------------------------


def test_an_url_apprise_does_not_know_is_a_clear_error() -> None:
    notifier = AppriseNotification(url=f"nosuchservice://user:{PASSWORD}@example.com/{TOKEN}")
    with pytest.raises(NotificationError, match="nosuchservice:// URL is not one Apprise understands") as caught:
        notifier.notify("s", "b")
    assert PASSWORD not in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_the_reason_of_a_refusal_is_in_the_error(receiver: HttpReceiver) -> None:
    receiver.respond_with(503, "down for maintenance")
    with pytest.raises(NotificationError, match="503"):
        AppriseNotification(url=_json_url(receiver.port)).notify("s", "b")


def test_a_notification_block_must_implement_notify() -> None:
    class Incomplete(NotificationBlock):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


# -- redaction ------------------------------------------------------------------------------------------------


def test_secret_strings_include_the_sensitive_parts_of_urls() -> None:
    notifier = AppriseNotification(url=f"json://alerts:{PASSWORD}@example.com/hooks/{TOKEN}?key=qwerty-123")
    secrets = secret_strings(notifier)
    assert {PASSWORD, TOKEN, "qwerty-123", "alerts", notifier.url.get_secret_value()} <= secrets
    assert "example.com" not in secrets  # the host is not a secret, and messages may name it


def test_redact_replaces_longest_secrets_first() -> None:
    assert redact("a abcdef abc", ["abc", "abcdef"]) == "a ******** ********"
    assert redact("nothing here", []) == "nothing here"


def test_redacting_logs_only_while_active(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger("httpx")
    with redacting_logs([TOKEN]):
        logger.info("GET http://example.com/%s", TOKEN)
    logger.info("after: %s", TOKEN)
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["GET http://example.com/********", f"after: {TOKEN}"]


# -- registrations ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["local-file-system", "remote-file-system", "webhook", "apprise-notification"])
def test_the_built_in_block_types_agree_with_their_classes(slug: str) -> None:
    from headrace.plugins import get_plugin_manager
    from headrace.testing.blocks import assert_block_type_registered

    assert_block_type_registered(get_plugin_manager().select("headrace_block_types", slug))


def test_listing_notifiers_imports_neither_them_nor_apprise() -> None:
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        from headrace.plugins import get_plugin_manager

        names = sorted(r.name for r in get_plugin_manager().registrations("headrace_notifiers"))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "apprise" or m.startswith("headrace.blocks."))
        print(names, loaded)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "['apprise', 'webhook'] []"
