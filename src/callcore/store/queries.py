"""Small read helpers over the event store (used by tests and, later, the API)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

Queryable = asyncpg.Pool | asyncpg.Connection


async def call_events_for(db: Queryable, call_id: uuid.UUID) -> list[asyncpg.Record]:
    """Every event of ``call_id`` in emit order (id order)."""
    return await db.fetch(
        "SELECT id, event_id, call_id, channel_id, occurred_at, type, payload, written_at"
        " FROM call_events WHERE call_id = $1 ORDER BY id",
        call_id,
    )


async def call_row(db: Queryable, call_id: uuid.UUID) -> asyncpg.Record | None:
    """The ``calls`` projection row of ``call_id``, or None."""
    return await db.fetchrow("SELECT * FROM calls WHERE call_id = $1", call_id)


async def count_calls(db: Queryable, since: datetime, until: datetime | None = None) -> int:
    """Number of calls started in ``[since, until)`` (``until`` open when None)."""
    if until is None:
        return await db.fetchval("SELECT count(*) FROM calls WHERE started_at >= $1", since)
    return await db.fetchval("SELECT count(*) FROM calls WHERE started_at >= $1 AND started_at < $2", since, until)


async def count_events(db: Queryable) -> int:
    return await db.fetchval("SELECT count(*) FROM call_events")


async def latest_agent_states(db: Queryable) -> dict[str, tuple[str, str | None]]:
    """Each agent's last recorded state and reason (to rebuild agent state after a restart)."""
    rows = await db.fetch(
        "SELECT DISTINCT ON (agent_id) agent_id, state, reason FROM agent_events ORDER BY agent_id, id DESC"
    )
    return {r["agent_id"]: (r["state"], r["reason"]) for r in rows}
