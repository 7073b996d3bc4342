"""Column types and SQL helpers that behave the same on SQLite and PostgreSQL.

- :class:`UtcDateTime`: timezone-aware UTC timestamps. PostgreSQL stores ``timestamptz``; SQLite has no
  time zones, so values are stored as UTC text and come back aware. Naive datetimes are refused, so a
  local time can never be stored as if it were UTC.
- :data:`JSON_TYPE`: ``JSONB`` on PostgreSQL (containment operators, indexable), ``JSON`` text on SQLite.
  Python ``None`` is stored as SQL ``NULL``.
- :data:`UUID_TYPE`: native ``uuid`` on PostgreSQL, 32 hex characters on SQLite; always :class:`uuid.UUID`
  in Python.
- :class:`RetryDelays`: ``retry_delay_seconds`` (one number, or one per retry) stored as a JSON array.
- :func:`str_enum`: an enum stored as its string values in a ``VARCHAR`` (no native enum type, so adding
  a value never needs a migration).
- :func:`json_contains_all`: "this JSON array holds every one of these values", e.g. tag filters.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import sqlalchemy as sa
from pydantic_core import from_json, to_json
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler, TypeCompiler
from sqlalchemy.sql.functions import FunctionElement

__all__ = [
    "ENUM_LENGTH",
    "JSON_TYPE",
    "UUID_TYPE",
    "PortableJSON",
    "RetryDelays",
    "UtcDateTime",
    "json_contains_all",
    "json_dumps",
    "render_migration_type",
    "str_enum",
]

#: Stored length of enum columns: room for longer values than today's without a migration.
ENUM_LENGTH = 32


class PortableJSON(sa.JSON):
    """``JSON`` on SQLite, ``JSONB`` on PostgreSQL: what ``JSON().with_variant(JSONB(), "postgresql")`` does,
    without importing SQLAlchemy's PostgreSQL dialect to build the variant.

    Why: the variant is an instance of ``sqlalchemy.dialects.postgresql.JSONB``, and importing that package
    (every PostgreSQL driver's dialect with it) was ~15 ms of a SQLite server's start-up. Here ``JSONB`` is
    made the first time a PostgreSQL dialect asks for this type's implementation (``_gen_dialect_impl``,
    SQLAlchemy's hook for per-dialect types, which ``with_variant`` also goes through), and the type's DDL
    name is ``JSONB`` there (``_compile_portable_json_pg``), so migrations and casts see what they saw.
    It is still an ``sa.JSON`` (same comparator; ``db.driver`` recognises JSON columns by that).
    """

    cache_ok = True

    def _gen_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB  # loaded with the dialect that asks

            return JSONB(none_as_null=self.none_as_null)._gen_dialect_impl(dialect)
        return super()._gen_dialect_impl(dialect)


@compiles(PortableJSON, "postgresql")
def _compile_portable_json_pg(type_: PortableJSON, compiler: TypeCompiler, **kw: Any) -> str:
    return "JSONB"


JSON_TYPE: sa.types.TypeEngine[Any] = PortableJSON(none_as_null=True)
UUID_TYPE: sa.types.TypeEngine[Any] = sa.Uuid(as_uuid=True)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect; naive datetimes are an error."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the database: attach a time zone (UTC)")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class RetryDelays(sa.types.TypeDecorator[Any]):
    """Retry delays, ``float | list[float]`` in Python, always a JSON *array* in the database.

    Why an array even for one number: SQLite gives a column declared ``JSON`` numeric affinity, so a bare
    JSON number would come back as a REAL that the JSON type cannot decode. ``[d]`` means what ``d`` means
    (the last delay repeats), and reads back as ``d``.
    """

    impl = JSON_TYPE
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or isinstance(value, list):
            return value
        return [float(value)]

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, list) and len(value) == 1:
            return float(value[0])
        return value

    @classmethod
    def as_read(cls, value: Any) -> Any:
        """``value`` as it reads back once stored (``[d]`` reads back as ``d``)."""
        if value is None or isinstance(value, list):
            return float(value[0]) if value is not None and len(value) == 1 else value
        return float(value)


def str_enum(enum_class: type[enum.Enum]) -> sa.Enum:
    """An enum column holding the members' string *values* (``"markdown"``, not ``"MARKDOWN"``)."""
    return sa.Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=ENUM_LENGTH,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


def json_dumps(value: Any) -> str:
    """The engines' JSON serializer: understands datetimes, UUIDs, enums and pydantic models."""
    return to_json(value).decode()


def json_loads(text: str | bytes) -> Any:
    """The engines' JSON deserializer: pydantic-core's parser, which reads the small documents the columns
    hold (state details, tags, parameters) 4-10 times faster than the standard library's, to the same values.
    A transition's read on PostgreSQL decodes five of them."""
    return from_json(text)


class json_contains_all(FunctionElement[bool]):
    """True when the JSON array of strings in ``column`` contains every one of ``values`` (true for none).

    Renders ``column @> jsonb_build_array(...)`` on PostgreSQL (indexable with GIN) and one
    ``EXISTS (SELECT 1 FROM json_each(column) ...)`` per value on SQLite, so
    ``select(FlowRun).where(json_contains_all(FlowRun.tags, ["a", "b"]))`` works on both.
    """

    type = sa.Boolean()
    inherit_cache = True
    name = "json_contains_all"

    def __init__(self, column: sa.ColumnElement[Any], values: Sequence[str]) -> None:
        # The values are bound parameters of this element itself, so cached statements get new values.
        binds = [sa.bindparam(None, str(value), type_=sa.String()) for value in values]
        super().__init__(column, *binds)

    def _parts(self) -> tuple[sa.ColumnElement[Any], list[sa.ColumnElement[Any]]]:
        column, *binds = self.clauses.clauses
        return column, binds

    def _sqlite(self) -> sa.ColumnElement[bool]:
        column, binds = self._parts()
        clauses: list[sa.ColumnElement[bool]] = []
        for bind in binds:
            each = sa.func.json_each(column).table_valued("value")
            clauses.append(sa.exists(sa.select(sa.literal_column("1")).select_from(each).where(each.c.value == bind)))
        return sa.and_(sa.true(), *clauses)

    def _postgresql(self) -> sa.ColumnElement[bool]:
        column, binds = self._parts()
        if not binds:
            return sa.true()
        return column.op("@>")(sa.func.jsonb_build_array(*binds))


@compiles(json_contains_all)
def _compile_json_contains_all_default(element: json_contains_all, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element._sqlite(), **kw)


@compiles(json_contains_all, "postgresql")
def _compile_json_contains_all_pg(element: json_contains_all, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element._postgresql(), **kw)


def render_migration_type(kind: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Alembic's ``render_item``: autogenerated revisions spell headrace's column types in plain SQLAlchemy,
    so that a revision stays as it was written when these classes change."""
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(obj, PortableJSON):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return 'sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")'
    return False
