"""Shared console helpers: one place decides how messages and failures look."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a user-facing error (no traceback) and exit with ``code``."""
    for line in message.splitlines() or [""]:
        errors.print(f"[bold red]error:[/] {line}", markup=True, highlight=False)
    raise typer.Exit(code)


def print_json(data: object) -> None:
    """Machine-readable output goes to stdout untouched by rich's wrapping or colour."""
    import json

    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
