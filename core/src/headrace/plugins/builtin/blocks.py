"""Built-in block types, registered like any plugin's: lazy references, so listing them imports nothing.

The descriptions repeat the first paragraph of each class's docstring (``headrace.testing.blocks``
checks that they agree), because ``headrace block types`` shows them without importing the classes.
"""

from __future__ import annotations

from collections.abc import Iterable

from headrace.plugins import hookimpl
from headrace.plugins.types import BlockType

DOCS = "https://headrace.dev/docs/blocks#built-in-blocks"


@hookimpl
def headrace_block_types() -> Iterable[BlockType]:
    return [
        BlockType(
            name="secret",
            implementation="headrace.blocks.system:Secret",
            description="A secret value: a string such as a password or token, or any JSON value, masked everywhere.",
            documentation_url=DOCS,
        ),
        BlockType(
            name="json",
            implementation="headrace.blocks.system:JSON",
            description="Any JSON value: an object, a list, a number, a string, a boolean or null.",
            documentation_url=DOCS,
        ),
        BlockType(
            name="string",
            implementation="headrace.blocks.system:String",
            description="A string, such as a bucket name or a URL that should live outside the flow's code.",
            documentation_url=DOCS,
        ),
        BlockType(
            name="date-time",
            implementation="headrace.blocks.system:DateTime",
            description="A date and time (ISO 8601), such as a cut-off date for a backfill.",
            documentation_url=DOCS,
        ),
        BlockType(
            name="local-file-system",
            implementation="headrace.blocks.filesystems:LocalFileSystem",
            description="Files under a folder on the local disk; usable as result storage.",
        ),
        BlockType(
            name="remote-file-system",
            implementation="headrace.blocks.filesystems:RemoteFileSystem",
            description="Files under any fsspec URL, with options and secret credentials; usable as result storage.",
        ),
        BlockType(
            name="webhook",
            implementation="headrace.blocks.webhook:Webhook",
            description="An outgoing HTTP call with a templated JSON body and secret headers; also a notifier.",
        ),
        BlockType(
            name="apprise-notification",
            implementation="headrace.blocks.notifications:AppriseNotification",
            description="Notifications to any Apprise URL (chat, e-mail, push services).",
        ),
    ]
