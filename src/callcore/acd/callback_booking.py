"""Callbacks promised on the phone are booked, not just noted.

The IVR's ``callback`` node and a queue's ``overflow: {action: callback}`` tell the caller "we will call you back".
That promise becomes the same durable callback request as "call me now" (:mod:`callcore.acd.web_callbacks`): it
waits in the queue's line, is dialled when an agent is reserved for it, and survives a restart. Before it is
booked, the number passes the callback policy and the do-not-call list (:class:`CallbackGuard`: toll fraud — a
presented number may be a premium line) and the limits of ``callbacks:`` (switched on, not too many pending). A
number that already has a callback waiting in that queue keeps its one request: pressing the key again, or calling
again, does not make a second one. When the booking cannot be made the caller is told so instead of being promised
a call nobody would make.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from callcore.acd.callback_guard import CallbackGuard

if TYPE_CHECKING:
    from callcore.acd.web_callbacks import WebCallbacks

log = structlog.get_logger("callcore.acd")


@dataclass(frozen=True, slots=True)
class Booking:
    """``allowed``: the callback is booked (``callback_id``); else ``code`` / ``reason`` say why not."""

    allowed: bool
    number: str  # E.164 when the policy accepted it; as given otherwise
    code: str | None = None
    reason: str | None = None
    callback_id: str | None = None


class CallbackBooker:
    """The policy check and the booking of a phone-promised callback (the IVR runner and the ACD share one)."""

    def __init__(self, guard: CallbackGuard, scheduler: WebCallbacks | None = None) -> None:
        self.guard = guard
        self.scheduler = scheduler  # None: nothing can be booked (every request is refused, never only noted)

    async def book(self, raw_number: str, queue: str, context: Mapping[str, str], *, requested_by: str,
                   call: Any, keep_place_since: float | None = None, priority: int = 0,
                   skills: Mapping[str, int] | None = None) -> Booking:
        """Book a callback of ``raw_number`` into ``queue`` for the caller on ``call``; it is dialled once that
        call is over. ``keep_place_since`` (the ACD's clock): the caller keeps the place in line it had since then
        (an overflow: the wait so far is not lost), with its ``priority`` and ``skills``."""
        settings = self.guard.settings
        if not settings.enabled:
            return Booking(False, raw_number, "callbacks_disabled", "callbacks are switched off (callbacks.enabled)")
        verdict = await self.guard.check(raw_number)
        if not verdict.allowed:
            return Booking(False, verdict.number, verdict.code, verdict.reason)
        number = verdict.number
        scheduler = self.scheduler
        if scheduler is None:
            return Booking(False, number, "callbacks_unavailable", "no callback scheduler is running")
        existing = scheduler.open_request(number, queue)
        if existing is not None:
            return Booking(True, number, callback_id=existing)
        if scheduler.pending() >= settings.max_pending:
            log.warning("phone callback refused", reason="callbacks_busy", pending=settings.max_pending)
            return Booking(False, number, "callbacks_busy", "too many callbacks are waiting")
        from callcore.acd.web_callbacks import CallbackStoreUnavailable
        from callcore.api.services import NotFound, Rejected

        try:
            ticket = await scheduler.request(number, queue, context, None, None, requested_by=requested_by,
                                             keep_place_since=keep_place_since, hold_while=call,
                                             priority=priority, skills=skills)
        except CallbackStoreUnavailable:
            return Booking(False, number, "service_unavailable", "the callback cannot be stored right now")
        except (NotFound, Rejected) as exc:
            return Booking(False, number, "queue_unavailable", str(exc))
        return Booking(True, number, callback_id=ticket.id)


__all__ = ["Booking", "CallbackBooker"]
