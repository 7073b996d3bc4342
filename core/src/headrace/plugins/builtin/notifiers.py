"""Built-in notifiers: any Apprise URL, and a plain webhook, registered like any plugin's notifiers.

The references are lazy: listing notifiers imports neither apprise nor httpx nor the block classes.
"""

from __future__ import annotations

from collections.abc import Iterable

from headrace.plugins import hookimpl
from headrace.plugins.types import Notifier


@hookimpl
def headrace_notifiers() -> Iterable[Notifier]:
    return [
        Notifier(
            name="apprise",
            implementation="headrace.blocks.notifications:AppriseNotification",
            description="Any service Apprise supports (email, chat, push, …), configured by one Apprise URL.",
        ),
        Notifier(
            name="webhook",
            implementation="headrace.blocks.webhook:Webhook",
            description="An HTTP call with secret headers and a templated JSON body.",
        ),
    ]
