""""Call me now" from a web page: a callback request waits in a queue like a caller, and is dialled in turn.

The API (``POST /callbacks``) has already normalised, allow-listed, rate-limited and DNC-checked the number; here
the request becomes a queue entry with a callback number (the same machinery as virtual hold, see
``callcore.acd.virtual_hold``): it keeps its place, an agent is reserved when its turn comes, the number is
dialled, and the agent first hears that this is a web callback (the context — page, product, note — is in the
events and the API for the agent's screen). ``not_before`` holds it out of line until then; ``not_after`` ends
it (``expired``) if it was not dialled by then. The promise is the queue's own estimate (position × recent
handle time ÷ agents serving), the same one the announcements use.

**Durable.** With a database (``WebCallbacks.open(acd, pool)``) every request is a row of ``web_callbacks``
(``sql/0008_web_callbacks.sql``): written before the request is accepted (if it cannot be written the request is
refused: a promise we would forget on a restart is worse than a "try again"), and rewritten on every change of
state (dialing, the attempt's result, connected, done/failed/expired/cancelled). Writes after the first one go
through one background writer that always writes a request's *latest* state, in order, retrying while the
database is away. At start the open rows are loaded again and each request continues where it was:

- ``waiting``: back in line at its original place (``queued_at``), with its attempt count; not before
  ``not_before`` nor before the retry time of an unanswered attempt; expired at once if ``not_after`` passed;
- ``dialing`` (the process died while the number rang): the attempt is redone and does not count; it rejoins the
  line once the interrupted attempt's ring time is surely over (so the callee is never rung twice at once);
- ``connected``: the callee was reached before the restart: ``done``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from callcore.acd.model import VirtualHold
from callcore.acd.router import estimated_wait
from callcore.events import CallEvent, utcnow
from callcore.ids import uuid7

if TYPE_CHECKING:
    from callcore.acd.service import AcdService, QueuedCaller

log = structlog.get_logger("callcore.acd")

WHISPER = ["callcore/web-callback-whisper"]
PHONE_WHISPER: list[str] = []  # a callback the caller asked for on the phone: the queue's own whisper only
OPEN_STATUSES = ("waiting", "dialing", "connected")
# After a restart, a request that was ringing waits this much longer than the ring timeout before it is dialled
# again: Asterisk may still be ringing the interrupted attempt (it does not know we restarted).
RESTART_HOLD_OFF = 15.0
# A callback booked during a call joins the line this long after that call ended (its line is free again).
HANG_UP_GRACE = 5.0


class WebCallbackEvent:
    REQUESTED = "web_callback_requested"  # data: queue, number, context, requested_by, not_before, not_after
    FINISHED = "web_callback_finished"  # data: status (done|failed|cancelled|expired), attempts
    RESTORED = "web_callback_restored"  # data: status (as stored), attempts, rejoins_at


class CallbackStoreUnavailable(Exception):
    """The request could not be stored: it is not accepted (the API answers 503)."""


class _Caller:
    """What a queue entry needs of a caller, for a request with no call yet: an id, a number, a way to log."""

    def __init__(self, acd: AcdService, number: str, call_id: uuid.UUID | None = None) -> None:
        self.call_id = call_id or uuid7()
        self.caller_number = number
        self.channel_id = ""
        self.gone = True  # nobody on the line: the entry is routed for its callback number
        self.variables: dict[str, str] = {}
        self._acd = acd

    def emit(self, type_: str, data: dict[str, Any] | None = None, channel_id: str | None = None) -> None:
        self._acd.sink.emit(CallEvent(self.call_id, type_, utcnow(), channel_id, data or {}))


@dataclass
class _Request:
    id: str
    number: str
    queue: str
    context: dict[str, str]
    requested_by: str
    created_at: datetime
    entry: QueuedCaller
    status: str = "waiting"
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    # What a restart needs to continue the request (the row of web_callbacks).
    queued_at: datetime | None = None  # its place in line (wall clock)
    estimated_at: datetime | None = None
    promised_at: datetime | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    dialing_since: datetime | None = None
    retry_at: datetime | None = None
    last_outcome: str | None = None
    finished_at: datetime | None = None


# -- PostgreSQL (plain queries on a pool or connection, like callcore.leads.store) -----------------------------------

_UPSERT = """
INSERT INTO web_callbacks (id, number, queue, context, requested_by, status, created_at, queued_at, promised_at,
                           estimated_at, not_before, not_after, attempts, attempt_call_id, dialing_since, retry_at,
                           last_outcome, updated_at, finished_at)
VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, promised_at = EXCLUDED.promised_at, attempts = EXCLUDED.attempts,
    attempt_call_id = EXCLUDED.attempt_call_id, dialing_since = EXCLUDED.dialing_since,
    retry_at = EXCLUDED.retry_at, last_outcome = EXCLUDED.last_outcome, updated_at = EXCLUDED.updated_at,
    finished_at = EXCLUDED.finished_at
"""


async def save_request(db: Any, req: _Request, *, now: datetime) -> None:
    """Write the request's current state (insert or update: one statement, so a retry is harmless)."""
    entry = req.entry
    await db.execute(
        _UPSERT, uuid.UUID(req.id), req.number, req.queue, json.dumps(req.context, ensure_ascii=False),
        req.requested_by, req.status, req.created_at, req.queued_at or req.created_at, req.promised_at,
        req.estimated_at or req.created_at, req.not_before, req.not_after, entry.attempts,
        uuid.UUID(entry.ident) if entry.ident else None, req.dialing_since, req.retry_at, req.last_outcome, now,
        req.finished_at)


async def open_requests(db: Any) -> list[Any]:
    """The requests a restart must continue, in their order in line."""
    return list(await db.fetch(
        "SELECT * FROM web_callbacks WHERE status = ANY($1::text[]) ORDER BY queued_at, id", list(OPEN_STATUSES)))


async def stored_request(db: Any, callback_id: str) -> Any:
    try:
        key = uuid.UUID(callback_id)
    except ValueError:
        return None
    return await db.fetchrow("SELECT * FROM web_callbacks WHERE id = $1", key)


# -- the scheduler ----------------------------------------------------------------------------------------------------


