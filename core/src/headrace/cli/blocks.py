"""``headrace block ls|inspect|delete|types|create``: saved blocks and the installed block types.

The commands go through the same client as flows (the API at ``HEADRACE_API_URL``, or the embedded
database under ``HEADRACE_HOME``). Nothing here shows a secret value: documents are read without them,
so secret leaves print as ``********``. ``block types`` lists the plugins' registrations and imports no
block class (no cloud SDK is loaded to list what is installed).

Only typer is imported at module level, so that ``headrace --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Concatenate, ParamSpec, TypeVar

import typer

from headrace.cli.output import console, fail, print_json

if TYPE_CHECKING:
    from headrace.client.base import OrchestrationClient
    from headrace.schemas.blocks import BlockDocument

app = typer.Typer(help="Saved blocks (typed configuration) and the installed block types.", no_args_is_help=True)

T = TypeVar("T")
P = ParamSpec("P")

PAGE = 200


def _call(
    function: Callable[Concatenate[OrchestrationClient, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run ``function(client, ...)``; settings, connection and block errors end the command with one line."""
    from headrace.blocks.api import run_blocking
    from headrace.blocks.errors import BlockError
    from headrace.client.base import ApiError, ClientError
    from headrace.settings import SettingsError

    try:
        return run_blocking(function, *args, **kwargs)
    except ApiError as exc:
        fail(exc.detail)
    except (SettingsError, ClientError, BlockError) as exc:
        fail(str(exc))


def _split(reference: str) -> tuple[str, str]:
    slug, sep, name = reference.rpartition("/")
    if not sep or not slug or not name:
        fail(f"give the block as TYPE/NAME, such as 'secret/db-password' (not {reference!r})")
    return slug, name


def _columns(rows: Sequence[Sequence[str]]) -> None:
    """Plain columns, never truncated (a table squeezed to the terminal would cut names and ids)."""
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo("  ".join([*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]))


# -- ls ---------------------------------------------------------------------------------------------


async def _list_documents(
    client: OrchestrationClient, slugs: list[str] | None, include_anonymous: bool
) -> list[BlockDocument]:
    from headrace.schemas.blocks import BlockDocumentFilter

    found: list[BlockDocument] = []
    while True:
        page = await client.read_block_documents(
            BlockDocumentFilter(
                block_type_slugs=slugs, include_anonymous=include_anonymous, limit=PAGE, offset=len(found)
            )
        )
        found.extend(page.items)
        if not page.items or len(found) >= page.total:
            return found


@app.command("ls")
def list_blocks(
    block_type: Annotated[str | None, typer.Option("--type", "-t", help="Only blocks of this type slug.")] = None,
    include_anonymous: Annotated[
        bool, typer.Option("--all", "-a", help="Also nested blocks saved along with their parent.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (secrets masked) instead of a table.")] = False,
) -> None:
    """List saved blocks: type, name, last update and id."""
    documents = _call(_list_documents, [block_type] if block_type else None, include_anonymous)
    if as_json:
        print_json([document.model_dump(mode="json") for document in documents])
        return
    if not documents:
        console.print("no saved blocks" + (f" of type {block_type!r}" if block_type else ""), markup=False)
        return
    rows = [("TYPE", "NAME", "UPDATED", "ID")]
    rows += [
        (d.block_type_slug, d.name, f"{d.updated:%Y-%m-%d %H:%M}", str(d.id))
        for d in sorted(documents, key=lambda d: (d.block_type_slug, d.name))
    ]
    _columns(rows)


# -- inspect ----------------------------------------------------------------------------------------


async def _read(client: OrchestrationClient, slug: str, name: str) -> BlockDocument:
    from headrace.blocks.documents import read_document

    return await read_document(client, slug, name)


@app.command("inspect")
def inspect_block(
    reference: Annotated[str, typer.Argument(metavar="TYPE/NAME", help="Such as 'secret/db-password'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole document as JSON.")] = False,
) -> None:
    """Show a saved block; secret values read as ********."""
    slug, name = _split(reference)
    document = _call(_read, slug, name)
    if as_json:
        print_json(document.model_dump(mode="json"))
        return
    typer.echo(f"{document.block_type_name} ({document.block_type_slug}) {document.name}")
    typer.echo(f"  id:       {document.id}")
    typer.echo(f"  schema:   {document.block_schema_checksum}")
    typer.echo(f"  created:  {document.created:%Y-%m-%d %H:%M:%S}")
    typer.echo(f"  updated:  {document.updated:%Y-%m-%d %H:%M:%S}")
    typer.echo("  data:")
    for line in json.dumps(document.data, indent=2, default=str).splitlines():
        typer.echo(f"    {line}")
    for path, nested in sorted(document.references.items()):
        shown = "(anonymous)" if nested.is_anonymous else nested.name
        typer.echo(f"  {path} -> {nested.block_type_slug}/{shown} ({nested.id})")


