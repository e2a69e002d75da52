"""EventWriter batching, ordering, retries, bounds and bisection against a fake database (no PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from callcore.events import CallEvent, EventType
from callcore.store.writer import EventWriter, is_data_error

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class FakeDB:
    """Pool-like: records committed batches; can fail N times, fail after commit, or refuse some event ids."""

    def __init__(self) -> None:
        self.committed: list[uuid.UUID] = []  # event ids in commit order
        self.batches: list[list[uuid.UUID]] = []
        self.patch_calls = 0
        self.fail_next = 0  # transient failures to raise before the insert
        self.fail_after_commit = 0  # commit, then raise (commit outcome unknown to the writer)
        self.bad: set[uuid.UUID] = set()  # event ids whose insert is a data error
        self.attempts = 0
        self.delay = 0.0

    def acquire(self) -> Any:
        db = self

        class _Acquire:
            async def __aenter__(self) -> FakeConn:
                return FakeConn(db)

            async def __aexit__(self, *exc: object) -> None:
                return None

        return _Acquire()


class FakeConn:
    def __init__(self, db: FakeDB) -> None:
        self.db = db
        self.staged: list[uuid.UUID] = []

    def transaction(self) -> Any:
        conn = self

        class _Tx:
            async def __aenter__(self) -> None:
                conn.staged = []

            async def __aexit__(self, et: Any, e: Any, tb: Any) -> None:
                if et is None:
                    conn.db.committed.extend(conn.staged)
                    conn.db.batches.append(list(conn.staged))
                    if conn.db.fail_after_commit:
                        conn.db.fail_after_commit -= 1
                        raise asyncpg.exceptions.ConnectionDoesNotExistError("connection lost during COMMIT")

        return _Tx()

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        self.db.attempts += 1
        if self.db.delay:
            await asyncio.sleep(self.db.delay)
        if self.db.fail_next:
            self.db.fail_next -= 1
            raise ConnectionRefusedError("connection refused")
        ids = args[0]
        if self.db.bad.intersection(ids):
            raise asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence")
        seen = set(self.db.committed)
        new = []
        for i in ids:
            if i not in seen:
                seen.add(i)
                new.append(i)
        self.staged = new
        return [{"event_id": i} for i in new]

    async def execute(self, sql: str, *args: Any) -> str:
        self.db.patch_calls += 1
        return "UPDATE 1"


def ev(n: int, call: uuid.UUID | None = None, type_: str = EventType.DTMF) -> CallEvent:
    return CallEvent(call_id=call or uuid.uuid4(), type=type_, at=T0 + timedelta(milliseconds=n), data={"n": n})


def ids(events: list[CallEvent]) -> list[uuid.UUID]:
    return [e.event_id for e in events]


async def test_batches_by_size_and_keeps_order() -> None:
    db = FakeDB()
    w = EventWriter(db, batch_max=500, flush_interval=10)
    events = [ev(i) for i in range(1200)]
    for e in events:
        w.emit(e)
    assert w.stats.buffered == 1200
    await w.flush()
    assert [len(b) for b in db.batches] == [500, 500, 200]
    assert db.committed == ids(events)
    s = w.stats
    assert (s.written, s.batches, s.buffered, s.dropped, s.rejected) == (1200, 3, 0, 0, 0)


async def test_background_task_writes_on_interval_and_on_full_batch() -> None:
    db = FakeDB()
    w = EventWriter(db, batch_max=50, flush_interval=0.05)
    await w.start()
    try:
        for i in range(3):
            w.emit(ev(i))
        await asyncio.sleep(0.3)
        assert len(db.committed) == 3  # written by the interval tick, no flush()
        events = [ev(i) for i in range(50)]
        w2 = EventWriter(db, batch_max=50, flush_interval=60)
        await w2.start()
        for e in events:
            w2.emit(e)
        await asyncio.sleep(0.2)  # far below flush_interval: the full batch woke the task
        assert db.committed[3:] == ids(events)
        await w2.close()
    finally:
        await w.close()


async def test_transient_failures_are_retried_in_order_while_emits_continue() -> None:
    db = FakeDB()
    db.fail_next = 4
    w = EventWriter(db, batch_max=10, flush_interval=0.01, retry_initial=0.01, retry_max=0.02)
    await w.start()
    events = [ev(i) for i in range(100)]
    with capture_logs() as logs:
        for i, e in enumerate(events):
            w.emit(e)
            if i % 10 == 0:
                await asyncio.sleep(0.005)
        await asyncio.wait_for(w.flush(), 5)
    await w.close()
    assert db.committed == ids(events)
    assert w.stats.retries == 4
    assert w.stats.last_error is not None and "refused" in w.stats.last_error
    failed = [entry for entry in logs if entry["event"] == "event_writer.write_failed"]
    assert len(failed) == 4 and all(entry["log_level"] == "error" for entry in failed)


async def test_commit_outcome_unknown_is_not_duplicated() -> None:
    db = FakeDB()
    db.fail_after_commit = 1
    w = EventWriter(db, batch_max=100, retry_initial=0.001)
    events = [ev(i, type_=EventType.ANSWERED) for i in range(30)]
    for e in events:
        w.emit(e)
    await w.flush()
    assert db.committed == ids(events)  # committed once, the retry inserted nothing
    assert w.stats.duplicates == 30 and w.stats.retries == 1
    assert db.patch_calls == 1  # projection applied once (only for events really inserted)


async def test_buffer_bound_warning_once_and_drops_counted() -> None:
    db = FakeDB()
    w = EventWriter(db, buffer_max=10, flush_interval=60)
    with capture_logs() as logs:
        for i in range(9):
            w.emit(ev(i))
        high = [entry for entry in logs if entry["event"] == "event_writer.buffer_high"]
        assert len(high) == 1 and high[0]["log_level"] == "warning"  # at 8 = 80 %, once
        for i in range(9, 14):
            w.emit(ev(i))
    assert w.stats.buffered == 10
    assert w.stats.dropped == 4
    dropped_logs = [entry for entry in logs if entry["event"] == "event_writer.event_dropped"]
    assert dropped_logs and dropped_logs[0]["log_level"] == "error"
    assert sum(1 for entry in logs if entry["event"] == "event_writer.buffer_high") == 1
    await w.flush()
    assert len(db.committed) == 10
    with capture_logs() as logs:  # below 70 % again: the next crossing warns again
        for i in range(9):
            w.emit(ev(100 + i))
    assert sum(1 for entry in logs if entry["event"] == "event_writer.buffer_high") == 1


async def test_bad_event_is_isolated_rejected_and_the_rest_written_in_order() -> None:
    db = FakeDB()
    w = EventWriter(db, batch_max=64)
    events = [ev(i) for i in range(64)]
    bad = events[37]
    db.bad.add(bad.event_id)
    with capture_logs() as logs:
        for e in events:
            w.emit(e)
        await w.flush()
    assert db.committed == [e.event_id for e in events if e is not bad]
    assert w.stats.rejected == 1 and w.stats.written == 63 and w.stats.buffered == 0
    rejected = [entry for entry in logs if entry["event"] == "event_writer.event_rejected"]
    assert len(rejected) == 1
    assert rejected[0]["log_level"] == "error" and rejected[0]["event_id"] == str(bad.event_id)
    assert "'n': 37" in rejected[0]["rejected_event"]
    assert db.attempts <= 2 * 7 + 1  # bisection: O(log n) failed attempts


async def test_unencodable_payload_is_rejected_without_blocking() -> None:
    db = FakeDB()
    w = EventWriter(db)
    good1, good2 = ev(1), ev(2)
    bad = CallEvent(call_id=uuid.uuid4(), type="x", at=T0, data={"v": float("nan")})
    for e in (good1, bad, good2):
        w.emit(e)
    await w.flush()
    assert db.committed == [good1.event_id, good2.event_id]
    assert w.stats.rejected == 1


async def test_close_with_database_down_counts_unwritten_as_dropped() -> None:
    db = FakeDB()
    db.fail_next = 10**6
    w = EventWriter(db, retry_initial=0.01, retry_max=0.05)
    await w.start()
    for i in range(5):
        w.emit(ev(i))
    with capture_logs() as logs:
        await w.close(timeout=0.3)
    assert w.stats.dropped == 5 and w.stats.buffered == 0
    assert any(entry["event"] == "event_writer.closed_with_unwritten_events" for entry in logs)
    w.emit(ev(99))  # after close: refused, counted, never raises
    assert w.stats.dropped == 6


async def test_flush_waits_for_background_writes() -> None:
    db = FakeDB()
    db.delay = 0.02
    w = EventWriter(db, batch_max=7, flush_interval=0.01)
    await w.start()
    events = [ev(i) for i in range(50)]
    for e in events:
        w.emit(e)
    await asyncio.wait_for(w.flush(), 5)
    assert db.committed == ids(events)
    await w.close()


def test_error_classification() -> None:
    assert is_data_error(asyncpg.exceptions.InvalidTextRepresentationError("x"))
    assert is_data_error(asyncpg.exceptions.UniqueViolationError("x"))
    assert is_data_error(ValueError("nan"))
    assert not is_data_error(asyncpg.exceptions.UndefinedTableError("x"))  # schema missing: retry, keep events
    assert not is_data_error(asyncpg.exceptions.CannotConnectNowError("x"))
    assert not is_data_error(ConnectionRefusedError())
    assert not is_data_error(TimeoutError())


def test_emit_never_raises_on_garbage() -> None:
    w = EventWriter(FakeDB())
    w.emit("not an event")  # type: ignore[arg-type]
    assert w.stats.rejected == 1 and w.stats.buffered == 0


@pytest.mark.parametrize("kwargs", [{"batch_max": 0}, {"buffer_max": 0}, {"flush_interval": 0}])
def test_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EventWriter(FakeDB(), **kwargs)


async def test_an_outage_longer_than_spool_after_goes_to_disk_and_is_written_in_order_afterwards(tmp_path) -> None:
    from callcore.store.spool import DiskSpool

    db = FakeDB()
    spool = DiskSpool(tmp_path / "spool")
    w = EventWriter(db, batch_max=10, flush_interval=0.01, retry_initial=0.01, retry_max=0.05, spool=spool,
                    spool_after=0.1)
    await w.start()
    db.fail_next = 10**9  # the database is down
    first = [ev(i) for i in range(25)]
    for e in first:
        w.emit(e)
    await asyncio.sleep(0.4)
    assert not spool.empty and w.stats.buffered == 0  # on disk, not in memory
    during = [ev(100 + i) for i in range(15)]
    for e in during:
        w.emit(e)
    await asyncio.sleep(0.2)
    assert spool.pending == 40
    db.fail_next = 0  # back
    await asyncio.wait_for(w.flush(), 5)
    after = [ev(200 + i) for i in range(5)]
    for e in after:
        w.emit(e)
    await asyncio.wait_for(w.flush(), 5)
    assert db.committed == ids(first + during + after)  # nothing lost, nothing reordered
    assert spool.empty and list((tmp_path / "spool").glob("seg-*")) == []
    await w.close()


async def test_events_spooled_by_a_process_that_died_are_written_by_the_next_one_first(tmp_path) -> None:
    from callcore.events import event_record
    from callcore.store.spool import DiskSpool

    left = [ev(i) for i in range(7)]
    DiskSpool(tmp_path / "spool").append([event_record(e) for e in left])  # the previous run's outage
    db = FakeDB()
    w = EventWriter(db, flush_interval=0.01, spool=DiskSpool(tmp_path / "spool"))
    new = [ev(50 + i) for i in range(3)]
    for e in new:
        w.emit(e)
    await w.start()
    await asyncio.wait_for(w.flush(), 5)
    assert db.committed == ids(left + new)
    await w.close()


async def test_a_full_spool_and_a_full_buffer_drop_the_newest_events_loudly_and_emit_never_fails(tmp_path) -> None:
    from callcore.store.spool import DiskSpool

    db = FakeDB()
    db.fail_next = 10**9  # the database is down for good
    spool = DiskSpool(tmp_path / "spool", max_bytes=4000)  # room for a few dozen events only
    w = EventWriter(db, batch_max=10, flush_interval=0.01, retry_initial=0.01, retry_max=0.02, buffer_max=100,
                    spool=spool, spool_after=0.05)
    await w.start()
    with capture_logs() as logs:
        for i in range(1000):  # a busy minute of calls: emit must never block or raise
            w.emit(ev(i))
            if i % 50 == 0:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
    stats = w.stats
    assert spool.bytes <= 4000 and spool.pending > 0  # the oldest events are safe on disk ...
    assert stats.dropped > 0 and stats.dropped + spool.pending + stats.buffered == 1000  # ... the newest counted
    events = [entry["event"] for entry in logs]
    assert "event_writer.spool_full" in events and "event_writer.event_dropped" in events
    kept = [r["data"]["n"] for r in spool.peek(1000)]
    assert kept == list(range(len(kept)))  # what is kept is the start of the story, in order
    w._closed = True
    await w.close(timeout=0.1)