class WebCallbacks:
    """Implements ``callcore.api.outbound_services.CallbackScheduler`` on the ACD."""

    def __init__(self, acd: AcdService, settings: VirtualHold | None = None, *, db: Any = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.acd = acd
        # How a web callback is dialled: like virtual hold, with the web callback greeting.
        self.settings = settings or VirtualHold(greeting=["callcore/virtual-hold-greeting"], attempts=2,
                                                retry_after=120, ring_timeout=30)
        self.db = db  # None: in memory only (tests of other parts); a restart then forgets the requests
        self._wall = clock
        self.requests: dict[str, _Request] = {}
        self._by_entry: dict[int, _Request] = {}
        self._dirty: dict[str, int] = {}  # requests whose latest state is not written yet (→ a change number)
        self._changes = itertools.count(1)
        self._writer: asyncio.Task[None] | None = None
        self._written = asyncio.Event()
        acd.callback_listener = self._news
        acd.callback_check = self._still_wanted

    @classmethod
    async def open(cls, acd: AcdService, db: Any, settings: VirtualHold | None = None) -> WebCallbacks:
        """The scheduler over PostgreSQL, with the open requests of before a restart back in line."""
        scheduler = cls(acd, settings, db=db)
        await scheduler.restore()
        return scheduler

    # -- the protocol ------------------------------------------------------------------------------------
    async def request(self, number: str, queue: str, context: Mapping[str, str], not_before: datetime | None,
                      not_after: datetime | None, *, requested_by: str = "",
                      keep_place_since: float | None = None, hold_while: Any = None, priority: int = 0,
                      skills: Mapping[str, int] | None = None) -> Any:
        """Queue a callback of ``number``. Phone bookings (:mod:`callcore.acd.callback_booking`) give
        ``hold_while``, the call that asked: the request joins the line only once that call is over (plus
        ``HANG_UP_GRACE``), so the caller's own line is never dialled while they are still on it; and the queue's
        ``max_length`` (a limit on callers holding a line) does not apply to them — a queue overflowing to
        callbacks is full. ``keep_place_since`` (the ACD's clock): its place in line dates from then. ``priority``
        and ``skills``: the caller's own (an overflowing caller keeps them; the queue's base priority is added by
        the router, as for any caller)."""
        from callcore.acd.service import QueuedCaller
        from callcore.api.outbound_services import CallbackTicket
        from callcore.api.services import NotFound, Rejected

        acd = self.acd
        cfg = acd.config.queues.get(queue)
        if cfg is None:
            raise NotFound(f"unknown queue {queue!r}")
        if not acd._staffed(queue):
            raise Rejected(f"nobody serves queue {queue!r} now: no callback can be promised")
        waiting_here = sum(1 for c in acd.waiting.values() if c.queue == queue)
        if hold_while is None and cfg.max_length is not None and waiting_here >= cfg.max_length:
            raise Rejected(f"queue {queue!r} is full")
        now_wall = self._wall()
        delay = max(0.0, (not_before - now_wall).total_seconds()) if not_before else 0.0
        since = min(keep_place_since, acd.now()) if keep_place_since is not None else acd.now() + delay
        caller = _Caller(acd, number)
        # The agent's whisper says where the callback came from: the web form, or the caller's own call.
        whisper = list(WHISPER) if hold_while is None else list(PHONE_WHISPER)
        entry = QueuedCaller(caller, queue, priority, since, dict(skills or {}),  # type: ignore[arg-type]
                             callback_number=number, ident=str(uuid7()), callback=self.settings, whisper=whisper)
        req = _Request(str(caller.call_id), number, queue, dict(context), requested_by, now_wall, entry,
                       queued_at=now_wall + timedelta(seconds=since - acd.now()), not_before=not_before,
                       not_after=not_after)
        promised = now_wall + timedelta(seconds=delay + self._estimate(entry, waiting_here + 1))
        if not_after is not None and promised > not_after:
            raise Rejected(f"the queue cannot call back before {not_after.isoformat()} (expected "
                           f"{promised.isoformat(timespec='seconds')})")
        req.estimated_at = promised
        if self.db is not None:
            try:
                await save_request(self.db, req, now=now_wall)
            except Exception as exc:  # noqa: BLE001 - any database failure: refuse rather than promise and forget
                log.exception("web callback could not be stored; refused")
                raise CallbackStoreUnavailable("the callback cannot be stored right now") from exc
        self._forget_old(now_wall)
        self._register(req)
        caller.emit(WebCallbackEvent.REQUESTED, {
            "queue": queue, "number": number, "context": req.context, "requested_by": requested_by,
            "not_before": not_before.isoformat() if not_before else None,
            "not_after": not_after.isoformat() if not_after else None})
        if hold_while is not None:
            hold_while.when_gone(lambda: req.timers.append(
                asyncio.get_running_loop().call_later(HANG_UP_GRACE, self._join_line, req)))
        else:
            self._arm(req, delay, now_wall)
        return CallbackTicket(req.id, promised, acd.position(entry))

    async def record_promise(self, callback_id: str, promised_at: datetime) -> None:
        """The time the API promised the customer (the estimate plus its margin), kept with the request."""
        req = self.requests.get(callback_id)
        if req is not None:
            req.promised_at = promised_at
            self._save(req)

    async def status(self, callback_id: str) -> Any:
        from callcore.api.outbound_services import CallbackStatus
        from callcore.api.services import NotFound

        req = self.requests.get(callback_id)
        if req is None:
            row = await stored_request(self.db, callback_id) if self.db is not None else None
            if row is None:
                raise NotFound(f"unknown callback {callback_id!r}")
            # Finished before a restart, or forgotten from memory after a day: the row still tells.
            return CallbackStatus(str(row["id"]), row["status"], row["queue"], row["number"], None, None,
                                  row["requested_by"], row["created_at"], row["attempts"])
        waiting = req.status == "waiting"
        position = self.acd.position(req.entry) if waiting and req.entry.id in self.acd.waiting else None
        estimated = self._wall() + timedelta(seconds=self._estimate(req.entry, position)) if position else None
        return CallbackStatus(req.id, req.status, req.queue, req.number, position, estimated,  # type: ignore[arg-type]
                              req.requested_by, req.created_at, req.entry.attempts)

    async def cancel(self, callback_id: str) -> Any:
        from callcore.api.services import NotFound, Rejected

        req = self.requests.get(callback_id)
        if req is None:
            if self.db is not None and await stored_request(self.db, callback_id) is not None:
                raise Rejected(f"callback {callback_id} is over")
            raise NotFound(f"unknown callback {callback_id!r}")
        if req.status != "waiting" or req.entry.assigned is not None:
            raise Rejected(f"callback {callback_id} is {req.status if req.status != 'waiting' else 'being dialled'}")
        self._finish(req, "cancelled")
        return await self.status(callback_id)

    def _forget_old(self, now: datetime) -> None:
        """Finished requests are kept a day for ``GET /callbacks/{id}``, then forgotten (the events keep them)."""
        cutoff = now - timedelta(days=1)
        for rid in [r.id for r in self.requests.values()
                    if r.status not in ("waiting", "dialing", "connected") and r.created_at < cutoff]:
            del self.requests[rid]

    def pending(self) -> int:
        return sum(1 for r in self.requests.values() if r.status in ("waiting", "dialing"))

    def open_request(self, number: str, queue: str) -> str | None:
        """The id of a callback of ``number`` still to be made in ``queue`` (waiting or being dialled), if any."""
        return next((r.id for r in self.requests.values()
                     if r.number == number and r.queue == queue and r.status in ("waiting", "dialing")), None)

    # -- restart -----------------------------------------------------------------------------------------
    async def restore(self) -> int:
        """Put the open requests of the database back in line (at start, before the API takes requests).
        Returns how many are waiting again."""
        if self.db is None:
            return 0
        from callcore.acd.service import QueuedCaller

        rows = await open_requests(self.db)
        now_wall = self._wall()
        back = 0
        for row in rows:
            rid = str(row["id"])
            if rid in self.requests:
                continue
            entry = QueuedCaller(
                _Caller(self.acd, row["number"], row["id"]), row["queue"], 0,  # type: ignore[arg-type]
                self.acd.now() + (row["queued_at"] - now_wall).total_seconds(), {},
                callback_number=row["number"], ident=str(uuid7()), callback=self.settings, whisper=list(WHISPER),
                attempts=row["attempts"])
            req = _Request(rid, row["number"], row["queue"], dict(row["context"] or {}), row["requested_by"],
                           row["created_at"], entry, status="waiting", queued_at=row["queued_at"],
                           estimated_at=row["estimated_at"], promised_at=row["promised_at"],
                           not_before=row["not_before"], not_after=row["not_after"], retry_at=row["retry_at"],
                           last_outcome=row["last_outcome"])
            self._register(req)
            stored = row["status"]
            if stored == "connected":
                self._finish(req, "done")  # the callee was put through before the restart: the promise was kept
                continue
            cfg = self.acd.config.queues.get(row["queue"])
            if cfg is None:
                log.error("web callback for a queue that no longer exists", callback=rid, queue=row["queue"])
                self._finish(req, "failed")
                continue
            if stored == "dialing":
                # Cut short by the restart: redo the attempt (it does not count), once its ringing is surely over.
                entry.attempts = max(0, entry.attempts - 1)
                since = row["dialing_since"] or row["updated_at"]
                req.retry_at = since + timedelta(seconds=self.settings.ring_timeout + RESTART_HOLD_OFF)
                req.last_outcome = "interrupted"
            if req.not_after is not None and req.not_after <= now_wall:
                self._finish(req, "expired")
                continue
            rejoin = max(t for t in (req.queued_at, req.retry_at, now_wall) if t is not None)
            self._arm(req, (rejoin - now_wall).total_seconds(), now_wall)
            req.entry.call.emit(WebCallbackEvent.RESTORED, {"status": stored, "attempts": entry.attempts,
                                                            "rejoins_at": rejoin.isoformat()})
            if stored != "waiting":
                self._save(req)
            back += 1
        if rows:
            log.info("web callbacks restored", waiting=back, loaded=len(rows))
        return back

    async def flush(self) -> None:
        """Wait until every state change is written (tests; shutdown)."""
        while self._dirty or (self._writer is not None and not self._writer.done()):
            if self._writer is None or self._writer.done():
                self._start_writer()
            self._written.clear()
            await self._written.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """At shutdown, before the database pool closes: write what is still unwritten."""
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            log.error("web callback states not written at shutdown", unwritten=len(self._dirty))
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        for req in self.requests.values():
            for timer in req.timers:
                timer.cancel()

    # -- bookkeeping -------------------------------------------------------------------------------------
    def _register(self, req: _Request) -> None:
        self.requests[req.id] = req
        self._by_entry[id(req.entry)] = req

    def _arm(self, req: _Request, delay: float, now_wall: datetime) -> None:
        """Join the line after ``delay`` seconds; expire at ``not_after``."""
        loop = asyncio.get_running_loop()
        if delay > 0:
            req.timers.append(loop.call_later(delay, self._join_line, req))
        else:
            self._join_line(req)
        if req.not_after is not None:
            req.timers.append(loop.call_later(max(0.0, (req.not_after - now_wall).total_seconds()),
                                              self._expire, req))

    def _estimate(self, entry: QueuedCaller, position: int | None) -> float:
        acd = self.acd
        serving = sum(1 for a, s in acd.agents.items()
                      if s.state != "logged_out" and entry.queue in acd.config.agents[a].queues)
        wait = estimated_wait(position or 1, serving, acd.handle_seconds.get(entry.queue, 180.0))
        return 0.0 if math.isinf(wait) else wait

    def _join_line(self, req: _Request) -> None:
        if req.status == "waiting":
            self.acd.waiting[req.entry.id] = req.entry
            self.acd._kick()

    def _expire(self, req: _Request) -> None:
        if req.status == "waiting" and req.entry.assigned is None:
            self._finish(req, "expired")

    def _finish(self, req: _Request, status: str) -> None:
        req.status = status
        req.finished_at = self._wall()
        req.dialing_since = None
        self.acd.withdraw_callback(req.entry, status)  # also stops an attempt waiting for its retry time
        for timer in req.timers:
            timer.cancel()
        req.entry.call.emit(WebCallbackEvent.FINISHED, {"status": status, "attempts": req.entry.attempts})
        self._by_entry.pop(id(req.entry), None)
        self._save(req)

    async def _still_wanted(self, entry: QueuedCaller) -> bool:
        """Right before an attempt: does the stored request still stand? A GDPR erasure (``callcore.ops.gdpr``)
        rewrites the row — number replaced, a waiting request cancelled — without this process knowing; such a
        request ends here, its number forgotten in memory too. An unreadable database does not stop the attempt
        (the do-not-call check right before it refuses numbers it cannot check)."""
        req = self._by_entry.get(id(entry))
        if req is None or self.db is None:
            return True  # a virtual-hold caller, or no database
        try:
            row = await stored_request(self.db, req.id)
        except Exception:  # noqa: BLE001 - see the docstring
            log.warning("web callback row could not be read before dialling", callback=req.id, exc_info=True)
            return True
        if row is None or (row["status"] in ("waiting", "dialing") and row["number"] == req.number):
            return True
        log.info("web callback ended elsewhere; not dialled", callback=req.id, stored_status=row["status"])
        req.number, req.context = row["number"], {}
        entry.callback_number = entry.call.caller_number = row["number"]
        self._finish(req, row["status"] if row["status"] not in OPEN_STATUSES else "cancelled")
        return False

    def _news(self, entry: QueuedCaller, what: str) -> None:
        req = self._by_entry.get(id(entry))
        if req is None:
            return  # a virtual hold caller, not a web request
        if what == "dialing":
            req.status = "dialing"
            req.dialing_since = self._wall()
            req.retry_at = None
        elif what == "connected":
            req.status = "connected"
            req.last_outcome = "answered"
        elif what in ("no_answer", "error"):
            req.status = "waiting"  # back in line after retry_after, keeping its place
            req.dialing_since = None
            req.last_outcome = what
            req.retry_at = self._wall() + timedelta(seconds=self.settings.retry_after)
        elif what in ("failed", "failed_error", "refused", "done"):
            # failed: the last attempt was not answered; failed_error: it could not be placed; refused: the
            # number may not be called (toll-fraud policy, do-not-call) — all end the request as failed.
            if what != "done":
                req.last_outcome = {"failed": "no_answer", "failed_error": "error", "refused": "refused"}[what]
            self._finish(req, "done" if what == "done" else "failed")
            return
        self._save(req)

    # -- the background writer ----------------------------------------------------------------------------
    def _save(self, req: _Request) -> None:
        """Write this request's state soon (its latest state, whatever changes meanwhile)."""
        if self.db is None:
            return
        self._dirty.pop(req.id, None)
        self._dirty[req.id] = next(self._changes)
        if self._writer is None or self._writer.done():
            self._start_writer()

    def _start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="web-callbacks-writer")

    async def _write_loop(self) -> None:
        backoff = 0.5
        try:
            while self._dirty:
                rid, mark = next(iter(self._dirty.items()))
                req = self.requests.get(rid)
                if req is None:
                    self._dirty.pop(rid, None)
                    continue
                try:
                    await save_request(self.db, req, now=self._wall())
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the database is away: keep the state and retry
                    log.warning("web callback state not written; retrying", callback=rid, retry_in=backoff,
                                exc_info=True)
                    await asyncio.sleep(backoff)
                    backoff = min(30.0, backoff * 2)
                    continue
                backoff = 0.5
                # Done unless it changed again meanwhile (then it was marked anew and is written once more).
                if self._dirty.get(rid) == mark:
                    del self._dirty[rid]
        finally:
            self._written.set()
