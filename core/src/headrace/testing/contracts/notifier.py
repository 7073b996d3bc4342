"""The notifier contract suite: what a ``headrace_notifiers`` notification block must do.

Subclass :class:`NotifierContract` and provide four fixtures, using the local receivers of
:mod:`headrace.testing.receivers` (or your own fake of your service's wire protocol)::

    class TestPagerNotification(NotifierContract):
        notifier_name = "pager"  # its name in the headrace_notifiers hook

        @pytest.fixture
        def receiver(self):
            with http_receiver() as receiver:
                yield receiver

        @pytest.fixture
        def notifier(self, receiver):
            return PagerNotification(url=receiver.url("/send"), token="t0ken-123")

        @pytest.fixture
        def delivered(self, receiver):
            def read():
                return [Delivery(subject=r.json()["title"], body=r.json()["text"]) for r in receiver.requests]

            return read

        @pytest.fixture
        def failing_notifier(self, receiver):
            receiver.respond_with(500)
            return PagerNotification(url=receiver.url("/send"), token="t0ken-123")

        @pytest.fixture
        def unreachable_notifier(self):
            return PagerNotification(url=f"http://127.0.0.1:{closed_port()}/send", token="t0ken-123")

The suite checks that subject and body arrive (sync and async, several in order); that a receiver that is
down or refuses raises :class:`~headrace.blocks.notifications.NotificationError` with a one-line message
holding no secret, and that no secret reaches the logs; that ``repr``/``str``/JSON dumps hide the secrets;
that the block survives ``model_dump``/``model_validate`` (in Python and in JSON with secrets) and saving
and loading with its secrets intact; and, with :attr:`NotifierContract.notifier_name`, that the hook
registers the class.

``secret_values`` (override it to add more) are the strings that must never show: by default every
``SecretStr``/``SecretBytes``/``SecretDict`` value of the notifier. Add the *parts* of secrets that could
leak on their own, such as the password inside a secret URL. Capability flag:
:attr:`NotifierContract.has_secrets` — ``False`` for a notifier without any secret configuration.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr

from headrace.blocks import SecretDict
from headrace.blocks.notifications import NotificationBlock, NotificationError
from headrace.testing.contracts.environment import HeadraceEnvironment

__all__ = ["Delivery", "NotifierContract"]


@dataclass(frozen=True)
class Delivery:
    """What a receiver got, in the terms of ``notify``: channels without a subject field put it in ``body``."""

    subject: str
    body: str


def _secret_leaves(value: Any) -> list[str]:
    """Every secret value inside ``value``, walking models, lists and dicts."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, SecretBytes):
        return [value.get_secret_value().decode("utf-8", errors="replace")]
    if isinstance(value, SecretDict):
        return [str(item) for item in value.get_secret_value().values()]
    children: list[Any] = []
    if isinstance(value, BaseModel):
        children = [getattr(value, name) for name in type(value).model_fields]
    elif isinstance(value, (list, tuple)):
        children = list(value)
    elif isinstance(value, dict):
        children = list(value.values())
    return [leaf for child in children for leaf in _secret_leaves(child)]


def _squash(text: str) -> str:
    return " ".join(text.split())


