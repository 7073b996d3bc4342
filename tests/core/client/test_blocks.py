"""The block methods of both clients: the embedded one (in-process, on HEADRACE_HOME) and the HTTP one
against a live server. The same scenario runs on each, so the two cannot drift apart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from headrace.client.base import ApiError, OrchestrationClient
from headrace.client.embedded import EmbeddedClient
from headrace.client.http import HttpClient
from headrace.schemas.blocks import (
    OBFUSCATED,
    BlockDocumentCreate,
    BlockDocumentFilter,
    BlockDocumentUpdate,
    BlockSchemaCreate,
    BlockTypeCreate,
    BlockTypeFilter,
)
from headrace.settings import Settings
from headrace.testing.server import running_server

MakeSettings = Callable[..., Settings]


def _document(name: str, data: dict[str, Any], slug: str = "smtp-server", secrets: list[str] | None = None) -> Any:
    return BlockDocumentCreate(
        name=name,
        block_type=BlockTypeCreate(slug=slug, name=slug.title(), documentation_url="https://docs.test/" + slug),
        block_schema=BlockSchemaCreate(
            block_type_slug=slug, fields={"title": slug}, secret_fields=["password"] if secrets is None else secrets
        ),
        data=data,
    )


@pytest.fixture(params=["embedded", "http"])
def client(request: pytest.FixtureRequest, make_settings: MakeSettings) -> Iterator[OrchestrationClient]:
    settings = make_settings()
    if request.param == "embedded":
        yield EmbeddedClient(settings)
        return
    with running_server(settings) as server:
        yield HttpClient(settings, api_url=server.api_url, max_retries=0)


def test_every_block_method(client: OrchestrationClient) -> None:
    async def scenario() -> None:
        async with client:
            block_type = await client.create_block_type(BlockTypeCreate(slug="smtp-server", name="SMTP"))
            assert block_type.slug == "smtp-server"
            created = await client.create_block_document(_document("mail", {"host": "h", "password": "pw-1"}))
            assert created.data == {"host": "h", "password": OBFUSCATED}
            assert created.block_type_name == "Smtp-Server"  # saving updated the type's metadata
            types = await client.read_block_types(BlockTypeFilter(slugs=["smtp-server"]))
            assert [t.documentation_url for t in types.items] == ["https://docs.test/smtp-server"]
            assert (await client.read_block_types()).total == 1

            plain = await client.read_block_document(created.id)
            assert plain.data["password"] == OBFUSCATED
            secret = await client.read_block_document(created.id, include_secrets=True)
            assert secret.data["password"] == "pw-1"
            named = await client.read_block_document_by_name("smtp-server", "mail", include_secrets=True)
            assert named.id == created.id
            assert named.data["password"] == "pw-1"

            parent = await client.create_block_document(
                _document("report", {"mailer": {"$ref": str(created.id)}}, slug="report", secrets=[])
            )
            assert parent.references["mailer"].data["password"] == OBFUSCATED
            with_secrets = await client.read_block_document(parent.id, include_secrets=True)
            assert with_secrets.references["mailer"].data["password"] == "pw-1"

            updated = await client.update_block_document(
                created.id, BlockDocumentUpdate(data={"host": "h2", "password": OBFUSCATED})
            )
            assert updated.data == {"host": "h2", "password": OBFUSCATED}
            assert (await client.read_block_document(created.id, include_secrets=True)).data["password"] == "pw-1"

            page = await client.read_block_documents(BlockDocumentFilter(block_type_slugs=["smtp-server", "report"]))
            assert sorted(d.name for d in page.items) == ["mail", "report"]

            with pytest.raises(ApiError) as taken:
                await client.create_block_document(_document("mail", {"host": "x", "password": "p"}))
            assert taken.value.status == 409
            with pytest.raises(ApiError) as referenced:
                await client.delete_block_document(created.id)
            assert referenced.value.status == 409
            assert "report/report" in referenced.value.detail

            await client.delete_block_document(parent.id)
            await client.delete_block_document(created.id)
            for call in (
                client.read_block_document(created.id),
                client.read_block_document_by_name("smtp-server", "mail"),
                client.update_block_document(created.id, BlockDocumentUpdate(data={})),
                client.delete_block_document(uuid.uuid4()),
            ):
                with pytest.raises(ApiError) as missing:
                    await call
                assert missing.value.status == 404
                assert missing.value.problem["type"].endswith("/block-document-not-found")

    asyncio.run(scenario())


def test_the_embedded_client_reads_what_a_server_on_the_same_home_saved(make_settings: MakeSettings) -> None:
    settings = make_settings()

    async def save(api_url: str) -> uuid.UUID:
        async with HttpClient(settings, api_url=api_url) as http:
            return (await http.create_block_document(_document("mail", {"host": "h", "password": "pw"}))).id

    with running_server(settings) as server:
        document_id = asyncio.run(save(server.api_url))

    async def read() -> str:
        async with EmbeddedClient(settings) as embedded:
            found = await embedded.read_block_document(document_id, include_secrets=True)
            return str(found.data["password"])

    assert asyncio.run(read()) == "pw"  # one key file under the shared HEADRACE_HOME


def test_a_malformed_key_is_a_client_error_on_the_embedded_client(make_settings: MakeSettings) -> None:
    from headrace.client.base import ClientError

    async def save() -> None:
        async with EmbeddedClient(make_settings(server_encryption_key="not-a-key")) as client:
            await client.create_block_document(_document("mail", {"host": "h", "password": "pw"}))

    with pytest.raises(ClientError, match="HEADRACE_SERVER_ENCRYPTION_KEY holds an invalid encryption key"):
        asyncio.run(save())
