"""``headrace server encryption rotate|generate-key``: the key that encrypts block secrets.

``rotate`` works on the database directly (as ``api-key`` does): it re-encrypts every block
document's secrets under a new key, then makes that key the only one. Where the key lives decides the
rest (see :func:`headrace.server.operations.blocks.rotate_encryption_key` and docs/security.md).

Only typer is imported at module level, so that ``headrace --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from headrace.cli.database import run_on_database
from headrace.cli.output import console

if TYPE_CHECKING:
    from headrace.server.operations.blocks import RotationReport

app = typer.Typer(help="Manage the key that encrypts block secrets.", no_args_is_help=True)


@app.command("rotate")
def rotate(
    new_key: Annotated[
        str | None,
        typer.Option(
            "--new-key",
            envvar="HEADRACE_NEW_ENCRYPTION_KEY",
            help="The key to rotate to (default: a new random one, for a key file). Needed when the key comes "
            "from HEADRACE_SERVER_ENCRYPTION_KEY with one key only. Read from HEADRACE_NEW_ENCRYPTION_KEY "
            "too, which keeps it out of the process list.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Re-encrypt every block document's secrets under a new key, in one transaction, then retire the old key."""
    report = _rotate(new_key)
    where = f"the key file {report.key_file}" if report.key_file else "the new key"
    console.print(f"Re-encrypted the secrets of {report.documents} block document(s) under {where}.", markup=False)
    if report.next_step:
        console.print(f"Next: {report.next_step}.", markup=False)
    else:
        console.print("Back up the key file now: the database backups are useless without it.", markup=False)


@app.command("generate-key")
def generate_key() -> None:
    """Print a new random key, e.g. for HEADRACE_SERVER_ENCRYPTION_KEY or --new-key."""
    from headrace.server.security.encryption import generate_key as new_key

    typer.echo(new_key())


def _rotate(new_key: str | None) -> RotationReport:
    from headrace.server.operations.blocks import rotate_encryption_key
    from headrace.server.security.encryption import EncryptionKeyError
    from headrace.settings import get_settings

    return run_on_database(
        lambda database: rotate_encryption_key(database, get_settings(), new_key),
        expected=(EncryptionKeyError,),
        os_error="cannot rotate the encryption key",
    )[0]