class NotifierContract(HeadraceEnvironment):
    """Subclass and provide ``notifier``, ``delivered``, ``failing_notifier`` and ``unreachable_notifier``."""

    #: The name the notifier is registered under in ``headrace_notifiers`` (``None``: not checked).
    notifier_name: ClassVar[str | None] = None
    #: The notifier's configuration holds secrets (``False``: the suite checks that it holds none).
    has_secrets: ClassVar[bool] = True
    #: Loggers of the receiving side (``mail.log`` is aiosmtpd's): what the server logs is not the notifier's.
    receiver_loggers: ClassVar[tuple[str, ...]] = ("mail.log",)

    # -- fixtures to provide ------------------------------------------------------------------------

    @pytest.fixture
    def notifier(self) -> NotificationBlock:
        raise NotImplementedError("provide a `notifier` fixture: a notifier pointed at a live receiver")

    @pytest.fixture
    def delivered(self) -> Callable[[], list[Delivery]]:
        raise NotImplementedError("provide a `delivered` fixture: a callable returning what the receiver got")

    @pytest.fixture
    def failing_notifier(self) -> NotificationBlock:
        raise NotImplementedError("provide a `failing_notifier` fixture: pointed at a receiver that answers an error")

    @pytest.fixture
    def unreachable_notifier(self) -> NotificationBlock:
        raise NotImplementedError("provide an `unreachable_notifier` fixture: pointed at a port nothing listens on")

    @pytest.fixture
    def secret_values(self, notifier: NotificationBlock) -> list[str]:
        """The strings that must never show. Override to add parts of secrets (a password inside a URL)."""
        return [value for value in _secret_leaves(notifier) if value]

    # -- helpers -----------------------------------------------------------------------------------------

    @staticmethod
    def message(label: str) -> tuple[str, str]:
        """A unique subject and a multi-line, non-ASCII body for one notification."""
        tag = uuid.uuid4().hex[:10]
        return f"{label} {tag} ✓", f"Run {tag} finished.\nZürich: 3 tasks, 1 failed."

    @staticmethod
    def assert_arrived(deliveries: list[Delivery], subject: str, body: str) -> None:
        wanted_subject, wanted_body = _squash(subject), _squash(body)
        for delivery in deliveries:
            got_subject, got_body = _squash(delivery.subject), _squash(delivery.body)
            if wanted_subject in f"{got_subject} {got_body}" and wanted_body in got_body:
                return
        raise AssertionError(f"no delivery holds subject {subject!r} and body {body!r}; got {deliveries!r}")

    def logged(self, caplog: pytest.LogCaptureFixture) -> str:
        """What the sending side logged (records of :attr:`receiver_loggers` left out), formatted."""
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        records = [
            record
            for record in caplog.records
            if not any(record.name == name or record.name.startswith(f"{name}.") for name in self.receiver_loggers)
        ]
        assert records, "nothing was logged at DEBUG: the check would prove nothing"
        return "\n".join(formatter.format(record) for record in records)

    @staticmethod
    def assert_no_secret(text: str, secrets: list[str], where: str) -> None:
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"{where} shows {len(leaked)} secret value(s): {text!r}"

    # -- the type ----------------------------------------------------------------------------------------

    def test_is_a_notification_block(self, notifier: NotificationBlock) -> None:
        assert isinstance(notifier, NotificationBlock)

    def test_registered_through_the_hook(self, notifier: NotificationBlock) -> None:
        if self.notifier_name is None:
            return
        from headrace.plugins import get_plugin_manager

        registration = get_plugin_manager().select("headrace_notifiers", self.notifier_name)
        assert registration.load() is type(notifier)

    def test_secrets_are_declared(self, notifier: NotificationBlock, secret_values: list[str]) -> None:
        if self.has_secrets:
            assert secret_values, "the test notifier holds no secret: give it one (a password, a token header)"
            assert type(notifier).secret_fields(), "secret values, but no secret field in the block's schema"
        else:
            assert not type(notifier).secret_fields()

    # -- delivery ----------------------------------------------------------------------------------------

    def test_subject_and_body_arrive(
        self, notifier: NotificationBlock, delivered: Callable[[], list[Delivery]]
    ) -> None:
        subject, body = self.message("sync")
        notifier.notify(subject, body)
        self.assert_arrived(delivered(), subject, body)

    def test_async_notify_arrives(self, notifier: NotificationBlock, delivered: Callable[[], list[Delivery]]) -> None:
        subject, body = self.message("async")
        asyncio.run(notifier.anotify(subject, body))
        self.assert_arrived(delivered(), subject, body)

    def test_several_notifications_each_arrive(
        self, notifier: NotificationBlock, delivered: Callable[[], list[Delivery]]
    ) -> None:
        sent = [self.message(f"number {i}") for i in range(3)]
        for subject, body in sent:
            notifier.notify(subject, body)
        deliveries = delivered()
        assert len(deliveries) == 3
        for subject, body in sent:
            self.assert_arrived(deliveries, subject, body)

    # -- failures ----------------------------------------------------------------------------------------

    def _assert_clear_failure(self, error: NotificationError, secrets: list[str]) -> None:
        text = str(error)
        assert text.strip(), "a NotificationError needs a message saying what went wrong"
        assert "\n" not in text, f"the message should be one line: {text!r}"
        self.assert_no_secret(text, secrets, "the error message")
        self.assert_no_secret(repr(error), secrets, "the error's repr")

    def test_a_receiver_that_is_down_raises(
        self, unreachable_notifier: NotificationBlock, secret_values: list[str]
    ) -> None:
        with pytest.raises(NotificationError) as caught:
            unreachable_notifier.notify(*self.message("down"))
        self._assert_clear_failure(caught.value, secret_values)

    def test_a_receiver_that_is_down_raises_async(
        self, unreachable_notifier: NotificationBlock, secret_values: list[str]
    ) -> None:
        with pytest.raises(NotificationError) as caught:
            asyncio.run(unreachable_notifier.anotify(*self.message("down")))
        self._assert_clear_failure(caught.value, secret_values)

    def test_an_error_answer_raises(self, failing_notifier: NotificationBlock, secret_values: list[str]) -> None:
        with pytest.raises(NotificationError) as caught:
            failing_notifier.notify(*self.message("refused"))
        self._assert_clear_failure(caught.value, secret_values)

    def test_an_error_answer_raises_async(self, failing_notifier: NotificationBlock, secret_values: list[str]) -> None:
        with pytest.raises(NotificationError) as caught:
            asyncio.run(failing_notifier.anotify(*self.message("refused")))
        self._assert_clear_failure(caught.value, secret_values)

    def test_no_secret_reaches_the_logs_on_delivery(
        self, notifier: NotificationBlock, secret_values: list[str], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        notifier.notify(*self.message("logged"))
        self.assert_no_secret(self.logged(caplog), secret_values, "the log")

    def test_no_secret_reaches_the_logs_on_failure(
        self,
        failing_notifier: NotificationBlock,
        unreachable_notifier: NotificationBlock,
        secret_values: list[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        for broken in (failing_notifier, unreachable_notifier):
            with pytest.raises(NotificationError):
                broken.notify(*self.message("logged"))
        self.assert_no_secret(self.logged(caplog), secret_values, "the log")

    # -- secrets in the block ----------------------------------------------------------------------------

    def test_repr_str_and_json_hide_secrets(self, notifier: NotificationBlock, secret_values: list[str]) -> None:
        self.assert_no_secret(repr(notifier), secret_values, "repr()")
        self.assert_no_secret(str(notifier), secret_values, "str()")
        self.assert_no_secret(notifier.model_dump_json(), secret_values, "model_dump_json()")

    def test_round_trips_with_secrets_intact(
        self, notifier: NotificationBlock, delivered: Callable[[], list[Delivery]], secret_values: list[str]
    ) -> None:
        cls = type(notifier)
        in_python = cls.model_validate(notifier.model_dump())
        in_json = cls.model_validate(notifier.model_dump_with_secrets())
        for copy in (in_python, in_json):
            assert sorted(_secret_leaves(copy)) == sorted(_secret_leaves(notifier))
        subject, body = self.message("copied")
        in_json.notify(subject, body)
        self.assert_arrived(delivered(), subject, body)

    def test_saved_and_loaded_it_still_delivers(
        self, notifier: NotificationBlock, delivered: Callable[[], list[Delivery]]
    ) -> None:
        name = f"contract-{uuid.uuid4().hex[:12]}"
        notifier.save(name)
        loaded = type(notifier).load(name)
        assert sorted(_secret_leaves(loaded)) == sorted(_secret_leaves(notifier))
        subject, body = self.message("loaded")
        loaded.notify(subject, body)
        self.assert_arrived(delivered(), subject, body)
