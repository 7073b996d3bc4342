"""The Block base without a server: class metadata, secret fields, the schema, serialization both ways."""

from __future__ import annotations

import logging
import pickle
from datetime import datetime, timezone
from typing import Any, ClassVar
from uuid import uuid4

import pytest
from pydantic import BaseModel, Field, SecretBytes, SecretStr, ValidationError

from headrace.blocks import JSON, Block, BlockInvalid, BlockTypeMismatch, DateTime, Secret, SecretDict, String
from headrace.blocks.core import kebab_case
from headrace.blocks.schema import block_schema_create, block_type_create
from headrace.blocks.serialization import block_from_document, wire_data
from headrace.schemas.blocks import OBFUSCATED, BlockDocument, BlockDocumentCreate


class Login(BaseModel):
    user: str
    password: SecretStr


class Warehouse(Block):
    """Where the numbers live.

    A second paragraph that is not part of the description.
    """

    host: str
    port: int = 5432
    password: SecretStr
    key: SecretBytes | None = None
    options: SecretDict = SecretDict()
    login: Login | None = None


class Pipeline(Block):
    """Holds a nested block."""

    block_type_slug: ClassVar[str] = "data-pipeline"
    warehouse: Warehouse
    fallback: Warehouse | None = None


def make_warehouse() -> Warehouse:
    return Warehouse(
        host="db.internal",
        password="pw-top-secret",
        key=b"key-top-secret",
        options={"token": "tok-top-secret"},
        login={"user": "ann", "password": "login-top-secret"},
    )


SECRETS = ("pw-top-secret", "key-top-secret", "tok-top-secret", "login-top-secret")


def document(block_class: type[Block], data: dict[str, Any], **extra: Any) -> BlockDocument:
    now = datetime.now(timezone.utc)
    fields: dict[str, Any] = {
        "id": uuid4(),
        "name": "prod",
        "is_anonymous": False,
        "block_type_slug": block_class.block_type_slug,
        "block_type_name": block_class.block_type_name,
        "block_schema_id": uuid4(),
        "block_schema_checksum": "sha256:00",
        "data": data,
        "references": {},
        "created": now,
        "updated": now,
    }
    fields.update(extra)
    return BlockDocument.model_validate(fields)


# -- metadata ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("LocalFileSystem", "local-file-system"),
        ("S3Bucket", "s3-bucket"),
        ("JSON", "json"),
        ("HTTPServer", "http-server"),
    ],
)
def test_slug_defaults_to_the_kebab_case_class_name(name: str, slug: str) -> None:
    assert kebab_case(name) == slug


def test_class_metadata_defaults() -> None:
    assert Warehouse.block_type_slug == "warehouse"
    assert Warehouse.block_type_name == "Warehouse"
    assert Warehouse.block_description == "Where the numbers live."
    assert Warehouse.block_code_example is not None
    assert 'Warehouse.load("my-warehouse")' in Warehouse.block_code_example
    assert Pipeline.block_type_slug == "data-pipeline"
    assert Block.block_type_slug == "block"  # a subclass never changes the base's values


def test_a_subclass_without_a_docstring_has_an_empty_description() -> None:
    class Bare(Block):
        value: int

    assert Bare.block_description == ""
    assert Bare.block_type_slug == "bare"


def test_explicit_metadata_wins() -> None:
    class Ftp(Block):
        """Docstring."""

        block_type_slug: ClassVar[str] = "ftp-server"
        block_type_name: ClassVar[str] = "FTP server"
        block_description: ClassVar[str] = "Host and login of an FTP server."
        block_capabilities: ClassVar[tuple[str, ...]] = ("read-path",)

        host: str

    created = block_type_create(Ftp)
    assert (created.slug, created.name, created.description) == ("ftp-server", "FTP server", Ftp.block_description)
    assert block_schema_create(Ftp).capabilities == ["read-path"]


# -- secrets -----------------------------------------------------------------------------------------


def test_secret_fields_walk_optional_unions_plain_models_and_secret_dicts() -> None:
    assert Warehouse.secret_fields() == ["password", "key", "options.*", "login.password"]
    assert Pipeline.secret_fields() == []  # nested blocks keep their own secrets
    assert Secret.secret_fields() == ["value"]
    assert String.secret_fields() == []


def test_secrets_never_appear_in_repr_str_dumps_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    block = make_warehouse()
    shown = [repr(block), str(block), repr(block.options), str(block.options), block.model_dump_json()]
    shown.append(str(block.model_dump(mode="json")))
    with caplog.at_level(logging.INFO):
        logging.getLogger("test.blocks").info("loaded %s / %r", block, block)
    shown.append(caplog.text)
    for text in shown:
        for secret in SECRETS:
            assert secret not in text, text
    assert "db.internal" in repr(block)
    assert "token" in repr(block.options)  # the keys stay visible


def test_secret_dict_reads_values_explicitly() -> None:
    secrets = SecretDict({"a": "1"}, b="2")
    assert secrets["a"] == "1"
    assert dict(secrets) == {"a": "1", "b": "2"}
    assert secrets.get_secret_value() == {"a": "1", "b": "2"}
    assert secrets.masked() == {"a": OBFUSCATED, "b": OBFUSCATED}
    assert pickle.loads(pickle.dumps(secrets)) == secrets
    with pytest.raises(TypeError):
        SecretDict({1: "x"})  # type: ignore[dict-item]


