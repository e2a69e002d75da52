"""Event store against a real PostgreSQL (embedded, or CALLCORE_TEST_DATABASE_URL)."""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from callcore.events import CallEvent, EventType
from callcore.store import (
    VARIABLES_SET,
    EmbeddedPostgres,
    EventWriter,
    MigrationError,
    call_events_for,
    call_row,
    count_calls,
    count_events,
    default_migrations_dir,
    migrate,
)

if not hasattr(sys.modules.get("tests.conftest"), "pg_pool"):  # until tests/conftest.py imports them
    from tests.pg import pg_dsn, pg_pool, pg_server  # noqa: F401

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)


def at(sec: float) -> datetime:
    return T0 + timedelta(seconds=sec)


# ---- migrations -------------------------------------------------------------------------------------------


SHIPPED = sorted(int(p.name[:4]) for p in default_migrations_dir().glob("[0-9][0-9][0-9][0-9]_*.sql"))
NEXT = SHIPPED[-1] + 1


async def test_migrations_apply_once_and_are_idempotent(pg_dsn: str) -> None:
    assert SHIPPED[:3] == [1, 2, 3]
    assert await migrate(pg_dsn) == SHIPPED
    assert await migrate(pg_dsn) == []
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows][:3] == [(1, "events"), (2, "calls"), (3, "agent_events")]
        assert all(len(r["checksum"]) == 64 for r in rows)
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"call_events", "calls", "agent_events", "schema_migrations"} <= tables
    finally:
        await conn.close()


async def test_changed_checksum_is_an_error(pg_dsn: str, tmp_path: Path) -> None:
    migs = tmp_path / "sql"
    shutil.copytree(default_migrations_dir(), migs)
    assert await migrate(pg_dsn, migs) == SHIPPED
    (migs / f"{NEXT:04d}_extra.sql").write_text("CREATE TABLE extra (x int);\n")
    assert await migrate(pg_dsn, migs) == [NEXT]
    with open(migs / "0002_calls.sql", "a") as f:
        f.write("\n-- edited after being applied\n")
    with pytest.raises(MigrationError, match=r"0002_calls\.sql was applied .* checksum"):
        await migrate(pg_dsn, migs)


async def test_failed_migration_rolls_back(pg_dsn: str, tmp_path: Path) -> None:
    migs = tmp_path / "sql"
    shutil.copytree(default_migrations_dir(), migs)
    (migs / f"{NEXT:04d}_broken.sql").write_text("CREATE TABLE half (x int);\nSELECT no_such_function();\n")
    with pytest.raises(MigrationError, match=f"{NEXT:04d}_broken.sql failed"):
        await migrate(pg_dsn, migs)
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == SHIPPED[-1]
        assert await conn.fetchval("SELECT to_regclass('half')") is None
    finally:
        await conn.close()


async def test_concurrent_migrations_do_not_race(pg_dsn: str) -> None:
    results = await asyncio.gather(*(migrate(pg_dsn) for _ in range(5)))
    assert sorted(results) == [[], [], [], [], SHIPPED]


# ---- writer -----------------------------------------------------------------------------------------------


def call_script(call_id: uuid.UUID, start: float, n: int) -> list[CallEvent]:
    """A plausible call: started, answered, variables, digits, hangup, ended."""
    ch = f"chan-{call_id.hex[:8]}"
    evs = [
        CallEvent(call_id, EventType.CALL_STARTED, at(start), ch, {"direction": "inbound", "did": f"10{n % 5}",
                  "caller_number": f"+3360000{n:04d}", "caller_name": f"Caller {n}", "config_version": "cfg-1"}),
        CallEvent(call_id, EventType.ANSWERED, at(start + 1), ch),
        CallEvent(call_id, VARIABLES_SET, at(start + 2), ch, {"lang": "fr", "n": n}),
        CallEvent(call_id, EventType.PLAYBACK_STARTED, at(start + 2.5), ch, {"media": "sound:welcome"}),
        CallEvent(call_id, EventType.DTMF, at(start + 3), ch, {"digit": "1"}),
        CallEvent(call_id, EventType.DIGITS_COLLECTED, at(start + 4), ch, {"digits": "1"}),
        CallEvent(call_id, VARIABLES_SET, at(start + 5), ch, {"lang": "en"}),
        CallEvent(call_id, EventType.HANGUP, at(start + 6), ch, {"cause": 16, "cause_text": "Normal Clearing"}),
        CallEvent(call_id, EventType.HANGUP, at(start + 6.5), ch, {"cause": 1, "cause_text": "late, ignored"}),
        CallEvent(call_id, EventType.CALL_ENDED, at(start + 7), ch, {"disposition": "answered"}),
    ]
    return evs