# -- delete -----------------------------------------------------------------------------------------


async def _delete(client: OrchestrationClient, slug: str, name: str) -> None:
    from headrace.blocks.documents import delete_block

    await delete_block(client, slug, name)


@app.command("delete")
def delete_block_command(
    reference: Annotated[str, typer.Argument(metavar="TYPE/NAME", help="Such as 'secret/db-password'.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a saved block (refused while other blocks refer to it)."""
    slug, name = _split(reference)
    if not yes and not typer.confirm(f"delete block {name!r} of type {slug!r}?", default=False):
        fail("not deleted")
    _call(_delete, slug, name)
    console.print(f"deleted block {slug}/{name}", markup=False)


# -- types ------------------------------------------------------------------------------------------


def list_block_types() -> list[dict[str, Any]]:
    """The installed block types as plain records, from the plugins' registrations (no class imported)."""
    from headrace.blocks.registry import block_type_registrations

    return [
        {
            "slug": registration.name,
            "description": registration.description,
            "documentation_url": registration.documentation_url,
            "implementation": registration.implementation,
        }
        for registration in block_type_registrations()
    ]


@app.command("types")
def list_types(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List the block types installed plugins contribute (without importing them)."""
    from headrace.plugins import PluginError

    try:
        types = list_block_types()
    except PluginError as exc:
        fail(str(exc))
    if as_json:
        print_json(types)
        return
    if not types:
        console.print("no block types installed", markup=False)
        return
    _columns([("SLUG", "DESCRIPTION"), *((item["slug"], item["description"] or "-") for item in types)])


# -- create -----------------------------------------------------------------------------------------


async def _save(client: OrchestrationClient, block: Any, name: str, overwrite: bool) -> Any:
    from headrace.blocks.documents import save_block

    return await save_block(client, block, name, overwrite=overwrite)


@app.command("create")
def create_block(
    block_type: Annotated[str, typer.Argument(metavar="TYPE", help="The block type slug, such as 'secret'.")],
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits and dashes, such as 'db-password'.")],
    from_json: Annotated[
        Path, typer.Option("--from-json", metavar="FILE", help="A JSON object with the block's fields ('-': stdin).")
    ],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the block if the name is taken.")] = False,
) -> None:
    """Save a block of TYPE as NAME from a JSON file of its fields."""
    import sys

    from pydantic import ValidationError

    from headrace.blocks.api import run_blocking
    from headrace.blocks.errors import BlockAlreadyExists, BlockError, field_problems
    from headrace.client.base import ApiError, ClientError
    from headrace.settings import SettingsError

    try:
        text = sys.stdin.read() if str(from_json) == "-" else from_json.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {from_json}: {exc.strerror or exc}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{from_json} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    if not isinstance(data, dict):
        fail(f"{from_json} must hold a JSON object of the block's fields, not a {type(data).__name__}")
    try:
        from headrace.blocks.registry import block_class_for

        block_class = block_class_for(block_type)
    except BlockError as exc:
        fail(str(exc))
    unknown = sorted(set(data) - set(block_class.model_fields))
    if unknown:
        fail(
            f"{block_type} has no field {', '.join(map(repr, unknown))}; "
            f"its fields are: {', '.join(block_class.model_fields)}"
        )
    try:
        block = block_class.model_validate(data)
    except ValidationError as exc:
        fail("\n".join(f"{block_type} field {problem}" for problem in field_problems(exc)))
    try:
        document_id = run_blocking(_save, block, name, overwrite)
    except BlockAlreadyExists:
        fail(f"a block {name!r} of type {block_type!r} already exists; pass --overwrite to replace it")
    except ApiError as exc:
        fail(exc.detail)
    except (SettingsError, ClientError, BlockError) as exc:
        fail(str(exc))
    console.print(f"saved block {block_type}/{name} ({document_id})", markup=False)
