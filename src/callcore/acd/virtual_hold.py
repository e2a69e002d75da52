"""Virtual hold: "press 1 to be called back, keeping your place in line".

A caller who accepts hangs up but stays in the queue (``QueuedCaller.callback_number`` set, its original
``enqueued_at`` kept), so it moves up with everyone else and the router treats it like any caller. When its turn
comes the router reserves an agent for it and callcore dials the caller back as a new outbound call (the agent
waits reserved while the phone rings, so the caller is never called back only to wait again); when the caller
answers they hear a short greeting and the reserved agent's phone rings. No answer: the agent is released and
the caller keeps its place for another attempt after ``retry_after`` seconds, up to ``attempts``.

Events: ``virtual_hold_requested`` (original call: number, position), ``virtual_hold_attempt`` (original call:
attempt, outcome, callback call id), ``virtual_hold_failed``; the callback is a call of its own whose
``call_started`` carries ``callback_of``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from functools import partial
from typing import TYPE_CHECKING

import structlog

from callcore.acd.model import media_uri
from callcore.calls.call import Call, OriginateFailed
from callcore.ids import uuid7

if TYPE_CHECKING:
    from callcore.acd.model import QueueConfig
    from callcore.acd.service import AcdService, QueuedCaller

log = structlog.get_logger("callcore.acd")

VIRTUAL_HOLD = "\x00virtual-hold"  # what _wait_for_agent returns when the caller accepted the offer
_DIALABLE = re.compile(r"^\+?[0-9]{3,20}$")


class VirtualHoldEvent:
    REQUESTED = "virtual_hold_requested"  # data: queue, number, position
    ATTEMPT = "virtual_hold_attempt"  # data: queue, attempt, outcome (answered | no_answer), callback_call_id, cause
    FAILED = "virtual_hold_failed"  # data: queue, attempts


class VirtualHoldMixin:
    def can_call_back(self: AcdService, entry: QueuedCaller) -> bool:
        """Only a caller with a number we can dial (not withheld), and only when calls can be placed."""
        return self.runtime is not None and bool(_DIALABLE.match(entry.call.caller_number or ""))

    async def _accept_virtual_hold(self: AcdService, entry: QueuedCaller, queue: QueueConfig) -> str:
        """The caller pressed the digit: confirm, keep its place under a callback id, hang up."""
        from callcore.acd.service import QueuedCaller

        vh = queue.virtual_hold
        assert vh is not None
        call = entry.call
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

    def _start_callback(self: AcdService, entry: QueuedCaller) -> None:
        task = asyncio.get_running_loop().create_task(self._call_back(entry), name=f"callback:{entry.id}")
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _call_back(self: AcdService, entry: QueuedCaller) -> None:
        vh = entry.callback
        agent_id = entry.assigned
        assert vh is not None and agent_id is not None and self.runtime is not None
        self.waiting.pop(entry.id, None)  # being dialed: no longer in line (back in line if not answered)
        entry.attempts += 1
        number = entry.callback_number or ""
        template = vh.endpoint or self.config.transfers.external_endpoint
        attempt = {"queue": entry.queue, "attempt": entry.attempts, "callback_call_id": entry.id}
        self._callback_news(entry, "dialing")
        try:
            await self.runtime.place_call(
                template.format(number=number), partial(self._callback_answered, entry, agent_id),
                caller_id=None, timeout=vh.ring_timeout, call_id=uuid.UUID(entry.id),
                data={"did": number, "callback_of": str(entry.call.call_id), "queue": entry.queue})
        except OriginateFailed as exc:
            entry.call.emit(VirtualHoldEvent.ATTEMPT, {**attempt, "outcome": "no_answer", "cause": exc.cause})
            self.offer_withdrawn(agent_id, entry, "callback not answered")
            entry.assigned = None
            if entry.attempts >= vh.attempts:
                entry.call.emit(VirtualHoldEvent.FAILED, {"queue": entry.queue, "attempts": entry.attempts})
                self._callback_news(entry, "failed")
                return
            self._callback_news(entry, "no_answer")
            await asyncio.sleep(vh.retry_after)
            entry.ident = str(uuid7())  # the next attempt is a new call
            self.waiting[entry.id] = entry  # same enqueued_at: its place in line is kept
            self._kick()
        except asyncio.CancelledError:
            self.offer_withdrawn(agent_id, entry, "shutdown")
            raise
        except Exception:
            log.exception("virtual hold callback failed", queue=entry.queue)
            self.offer_withdrawn(agent_id, entry, "callback failed")
        else:
            entry.call.emit(VirtualHoldEvent.ATTEMPT, {**attempt, "outcome": "answered"})
            self._callback_news(entry, "connected")

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
