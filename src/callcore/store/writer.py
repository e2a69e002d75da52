"""EventWriter: the one component that writes call events (and the ``calls`` projection) to PostgreSQL.

Services call :meth:`EventWriter.emit` (synchronous, never blocks, never raises on database trouble): the event
goes into a bounded in-memory buffer. A background task writes the buffer in batches, as soon as ``batch_max``
events are waiting or every ``flush_interval`` seconds. One batch is one transaction:

1. ``INSERT … SELECT FROM unnest(…) ORDER BY ordinality ON CONFLICT (event_id) DO NOTHING RETURNING event_id``
   (emit order == ``call_events.id`` order; a retried batch whose commit outcome was unknown never duplicates),
   plus a minimal ``calls`` row for calls that have none;
2. one ``UPDATE calls … FROM unnest(…)`` applying the projection of the events really inserted (see
   :mod:`callcore.store.projection`), so a retried batch is never projected twice.

Failures:

* transient (connection lost, server starting or shutting down, timeouts, anything not caused by the data): the
  batch is kept, the error is logged at ERROR, and the same batch is retried with capped exponential backoff
  while ``emit`` keeps buffering. At 80 % of ``buffer_max`` a warning is logged (once per crossing); when the
  buffer is full new events are refused, counted in ``stats.dropped`` and logged at ERROR (never silently).
* caused by the data (an SQLSTATE of class 22 or 23, 54, or an event that cannot be encoded): the batch is split
  in halves, recursively, to isolate the bad event(s); each bad event is logged at ERROR with its content and
  counted in ``stats.rejected``; the others are written, still in order.

Optional ``outbox`` hook (the webhook outbox, :mod:`callcore.webhooks.outbox`): awaited as ``outbox(conn, events)``
inside each batch's transaction, after the events, so the rows it inserts commit or roll back with them. It runs in
a savepoint: if it fails for its content, only its rows are lost (logged, ``stats.outbox_failed``), never the
events (bisection would otherwise reject them); if it fails for the connection, the batch is retried whole, so the
hook must be idempotent (ON CONFLICT DO NOTHING).

``emit`` must be called from the event loop's thread (every callcore service is asyncio code).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

import asyncpg
import structlog

from callcore.store.spool import DiskSpool
from callcore.events import AgentEvent, CallEvent, event_from_record, event_record
from callcore.store.projection import (
    INSERT_AGENT_EVENTS_SQL,
    INSERT_EVENTS_SQL,
    UPDATE_CALLS_SQL,
    agent_event_columns,
    changes_row,
    event_columns,
    fold,
    patch_columns,
)

log = structlog.get_logger("callcore.store")

# (monotonic time of emit, event)
Entry = tuple[float, CallEvent | AgentEvent]
# Called after each committed batch with its entries and the monotonic time of the commit.
CommitHook = Callable[[Sequence[Entry], float], None]
# Awaited inside each batch's transaction with the connection and the batch's events (see the module docstring).
OutboxHook = Callable[[Any, Sequence[CallEvent | AgentEvent]], Awaitable[None]]

_DATA_SQLSTATE_CLASSES = ("22", "23", "54")


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot of the writer's counters (for metrics)."""

    buffered: int  # accepted, not yet written nor rejected (buffer + batch in flight)
    written: int  # events committed (including duplicates skipped by ON CONFLICT)
    duplicates: int  # events whose event_id was already stored
    batches: int  # transactions committed
    retries: int  # failed write attempts that were retried
    dropped: int  # events refused by emit because the buffer was full (or the writer closed)
    rejected: int  # events refused by PostgreSQL for their content (isolated by bisection)
    last_error: str | None
    last_flush_latency: float | None  # seconds the last committed batch took to write
    last_commit_lag: float | None  # seconds from emit of the oldest event of the last batch to its commit
    outbox_failed: int = 0  # events written whose outbox rows the hook failed to write for their content


class _SpoolNow(Exception):
    """Writes have failed for ``spool_after`` seconds: switch to the disk spool."""


