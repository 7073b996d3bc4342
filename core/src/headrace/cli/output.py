"""Shared console helpers: one place decides how messages and failures look.

rich is imported when something is first printed, not when a command module is imported, so that
``headrace --help`` does not pay for it (see ``benchmarks/bench_startup.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, cast

import typer

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """Stands in for a rich ``Console`` and creates the real one on first use."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
        return getattr(self._console, name)


console = cast("Console", _LazyConsole(stderr=False))
errors = cast("Console", _LazyConsole(stderr=True))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a user-facing error (no traceback) and exit with ``code``.

    Each line of ``message`` becomes one ``error:`` line; the message is printed as plain text, so
    brackets in values are never taken for rich markup.
    """
    from rich.text import Text

    for line in message.splitlines() or [""]:
        text = Text("error: ", style="bold red")
        text.append(line)
        errors.print(text)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A remark on stderr that does not stop the command (such as a value that is overridden)."""
    from rich.text import Text

    text = Text("note: ", style="yellow")
    text.append(message)
    errors.print(text)


def print_json(data: object) -> None:
    """Machine-readable output goes to stdout untouched by rich's wrapping or colour."""
    import json

    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
