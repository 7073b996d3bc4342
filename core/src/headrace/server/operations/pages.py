"""One page of a query: its rows and the total count of matches, read in one snapshot."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


async def fetch_page(
    session: AsyncSession, query: sa.Select[Any], order_by: list[Any], *, limit: int, offset: int
) -> tuple[list[Any], int]:
    """``query`` (a ``select(Model)`` with its filters) sorted, sliced, and the number of all its matches."""
    total = await session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
    rows = (await session.scalars(query.order_by(*order_by).limit(limit).offset(offset))).all()
    return list(rows), int(total or 0)
