"""Notification blocks: the :class:`NotificationBlock` contract and :class:`AppriseNotification`.

A notifier is a block with ``notify(subject, body)`` and its async twin ``anotify``. Plugins contribute
notifier block types through the ``headrace_notifiers`` hook; automations and users call them the same way::

    AppriseNotification(url="mailto://user:app-password@gmail.com").notify("Nightly load", "3 runs failed")

A failed delivery raises :class:`NotificationError`, whose message says what went wrong and never holds
a secret: the configured secrets (and the sensitive parts of secret URLs: passwords, paths, query values)
are replaced by ``********`` in the message, and in what the HTTP libraries log while a notification is
being sent (:func:`redacting_logs`). See ``docs/notifications.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

from pydantic import BaseModel, Field, SecretBytes, SecretStr

from headrace.blocks import Block, SecretDict
from headrace.exceptions import HeadraceError
from headrace.schemas.blocks import OBFUSCATED

__all__ = [
    "AppriseNotification",
    "NotificationBlock",
    "NotificationError",
    "redact",
    "redacting_logs",
    "secret_strings",
]

# Libraries that log request URLs (which may carry tokens) while a notification is sent.
REDACTED_LOGGERS = ("apprise", "httpx", "httpcore.connection", "httpcore.http11", "urllib3.connectionpool")
_MIN_WHOLE = 3  # whole secret values at least this long are redacted
_MIN_PIECE = 4  # pieces of secret URLs (path segments, query values) at least this long are redacted


class NotificationError(HeadraceError):
    """A notification could not be delivered. The message names the channel and the reason, never a secret."""


# -- secrets and redaction ----------------------------------------------------------------------------


def _url_pieces(value: str) -> Iterator[str]:
    """The parts of a URL that commonly carry credentials: user info, path segments, query values, fragment."""
    if "://" not in value:
        return
    try:
        parts = urlsplit(value)
    except ValueError:
        return
    if parts.username:
        yield parts.username
    if parts.password:
        yield parts.password
    yield from (segment for segment in parts.path.split("/") if segment)
    for _, query_value in parse_qsl(parts.query, keep_blank_values=False):
        yield query_value
    if parts.fragment:
        yield parts.fragment


def secret_strings(model: BaseModel) -> set[str]:
    """Every secret value of ``model`` (``SecretStr``, ``SecretBytes``, ``SecretDict`` values, nested models),
    plus the credential-carrying pieces of secret values that are URLs: what must never be shown."""
    found: set[str] = set()

    def add(value: str) -> None:
        if len(value) >= _MIN_WHOLE:
            found.add(value)
        for piece in _url_pieces(value):
            if len(piece) >= _MIN_PIECE:
                found.update((piece, quote(piece, safe="")))  # libraries log URLs re-encoded, too

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            add(value.get_secret_value())
        elif isinstance(value, SecretBytes):
            add(value.get_secret_value().decode("utf-8", errors="replace"))
        elif isinstance(value, SecretDict):
            for item in value.get_secret_value().values():
                add(str(item))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(model)
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``********`` (longest first)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, OBFUSCATED)
    return text


class _Redactor(logging.Filter):
    """A logger filter that rewrites records to hide the secrets of the notifications being sent."""

    def __init__(self) -> None:
        super().__init__()
        self.active: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.installed = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.active:
            return True
        with self.lock:
            secrets = list(self.active)
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's business, not ours
            return True
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)
        return True


_redactor = _Redactor()


@contextlib.contextmanager
def redacting_logs(secrets: Iterable[str]) -> Iterator[None]:
    """While the block runs, records of :data:`REDACTED_LOGGERS` have ``secrets`` replaced by ``********``.

    Filters are installed once per process on those loggers and do nothing while no notification is sent.
    """
    values = [secret for secret in set(secrets) if secret]
    with _redactor.lock:
        if not _redactor.installed:
            for name in REDACTED_LOGGERS:
                logging.getLogger(name).addFilter(_redactor)
            _redactor.installed = True
        _redactor.active.update(values)
    try:
        yield
    finally:
        with _redactor.lock:
            _redactor.active.subtract(values)
            for value in values:
                if _redactor.active[value] <= 0:
                    del _redactor.active[value]


# -- the contract ---------------------------------------------------------------------------------------


class NotificationBlock(Block):
    """Base of notification blocks: ``notify(subject, body)`` sends one message, or raises
    :class:`NotificationError`.

    Subclasses implement :meth:`notify`; :meth:`anotify` runs it in a worker thread unless a subclass
    has a native async implementation. Use :meth:`_secrets` and :func:`redact` for error messages.
    """

    block_capabilities: ClassVar[tuple[str, ...]] = ("notify",)

    @abstractmethod
    def notify(self, subject: str, body: str) -> None:
        """Send ``body`` with the title ``subject``; raise :class:`NotificationError` when it is not delivered."""

    async def anotify(self, subject: str, body: str) -> None:
        """The async form of :meth:`notify` (by default: ``notify`` in a worker thread)."""
        await asyncio.to_thread(self.notify, subject, body)

    def _secrets(self) -> set[str]:
        """What must never appear in this notifier's messages and logs."""
        return secret_strings(self)


# -- Apprise --------------------------------------------------------------------------------------------


class _CaptureWarnings(logging.Handler):
    """Collects what apprise says at WARNING and above while it delivers: the reason a delivery failed.

    Apprise sends from its own worker threads, so records are not filtered by thread: two notifications
    failing at the same moment may each report both reasons.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class AppriseNotification(NotificationBlock):
    """Send notifications to any of the services Apprise supports, described by one Apprise URL.

    The URL holds the service and its credentials (``mailto://user:pass@host``, ``json://host/path``,
    ``tgram://bot-token/chat-id``, …), so the whole URL is a secret.
    """

    block_type_name: ClassVar[str] = "Apprise Notification"
    block_description: ClassVar[str] = "Notifications to any Apprise URL (chat, e-mail, push services)."
    block_documentation_url: ClassVar[str | None] = "https://github.com/caronc/apprise/wiki"
    block_code_example: ClassVar[str | None] = (
        "from headrace.blocks.notifications import AppriseNotification\n\n"
        'AppriseNotification.load("on-call").notify("Nightly load failed", "3 of 12 runs failed")'
    )

    url: SecretStr = Field(description="An Apprise URL, e.g. mailto://user:pass@example.com (see the Apprise wiki).")

    def _scheme(self) -> str:
        scheme, sep, _ = self.url.get_secret_value().partition("://")
        return scheme if sep else "?"

    def notify(self, subject: str, body: str) -> None:
        """Send through Apprise (blocking); :class:`NotificationError` when Apprise reports a failure."""
        import apprise

        secrets = self._secrets()
        scheme = self._scheme()
        apprise_logger = logging.getLogger("apprise")
        capture = _CaptureWarnings()
        with redacting_logs(secrets):
            apprise_logger.addHandler(capture)
            try:
                sender = apprise.Apprise()
                if not sender.add(self.url.get_secret_value()):
                    raise NotificationError(
                        f"AppriseNotification: the {scheme}:// URL is not one Apprise understands; "
                        "check it against https://github.com/caronc/apprise/wiki"
                    )
                delivered = bool(sender.notify(title=subject, body=body))
            finally:
                apprise_logger.removeHandler(capture)
        if not delivered:
            reason = "; ".join(line.strip() for line in capture.lines if "Notifying" not in line) or "no reason given"
            raise NotificationError(redact(f"AppriseNotification could not deliver to {scheme}://: {reason}", secrets))
