"""Saving, loading and deleting blocks through the embedded database and a live server (both)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field, SecretBytes, SecretStr

from headrace import flow, task
from headrace.blocks import (
    JSON,
    Block,
    BlockAlreadyExists,
    BlockError,
    BlockInvalid,
    BlockNotFound,
    BlockTypeMismatch,
    Secret,
    SecretDict,
    String,
)
from headrace.blocks.api import current_client, run_blocking
from headrace.client.base import OrchestrationClient
from headrace.schemas.blocks import OBFUSCATED, BlockDocument, BlockDocumentFilter


class Login(BaseModel):
    user: str
    password: SecretStr


class Database(Block):
    """A database connection."""

    block_type_slug: ClassVar[str] = "test-database"

    host: str
    password: SecretStr
    options: SecretDict = SecretDict()
    login: Login | None = None


class Pipeline(Block):
    """Two databases: the main one and an optional fallback."""

    block_type_slug: ClassVar[str] = "test-pipeline"

    source: Database
    fallback: Database | None = None
    label: str = "nightly"


def make_database(host: str = "db.internal") -> Database:
    return Database(
        host=host, password="pw-secret", options={"sslkey": "key-secret"}, login={"user": "u", "password": "l-secret"}
    )


def read_raw(slug: str, name: str) -> BlockDocument:
    async def read(client: OrchestrationClient) -> BlockDocument:
        return await client.read_block_document_by_name(slug, name)

    return run_blocking(read)


def count_calls(monkeypatch: pytest.MonkeyPatch, method: str) -> list[Any]:
    """Record each call of ``method`` on the process's real client (the call still goes through)."""
    client = current_client()
    original: Callable[..., Any] = getattr(client, method)
    calls: list[Any] = []

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await original(*args, **kwargs)

    monkeypatch.setattr(client, method, counted)
    return calls


def test_round_trip_keeps_every_value_and_secret(blocks_mode: str, unique: str) -> None:
    name = f"main-{unique}"
    saved = make_database()
    document_id = saved.save(name)
    assert saved.block_document_id == document_id

    loaded = Database.load(name)
    assert loaded == saved
    assert loaded.block_document_id == document_id
    assert loaded.block_document_name == name
    assert loaded.password.get_secret_value() == "pw-secret"
    assert loaded.options["sslkey"] == "key-secret"
    assert loaded.login is not None
    assert loaded.login.password.get_secret_value() == "l-secret"

    raw = read_raw("test-database", name)  # what anyone with read scope sees
    assert raw.data["password"] == OBFUSCATED
    assert raw.data["options"] == {"sslkey": OBFUSCATED}
    assert raw.data["login"] == {"user": "u", "password": OBFUSCATED}
    assert raw.data["host"] == "db.internal"


def test_base_class_loads_by_type_and_name(blocks_mode: str, unique: str) -> None:
    Secret(value="s3cret").save(f"token-{unique}")
    loaded = Block.load(f"secret/token-{unique}")
    assert isinstance(loaded, Secret)
    assert loaded.get() == "s3cret"
    with pytest.raises(BlockError, match="type-slug/name"):
        Block.load(f"token-{unique}")


def test_save_refuses_a_taken_name_unless_overwrite(blocks_mode: str, unique: str) -> None:
    name = f"cfg-{unique}"
    first_id = JSON(value={"threshold": 1}).save(name)
    with pytest.raises(BlockAlreadyExists, match="overwrite=True"):
        JSON(value={"threshold": 2}).save(name)
    assert JSON.load(name).value == {"threshold": 1}
    assert JSON(value={"threshold": 3}).save(name, overwrite=True) == first_id  # updated in place
    assert JSON.load(name).value == {"threshold": 3}


def test_overwrite_replaces_secrets_too(blocks_mode: str, unique: str) -> None:
    name = f"pw-{unique}"
    Secret(value="old").save(name)
    Secret(value="new").save(name, overwrite=True)
    assert Secret.load(name).get() == "new"