def interleave(scripts: list[list[CallEvent]], seed: int = 7) -> list[CallEvent]:
    """Merge per-call event lists randomly, keeping each call's own order (like concurrent calls)."""
    rnd = random.Random(seed)
    queues = [list(reversed(s)) for s in scripts]
    out = []
    while queues:
        i = rnd.randrange(len(queues))
        out.append(queues[i].pop())
        if not queues[i]:
            queues.pop(i)
    return out


async def test_writer_writes_10k_events_in_order_with_projection(pg_pool: asyncpg.Pool) -> None:
    calls = [uuid.uuid4() for _ in range(1000)]
    events = interleave([call_script(c, i * 0.01, i) for i, c in enumerate(calls)])
    assert len(events) == 10_000
    w = EventWriter(pg_pool, batch_max=500, flush_interval=0.05)
    await w.start()
    for i, e in enumerate(events):
        w.emit(e)
        if i % 1000 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(w.flush(), 60)
    await w.close()
    s = w.stats
    assert (s.written, s.dropped, s.rejected, s.buffered) == (10_000, 0, 0, 0)
    assert s.batches >= 20 and s.last_flush_latency is not None

    stored = [r["event_id"] for r in await pg_pool.fetch("SELECT event_id FROM call_events ORDER BY id")]
    assert stored == [e.event_id for e in events]
    assert await pg_pool.fetchval("SELECT count(*) FROM calls") == 1000
    assert await count_calls(pg_pool, T0) == 1000
    assert await count_calls(pg_pool, at(5), at(6)) == 100

    for n in (0, 517, 999):
        row = await call_row(pg_pool, calls[n])
        assert row is not None
        start = n * 0.01
        assert (row["direction"], row["did"], row["caller_number"]) == ("inbound", f"10{n % 5}", f"+3360000{n:04d}")
        assert row["started_at"] == at(start) and row["answered_at"] == at(start + 1)
        assert row["ended_at"] == at(start + 7) and row["disposition"] == "answered"
        assert (row["hangup_cause"], row["hangup_cause_text"]) == (16, "Normal Clearing")
        assert row["variables"] == {"lang": "en", "n": n} and row["config_version"] == "cfg-1"
        assert row["channel_id"] == f"chan-{calls[n].hex[:8]}"
        evs = await call_events_for(pg_pool, calls[n])
        assert [r["type"] for r in evs] == [e.type for e in call_script(calls[n], start, n)]
        assert evs[2]["payload"] == {"lang": "fr", "n": n}  # jsonb round-trips as a dict


