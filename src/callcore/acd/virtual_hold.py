"""Virtual hold: "press 1 to be called back, keeping your place in line".

A caller who accepts hangs up but stays in the queue (``QueuedCaller.callback_number`` set, its original
``enqueued_at`` kept), so it moves up with everyone else and the router treats it like any caller. When its turn
comes the router reserves an agent for it and callcore dials the caller back as a new outbound call (the agent
waits reserved while the phone rings, so the caller is never called back only to wait again); when the caller
answers they hear a short greeting and the reserved agent's phone rings. No answer: the agent is released and
the caller keeps its place for another attempt after ``retry_after`` seconds, up to ``attempts``.

Events: ``virtual_hold_requested`` (original call: number, position), ``virtual_hold_attempt`` (original call:
attempt, outcome, callback call id), ``virtual_hold_failed`` (with the reason); the callback is a call of its own
whose ``call_started`` carries ``callback_of``.

Toll fraud: the caller's number is only what its network presents, so it goes through the same destination policy
as ``POST /callbacks`` (:mod:`callcore.acd.callback_guard`): a number the policy refuses is never offered the
callback (``virtual_hold_not_offered``); one on the do-not-call list when the caller presses the digit is told so
and keeps waiting (``virtual_hold_refused``); each attempt is checked again right before dialling.

A non-answer and any other failure of an attempt (``outcome`` no_answer / error) count alike: retried after
``retry_after`` up to ``attempts``, then ``virtual_hold_failed``. A request its owner ended meanwhile (cancelled,
expired: :meth:`VirtualHoldMixin.withdraw_callback`) is not put back in line.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import structlog

from callcore.acd.callback_guard import DNC_UNAVAILABLE, CallbackGuard, CallbackVerdict
from callcore.acd.model import media_uri
from callcore.calls.call import Call, OriginateFailed
from callcore.ids import uuid7

if TYPE_CHECKING:
    from callcore.acd.model import QueueConfig
    from callcore.acd.service import AcdService, QueuedCaller

log = structlog.get_logger("callcore.acd")

class _NotChecked(Exception):
    """The callback number could not be checked (do-not-call list unreadable): the attempt fails."""


VIRTUAL_HOLD = "\x00virtual-hold"  # what _wait_for_agent returns when the caller accepted the offer
_DIALABLE = re.compile(r"^\+?[0-9]{3,20}$")


class VirtualHoldEvent:
    REQUESTED = "virtual_hold_requested"  # data: queue, number, position
    ATTEMPT = "virtual_hold_attempt"  # data: queue, attempt, outcome (answered | no_answer | error), callback_call_id, cause
    FAILED = "virtual_hold_failed"  # data: queue, attempts, reason (no_answer | error | destination_refused), code, detail
    NOT_OFFERED = "virtual_hold_not_offered"  # data: queue, code, detail (the number may not be called back)
    REFUSED = "virtual_hold_refused"  # data: queue, code, detail (pressed the digit; told, keeps waiting)
    WITHDRAWN = "virtual_hold_withdrawn"  # data: queue, reason (cancelled/expired while waiting for a retry)


REFUSED_PROMPT = ["callcore/callback-refused"]


class VirtualHoldMixin:
    # The toll-fraud guard (callcore.acd.callback_guard), set by the app from ``callbacks:``. None: no number
    # policy, only the digits check (unit tests of other parts; see docs/security.md).
    callback_guard: CallbackGuard | None = None
    # Asked right before each callback attempt whether its request still stands (web callbacks: the stored row,
    # which a GDPR erasure or another process may have ended). None: always.
    callback_check: Callable[[QueuedCaller], Awaitable[bool]] | None = None

    def can_call_back(self: AcdService, entry: QueuedCaller) -> bool:
        """Only a caller with a number we can dial (not withheld) and may dial (the callback number policy), and
        only when calls can be placed. A refused number is never offered the callback (said once, as an event)."""
        if self.runtime is None or not _DIALABLE.match(entry.call.caller_number or ""):
            return False
        if entry.callback_refusal is not None:
            return False
        queue = self.config.queues.get(entry.queue)
        if self.callback_guard is None or queue is None or queue.virtual_hold is None:
            return True
        verdict = self.callback_guard.destination(entry.call.caller_number)
        if not verdict.allowed:
            entry.callback_refusal = verdict.code
            entry.call.emit(VirtualHoldEvent.NOT_OFFERED, {"queue": entry.queue, **verdict.event_data()})
        return verdict.allowed

    async def _accept_virtual_hold(self: AcdService, entry: QueuedCaller, queue: QueueConfig) -> str | None:
        """The caller pressed the digit: confirm, keep its place under a callback id, hang up. None when the
        number may not be called back after all (do-not-call): the caller is told and keeps waiting in line."""
        from callcore.acd.service import QueuedCaller

        vh = queue.virtual_hold
        assert vh is not None
        call = entry.call
        if self.callback_guard is not None:
            verdict = await self.callback_guard.check(call.caller_number)
            if not verdict.allowed:
                entry.callback_refusal = verdict.code
                call.emit(VirtualHoldEvent.REFUSED, {"queue": entry.queue, **verdict.event_data()})
                await self._stop_music(call)
                await call.play([media_uri(m) for m in REFUSED_PROMPT])
                return None
        await self._stop_music(call)
        keeper = QueuedCaller(call, entry.queue, entry.priority, entry.enqueued_at, entry.skills,
                              offered_to=set(entry.offered_to), callback_number=call.caller_number,
                              ident=str(uuid7()), callback=vh)
        self.waiting.pop(entry.id, None)
        self.waiting[keeper.id] = keeper
        call.emit(VirtualHoldEvent.REQUESTED, {"queue": entry.queue, "number": call.caller_number,
                                               "position": self.position(keeper)})
        try:
            await call.play([media_uri(m) for m in vh.confirmation])
        finally:
            self._kick()
        await call.hangup()
        return "virtual_hold"

    def withdraw_callback(self: AcdService, entry: QueuedCaller, reason: str) -> None:
        """The callback's owner ended it (web callbacks: cancelled, expired, erased): out of line now, and an
        attempt waiting for its retry time is not put back in line (nor dialled)."""
        entry.withdrawn = reason
        self.waiting.pop(entry.id, None)

    def _start_callback(self: AcdService, entry: QueuedCaller) -> None:
        task = asyncio.get_running_loop().create_task(self._call_back(entry), name=f"callback:{entry.id}")
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _call_back(self: AcdService, entry: QueuedCaller) -> None:
        """One callback attempt for a reserved agent. Every way out leaves the entry in a defined state: connected,
        back in line after ``retry_after`` (unless withdrawn meanwhile), or finished with a ``virtual_hold_failed``
        event saying why — never out of line and unfinished."""
        vh = entry.callback
        agent_id = entry.assigned
        assert vh is not None and agent_id is not None and self.runtime is not None
        self.waiting.pop(entry.id, None)  # being dialed: no longer in line (back in line if not answered)
        number = entry.callback_number or ""
        cause: object = None
        refusal = await self._dial_time_refusal(number)
        if refusal is not None and refusal.code != DNC_UNAVAILABLE:
            # Not allowed (any more): no attempt. The caller hung up long ago; the event says why.
            self.offer_withdrawn(agent_id, entry, "callback refused")
            entry.assigned = None
            entry.call.emit(VirtualHoldEvent.FAILED, {"queue": entry.queue, "attempts": entry.attempts,
                                                      "reason": "destination_refused", **refusal.event_data()})
            self._callback_news(entry, "refused")
            return
        if self.callback_check is not None and not await self.callback_check(entry):
            # Ended elsewhere meanwhile (its stored request erased under the GDPR or cancelled): nobody is dialled.
            self.offer_withdrawn(agent_id, entry, "callback withdrawn")
            entry.assigned = None
            entry.call.emit(VirtualHoldEvent.WITHDRAWN, {"queue": entry.queue, "reason": entry.withdrawn or "ended"})
            return
        entry.attempts += 1
        template = vh.endpoint or self.config.transfers.external_endpoint
        attempt = {"queue": entry.queue, "attempt": entry.attempts, "callback_call_id": entry.id}
        self._callback_news(entry, "dialing")
        try:
            if refusal is not None:  # the DNC list could not be read: this attempt fails, the next may do
                raise _NotChecked(refusal.reason or "")
            await self.runtime.place_call(
                template.format(number=number), partial(self._callback_answered, entry, agent_id),
                caller_id=None, timeout=vh.ring_timeout, call_id=uuid.UUID(entry.id),
                data={"did": number, "callback_of": str(entry.call.call_id), "queue": entry.queue})
        except OriginateFailed as exc:
            outcome, cause = "no_answer", exc.cause
        except asyncio.CancelledError:
            self.offer_withdrawn(agent_id, entry, "shutdown")
            raise
        except Exception as exc:  # noqa: BLE001 - any other failure counts as an attempt, retried per the policy
            if not isinstance(exc, _NotChecked):
                log.exception("virtual hold callback failed", queue=entry.queue)
            outcome, cause = "error", f"{type(exc).__name__}: {exc}"[:200]
        else:
            entry.call.emit(VirtualHoldEvent.ATTEMPT, {**attempt, "outcome": "answered"})
            self._callback_news(entry, "connected")
            return
        entry.call.emit(VirtualHoldEvent.ATTEMPT, {**attempt, "outcome": outcome, "cause": cause})
        self.offer_withdrawn(agent_id, entry, "callback not answered" if outcome == "no_answer" else "callback failed")
        entry.assigned = None
        if entry.attempts >= vh.attempts:
            entry.call.emit(VirtualHoldEvent.FAILED, {"queue": entry.queue, "attempts": entry.attempts,
                                                      "reason": outcome})
            self._callback_news(entry, "failed" if outcome == "no_answer" else "failed_error")
            return
        self._callback_news(entry, outcome)
        await asyncio.sleep(vh.retry_after)
        if entry.withdrawn is not None:
            # Cancelled or expired while waiting for the retry: its owner finished it; nobody is dialled.
            entry.call.emit(VirtualHoldEvent.WITHDRAWN, {"queue": entry.queue, "reason": entry.withdrawn})
            return
        entry.ident = str(uuid7())  # the next attempt is a new call
        self.waiting[entry.id] = entry  # same enqueued_at: its place in line is kept
        self._kick()

    async def _dial_time_refusal(self: AcdService, number: str) -> CallbackVerdict | None:
        """Checked again right before each dial: a number put on the do-not-call list (or erased) meanwhile."""
        if self.callback_guard is None:
            return None
        verdict = await self.callback_guard.check(number)
        return None if verdict.allowed else verdict

    async def _callback_answered(self: AcdService, entry: QueuedCaller, agent_id: str, call: Call) -> None:
        """Runs in the callback call's own task: greet, then the reserved agent's phone rings."""
        from callcore.acd.service import AcdEventType, QueuedCaller

        queue = self.config.queues[entry.queue]
        assert entry.callback is not None
        callee = QueuedCaller(call, entry.queue, entry.priority, entry.enqueued_at, entry.skills,
                              offered_to=set(entry.offered_to), assigned=agent_id, whisper=list(entry.whisper))
        self.waiting[callee.id] = callee  # callee.id == entry.id: the reserved agent's offer is this call
        call.emit(AcdEventType.QUEUED, {"queue": entry.queue, "priority": entry.priority, "skills": entry.skills,
                                        "position": 1, "virtual_hold": True, "agent": agent_id})
        try:
            await self._serve_loop(callee, queue, greeting=entry.callback.greeting)
        finally:
            self._callback_news(entry, "done")

    def _callback_news(self: AcdService, entry: QueuedCaller, what: str) -> None:
        if self.callback_listener is not None:
            self.callback_listener(entry, what)