def test_missing_block_and_wrong_type(blocks_mode: str, unique: str) -> None:
    with pytest.raises(BlockNotFound) as missing:
        String.load(f"absent-{unique}")
    assert f"absent-{unique}" in str(missing.value)
    assert "headrace block ls" in str(missing.value)

    String(value="x").save(f"word-{unique}")
    with pytest.raises(BlockTypeMismatch) as wrong:
        JSON.load(f"word-{unique}")
    assert "'string'" in str(wrong.value)
    assert "'json'" in str(wrong.value)
    with pytest.raises(BlockTypeMismatch):
        JSON.load(f"string/word-{unique}")


def test_delete(blocks_mode: str, unique: str) -> None:
    String(value="x").save(f"gone-{unique}")
    String.delete(f"gone-{unique}")
    with pytest.raises(BlockNotFound):
        String.load(f"gone-{unique}")
    with pytest.raises(BlockNotFound):
        String.delete(f"gone-{unique}")
    String(value="y").save(f"gone2-{unique}")
    Block.delete(f"string/gone2-{unique}")
    with pytest.raises(BlockNotFound):
        Block.load(f"string/gone2-{unique}")


def test_nested_blocks_are_stored_by_reference(blocks_mode: str, unique: str) -> None:
    shared = make_database("shared.internal")
    shared.save(f"shared-{unique}")
    pipeline = Pipeline(source=make_database("source.internal"), fallback=shared)
    pipeline.save(f"pipe-{unique}")
    assert pipeline.source.block_document_id is not None  # saved first, anonymously

    raw = read_raw("test-pipeline", f"pipe-{unique}")
    assert raw.data["source"] == {"$ref": str(pipeline.source.block_document_id)}
    assert raw.data["fallback"] == {"$ref": str(shared.block_document_id)}
    assert raw.references["source"].is_anonymous
    assert raw.references["fallback"].name == f"shared-{unique}"

    loaded = Pipeline.load(f"pipe-{unique}")
    assert loaded == pipeline
    assert loaded.source.password.get_secret_value() == "pw-secret"
    assert loaded.fallback is not None
    assert loaded.fallback.block_document_id == shared.block_document_id

    # Saving the loaded block again keeps the references: no new anonymous document.
    before = _anonymous_count()
    loaded.label = "hourly"
    loaded.save(f"pipe-{unique}", overwrite=True)
    assert _anonymous_count() == before
    assert Pipeline.load(f"pipe-{unique}").label == "hourly"

    with pytest.raises(BlockError):  # the pipeline still refers to it
        Database.delete(f"shared-{unique}")


def test_anonymous_nested_blocks_are_saved_with_their_parent(blocks_mode: str, unique: str) -> None:
    named = make_database("named.internal")
    named.save(f"named-{unique}")
    Pipeline(source=make_database("before.internal"), fallback=named).save(f"edit-{unique}")
    before = _anonymous_count()

    loaded = Pipeline.load(f"edit-{unique}")
    loaded.source.host = "after.internal"  # anonymous: it belongs to the pipeline, so the change is saved
    loaded.source.password = SecretStr("pw-changed")
    assert loaded.fallback is not None
    loaded.fallback.host = "not-saved-through-the-parent"  # a named block is saved by its own save()
    loaded.save(f"edit-{unique}", overwrite=True)

    again = Pipeline.load(f"edit-{unique}")
    assert again.source.host == "after.internal"
    assert again.source.password.get_secret_value() == "pw-changed"
    assert again.source.block_document_id == loaded.source.block_document_id  # updated in place
    assert again.fallback is not None
    assert again.fallback.host == "named.internal"
    assert _anonymous_count() == before


def test_a_parent_deleted_then_saved_again_saves_its_nested_block_anew(blocks_mode: str, unique: str) -> None:
    pipeline = Pipeline(source=make_database("again.internal"))
    pipeline.save(f"again-{unique}")
    before = _anonymous_count()
    Pipeline.delete(f"again-{unique}")
    assert _anonymous_count() == before - 1  # its anonymous nested block went with it

    pipeline.save(f"again-{unique}")
    assert _anonymous_count() == before
    assert Pipeline.load(f"again-{unique}").source.host == "again.internal"


def _anonymous_count() -> int:
    async def count(client: OrchestrationClient) -> int:
        page = await client.read_block_documents(
            BlockDocumentFilter(block_type_slugs=["test-database"], include_anonymous=True, limit=1)
        )
        return page.total

    return run_blocking(count)