def test_secret_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(ValidationError):
        Warehouse(host="h", password="p", options=["not", "a", "mapping"])  # type: ignore[arg-type]


def test_include_secrets_context_round_trips_every_secret() -> None:
    block = make_warehouse()
    dumped = block.model_dump_with_secrets()
    assert dumped["password"] == "pw-top-secret"
    assert dumped["key"] == "key-top-secret"
    assert dumped["options"] == {"token": "tok-top-secret"}
    assert dumped["login"]["password"] == "login-top-secret"
    assert Warehouse.model_validate(dumped) == block


def test_builtin_system_blocks() -> None:
    assert Secret(value="pw").get() == "pw"
    assert Secret(value=SecretStr("pw")).get() == "pw"
    assert Secret(value={"user": "u", "password": "p"}).get() == {"user": "u", "password": "p"}
    assert "p" not in repr(Secret(value={"password": "zzz-secret"})).replace("password", "")
    assert JSON(value=[1, {"a": None}]).value == [1, {"a": None}]
    assert String(value="x").value == "x"
    assert DateTime(value="2026-01-02T03:04:05Z").value == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert [cls.block_type_slug for cls in (Secret, JSON, String, DateTime)] == [
        "secret",
        "json",
        "string",
        "date-time",
    ]


# -- the schema ----------------------------------------------------------------------------------------


def test_schema_create_is_stable_and_names_secrets() -> None:
    first, second = block_schema_create(Warehouse), block_schema_create(Warehouse)
    assert first == second
    assert first.block_type_slug == "warehouse"
    assert first.secret_fields == ["password", "key", "options.*", "login.password"]
    assert set(first.fields["properties"]) == {"host", "port", "password", "key", "options", "login"}
    assert first.fields["properties"]["options"]["writeOnly"] is True


# -- serialization ---------------------------------------------------------------------------------


def test_wire_data_has_secrets_in_clear_and_nested_blocks_as_references() -> None:
    nested_id = uuid4()
    pipeline = Pipeline(warehouse=make_warehouse())
    data = wire_data(pipeline, {"warehouse": nested_id})
    assert data == {"warehouse": {"$ref": str(nested_id)}, "fallback": None}
    plain = wire_data(make_warehouse(), {})
    assert plain["password"] == "pw-top-secret"
    BlockDocumentCreate(
        name="prod", block_type=block_type_create(Warehouse), block_schema=block_schema_create(Warehouse), data=plain
    )


def test_block_from_document_rebuilds_nested_blocks_and_keeps_their_ids() -> None:
    data = make_warehouse().model_dump_with_secrets()
    inner = document(Warehouse, data, name="anonymous-1", is_anonymous=True)
    outer = document(
        Pipeline, {"warehouse": {"$ref": str(inner.id)}, "fallback": None}, references={"warehouse": inner}
    )
    pipeline = block_from_document(Pipeline, outer)
    assert pipeline.block_document_id == outer.id
    assert pipeline.warehouse == make_warehouse()
    assert pipeline.warehouse.block_document_id == inner.id
    assert pipeline.warehouse.password.get_secret_value() == "pw-top-secret"


def test_a_stale_document_names_the_block_the_fields_and_the_fix() -> None:
    stale = document(Warehouse, {"port": "not a number", "password": "x"}, name="old-one")
    with pytest.raises(BlockInvalid) as caught:
        block_from_document(Warehouse, stale)
    message = str(caught.value)
    assert "'old-one'" in message
    assert "'warehouse'" in message
    assert "host" in message
    assert "port" in message
    assert "overwrite=True" in message
    assert "\n" not in message


def test_a_document_of_another_type_is_refused() -> None:
    with pytest.raises(BlockTypeMismatch, match="of type 'string', not 'json'"):
        block_from_document(JSON, document(String, {"value": "x"}))


class Keyring(Block):
    """Secrets inside containers: dotted paths cannot name list items, so each such field is one secret."""

    tokens: dict[str, SecretStr] = Field(default_factory=dict)
    keys: list[SecretStr] = Field(default_factory=list)
    logins: list[Login] = Field(default_factory=list)
    warehouses: list[Warehouse] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    pairs: dict[str, tuple[int, SecretBytes]] = Field(default_factory=dict)


def test_a_container_holding_secrets_is_one_secret_field() -> None:
    assert Keyring.secret_fields() == ["tokens", "keys", "logins", "warehouses", "pairs"]
    dumped = Keyring(tokens={"a": "t-1"}, keys=["k-1"], logins=[{"user": "u", "password": "l-1"}]).model_dump(
        mode="json"
    )
    for secret in ("t-1", "k-1", "l-1"):
        assert secret not in str(dumped)


def test_secret_bytes_that_are_not_utf8_are_refused_on_save_not_corrupted() -> None:
    block = Warehouse(host="h", password="p", key=b"\xff\xfe-binary")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        wire_data(block, {})
    assert wire_data(Warehouse(host="h", password="p", key=b"text"), {})["key"] == "text"
