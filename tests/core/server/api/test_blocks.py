"""Blocks against a live server, on SQLite and PostgreSQL: block types, schemas, documents, secrets kept
out of answers and out of the database, references between documents, and who may see secrets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from headrace.schemas.auth import Scope
from headrace.schemas.blocks import OBFUSCATED, block_schema_checksum
from headrace.server.db import Database
from headrace.server.operations.api_keys import create_api_key
from headrace.settings import Settings
from headrace.testing.server import RunningServer

StartServer = Callable[..., RunningServer]

TOKEN = "tok-5f3a9c1e-never-in-clear"
PASSWORD = "pw-0d6b2e-never-in-clear"
HEADER_SECRET = "hdr-77aa1c-never-in-clear"


def block_type(slug: str = "webhook", **extra: Any) -> dict[str, Any]:
    return {"slug": slug, "name": slug.replace("-", " ").title(), "description": f"A {slug}.", **extra}


def block_schema(slug: str = "webhook", secret_fields: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "block_type_slug": slug,
        "fields": {"title": slug, "properties": {"url": {"type": "string"}}, **fields},
        "secret_fields": ["token", "headers.*"] if secret_fields is None else secret_fields,
        "capabilities": ["notify"],
    }


def document(name: str, data: dict[str, Any], slug: str = "webhook", **extra: Any) -> dict[str, Any]:
    return {"name": name, "block_type": block_type(slug), "block_schema": block_schema(slug), "data": data, **extra}


def webhook_data(**changes: Any) -> dict[str, Any]:
    return {"url": "https://example.test/hook", "token": TOKEN, "headers": {"X-Key": HEADER_SECRET}, **changes}


def create(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/block-documents", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_problem(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith(f"/{kind}"), body
    detail: str = body["detail"]
    return detail


# ------------------------------------------------------------------------------------ block types


def test_block_types_are_upserted_by_slug_and_filtered(api: httpx.Client) -> None:
    first = api.post("/block-types", json=block_type("s3-bucket", documentation_url="https://docs.test/s3"))
    assert first.status_code == 200, first.text
    again = api.post("/block-types", json=block_type("s3-bucket", description="Changed.", code_example="x = 1"))
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["description"] == "Changed."
    assert again.json()["code_example"] == "x = 1"
    assert again.json()["documentation_url"] is None  # the metadata is replaced, not merged
    api.post("/block-types", json=block_type("slack-webhook"))

    read = api.get("/block-types/s3-bucket")
    assert read.json() == again.json()
    assert_problem(api.get("/block-types/nope"), 404, "block-type-not-found")

    every = api.post("/block-types/filter", json={}).json()
    assert [item["slug"] for item in every["items"]] == ["s3-bucket", "slack-webhook"]
    assert every["total"] == 2
    by_name = api.post("/block-types/filter", json={"name_like": "SLACK"}).json()
    assert [item["slug"] for item in by_name["items"]] == ["slack-webhook"]
    by_slug = api.post("/block-types/filter", json={"slugs": ["s3-bucket"], "limit": 1}).json()
    assert [item["slug"] for item in by_slug["items"]] == ["s3-bucket"]
    assert api.post("/block-types", json=block_type("Bad Slug")).status_code == 422


def test_block_schemas_are_idempotent_by_checksum(api: httpx.Client) -> None:
    assert_problem(api.post("/block-schemas", json=block_schema()), 422, "invalid-block-document")
    api.post("/block-types", json=block_type())
    first = api.post("/block-schemas", json=block_schema())
    assert first.status_code == 200, first.text
    schema = first.json()
    assert schema["checksum"] == block_schema_checksum(block_schema()["fields"])
    assert schema["checksum"].startswith("sha256:")
    assert schema["block_type_slug"] == "webhook"
    assert api.post("/block-schemas", json=block_schema()).json()["id"] == schema["id"]
    other = api.post("/block-schemas", json=block_schema(description="v2")).json()
    assert other["id"] != schema["id"]
    assert api.get(f"/block-schemas/{schema['id']}").json() == schema
    assert_problem(api.get(f"/block-schemas/{uuid.uuid4()}"), 404, "block-schema-not-found")
    bad_path = block_schema(secret_fields=["headers..x"])
    assert api.post("/block-schemas", json=bad_path).status_code == 422


# -------------------------------------------------------------------------------- block documents


def test_create_registers_the_type_and_schema_and_obfuscates_secrets(api: httpx.Client) -> None:
    created = create(api, document("alerts", webhook_data()))
    assert created["data"] == {
        "url": "https://example.test/hook",
        "token": OBFUSCATED,
        "headers": {"X-Key": OBFUSCATED},
    }
    assert created["block_type_slug"] == "webhook"
    assert created["block_type_name"] == "Webhook"
    assert created["block_schema_checksum"] == block_schema_checksum(block_schema()["fields"])
    assert api.get("/block-types/webhook").status_code == 200
    assert api.get(f"/block-schemas/{created['block_schema_id']}").status_code == 200

    by_id = api.get(f"/block-documents/{created['id']}")
    assert by_id.json() == created
    assert TOKEN not in by_id.text
    assert HEADER_SECRET not in by_id.text
    by_name = api.get("/block-types/webhook/block-documents/alerts")
    assert by_name.json() == created

    with_secrets = api.get(f"/block-documents/{created['id']}", params={"include_secrets": "true"}).json()
    assert with_secrets["data"] == webhook_data()
    named = api.get("/block-types/webhook/block-documents/alerts", params={"include_secrets": True}).json()
    assert named["data"] == webhook_data()


def test_a_taken_name_is_409_but_another_type_may_use_it(api: httpx.Client) -> None:
    create(api, document("prod", webhook_data()))
    detail = assert_problem(api.post("/block-documents", json=document("prod", {})), 409, "block-document-exists")
    assert "'prod'" in detail
    assert "'webhook'" in detail
    create(api, document("prod", {"url": "x"}, slug="other-type"))


def test_missing_documents_are_404_problems(api: httpx.Client) -> None:
    missing = uuid.uuid4()
    assert_problem(api.get(f"/block-documents/{missing}"), 404, "block-document-not-found")
    assert_problem(api.get("/block-types/webhook/block-documents/nope"), 404, "block-document-not-found")
    assert_problem(api.patch(f"/block-documents/{missing}", json={"data": {}}), 404, "block-document-not-found")
    assert_problem(api.delete(f"/block-documents/{missing}"), 404, "block-document-not-found")


def test_update_keeps_obfuscated_secrets_and_replaces_the_rest(api: httpx.Client) -> None:
    created = create(api, document("alerts", webhook_data()))
    read_back = api.get(f"/block-documents/{created['id']}").json()["data"]
    read_back["url"] = "https://example.test/new"
    updated = api.patch(f"/block-documents/{created['id']}", json={"data": read_back})
    assert updated.status_code == 200, updated.text
    assert updated.json()["data"]["token"] == OBFUSCATED
    secrets = api.get(f"/block-documents/{created['id']}", params={"include_secrets": True}).json()["data"]
    assert secrets == webhook_data(url="https://example.test/new")

    new_secrets = {"url": "u", "token": "rotated", "headers": {"X-Key": OBFUSCATED, "X-Other": "o"}}
    api.patch(f"/block-documents/{created['id']}", json={"data": new_secrets})
    secrets = api.get(f"/block-documents/{created['id']}", params={"include_secrets": True}).json()["data"]
    assert secrets == {"url": "u", "token": "rotated", "headers": {"X-Key": HEADER_SECRET, "X-Other": "o"}}

    # An obfuscated value with nothing stored behind it is refused rather than stored as the marker.
    refused = api.patch(
        f"/block-documents/{created['id']}", json={"data": {"token": "t", "headers": {"Y": OBFUSCATED}}}
    )
    assert "'headers.Y'" in assert_problem(refused, 422, "invalid-block-document")
    first = api.post("/block-documents", json=document("copy", webhook_data(token=OBFUSCATED)))
    assert "'token'" in assert_problem(first, 422, "invalid-block-document")


def test_update_moves_the_document_to_a_new_schema(api: httpx.Client) -> None:
    created = create(api, document("alerts", webhook_data()))
    v2 = block_schema(secret_fields=["token", "password"], description="v2")
    updated = api.patch(
        f"/block-documents/{created['id']}",
        json={"data": {"url": "u", "token": OBFUSCATED, "password": PASSWORD}, "block_schema": v2},
    ).json()
    assert updated["block_schema_id"] != created["block_schema_id"]
    assert updated["data"] == {"url": "u", "token": OBFUSCATED, "password": OBFUSCATED}
    secrets = api.get(f"/block-documents/{created['id']}", params={"include_secrets": True}).json()["data"]
    assert secrets == {"url": "u", "token": TOKEN, "password": PASSWORD}
    wrong_type = {"data": {}, "block_schema": block_schema("other")}
    assert_problem(api.patch(f"/block-documents/{created['id']}", json=wrong_type), 422, "invalid-block-document")


def test_filter_by_type_name_and_anonymity_with_sorting(api: httpx.Client) -> None:
    for name in ("beta", "alpha", "gamma"):
        create(api, document(name, webhook_data()))
    create(api, document("alpha", {"url": "x"}, slug="other-type"))
    create(api, document("hidden", {"url": "x"}, is_anonymous=True))

    def names(**body: Any) -> list[str]:
        response = api.post("/block-documents/filter", json=body)
        assert response.status_code == 200, response.text
        return [f"{item['block_type_slug']}/{item['name']}" for item in response.json()["items"]]

    assert names(block_type_slugs=["webhook"]) == ["webhook/alpha", "webhook/beta", "webhook/gamma"]
    assert names(block_type_slugs=["webhook"], sort="NAME_DESC") == ["webhook/gamma", "webhook/beta", "webhook/alpha"]
    assert sorted(names(name_like="ALP")) == ["other-type/alpha", "webhook/alpha"]
    assert "webhook/hidden" not in names()
    assert "webhook/hidden" in names(include_anonymous=True)
    page = api.post("/block-documents/filter", json={"limit": 2, "offset": 1, "block_type_slugs": ["webhook"]}).json()
    assert page["total"] == 3
    assert len(page["items"]) == 2
    items = api.post("/block-documents/filter", json={"block_type_slugs": ["webhook"]}).json()["items"]
    assert all(item["data"]["token"] == OBFUSCATED for item in items)
    secret_items = api.post(
        "/block-documents/filter", json={"block_type_slugs": ["webhook"], "include_secrets": True}
    ).json()["items"]
    assert all(item["data"]["token"] == TOKEN for item in secret_items)


# ------------------------------------------------------------------------------------- references


def test_nested_blocks_are_stored_by_reference_and_read_recursively(api: httpx.Client) -> None:
    body = document("creds", {"user": "u", "password": PASSWORD}, slug="credentials")
    body["block_schema"] = block_schema("credentials", secret_fields=["password"])
    credentials = create(api, body)
    bucket = create(
        api,
        document("bucket", {"name": "b", "credentials": {"$ref": credentials["id"]}}, slug="s3-bucket"),
    )
    pipeline = create(
        api,
        document("pipe", {"targets": [{"$ref": bucket["id"]}], "alerts": None}, slug="pipeline"),
    )
    read = api.get(f"/block-documents/{pipeline['id']}").json()
    nested_bucket = read["references"]["targets.0"]
    assert nested_bucket["id"] == bucket["id"]
    nested_credentials = nested_bucket["references"]["credentials"]
    assert nested_credentials["data"] == {"user": "u", "password": OBFUSCATED}
    with_secrets = api.get(f"/block-documents/{pipeline['id']}", params={"include_secrets": True}).json()
    assert with_secrets["references"]["targets.0"]["references"]["credentials"]["data"]["password"] == PASSWORD

    detail = assert_problem(api.delete(f"/block-documents/{credentials['id']}"), 409, "block-document-referenced")
    assert "s3-bucket/bucket" in detail
    assert "'credentials'" in detail
    assert api.get(f"/block-documents/{credentials['id']}").status_code == 200

    # A reference must name an existing document, and no document may refer to itself.
    missing = document("dangling", {"x": {"$ref": str(uuid.uuid4())}}, slug="pipeline")
    assert "'x'" in assert_problem(api.post("/block-documents", json=missing), 422, "invalid-block-document")
    malformed = document("dangling", {"x": {"$ref": "not-an-id"}}, slug="pipeline")
    assert_problem(api.post("/block-documents", json=malformed), 422, "invalid-block-document")
    cycle = {"data": {"user": "u", "password": OBFUSCATED, "loop": {"$ref": pipeline["id"]}}}
    assert_problem(api.patch(f"/block-documents/{credentials['id']}", json=cycle), 422, "invalid-block-document")

    # Deleting from the top frees the ones below.
    assert api.delete(f"/block-documents/{pipeline['id']}").status_code == 204
    assert api.delete(f"/block-documents/{bucket['id']}").status_code == 204
    assert api.delete(f"/block-documents/{credentials['id']}").status_code == 204
    assert api.get(f"/block-documents/{credentials['id']}").status_code == 404


def test_anonymous_nested_documents_leave_with_the_last_document_that_held_them(api: httpx.Client) -> None:
    def anonymous(name: str, **data: Any) -> dict[str, Any]:
        body = document(name, {"user": "u", "password": PASSWORD, **data}, slug="credentials", is_anonymous=True)
        body["block_schema"] = block_schema("credentials", secret_fields=["password"])
        return create(api, body)

    def exists(item: dict[str, Any]) -> bool:
        return api.get(f"/block-documents/{item['id']}").status_code == 200

    inner = anonymous("anonymous-inner")
    outer = anonymous("anonymous-outer", inner={"$ref": inner["id"]})
    named = create(api, document("named-creds", {"user": "u", "password": PASSWORD}))
    first = create(api, document("first", {"credentials": {"$ref": outer["id"]}}, slug="s3-bucket"))
    second = create(api, document("second", {"credentials": {"$ref": outer["id"]}}, slug="s3-bucket"))

    # Deleting one of two holders keeps the shared anonymous documents.
    assert api.delete(f"/block-documents/{first['id']}").status_code == 204
    assert exists(outer)
    assert exists(inner)
    # Overwriting the last holder with another nested block drops them, level by level; a named one stays.
    replaced = api.patch(f"/block-documents/{second['id']}", json={"data": {"credentials": {"$ref": named["id"]}}})
    assert replaced.status_code == 200, replaced.text
    assert not exists(outer)
    assert not exists(inner)
    assert api.delete(f"/block-documents/{second['id']}").status_code == 204
    assert exists(named)

    # Deleting the holder drops its anonymous document too.
    again = anonymous("anonymous-again")
    holder = create(api, document("holder", {"credentials": {"$ref": again["id"]}}, slug="s3-bucket"))
    assert api.delete(f"/block-documents/{holder['id']}").status_code == 204
    assert not exists(again)


# ------------------------------------------------------------------------------- scopes for secrets


def _make_keys(settings: Settings) -> dict[str, str]:
    async def make() -> dict[str, str]:
        async with Database.from_settings(settings) as database:
            scopes = {"reader": Scope.READ, "writer": Scope.WRITE}
            return {name: (await create_api_key(database, name, scope)).key for name, scope in scopes.items()}

    return asyncio.run(make())


@pytest.fixture
def secured(start_server: StartServer, server_settings: Settings) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    keys = _make_keys(server_settings)
    server = start_server()
    with httpx.Client(base_url=server.api_url, timeout=30) as client:
        yield client, keys


def test_secrets_need_write_scope(secured: tuple[httpx.Client, dict[str, str]]) -> None:
    client, keys = secured
    reader = {"Authorization": f"Bearer {keys['reader']}"}
    writer = {"Authorization": f"Bearer {keys['writer']}"}
    assert client.post("/block-documents", json=document("alerts", webhook_data()), headers=reader).status_code == 403
    created = client.post("/block-documents", json=document("alerts", webhook_data()), headers=writer).json()
    path = f"/block-documents/{created['id']}"

    assert client.get(path, headers=reader).json()["data"]["token"] == OBFUSCATED
    refused = client.get(path, params={"include_secrets": True}, headers=reader)
    assert "'write'" in assert_problem(refused, 403, "forbidden")
    by_name = client.get("/block-types/webhook/block-documents/alerts", params={"include_secrets": 1}, headers=reader)
    assert_problem(by_name, 403, "forbidden")
    listed = client.post("/block-documents/filter", json={"include_secrets": True}, headers=reader)
    assert_problem(listed, 403, "forbidden")
    assert client.post("/block-documents/filter", json={}, headers=reader).status_code == 200

    assert client.get(path, params={"include_secrets": True}, headers=writer).json()["data"]["token"] == TOKEN


# --------------------------------------------------------------------------- no secret in the database


def _all_stored_text(settings: Settings) -> str:
    """Every value of every row of every table, read from the database directly, as one string."""

    async def dump() -> str:
        from headrace.server.db.models import Base

        parts: list[str] = []
        async with Database.from_settings(settings) as database, database.engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                rows = (await connection.execute(sa.text(f'SELECT * FROM "{table.name}"'))).all()
                for row in rows:
                    for value in row:
                        if isinstance(value, bytes | bytearray | memoryview):
                            raw = bytes(value)
                            parts.append(raw.decode("latin-1"))
                            # A Fernet token is base64 of the ciphertext: decode it too, in case.
                            with contextlib.suppress(ValueError):
                                parts.append(base64.urlsafe_b64decode(raw).decode("latin-1"))
                        else:
                            parts.append(json.dumps(value, default=str) if not isinstance(value, str) else value)
        return "\n".join(parts)

    return asyncio.run(dump())


def test_the_database_holds_no_secret_in_clear(api: httpx.Client, server_settings: Settings) -> None:
    first = create(api, document("alerts", webhook_data()))
    api.patch(
        f"/block-documents/{first['id']}",
        json={"data": webhook_data(token=OBFUSCATED, headers={"X-Key": OBFUSCATED, "Extra": PASSWORD})},
    )
    nested = create(api, document("with-child", {"child": {"$ref": first["id"]}, "token": TOKEN + "-2"}))
    assert api.get(f"/block-documents/{nested['id']}", params={"include_secrets": True}).json()["data"]["token"] == (
        TOKEN + "-2"
    )
    stored = _all_stored_text(server_settings)
    assert "https://example.test/hook" in stored  # the dump does see the documents' public data
    for secret in (TOKEN, HEADER_SECRET, PASSWORD, TOKEN + "-2"):
        assert secret not in stored, f"{secret!r} is stored in clear"
    assert "encryption.key" not in stored
    key_file = server_settings.home / "encryption.key"
    assert key_file.exists()
    key = key_file.read_text().strip()
    assert key not in stored, "the key is stored in the database it protects"


def test_a_schema_registered_with_fewer_secrets_gains_them_and_never_loses_one(
    api: httpx.Client, server_settings: Settings
) -> None:
    # The checksum covers the JSON schema only: an older client may have registered these same fields
    # with fewer secret paths. A later registration naming more must not store them in clear.
    api.post("/block-types", json=block_type())
    first = api.post("/block-schemas", json=block_schema(secret_fields=["token"])).json()
    created = create(
        api,
        {
            **document("more-secrets", webhook_data()),
            "block_schema": block_schema(secret_fields=["token", "headers.*"]),
        },
    )
    assert created["block_schema_id"] == first["id"]
    assert created["data"]["headers"] == {"X-Key": OBFUSCATED}
    assert api.get(f"/block-schemas/{first['id']}").json()["secret_fields"] == ["token", "headers.*"]
    fewer = api.post("/block-schemas", json=block_schema(secret_fields=[])).json()
    assert fewer["secret_fields"] == ["token", "headers.*"]
    assert HEADER_SECRET not in _all_stored_text(server_settings)