async def test_projection_across_batches_and_out_of_order(pg_pool: asyncpg.Pool) -> None:
    c = uuid.uuid4()
    w = EventWriter(pg_pool)

    async def write(*evs: CallEvent) -> None:
        for e in evs:
            w.emit(e)
        await w.flush()

    # a re-adopted call: events arrive before (and without) its call_started
    await write(CallEvent(c, EventType.DTMF, at(10), "agent-leg", {"digit": "5"}))
    row = await call_row(pg_pool, c)
    assert row is not None and row["started_at"] == at(10) and row["channel_id"] == "agent-leg"
    assert row["direction"] is None and row["variables"] == {}
    await write(
        CallEvent(c, EventType.HANGUP, at(11), "agent-leg", {"cause": 17, "cause_text": "User busy"}),
        CallEvent(c, VARIABLES_SET, at(11), None, {"a": 1, "b": 2}),
    )
    await write(
        CallEvent(c, EventType.CALL_STARTED, at(9), "caller-leg", {"direction": "outbound", "did": "200"}),
        CallEvent(c, EventType.HANGUP, at(12), "caller-leg", {"cause": 16, "cause_text": "Normal Clearing"}),
        CallEvent(c, VARIABLES_SET, at(12), None, {"b": 3}),
        CallEvent(c, EventType.ANSWERED, at(9.5), "caller-leg"),
    )
    await write(
        CallEvent(c, EventType.CALL_STARTED, at(30), "caller-leg", {"direction": "inbound", "caller_name": "X"}),
        CallEvent(c, EventType.CALL_ENDED, at(13), "caller-leg"),
        CallEvent(c, EventType.CALL_ENDED, at(14), "caller-leg", {"disposition": "busy"}),
        CallEvent(c, EventType.ANSWERED, at(15), "caller-leg"),
    )
    row = await call_row(pg_pool, c)
    assert row is not None
    assert row["started_at"] == at(9) and row["channel_id"] == "caller-leg"
    assert (row["direction"], row["did"], row["caller_name"]) == ("outbound", "200", "X")  # fill, never overwrite
    assert (row["hangup_cause"], row["hangup_cause_text"]) == (17, "User busy")  # first cause wins
    assert row["variables"] == {"a": 1, "b": 3}
    assert row["answered_at"] == at(9.5) and row["ended_at"] == at(13) and row["disposition"] == "busy"
    assert len(await call_events_for(pg_pool, c)) == 11
    await w.close()


async def test_retried_and_duplicate_events_are_not_duplicated(pg_pool: asyncpg.Pool) -> None:
    c = uuid.uuid4()
    evs = [CallEvent(c, EventType.CALL_STARTED, at(0), "ch", {"did": "1"}),
           CallEvent(c, VARIABLES_SET, at(1), "ch", {"k": 1}),
           CallEvent(c, EventType.DTMF, at(2), "ch", {"digit": "9"})]
    w1 = EventWriter(pg_pool)
    for e in evs:
        w1.emit(e)
    await w1.flush()
    # a second writer (e.g. a batch retried after an unknown commit outcome) sends the same events again,
    # plus one new event, and a later variables change must not be undone by the replay
    w2 = EventWriter(pg_pool)
    w2.emit(CallEvent(c, VARIABLES_SET, at(3), "ch", {"k": 2}))
    await w2.flush()
    extra = CallEvent(c, EventType.HANGUP, at(4), "ch", {"cause": 16})
    for e in [*evs, extra, evs[0]]:
        w2.emit(e)
    await w2.flush()
    assert w2.stats.duplicates == 4 and w2.stats.written == 6
    stored = await call_events_for(pg_pool, c)
    assert [r["event_id"] for r in stored] == [*[e.event_id for e in evs], stored[3]["event_id"], extra.event_id]
    row = await call_row(pg_pool, c)
    assert row is not None and row["variables"] == {"k": 2} and row["hangup_cause"] == 16
    await w1.close()
    await w2.close()


async def test_bad_event_is_rejected_and_others_written(pg_pool: asyncpg.Pool) -> None:
    c = uuid.uuid4()
    good = [CallEvent(c, EventType.DTMF, at(i), "ch", {"digit": str(i)}) for i in range(40)]
    bad = CallEvent(c, EventType.DTMF, at(20.5), "ch", {"digit": "nul\u0000byte"})  # jsonb refuses \u0000
    bad_channel = CallEvent(c, EventType.DTMF, at(30.5), "ch\x00x", {})  # text refuses NUL
    events = [*good[:21], bad, *good[21:31], bad_channel, *good[31:]]
    w = EventWriter(pg_pool, batch_max=100)
    for e in events:
        w.emit(e)
    await w.flush()
    assert w.stats.rejected == 2 and w.stats.written == 40
    assert [r["event_id"] for r in await call_events_for(pg_pool, c)] == [e.event_id for e in good]
    await w.close()