class _Transient(Exception):
    """The database could not be reached (whatever the underlying exception type)."""


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` is caused by the events' content (retrying the same batch cannot succeed)."""
    if isinstance(exc, _Transient):
        return False
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state[:2] in _DATA_SQLSTATE_CLASSES
    if isinstance(exc, (asyncpg.exceptions.DataError, ValueError, TypeError, UnicodeError, OverflowError)):
        return True
    return False


class EventWriter:
    """Batches call events into PostgreSQL. ``db``: a DSN (a small pool is created and owned) or an asyncpg pool
    (or anything with the same ``acquire()``/``transaction()``/``fetch()``/``execute()`` interface)."""

    def __init__(
        self,
        db: Any,
        *,
        batch_max: int = 2000,
        flush_interval: float = 0.1,
        buffer_max: int = 100_000,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
        write_timeout: float = 30.0,
        on_commit: CommitHook | None = None,
        outbox: OutboxHook | None = None,
        spool: DiskSpool | None = None,
        spool_after: float = 3.0,
    ) -> None:
        if batch_max < 1 or buffer_max < 1 or flush_interval <= 0:
            raise ValueError("batch_max, buffer_max and flush_interval must be positive")
        self._dsn: str | None = db if isinstance(db, str) else None
        self._pool: Any = None if isinstance(db, str) else db
        self.batch_max = batch_max
        self.flush_interval = flush_interval
        self.buffer_max = buffer_max
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.write_timeout = write_timeout
        self.on_commit = on_commit
        self.outbox = outbox
        self._outbox_failed = 0
        # Durable spool (see callcore.store.spool): after ``spool_after`` s of failed writes, events go to disk,
        # and everything is written from there, oldest first, until it is empty again.
        self.spool = spool
        self.spool_after = spool_after
        self._spooling = spool is not None and not spool.empty  # left over from a previous run: drain it first
        self._spooled = 0
        self._spool_full_log_at = 0.0

        self._buf: deque[Entry] = deque()
        self._inflight = 0  # events taken from _buf by the batch being written
        self._accepted = 0
        self._finished = 0  # written + rejected, in FIFO order
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._warn_at = max(1, int(buffer_max * 0.8))
        self._rearm_at = int(buffer_max * 0.7)
        self._high_warned = False
        self._drop_log_at = 0.0
        self._drops_unlogged = 0

        self._written = 0
        self._duplicates = 0
        self._batches = 0
        self._retries = 0
        self._dropped = 0
        self._rejected = 0
        self._last_error: str | None = None
        self._last_flush_latency: float | None = None
        self._last_commit_lag: float | None = None

    # ---- EventSink -------------------------------------------------------------------------------------

    def emit(self, event: CallEvent | AgentEvent) -> None:
        """Queue ``event`` for writing. Never blocks; never raises on database trouble."""
        size = len(self._buf) + self._inflight
        if self._closed or size >= self.buffer_max:
            self._drop(event, "writer closed" if self._closed else "buffer full")
            return
        if not isinstance(event, (CallEvent, AgentEvent)):
            self._rejected += 1
            log.error("event_writer.not_an_event", value=repr(event)[:500])
            return
        self._buf.append((time.monotonic(), event))
        self._accepted += 1
        size += 1
        if size >= self._warn_at and not self._high_warned:
            self._high_warned = True
            log.warning(
                "event_writer.buffer_high", buffered=size, buffer_max=self.buffer_max,
                last_error=self._last_error,
            )
        if len(self._buf) >= self.batch_max:
            self._wake.set()

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background writing task (events emitted before are kept and written)."""
        if self._task is None or self._task.done():
            self._closed = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="callcore-event-writer")

    async def flush(self) -> None:
        """Return once every event emitted before this call is committed (or rejected). Waits through
        database outages: bound it with ``asyncio.wait_for`` if needed."""
        target = self._accepted
        if self._finished >= target:
            return
        if self._task is not None and not self._task.done():
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((target, fut))
            self._wake.set()
            await fut
        else:
            async with self._lock:
                await self._drain()

    async def close(self, timeout: float = 10.0) -> None:
        """Flush (for at most ``timeout`` seconds), stop the task, close the pool if it is ours. Events still
        unwritten after the timeout are logged at ERROR and counted as dropped."""
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except asyncio.TimeoutError:
            pass
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        left = len(self._buf) + self._inflight
        if left:
            self._dropped += left
            log.error("event_writer.closed_with_unwritten_events", unwritten=left, last_error=self._last_error)
            self._buf.clear()
            self._inflight = 0
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()
        if self._dsn is not None and self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5.0)
            except (asyncio.TimeoutError, OSError, asyncpg.PostgresError):
                pool.terminate()

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            buffered=len(self._buf) + self._inflight,
            written=self._written,
            duplicates=self._duplicates,
            batches=self._batches,
            retries=self._retries,
            dropped=self._dropped,
            rejected=self._rejected,
            last_error=self._last_error,
            last_flush_latency=self._last_flush_latency,
            last_commit_lag=self._last_commit_lag,
            outbox_failed=self._outbox_failed,
        )

    # ---- background task -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                async with self._lock:
                    await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug: never let the task die silently
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.exception("event_writer.loop_error")
                await asyncio.sleep(self.retry_max)

    async def _drain(self) -> None:
        """Write batches until the buffer is empty (each retried until it is committed or rejected)."""
        if self._spooling:
            await self._drain_spool()
            if self._spooling:
                return
        while self._buf:
            n = min(self.batch_max, len(self._buf))
            batch = [self._buf.popleft() for _ in range(n)]
            self._inflight = n
            before = self._finished
            try:
                await self._write_resilient(batch)
            except _SpoolNow:
                # The database has been away too long: this batch and everything behind it go to disk, in order.
                self._inflight = 0
                self._buf.extendleft(reversed(batch[self._finished - before :]))
                self._spooling = True
                log.error("event_writer.spooling_to_disk", buffered=len(self._buf), last_error=self._last_error)
                await self._drain_spool()
                return
            except BaseException:
                # interrupted (cancelled by close()): what is not finished goes back in front, in order
                self._buf.extendleft(reversed(batch[self._finished - before :]))
                raise
            finally:
                self._inflight = 0
            self._after_progress()

    def _after_progress(self) -> None:
        size = len(self._buf)
        if self._high_warned and size < self._rearm_at:
            self._high_warned = False
            log.info("event_writer.buffer_ok", buffered=size)
        if self._waiters:
            keep = []
            for target, fut in self._waiters:
                if self._finished >= target:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    keep.append((target, fut))
            self._waiters = keep

    async def _write_resilient(self, batch: list[Entry]) -> None:
        """Commit ``batch``: retry transient failures forever (with backoff), bisect data failures."""
        delay = self.retry_initial
        failures = 0
        first_failure = 0.0
        while True:
            try:
                await self._write_once(batch)
                if failures:
                    log.info("event_writer.recovered", failed_attempts=failures, batch_size=len(batch))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                if is_data_error(exc):
                    await self._isolate(batch, exc)
                    return
                failures += 1
                self._retries += 1
                first_failure = first_failure or time.monotonic()
                if self.spool is not None and time.monotonic() - first_failure >= self.spool_after:
                    raise _SpoolNow() from exc
                log.error(
                    "event_writer.write_failed", error=self._last_error, attempt=failures, retry_in=round(delay, 3),
                    batch_size=len(batch), buffered=len(self._buf) + self._inflight,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)

    async def _isolate(self, batch: list[Entry], exc: BaseException) -> None:
        if len(batch) == 1:
            ev = batch[0][1]
            self._rejected += 1
            self._finished += 1
            log.error(
                "event_writer.event_rejected", error=f"{type(exc).__name__}: {exc}", event_id=str(ev.event_id),
                rejected_event=repr(ev)[:4000],
            )
            return
        mid = len(batch) // 2
        await self._write_resilient(batch[:mid])
        await self._write_resilient(batch[mid:])

    async def _write_once(self, batch: list[Entry]) -> None:
        everything = [e for _, e in batch]
        events = [e for e in everything if isinstance(e, CallEvent)]
        agent_events = [e for e in everything if isinstance(e, AgentEvent)]
        cols = event_columns(events)  # may raise ValueError: a data error, isolated by bisection
        started = time.monotonic()
        async with asyncio.timeout(self.write_timeout):
            try:
                if self._pool is None:
                    from callcore.store.pool import create_pool

                    self._pool = await create_pool(self._dsn, min_size=1, max_size=2)
                conn_cm = self._pool.acquire()
                conn = await conn_cm.__aenter__()
            except Exception as exc:  # reaching the database is never the events' fault
                raise _Transient(f"{type(exc).__name__}: {exc}") from exc
            try:
                async with conn.transaction():
                    if agent_events:
                        await conn.execute(INSERT_AGENT_EVENTS_SQL, *agent_event_columns(agent_events))
                    rows = await conn.fetch(INSERT_EVENTS_SQL, *cols) if events else []
                    inserted = {r["event_id"] for r in rows}
                    if len(inserted) == len(events):
                        new = events
                    else:
                        new = []
                        for ev in events:
                            if ev.event_id in inserted:
                                inserted.discard(ev.event_id)
                                new.append(ev)
                    patches = [p for p in fold(new) if changes_row(p)]
                    if patches:
                        await conn.execute(UPDATE_CALLS_SQL, *patch_columns(patches))
                    if self.outbox is not None:
                        await self._write_outbox(conn, everything)
            finally:
                await conn_cm.__aexit__(None, None, None)
        now = time.monotonic()
        self._written += len(everything)
        self._duplicates += len(events) - len(new)
        self._batches += 1
        self._finished += len(everything)
        self._last_flush_latency = now - started
        self._last_commit_lag = now - batch[0][0]
        if self.on_commit is not None:
            try:
                self.on_commit(batch, now)
            except Exception:
                log.exception("event_writer.on_commit_failed")

    async def _write_outbox(self, conn: Any, events: list[CallEvent | AgentEvent]) -> None:
        """The outbox hook, in a savepoint of the batch's transaction. Connection trouble fails the batch (retried
        whole); anything else the hook raises is its own fault or its rows': the events are committed without those
        rows, logged and counted, instead of being rejected one by one by bisection."""
        assert self.outbox is not None
        try:
            async with conn.transaction():  # SAVEPOINT
                await self.outbox(conn, events)
        except (OSError, TimeoutError, asyncpg.InterfaceError, _Transient):
            raise
        except Exception as exc:
            if isinstance(exc, asyncpg.PostgresError) and not is_data_error(exc):
                raise
            self._outbox_failed += len(events)
            log.error("event_writer.outbox_failed", error=f"{type(exc).__name__}: {exc}", events=len(events),
                      first_event_id=str(events[0].event_id) if events else None)

    async def _drain_spool(self) -> None:
        """Spool mode: memory goes to disk (older events are already there), then disk goes to the database,
        oldest first, one attempt per loop; back to normal once the spool is empty."""
        spool = self.spool
        assert spool is not None
        full = False
        while self._buf and not full:
            # Oldest first, a batch at a time: when the spool fills up, what fits is kept, the rest waits in memory.
            entries = [self._buf[i] for i in range(min(self.batch_max, len(self._buf)))]
            records = [event_record(e) for _, e in entries]
            if await asyncio.to_thread(spool.append, records):
                for _ in entries:
                    self._buf.popleft()
                self._spooled += len(entries)
            else:
                full = True
        if full and spool.disk_error:
            self._last_error = f"spool: {spool.disk_error}"  # shown by `callcore status` and /status
        if full and time.monotonic() - self._spool_full_log_at >= 5.0:
            self._spool_full_log_at = time.monotonic()
            log.critical("event_writer.spool_full", spool_bytes=spool.bytes, max_bytes=spool.max_bytes,
                         disk_error=spool.disk_error,
                         buffered=len(self._buf), policy="newest events are dropped once memory is full too")
        while not spool.empty:
            records = await asyncio.to_thread(spool.peek, self.batch_max)
            if not records:
                break
            now = time.monotonic()
            batch = [(now, event_from_record(r)) for r in records]
            try:
                await self._write_once(batch)
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                if is_data_error(exc):
                    await self._isolate(batch, exc)
                else:
                    self._retries += 1
                    await asyncio.sleep(min(self.retry_max, 1.0))
                    return  # the database is still away: try again on the next round
            await asyncio.to_thread(spool.commit, len(records))
            self._after_progress()
        if spool.empty:
            self._spooling = False
            log.info("event_writer.spool_drained", spooled_total=self._spooled)

    def _drop(self, event: Any, reason: str) -> None:
        self._dropped += 1
        self._drops_unlogged += 1
        now = time.monotonic()
        if now - self._drop_log_at >= 1.0:  # at most one ERROR line a second, carrying the count
            self._drop_log_at = now
            log.error(
                "event_writer.event_dropped", reason=reason, dropped_since_last_log=self._drops_unlogged,
                dropped_total=self._dropped, buffer_max=self.buffer_max,
                event_type=getattr(event, "type", None), call_id=str(getattr(event, "call_id", "")),
                last_error=self._last_error,
            )
            self._drops_unlogged = 0
