"""Variables: small named JSON values (at most ``MAX_VARIABLE_VALUE_BYTES``) that flows read at run time."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from headrace.schemas.artifacts import Variable, VariableCreate, VariableFilter, VariableSort, VariableUpdate
from headrace.schemas.base import Page, utcnow
from headrace.server.db import Database, models
from headrace.server.db.types import json_contains_all
from headrace.server.errors import Problem
from headrace.server.operations.pages import fetch_page

__all__ = ["create_variable", "delete_variable", "read_variable", "read_variables", "update_variable"]


def _not_found(name: str) -> Problem:
    return Problem(404, f"no variable named {name!r}", kind="variable-not-found")


def _taken(name: str) -> Problem:
    return Problem(
        409, f"a variable named {name!r} exists already: update it (PATCH) or delete it first", kind="variable-exists"
    )


async def create_variable(database: Database, variable: VariableCreate) -> Variable:
    """Store a new variable; 409 when the name is taken."""
    now = utcnow()
    row = models.Variable(
        id=uuid.uuid4(), name=variable.name, value=variable.value, tags=variable.tags, created=now, updated=now
    )
    try:
        async with database.write() as session:
            taken = await session.scalar(sa.select(models.Variable.id).where(models.Variable.name == variable.name))
            if taken is not None:
                raise _taken(variable.name)
            session.add(row)
    except IntegrityError:  # a concurrent create (another replica) won between the check and the insert
        raise _taken(variable.name) from None
    return Variable.model_validate(row)


async def read_variable(database: Database, name: str) -> Variable:
    async with database.read() as session:
        row = await session.scalar(sa.select(models.Variable).where(models.Variable.name == name))
    if row is None:
        raise _not_found(name)
    return Variable.model_validate(row)


async def update_variable(database: Database, name: str, update: VariableUpdate) -> Variable:
    """Change the fields ``update`` sets (``value`` may be set to null); 404 when there is no such variable."""
    changes: dict[str, Any] = {}
    if "value" in update.model_fields_set:
        changes["value"] = update.value
    if update.tags is not None:
        changes["tags"] = update.tags
    async with database.write() as session:
        row = await session.scalar(sa.select(models.Variable).where(models.Variable.name == name).with_for_update())
        if row is None:
            raise _not_found(name)
        for field, value in changes.items():
            setattr(row, field, value)
        if changes:
            row.updated = utcnow()
        await session.flush()
        return Variable.model_validate(row)


async def delete_variable(database: Database, name: str) -> None:
    async with database.write() as session:
        deleted = await session.scalar(
            sa.delete(models.Variable).where(models.Variable.name == name).returning(models.Variable.id)
        )
    if deleted is None:
        raise _not_found(name)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def read_variables(database: Database, variable_filter: VariableFilter) -> Page[Variable]:
    query = sa.select(models.Variable)
    if variable_filter.name_like:
        pattern = f"%{_escape_like(variable_filter.name_like)}%"
        query = query.where(models.Variable.name.ilike(pattern, escape="\\"))
    if variable_filter.names:
        query = query.where(models.Variable.name.in_(variable_filter.names))
    if variable_filter.tags:
        query = query.where(json_contains_all(models.Variable.__table__.c.tags, variable_filter.tags))
    if variable_filter.sort is VariableSort.UPDATED_DESC:
        order = [models.Variable.updated.desc(), models.Variable.name.asc()]
    else:
        order = [models.Variable.name.asc()]
    async with database.read() as session:
        rows, total = await fetch_page(
            session, query, order, limit=variable_filter.limit, offset=variable_filter.offset
        )
    return Page[Variable](
        items=[Variable.model_validate(row) for row in rows],
        total=total,
        limit=variable_filter.limit,
        offset=variable_filter.offset,
    )
