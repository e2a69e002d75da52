""""Call me now" from a web page: a callback request waits in a queue like a caller, and is dialled in turn.

The API (``POST /callbacks``) has already normalised, allow-listed, rate-limited and DNC-checked the number; here
the request becomes a queue entry with a callback number (the same machinery as virtual hold, see
``callcore.acd.virtual_hold``): it keeps its place, an agent is reserved when its turn comes, the number is
dialled, and the agent first hears that this is a web callback (the context — page, product, note — is in the
events and the API for the agent's screen). ``not_before`` holds it out of line until then; ``not_after`` ends
it (``expired``) if it was not dialled by then. The promise is the queue's own estimate (position × recent
handle time ÷ agents serving), the same one the announcements use.

Requests live in this process (an event per step goes to the store): a restart forgets pending requests; the
events tell which ones (``web_callback_requested`` without ``web_callback_finished``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from callcore.acd.model import VirtualHold
from callcore.acd.router import estimated_wait
from callcore.events import CallEvent, utcnow
from callcore.ids import uuid7

if TYPE_CHECKING:
    from callcore.acd.service import AcdService, QueuedCaller

WHISPER = ["callcore/web-callback-whisper"]


class WebCallbackEvent:
    REQUESTED = "web_callback_requested"  # data: queue, number, context, requested_by, not_before, not_after
    FINISHED = "web_callback_finished"  # data: status (done|failed|cancelled|expired), attempts


class _Caller:
    """What a queue entry needs of a caller, for a request with no call yet: an id, a number, a way to log."""

    def __init__(self, acd: AcdService, number: str) -> None:
        self.call_id = uuid7()
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


class WebCallbacks:
    """Implements ``callcore.api.outbound_services.CallbackScheduler`` on the ACD."""

    def __init__(self, acd: AcdService, settings: VirtualHold | None = None) -> None:
        self.acd = acd
        # How a web callback is dialled: like virtual hold, with the web callback greeting.
        self.settings = settings or VirtualHold(greeting=["callcore/virtual-hold-greeting"], attempts=2,
                                                retry_after=120, ring_timeout=30)
        self.requests: dict[str, _Request] = {}
        self._by_entry: dict[int, _Request] = {}
        acd.callback_listener = self._news

    # -- the protocol ------------------------------------------------------------------------------------
    async def request(self, number: str, queue: str, context: Mapping[str, str], not_before: datetime | None,
                      not_after: datetime | None, *, requested_by: str = "") -> Any:
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
        if cfg.max_length is not None and waiting_here >= cfg.max_length:
            raise Rejected(f"queue {queue!r} is full")
        now_wall = utcnow()
        delay = max(0.0, (not_before - now_wall).total_seconds()) if not_before else 0.0
        caller = _Caller(acd, number)
        entry = QueuedCaller(caller, queue, cfg.priority, acd.now() + delay, {},  # type: ignore[arg-type]
                             callback_number=number, ident=str(uuid7()), callback=self.settings, whisper=list(WHISPER))
        req = _Request(str(caller.call_id), number, queue, dict(context), requested_by, now_wall, entry)
        promised = now_wall + timedelta(seconds=delay + self._estimate(entry, waiting_here + 1))
        if not_after is not None and promised > not_after:
            raise Rejected(f"the queue cannot call back before {not_after.isoformat()} (expected "
                           f"{promised.isoformat(timespec='seconds')})")
        self._forget_old(now_wall)
        self.requests[req.id] = req
        self._by_entry[id(entry)] = req
        caller.emit(WebCallbackEvent.REQUESTED, {
            "queue": queue, "number": number, "context": req.context, "requested_by": requested_by,
            "not_before": not_before.isoformat() if not_before else None,
            "not_after": not_after.isoformat() if not_after else None})
        loop = asyncio.get_running_loop()
        if delay > 0:
            req.timers.append(loop.call_later(delay, self._join_line, req))
        else:
            self._join_line(req)
        if not_after is not None:
            req.timers.append(loop.call_later(max(0.0, (not_after - now_wall).total_seconds()), self._expire, req))
        return CallbackTicket(req.id, promised, acd.position(entry))

    async def status(self, callback_id: str) -> Any:
        from callcore.api.outbound_services import CallbackStatus
        from callcore.api.services import NotFound

        req = self.requests.get(callback_id)
        if req is None:
            raise NotFound(f"unknown callback {callback_id!r}")
        waiting = req.status == "waiting"
        position = self.acd.position(req.entry) if waiting and req.entry.id in self.acd.waiting else None
        estimated = utcnow() + timedelta(seconds=self._estimate(req.entry, position)) if position else None
        return CallbackStatus(req.id, req.status, req.queue, req.number, position, estimated,  # type: ignore[arg-type]
                              req.requested_by, req.created_at, req.entry.attempts)

    async def cancel(self, callback_id: str) -> Any:
        from callcore.api.services import NotFound, Rejected

        req = self.requests.get(callback_id)
        if req is None:
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

    # -- bookkeeping -------------------------------------------------------------------------------------
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
        self.acd.waiting.pop(req.entry.id, None)
        for timer in req.timers:
            timer.cancel()
        req.entry.call.emit(WebCallbackEvent.FINISHED, {"status": status, "attempts": req.entry.attempts})
        self._by_entry.pop(id(req.entry), None)

    def _news(self, entry: QueuedCaller, what: str) -> None:
        req = self._by_entry.get(id(entry))
        if req is None:
            return  # a virtual hold caller, not a web request
        if what == "dialing":
            req.status = "dialing"
        elif what == "connected":
            req.status = "connected"
        elif what == "no_answer":
            req.status = "waiting"  # back in line after retry_after, keeping its place
        elif what in ("failed", "done"):
            self._finish(req, what)
