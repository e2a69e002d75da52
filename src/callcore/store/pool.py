"""asyncpg connection pool with JSON codecs (json/jsonb values round-trip as Python dicts/lists)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def init_connection(conn: asyncpg.Connection) -> None:
    """Register text codecs for json and jsonb on one connection (used as the pool's ``init``)."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=json.dumps, decoder=json.loads, format="text"
        )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    """An asyncpg pool on ``dsn`` whose connections decode json/jsonb to Python objects (and encode them)."""
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=init_connection, **kwargs)
    assert pool is not None
    return pool


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    """One connection with the same codecs as :func:`create_pool`."""
    conn = await asyncpg.connect(dsn, **kwargs)
    await init_connection(conn)
    return conn
