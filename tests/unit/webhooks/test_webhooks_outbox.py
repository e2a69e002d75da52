"""The transactional outbox (real PostgreSQL): rows are written in the same transaction as their events, for the
enabled webhooks whose patterns match, never twice; a failing batch writes neither; a bad outbox row never costs an
event (nor the other rows)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from callcore.events import AgentEvent, CallEvent, utcnow
from callcore.store.writer import EventWriter
from callcore.webhooks.config import WebhookConfig
from callcore.webhooks.outbox import Row, WebhookOutbox
from callcore.webhooks.payload import event_body
from tests.unit.webhooks.receiver import SECRET, SECRET_ENV


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def hook(name: str, events: list[str], enabled: bool = True) -> WebhookConfig:
    return WebhookConfig(name=name, url="https://example.org/hook", events=events, secret_env=SECRET_ENV,
                         enabled=enabled)


def hooks() -> list[WebhookConfig]:
    return [hook("crm", ["call.*", "acd.connected"]), hook("wall", ["acd.*", "agent.*"]), hook("off", ["*"], False)]


def events() -> list[CallEvent | AgentEvent]:
    call = uuid.uuid4()
    return [
        CallEvent(call, "call_started", utcnow(), "ch-1", {"did": "1000"}),
        CallEvent(call, "queued", utcnow(), "ch-1", {"queue": "sales"}),
        AgentEvent("a1", "reserved", utcnow(), previous="ready", call_id=call, queue="sales"),
        CallEvent(call, "connected", utcnow(), "ch-1", {"queue": "sales", "agent": "a1"}),
        CallEvent(call, "dtmf", utcnow(), "ch-1", {"digit": "5"}),
    ]


async def outbox_rows(pool: Any) -> list[tuple[str, str, str]]:
    rows = await pool.fetch("SELECT webhook, event_id, event_type FROM webhook_outbox ORDER BY id")
    return [(r["webhook"], str(r["event_id"]), r["event_type"]) for r in rows]


def expected_rows(evs: list[CallEvent | AgentEvent]) -> list[tuple[str, str, str]]:
    s, q, r, c, d = (str(e.event_id) for e in evs)
    return [("crm", s, "call.call_started"), ("wall", q, "acd.queued"), ("wall", r, "agent.reserved"),
            ("crm", c, "acd.connected"), ("wall", c, "acd.connected"), ("crm", d, "call.dtmf")]


async def test_rows_for_the_enabled_webhooks_that_match_in_commit_order(pg_pool: Any):
    outbox = WebhookOutbox(hooks())
    writer = EventWriter(pg_pool, outbox=outbox)
    evs = events()
    for e in evs:
        writer.emit(e)
    await writer.close()
    assert await outbox_rows(pg_pool) == expected_rows(evs)
    payloads = await pg_pool.fetch("SELECT event_id, payload FROM webhook_outbox WHERE webhook = 'crm' ORDER BY id")
    by_id = {str(e.event_id): e for e in evs}
    assert all(r["payload"] == event_body(by_id[str(r["event_id"])]) for r in payloads)
    assert outbox.stats.rows == 6 and outbox.stats.skipped == 0
    due = await pg_pool.fetchval("SELECT count(*) FROM webhook_outbox WHERE next_attempt_at <= now() "
                                 "AND attempts = 0 AND delivered_at IS NULL AND failed_at IS NULL")
    assert due == 6


async def test_a_batch_written_again_queues_nothing_twice(pg_pool: Any):
    evs = events()
    for _ in range(2):  # e.g. a batch retried after its commit outcome was unknown
        writer = EventWriter(pg_pool, outbox=WebhookOutbox(hooks()))
        for e in evs:
            writer.emit(e)
        await writer.close()
    assert await outbox_rows(pg_pool) == expected_rows(evs)
    assert await pg_pool.fetchval("SELECT count(*) FROM call_events") == 4


class FailsOnce:
    """The real hook, then the connection "drops" before the commit, once."""

    def __init__(self, inner: WebhookOutbox) -> None:
        self.inner = inner
        self.failed = asyncio.Event()

    async def __call__(self, conn: Any, evs: Sequence[CallEvent | AgentEvent]) -> None:
        await self.inner(conn, evs)
        if not self.failed.is_set():
            self.failed.set()
            raise ConnectionResetError("connection lost before COMMIT")


async def test_a_failing_batch_writes_neither_events_nor_outbox_rows_then_both_once(pg_pool: Any):
    hook_ = FailsOnce(WebhookOutbox(hooks()))
    writer = EventWriter(pg_pool, outbox=hook_, flush_interval=0.01, retry_initial=0.5)
    await writer.start()
    evs = events()
    for e in evs:
        writer.emit(e)
    await asyncio.wait_for(hook_.failed.wait(), 5)
    # the writer now waits before retrying: the failed transaction left nothing behind
    assert await pg_pool.fetchval("SELECT count(*) FROM call_events") == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM agent_events") == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM webhook_outbox") == 0
    await asyncio.wait_for(writer.flush(), 5)
    await writer.close()
    assert await outbox_rows(pg_pool) == expected_rows(evs)
    assert await pg_pool.fetchval("SELECT count(*) FROM call_events") == 4
    assert writer.stats.retries == 1 and writer.stats.rejected == 0


class OneBadRow(WebhookOutbox):
    """Produces a row PostgreSQL refuses (a NUL character cannot be stored in jsonb)."""

    def rows(self, evs: Sequence[CallEvent | AgentEvent]) -> list[Row]:
        rows = super().rows(evs)
        webhook, event_id, type_, body = rows[1]
        rows[1] = (webhook, event_id, type_, body.replace('"queue"', '"\\u0000"'))
        return rows


async def test_a_bad_outbox_row_is_skipped_alone_and_never_costs_an_event(pg_pool: Any):
    outbox = OneBadRow(hooks())
    writer = EventWriter(pg_pool, outbox=outbox)
    evs = events()
    for e in evs:
        writer.emit(e)
    await writer.close()
    assert await outbox_rows(pg_pool) == [r for i, r in enumerate(expected_rows(evs)) if i != 1]
    assert outbox.stats.skipped == 1 and outbox.stats.rows == 5
    assert await pg_pool.fetchval("SELECT count(*) FROM call_events") == 4
    assert await pg_pool.fetchval("SELECT count(*) FROM agent_events") == 1
    assert writer.stats.rejected == 0


async def test_a_broken_hook_costs_its_rows_never_the_events(pg_pool: Any):
    async def broken(conn: Any, evs: Sequence[CallEvent | AgentEvent]) -> None:
        await conn.execute("INSERT INTO webhook_outbox (webhook, event_id, event_type, payload) "
                           "VALUES ('x', $1, 't', '{}')", evs[0].event_id)
        raise KeyError("a bug in the hook")

    writer = EventWriter(pg_pool, outbox=broken)
    evs = events()
    for e in evs:
        writer.emit(e)
    await writer.close()
    assert await pg_pool.fetchval("SELECT count(*) FROM call_events") == 4
    assert await pg_pool.fetchval("SELECT count(*) FROM webhook_outbox") == 0  # rolled back to the savepoint
    assert writer.stats.outbox_failed == 5 and writer.stats.rejected == 0 and writer.stats.written == 5


def test_no_hook_when_no_webhook_is_enabled():
    assert WebhookOutbox.for_config([hook("off", ["*"], False)]) is None
    assert WebhookOutbox.for_config([]) is None
    assert WebhookOutbox.for_config(hooks()) is not None