async def test_writer_owns_a_pool_when_given_a_dsn(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    w = EventWriter(pg_dsn, flush_interval=0.02)
    await w.start()
    e = CallEvent(uuid.uuid4(), EventType.CALL_STARTED, at(0), "ch", {"did": "7"})
    w.emit(e)
    await asyncio.sleep(0.5)
    assert w.stats.written == 1
    await w.close()
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await count_events(conn) == 1
    finally:
        await conn.close()


async def test_postgres_stopped_mid_stream_loses_nothing(pg_server: EmbeddedPostgres, pg_pool: asyncpg.Pool) -> None:
    if not isinstance(pg_server, EmbeddedPostgres):
        pytest.skip("needs the embedded server (stops and restarts it)")
    w = EventWriter(pg_pool, batch_max=200, flush_interval=0.02, retry_initial=0.05, retry_max=0.5)
    await w.start()
    events: list[CallEvent] = []

    async def produce(n: int, per_tick: int = 50) -> None:
        for _ in range(n // per_tick):
            for _ in range(per_tick):
                e = CallEvent(uuid.uuid4(), EventType.DTMF, at(len(events) / 1000), "ch", {"i": len(events)})
                events.append(e)
                w.emit(e)
            await asyncio.sleep(0.01)

    try:
        await produce(1000)
        await asyncio.wait_for(w.flush(), 30)
        written_before = w.stats.written
        await asyncio.to_thread(pg_server.stop)
        assert not pg_server.is_running()
        await produce(3000)  # emits keep being accepted while PostgreSQL is down
        await asyncio.sleep(1.0)
        assert w.stats.written == written_before
        assert w.stats.retries > 0 and w.stats.buffered == 3000 and w.stats.last_error
    finally:
        await asyncio.to_thread(pg_server.start)
    await produce(1000)
    await asyncio.wait_for(w.flush(), 60)
    await w.close()
    s = w.stats
    assert (s.written, s.dropped, s.rejected, s.buffered) == (5000, 0, 0, 0)
    stored = [r["event_id"] for r in await pg_pool.fetch("SELECT event_id FROM call_events ORDER BY id")]
    assert stored == [e.event_id for e in events]


async def test_agent_events_are_written_with_call_events_in_order_and_idempotently(pg_pool: asyncpg.Pool) -> None:
    from callcore.events import AgentEvent

    c = uuid.uuid4()
    w = EventWriter(pg_pool)
    await w.start()
    first = AgentEvent("agent01", "ready", at(1), previous="logged_out", reason="login")
    w.emit(first)
    w.emit(CallEvent(c, EventType.CALL_STARTED, at(2), "chan-1", {"direction": "inbound", "did": "1000"}))
    w.emit(AgentEvent("agent01", "reserved", at(3), previous="ready", call_id=c, queue="support"))
    w.emit(AgentEvent("agent01", "on_call", at(4), previous="reserved", call_id=c, queue="support"))
    w.emit(first)  # a retried event: stored once
    await w.flush()
    rows = await pg_pool.fetch("SELECT agent_id, state, previous, reason, call_id, queue FROM agent_events ORDER BY id")
    assert [(r["state"], r["previous"]) for r in rows] == [
        ("ready", "logged_out"), ("reserved", "ready"), ("on_call", "reserved")]
    assert rows[1]["call_id"] == c and rows[1]["queue"] == "support" and rows[0]["reason"] == "login"
    assert (await call_row(pg_pool, c))["did"] == "1000"
    assert w.stats.written == 5 and w.stats.rejected == 0
    await w.close()
