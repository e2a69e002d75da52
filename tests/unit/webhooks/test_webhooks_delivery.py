"""Webhook delivery end to end: EventWriter + outbox in PostgreSQL + Deliverer + a local receiver on 127.0.0.1.

Every signature verifies; failures (500, timeouts, a database that is briefly away) are retried; every expected
event arrives, none that was not subscribed; a duplicate only ever is the retry of a request the receiver processed
but answered too late (same event id, de-duplicated by the receiver); an event is given up after max_attempts."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from callcore.events import AgentEvent, CallEvent, utcnow
from callcore.store.writer import EventWriter
from callcore.webhooks.config import WebhookConfig
from callcore.webhooks.delivery import Deliverer, backoff_delay
from callcore.webhooks.outbox import WebhookOutbox
from callcore.webhooks.payload import event_body
from callcore.webhooks.signing import ATTEMPT_HEADER, EVENT_TYPE_HEADER, TIMESTAMP_HEADER, WEBHOOK_HEADER
from tests.unit.webhooks.receiver import SECRET, SECRET_ENV, Receiver, wait_until


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def hook(url: str, **kw: Any) -> WebhookConfig:
    settings: dict[str, Any] = {"name": "crm", "url": url, "events": ["call.*", "acd.connected", "agent.*"],
                                "secret_env": SECRET_ENV, "timeout": 0.3, "backoff_initial": 0.02,
                                "backoff_max": 0.1, "max_attempts": 10, **kw}
    return WebhookConfig.model_validate(settings)


class Pipeline:
    """The production wiring in miniature: writer (with the outbox hook) → PostgreSQL → deliverer."""

    def __init__(self, pool: Any, webhooks: list[WebhookConfig], **deliverer_kw: Any) -> None:
        self.pool = pool
        self.outbox = WebhookOutbox(webhooks)
        self.deliverer = Deliverer(pool, webhooks, poll_interval=0.05, housekeeping_interval=0.05,
                                   rng=random.Random(7), **deliverer_kw)
        self.writer = EventWriter(pool, flush_interval=0.01, outbox=self.outbox, on_commit=self.deliverer.notify)

    async def start(self) -> Pipeline:
        await self.writer.start()
        await self.deliverer.start()
        return self

    async def close(self) -> None:
        await self.deliverer.close(timeout=2)
        await self.writer.close()

    async def rows(self) -> list[Any]:
        return await self.pool.fetch("SELECT * FROM webhook_outbox ORDER BY id")


def mixed_events(n_calls: int = 4) -> list[CallEvent | AgentEvent]:
    events: list[CallEvent | AgentEvent] = []
    for i in range(n_calls):
        call = uuid.uuid4()
        events += [
            CallEvent(call, "call_started", utcnow(), "ch", {"direction": "inbound", "did": "1000"}),
            CallEvent(call, "queued", utcnow(), "ch", {"queue": "sales", "position": 1}),  # acd.queued: not wanted
            CallEvent(call, "connected", utcnow(), "ch", {"queue": "sales", "agent": f"a{i}", "wait_seconds": 1.5}),
            AgentEvent(f"a{i}", "on_call", utcnow(), previous="reserved", call_id=call, queue="sales"),
            CallEvent(call, "call_ended", utcnow(), "ch", {"reason": "hangup"}),
        ]
    return events


def wanted(events: list[CallEvent | AgentEvent]) -> list[str]:
    return [str(e.event_id) for e in events if not (isinstance(e, CallEvent) and e.type == "queued")]


@pytest.fixture
async def receiver_factory() -> AsyncIterator[Any]:
    started: list[Receiver] = []

    async def make(*args: Any, **kw: Any) -> Receiver:
        r = await Receiver(*args, **kw).start()
        started.append(r)
        return r

    try:
        yield make
    finally:
        for r in started:
            await r.stop()


async def test_every_event_arrives_signed_once_after_500s_and_a_timeout(pg_pool: Any, receiver_factory: Any):
    receiver = await receiver_factory(["500", "500", "timeout", "500", "500"])
    p = await Pipeline(pg_pool, [hook(receiver.url)]).start()
    try:
        events = mixed_events()
        for e in events:
            p.writer.emit(e)
        await p.writer.flush()
        expected = wanted(events)
        await wait_until(lambda: set(receiver.unique) >= set(expected), what="every event at the receiver")
        await wait_until(lambda: p.deliverer.stats["crm"].delivered >= len(expected), what="outcomes recorded")
    finally:
        await p.close()

    assert set(receiver.unique) == set(expected)  # exactly the subscribed events: none lost, none extra
    assert receiver.bad_signatures == 0 and all(r["signed"] for r in receiver.requests)
    assert len(receiver.timed_out) == 1
    assert receiver.duplicates == receiver.timed_out  # the only duplicate: the retry of the late answer
    for event in events:
        if str(event.event_id) in receiver.unique:
            assert receiver.unique[str(event.event_id)] == event_body(event)
    first = receiver.requests[0]["headers"]
    assert first[WEBHOOK_HEADER] == "crm" and first[EVENT_TYPE_HEADER] == receiver.requests[0]["body"]["type"]
    assert abs(int(first[TIMESTAMP_HEADER]) - time.time()) < 60
    assert first["Content-Type"] == "application/json" and first["User-Agent"].startswith("callcore-webhooks/")
    retried = [r for r in receiver.requests if r["headers"][ATTEMPT_HEADER] != "1"]
    assert len(retried) == 5  # the four 500s and the timeout, each tried again

    rows = await p.rows()
    assert len(rows) == len(expected) and all(r["delivered_at"] is not None for r in rows)
    assert sum(r["attempts"] for r in rows) == len(expected) + 5
    assert all(r["last_error"] is None and r["last_status"] == 204 for r in rows)
    stats = p.deliverer.stats["crm"]
    assert (stats.delivered, stats.retried, stats.gave_up) == (len(expected), 5, 0)


async def test_an_event_is_given_up_after_max_attempts_kept_with_its_error_and_counted(pg_pool: Any,
                                                                                      receiver_factory: Any):
    receiver = await receiver_factory(always="500")
    p = await Pipeline(pg_pool, [hook(receiver.url, max_attempts=3)]).start()
    try:
        for e in mixed_events(1)[:2]:  # call.call_started (wanted), acd.queued (not)
            p.writer.emit(e)
        await p.writer.flush()
        await wait_until(lambda: p.deliverer.stats["crm"].gave_up == 1, what="the give-up")
    finally:
        await p.close()
    (row,) = await p.rows()
    assert row["failed_at"] is not None and row["delivered_at"] is None
    assert (row["attempts"], row["last_status"], row["last_error"]) == (3, 500, "HTTP 500: receiver down")
    assert len(receiver.requests) == 3 and not receiver.unique
    registry = CollectorRegistry()
    registry.register(p.deliverer.metrics_collector(p.outbox))
    text = generate_latest(registry).decode()
    assert 'callcore_webhook_deliveries_total{outcome="gave_up",webhook="crm"} 1.0' in text
    assert 'callcore_webhook_deliveries_total{outcome="retry",webhook="crm"} 2.0' in text
    assert 'callcore_webhook_pending{webhook="crm"}' in text


async def test_a_receiver_that_is_down_is_probed_not_flooded_and_its_backlog_then_flows(pg_pool: Any,
                                                                                        receiver_factory: Any):
    receiver = await receiver_factory(always="500")
    p = await Pipeline(pg_pool, [hook(receiver.url, concurrency=2, backoff_initial=0.05, backoff_max=0.2)]).start()
    try:
        events = mixed_events(6)  # 24 wanted events, 12 rounds of 2 without the pause
        for e in events:
            p.writer.emit(e)
        await p.writer.flush()
        await asyncio.sleep(0.6)
        during_outage = len(receiver.requests)
        receiver.always = None  # back up
        await wait_until(lambda: len(receiver.unique) == len(wanted(events)), what="the backlog")
    finally:
        await p.close()
    # paused 0.025-0.05 s, then 0.05-0.1, then 0.1-0.2 s after each failed round of 2: a handful of probes,
    # not every row's retries (which would be all 24 rows within a few milliseconds, again and again)
    assert 2 <= during_outage <= 16, during_outage
    rows = await p.rows()
    assert all(r["delivered_at"] is not None for r in rows) and max(r["attempts"] for r in rows) <= 12
    assert sum(r["attempts"] > 1 for r in rows) <= 16  # most rows never used an attempt on the outage


async def test_with_concurrency_1_and_no_failures_events_arrive_in_commit_order(pg_pool: Any, receiver_factory: Any):
    receiver = await receiver_factory()
    p = await Pipeline(pg_pool, [hook(receiver.url, concurrency=1)]).start()
    try:
        events = mixed_events(6)
        for e in events:
            p.writer.emit(e)
        await p.writer.flush()
        await wait_until(lambda: len(receiver.order) == len(wanted(events)), what="every event")
    finally:
        await p.close()
    assert receiver.order == wanted(events) and not receiver.duplicates


async def test_two_deliverers_on_one_outbox_never_send_an_event_twice(pg_pool: Any, receiver_factory: Any):
    receiver = await receiver_factory()
    webhooks = [hook(receiver.url)]
    p = await Pipeline(pg_pool, webhooks).start()
    other = Deliverer(pg_pool, webhooks, poll_interval=0.01)  # e.g. a second process
    await other.start()
    try:
        events = mixed_events(12)
        for e in events:
            p.writer.emit(e)
        await p.writer.flush()
        await wait_until(lambda: len(receiver.unique) == len(wanted(events)), what="every event")
    finally:
        await other.close()
        await p.close()
    assert not receiver.duplicates and len(receiver.requests) == len(wanted(events))
    assert other.stats["crm"].delivered > 0 and p.deliverer.stats["crm"].delivered > 0


async def test_redirects_are_not_followed(pg_pool: Any, receiver_factory: Any):
    receiver = await receiver_factory(always="302")
    p = await Pipeline(pg_pool, [hook(receiver.url, max_attempts=1)]).start()
    try:
        p.writer.emit(mixed_events(1)[0])
        await p.writer.flush()
        await wait_until(lambda: p.deliverer.stats["crm"].gave_up == 1, what="the give-up")
    finally:
        await p.close()
    (row,) = await p.rows()
    assert row["last_status"] == 302 and receiver.other_path_hits == 0


async def test_stopping_is_bounded_and_an_interrupted_attempt_is_sent_again_later(pg_pool: Any,
                                                                                 receiver_factory: Any):
    receiver = await receiver_factory(["hang"])
    p = await Pipeline(pg_pool, [hook(receiver.url, timeout=20)]).start()
    p.writer.emit(mixed_events(1)[0])
    await p.writer.flush()
    await wait_until(lambda: len(receiver.requests) == 1, what="the attempt")
    started = time.monotonic()
    await p.deliverer.close(timeout=0.2)
    assert time.monotonic() - started < 2.0
    await p.writer.close()
    (row,) = await p.rows()
    assert row["delivered_at"] is None and row["failed_at"] is None and row["attempts"] == 1
    assert await pg_pool.fetchval("SELECT next_attempt_at > now() + interval '40 seconds' FROM webhook_outbox")

    # After its lease the row is due again: a new deliverer sends it.
    await pg_pool.execute("UPDATE webhook_outbox SET next_attempt_at = now()")
    again = Deliverer(pg_pool, [hook(receiver.url)], poll_interval=0.02)
    await again.start()
    try:
        await wait_until(lambda: again.stats["crm"].delivered == 1, what="the second attempt")
    finally:
        await again.close()
    assert (await p.rows())[0]["attempts"] == 2


class FlakyPool:
    """The pool, with the first ``failures`` claims failing as if PostgreSQL were away."""

    def __init__(self, pool: Any, failures: int) -> None:
        self.pool, self.failures = pool, failures

    async def fetch(self, sql: str, *args: Any) -> Any:
        if "FOR UPDATE SKIP LOCKED" in sql and self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("database away")
        return await self.pool.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> Any:
        return await self.pool.execute(sql, *args)


async def test_the_database_being_away_delays_delivery_but_loses_nothing(pg_pool: Any, receiver_factory: Any):
    receiver = await receiver_factory()
    p = Pipeline(pg_pool, [hook(receiver.url)])
    p.deliverer = Deliverer(FlakyPool(pg_pool, 3), [hook(receiver.url)], poll_interval=0.02, db_retry=0.02)
    await p.start()
    try:
        events = mixed_events(2)
        for e in events:
            p.writer.emit(e)
        await p.writer.flush()
        await wait_until(lambda: len(receiver.unique) == len(wanted(events)), what="every event")
    finally:
        await p.close()
    assert not receiver.duplicates


async def test_purge_removes_old_delivered_and_given_up_rows_only(pg_pool: Any):
    outbox = WebhookOutbox([hook("http://127.0.0.1:9/hook")])
    writer = EventWriter(pg_pool, outbox=outbox)
    for e in mixed_events(2):
        writer.emit(e)
    await writer.flush()
    await writer.close()
    ids = [r["id"] for r in await pg_pool.fetch("SELECT id FROM webhook_outbox ORDER BY id")]
    assert len(ids) == 8
    await pg_pool.execute("UPDATE webhook_outbox SET delivered_at = now() - interval '8 days' WHERE id = $1", ids[0])
    await pg_pool.execute("UPDATE webhook_outbox SET delivered_at = now() - interval '1 day' WHERE id = $1", ids[1])
    await pg_pool.execute("UPDATE webhook_outbox SET failed_at = now() - interval '31 days' WHERE id = $1", ids[2])
    await pg_pool.execute("UPDATE webhook_outbox SET failed_at = now() - interval '2 days' WHERE id = $1", ids[3])
    d = Deliverer(pg_pool, [hook("http://127.0.0.1:9/hook")], keep_delivered=timedelta(days=7),
                  keep_failed=timedelta(days=30))
    assert await d.purge(batch=1) == 2
    left = [r["id"] for r in await pg_pool.fetch("SELECT id FROM webhook_outbox ORDER BY id")]
    assert left == ids[1:2] + ids[3:]
    await d.refresh_backlog()
    assert d.stats["crm"].pending == 4 and d.stats["crm"].oldest_pending_seconds >= 0


async def test_rows_of_a_webhook_that_is_not_enabled_are_kept_and_reported(pg_pool: Any):
    writer = EventWriter(pg_pool, outbox=WebhookOutbox([hook("http://127.0.0.1:9/hook", name="old")]))
    writer.emit(mixed_events(1)[0])
    await writer.close()
    d = Deliverer(pg_pool, [hook("http://127.0.0.1:9/hook")])
    await d.refresh_backlog()
    assert d.orphaned == {"old": 1} and d.stats["crm"].pending == 0


def test_backoff_doubles_is_capped_jittered_and_honours_retry_after():
    rng = random.Random(1)
    for attempts, base in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0), (1000, 60.0)]:
        delays = [backoff_delay(attempts, 1.0, 60.0, rng=rng) for _ in range(200)]
        assert base / 2 <= min(delays) and max(delays) <= base, attempts
        assert max(delays) - min(delays) > base / 4  # really jittered
    assert backoff_delay(1, 1.0, 60.0, rng=rng, retry_after=30) == 30
    assert backoff_delay(1, 1.0, 60.0, rng=rng, retry_after=3600) == 60