def test_a_stale_document_raises_a_clear_error(blocks_mode: str, unique: str) -> None:
    class Evolving(Block):
        block_type_slug: ClassVar[str] = "test-evolving"
        host: str

    Evolving(host="h").save(f"old-{unique}")

    class EvolvingV2(Block):  # the class gained a required field since the document was saved
        block_type_slug: ClassVar[str] = "test-evolving"
        host: str
        port: int

    with pytest.raises(BlockInvalid) as caught:
        EvolvingV2.load(f"old-{unique}")
    message = str(caught.value)
    assert f"old-{unique}" in message
    assert "port" in message
    assert "overwrite=True" in message
    EvolvingV2(host="h", port=1).save(f"old-{unique}", overwrite=True)
    assert EvolvingV2.load(f"old-{unique}").port == 1


def test_bad_names_are_one_line_errors(blocks_mode: str) -> None:
    with pytest.raises(BlockError, match="lower-case letters"):
        String(value="x").save("Not A Slug")


class Keyring(Block):
    block_type_slug: ClassVar[str] = "test-keyring"

    tokens: dict[str, SecretStr] = Field(default_factory=dict)
    logins: list[Login] = Field(default_factory=list)
    raw: SecretBytes | None = None


def test_secrets_inside_containers_are_kept_secret_and_round_trip(blocks_mode: str, unique: str) -> None:
    saved = Keyring(tokens={"a": "tok-in-dict"}, logins=[{"user": "u", "password": "pw-in-list"}])
    saved.save(f"ring-{unique}")
    raw = read_raw("test-keyring", f"ring-{unique}")
    assert raw.data["tokens"] == OBFUSCATED
    assert raw.data["logins"] == OBFUSCATED
    loaded = Keyring.load(f"ring-{unique}")
    assert loaded == saved
    assert loaded.tokens["a"].get_secret_value() == "tok-in-dict"


def test_binary_secret_bytes_are_a_one_line_error(blocks_mode: str, unique: str) -> None:
    with pytest.raises(BlockError, match=r"^cannot save block .*not UTF-8 text") as caught:
        Keyring(raw=b"\xff\xfe").save(f"bytes-{unique}")
    assert "\n" not in str(caught.value)
    with pytest.raises(BlockNotFound):
        Keyring.load(f"bytes-{unique}")


def test_async_twins(blocks_mode: str, unique: str) -> None:
    async def main() -> tuple[Any, Any]:
        await Secret(value="async-pw").asave(f"async-{unique}")
        loaded = await Secret.aload(f"async-{unique}")
        await Secret.adelete(f"async-{unique}")
        try:
            await Secret.aload(f"async-{unique}")
        except BlockNotFound as exc:
            return loaded.get(), exc
        return loaded.get(), None

    value, error = asyncio.run(main())
    assert value == "async-pw"
    assert isinstance(error, BlockNotFound)


def test_loads_are_cached_per_flow_run(blocks_mode: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"cached-{unique}"
    Secret(value="v1").save(name)
    calls = count_calls(monkeypatch, "read_block_document_by_name")

    @task
    def in_task() -> Any:
        return Secret.load(name).get()

    @flow
    def twice() -> tuple[Any, Any, Any, bool]:
        first = Secret.load(name)
        second = Secret.load(name)
        return first.get(), second.get(), in_task(), first is not second

    assert twice() == ("v1", "v1", "v1", True)  # copies, not the cached object itself
    assert len(calls) == 1

    Secret.load(name)
    Secret.load(name)
    assert len(calls) == 3  # outside a run: no cache

    twice()
    assert len(calls) == 4  # a new run asks again

    @flow
    def save_then_load() -> Any:
        Secret.load(name)
        Secret(value="v2").save(name, overwrite=True)  # saving forgets the cached copy
        return Secret.load(name).get()

    assert save_then_load() == "v2"


def test_async_flow_loads(blocks_mode: str, unique: str) -> None:
    String(value="in-async").save(f"af-{unique}")

    @flow
    async def reader() -> str:
        return (await String.aload(f"af-{unique}")).value

    assert asyncio.run(reader()) == "in-async"
