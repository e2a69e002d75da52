"""A connected ACD call and what may happen while it lasts: transfers, consultation, conference, recording.

The caller's own task runs ``Conversation.run()``: the call keeps one owner. Service methods (API, CLI) do not
touch the call themselves; they ``submit`` a request and await its outcome, which the call task produces between
two events. ``run`` returns when the caller is gone or nobody is left to talk to (``None``), or with a ``Requeue``
when a blind transfer sends the caller back to a queue (or straight to one agent), or with a ``PostCallSurvey``
when the agent hung up first and the queue has a ``survey`` flow for the caller.

Bridges: the caller sits in the *main* bridge with the parties (normally one agent). A consultation takes the
consulting agent out into a *consult* bridge with the third party while the caller hears music in the main
bridge; completing it moves the third party into the main bridge and lets the agent go, cancelling it moves the
agent back, a conference brings both back.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from callcore.acd import agent_state as st
from callcore.calls.call import Call, CallHungUp, Leg, OriginateFailed

if TYPE_CHECKING:
    from callcore.acd.service import AcdService, QueuedCaller

log = structlog.get_logger("callcore.acd")


class ConversationEvent:
    TRANSFERRED = "transferred"  # data: kind (blind|attended), from_agent, to_queue | to_agent | to_number
    CONSULT_STARTED = "consult_started"  # data: agent, to_agent | to_number
    CONSULT_ENDED = "consult_ended"  # data: agent, outcome (cancelled | completed | conference | hung_up)
    CONFERENCE = "conference"  # data: parties
    PARTY_LEFT = "party_left"  # data: agent | number


class ConversationError(Exception):
    """A request that the conversation's current state does not allow (the API answers 409)."""


@dataclass(frozen=True)
class Requeue:
    """The outcome of a blind transfer to a queue (``agent`` None) or to one agent (reserved already)."""

    queue: str
    agent: str | None = None


@dataclass(frozen=True)
class PostCallSurvey:
    """The outcome when the agent hung up first and the caller's queue has a ``survey`` flow: the caller stays
    on the line and goes to that flow (``AcdService`` hands it over; the IVR runner runs it)."""

    flow: str
    queue: str
    agent: str | None


@dataclass
class Party:
    """Someone the caller talks to: an agent, or an external number (``agent_id`` None)."""

    leg: Leg
    agent_id: str | None
    number: str | None = None
    released: bool = False

    @property
    def name(self) -> str:
        return self.agent_id or self.number or self.leg.endpoint


@dataclass
class _Request:
    action: str
    args: dict[str, Any]
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Conversation:
    def __init__(self, acd: AcdService, entry: QueuedCaller, agent_id: str, leg: Leg, bridge_id: str) -> None:
        self.acd = acd
        self.entry = entry
        self.call: Call = entry.call
        self.queue = entry.queue
        self.parties: list[Party] = [Party(leg, agent_id)]
        self.bridge_id = bridge_id
        self.consult: Party | None = None  # the third party of a consultation (in the consult bridge)
        self.holder: Party | None = None  # the agent who consults (taken out of the main bridge)
        self.consult_bridge: str | None = None
        self.connected_at = acd.now()
        self._requests: asyncio.Queue[_Request] = asyncio.Queue()
        self.children: set[asyncio.Task[None]] = set()  # supervision sessions, recordings' helpers
        self.recorder: Any = None  # callcore.acd.recording.Recorder, when recording
        self.last_left: Party | None = None  # who hung up last (the agent who ended the call, for a survey)

    # -- who is on the call --------------------------------------------------------------------------------
    @property
    def agents(self) -> list[str]:
        people = [*self.parties, *(p for p in (self.holder, self.consult) if p is not None)]
        return [p.agent_id for p in people if p.agent_id is not None]

    def leg_of(self, agent_id: str) -> Leg | None:
        for p in [*self.parties, *(p for p in (self.holder, self.consult) if p is not None)]:
            if p.agent_id == agent_id:
                return p.leg
        return None

    # -- requests (from service methods) -------------------------------------------------------------------
    async def submit(self, action: str, **args: Any) -> Any:
        """Ask the call's task to do ``action``; returns its result or raises ConversationError."""
        if self.call.gone:
            raise ConversationError("the call has ended")
        request = _Request(action, args)
        await self._requests.put(request)
        return await request.done

    # -- the call task's loop -----------------------------------------------------------------------------
    async def run(self) -> Requeue | PostCallSurvey | None:
        self.acd.register(self)
        try:
            while True:
                if self.call.gone:
                    return None
                legs = {p.leg.ended: p for p in [*self.parties, *(x for x in (self.holder, self.consult) if x)]}
                getter = asyncio.ensure_future(self._requests.get())
                try:
                    done, _ = await asyncio.wait({self.call.gone_future, getter, *legs},
                                                 return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not getter.done():
                        getter.cancel()
                for fut in done:
                    party = legs.get(fut)
                    if party is not None:
                        self._party_hung_up(party)
                if getter.done() and not getter.cancelled():
                    outcome = await self._execute(getter.result())
                    if outcome is not None:
                        return outcome
                elif self.call.gone:
                    return None
                if not self.parties and self.consult is None and self.holder is None:
                    # Everyone the caller talked to hung up: the call is over, or the caller rates it.
                    return self._survey_after_agent_left()
                await self._settle()
        finally:
            await self._close()

    async def _settle(self) -> None:
        """After a hang-up during a consultation: who should now be with the caller."""
        if self.holder is not None and self.holder.leg.gone and self.consult is not None:
            # The consulting agent hung up: like a desk phone, that completes the transfer.
            await self._complete("hung_up")
        elif self.consult is not None and self.consult.leg.gone:
            await self._back_to_caller("hung_up")
        elif self.holder is not None and self.holder.leg.gone and self.consult is None:
            self.holder = None

    def _survey_after_agent_left(self) -> PostCallSurvey | None:
        """The agent side ended the call with the caller still there: a survey if the queue has one. (When the
        caller hangs up first, ``run`` returns before this: no survey.)"""
        queue = self.acd.config.queues.get(self.queue)
        # Only a caller who came in through the IVR has a flow to run the survey in (not a dialer or callback call).
        if queue is None or queue.survey is None or self.call.gone or self.call.direction != "inbound":
            return None
        agent = self.last_left.agent_id if self.last_left is not None else None
        return PostCallSurvey(queue.survey, self.queue, agent)

    def _party_hung_up(self, party: Party) -> None:
        self.last_left = party
        if party in self.parties:
            self.parties.remove(party)
        self.call.emit(ConversationEvent.PARTY_LEFT, {"agent": party.agent_id, "number": party.number})
        self.release(party)

    def release(self, party: Party, *, wrap_up: bool = True) -> None:
        """The party's part of the call is over: its agent goes to wrap-up (once)."""
        if party.released:
            return
        party.released = True
        if party.agent_id is None:
            return
        status = self.acd.agents.get(party.agent_id)
        call_id = self.entry.id
        if status is None or call_id not in status.calls:
            return
        agent_cfg = self.acd.config.agents[party.agent_id]
        queue = self.acd.config.queues.get(self.queue)
        wrap = queue.wrap_up_for(agent_cfg) if (queue and wrap_up) else 0.0
        self.acd._apply(party.agent_id, st.CallEnded(call_id, wrap_up_seconds=wrap), call=self.call, queue=self.queue)
        self.acd.record_handle_time(self.queue, self.acd.now() - self.connected_at + wrap)

    async def _close(self) -> None:
        self.acd.unregister(self)
        from callcore.acd.supervision import Supervision

        for task in list(self.children):
            session = Supervision.of(task)
            if session is not None:
                session.end_reason = "call ended"
            task.cancel()
        if self.children:
            await asyncio.gather(*self.children, return_exceptions=True)
        if self.recorder is not None:
            await self.recorder.finish()
        for party in [*self.parties, *(p for p in (self.holder, self.consult) if p is not None)]:
            self.release(party)
        if self.consult_bridge is not None:
            await self._quietly(self.acd_ari.bridges.destroy(self.consult_bridge))
            self.call.bridges.discard(self.consult_bridge)

    @property
    def acd_ari(self) -> Any:
        return self.call.ari

    async def _quietly(self, aw: Any) -> None:
        try:
            await aw
        except Exception as exc:  # noqa: BLE001 - best effort: the thing may already be gone
            log.info("conversation cleanup step skipped", error=str(exc))

    async def _execute(self, request: _Request) -> Requeue | None:
        handler = getattr(self, f"_do_{request.action}", None)
        try:
            if handler is None:
                raise ConversationError(f"unknown request {request.action!r}")
            result = await handler(**request.args)
        except (ConversationError, st.InvalidTransition) as exc:
            if not request.done.done():
                request.done.set_exception(exc)
            return None
        except BaseException as exc:
            if not request.done.done():
                request.done.set_exception(ConversationError(f"{request.action} failed: {exc}"))
            raise
        if isinstance(result, Requeue):
            if not request.done.done():
                request.done.set_result({"transferred": True})
            return result
        if not request.done.done():
            request.done.set_result(result)
        return None

    # -- blind transfers -----------------------------------------------------------------------------------
    def _check_agent(self, agent_id: str | None) -> Party:
        for p in self.parties:
            if p.agent_id == agent_id:
                return p
        if self.holder is not None and self.holder.agent_id == agent_id:
            raise ConversationError(f"agent {agent_id!r} is consulting: complete or cancel that first")
        raise ConversationError(f"agent {agent_id!r} is not on this call")

    async def _drop_everyone(self) -> None:
        """Hang up the parties and take the caller out of the main bridge (a blind transfer)."""
        for party in list(self.parties):
            self.parties.remove(party)
            self.release(party)
            await self._quietly(self.call._hangup_leg(party.leg))
        await self._quietly(self.acd_ari.bridges.destroy(self.bridge_id))
        self.call.bridges.discard(self.bridge_id)
        if self.recorder is not None:
            await self.recorder.finish()
            self.recorder = None

    async def _do_blind_queue(self, agent: str, queue: str) -> Requeue:
        self._check_agent(agent)
        if self.consult is not None:
            raise ConversationError("a consultation is in progress")
        self.acd.check_transfer_queue(queue)
        self.call.emit(ConversationEvent.TRANSFERRED, {"kind": "blind", "from_agent": agent, "to_queue": queue})
        await self._drop_everyone()
        return Requeue(queue)

    async def _do_blind_agent(self, agent: str, target: str) -> Requeue:
        self._check_agent(agent)
        if self.consult is not None:
            raise ConversationError("a consultation is in progress")
        if target == agent:
            raise ConversationError("an agent cannot transfer a call to itself")
        self.acd.reserve(target, self.entry)  # raises InvalidTransition unless the target is ready
        self.call.emit(ConversationEvent.TRANSFERRED, {"kind": "blind", "from_agent": agent, "to_agent": target})
        await self._drop_everyone()
        return Requeue(self.queue, target)

    async def _do_blind_number(self, agent: str, number: str) -> None:
        self._check_agent(agent)
        if self.consult is not None:
            raise ConversationError("a consultation is in progress")
        endpoint = self.acd.external_endpoint(number)
        self.call.emit(ConversationEvent.TRANSFERRED, {"kind": "blind", "from_agent": agent, "to_number": number})
        await self._drop_everyone()
        await self._quietly(self.acd_ari.channels.start_moh(self.call.channel_id, None))
        try:
            leg = await self.call.originate(endpoint, timeout=self.acd.transfer_ring_timeout)
        except OriginateFailed as exc:
            # Nobody answered at the number: the caller goes back to the queue rather than being dropped.
            self.call.emit(ConversationEvent.PARTY_LEFT, {"number": number, "cause": exc.cause})
            return Requeue(self.queue)  # type: ignore[return-value]
        await self._quietly(self.acd_ari.channels.stop_moh(self.call.channel_id))
        self.bridge_id = await self.call.bridge_with(leg)
        self.parties.append(Party(leg, None, number=number))
        await self.acd.start_recording_if_configured(self)
        return None

    # -- consultation (attended transfer) and conference ---------------------------------------------------
    async def _do_consult(self, agent: str, target_agent: str | None = None, number: str | None = None) -> dict:
        holder = self._check_agent(agent)
        if self.consult is not None or self.holder is not None:
            raise ConversationError("a consultation is already in progress")
        if (target_agent is None) == (number is None):
            raise ConversationError("consult needs exactly one of an agent or a number")
        if target_agent == agent:
            raise ConversationError("an agent cannot consult itself")
        if target_agent is not None:
            self.acd.reserve(target_agent, self.entry)
            endpoint = self.acd.config.agents[target_agent].endpoint
        else:
            endpoint = self.acd.external_endpoint(number or "")
        ari = self.acd_ari
        self.call.emit(ConversationEvent.CONSULT_STARTED, {"agent": agent, "to_agent": target_agent, "to_number": number})
        # The caller hears music in the main bridge; the agent waits in a bridge of its own.
        self.parties.remove(holder)
        self.holder = holder
        self.consult_bridge = (await ari.bridges.create(str(uuid.uuid4()), type="mixing")).id
        self.call.bridges.add(self.consult_bridge)
        await ari.bridges.remove_channel(self.bridge_id, [holder.leg.channel_id])
        await ari.bridges.add_channel(self.consult_bridge, [holder.leg.channel_id])
        await self._quietly(ari.bridges.start_moh(self.bridge_id, self._moh_class()))
        try:
            leg = await self.call.originate(endpoint, timeout=self.acd.transfer_ring_timeout)
        except OriginateFailed as exc:
            if target_agent is not None:
                self.acd.offer_withdrawn(target_agent, self.entry, "consult not answered")
            await self._back_to_caller("not_answered")
            raise ConversationError(f"{target_agent or number} did not answer ({exc.cause_text or exc.cause})") from exc
        except CallHungUp:
            if target_agent is not None:
                self.acd.offer_withdrawn(target_agent, self.entry, "caller hung up")
            raise
        if target_agent is not None:
            self.acd.answered(target_agent, self.entry)
        self.consult = Party(leg, target_agent, number=number)
        await ari.bridges.add_channel(self.consult_bridge, [leg.channel_id])
        return {"consulting": self.consult.name}

    def _moh_class(self) -> str | None:
        queue = self.acd.config.queues.get(self.queue)
        return queue.music_on_hold if queue else None

    async def _do_complete(self, agent: str) -> dict:
        if self.holder is None or self.holder.agent_id != agent or self.consult is None:
            raise ConversationError(f"agent {agent!r} has no consultation to complete")
        await self._complete("completed")
        return {"transferred": True}

    async def _complete(self, outcome: str) -> None:
        """The third party takes over: into the main bridge; the consulting agent leaves (wrap-up)."""
        assert self.holder is not None and self.consult is not None
        holder, third = self.holder, self.consult
        ari = self.acd_ari
        await self._quietly(ari.bridges.remove_channel(self.consult_bridge, [third.leg.channel_id]))
        await ari.bridges.add_channel(self.bridge_id, [third.leg.channel_id])
        await self._quietly(ari.bridges.stop_moh(self.bridge_id))
        self.parties.append(third)
        self.holder = self.consult = None
        self.release(holder)
        if not holder.leg.gone:
            await self._quietly(self.call._hangup_leg(holder.leg))
        await self._drop_consult_bridge()
        self.call.emit(ConversationEvent.CONSULT_ENDED, {"agent": holder.agent_id, "outcome": outcome})
        self.call.emit(ConversationEvent.TRANSFERRED, {"kind": "attended", "from_agent": holder.agent_id,
                                                       "to_agent": third.agent_id, "to_number": third.number})

    async def _do_cancel(self, agent: str) -> dict:
        if self.holder is None or self.holder.agent_id != agent or self.consult is None:
            raise ConversationError(f"agent {agent!r} has no consultation to cancel")
        await self._back_to_caller("cancelled")
        return {"cancelled": True}

    async def _back_to_caller(self, outcome: str) -> None:
        """End the consultation: the third party leaves, the agent returns to the caller."""
        holder, third = self.holder, self.consult
        ari = self.acd_ari
        if third is not None:
            self.release(third, wrap_up=False)
            if not third.leg.gone:
                await self._quietly(self.call._hangup_leg(third.leg))
        self.consult = None
        if holder is not None:
            self.holder = None
            if not holder.leg.gone:
                if self.consult_bridge is not None:
                    await self._quietly(ari.bridges.remove_channel(self.consult_bridge, [holder.leg.channel_id]))
                await ari.bridges.add_channel(self.bridge_id, [holder.leg.channel_id])
                self.parties.append(holder)
            else:
                self.release(holder)
        await self._quietly(ari.bridges.stop_moh(self.bridge_id))
        await self._drop_consult_bridge()
        self.call.emit(ConversationEvent.CONSULT_ENDED,
                       {"agent": holder.agent_id if holder else None, "outcome": outcome})

    async def _do_conference(self, agent: str) -> dict:
        if self.holder is None or self.holder.agent_id != agent or self.consult is None:
            raise ConversationError(f"agent {agent!r} has no consultation to turn into a conference")
        holder, third = self.holder, self.consult
        ari = self.acd_ari
        legs = [holder.leg.channel_id, third.leg.channel_id]
        await self._quietly(ari.bridges.remove_channel(self.consult_bridge, legs))
        await ari.bridges.add_channel(self.bridge_id, legs)
        await self._quietly(ari.bridges.stop_moh(self.bridge_id))
        self.parties += [holder, third]
        self.holder = self.consult = None
        await self._drop_consult_bridge()
        self.call.emit(ConversationEvent.CONSULT_ENDED, {"agent": agent, "outcome": "conference"})
        self.call.emit(ConversationEvent.CONFERENCE, {"parties": [p.name for p in self.parties]})
        return {"conference": [p.name for p in self.parties]}

    async def _drop_consult_bridge(self) -> None:
        if self.consult_bridge is not None:
            bridge, self.consult_bridge = self.consult_bridge, None
            await self._quietly(self.acd_ari.bridges.destroy(bridge))
            self.call.bridges.discard(bridge)

    # -- recording and supervision (callcore.acd.recording / callcore.acd.supervision do the work) ----------
    async def _do_record(self, operation: str) -> dict:
        from callcore.acd.recording import Recorder

        if operation == "start":
            if self.recorder is not None and self.recorder.active:
                raise ConversationError("already recording")
            self.recorder = Recorder(self.call, self.bridge_id, self.queue)
            await self.recorder.start()
            return self.recorder.describe()
        if self.recorder is None or not self.recorder.active:
            raise ConversationError("not recording")
        await self.recorder.control(operation)
        return self.recorder.describe()

    async def _do_supervise(self, agent: str, endpoint: str, mode: str) -> dict:
        from callcore.acd.supervision import Supervision

        leg = self.leg_of(agent)
        if leg is None:
            raise ConversationError(f"agent {agent!r} is not on this call")
        session = Supervision(self, agent, leg, endpoint, mode)
        task = asyncio.get_running_loop().create_task(session.run(), name=f"supervise:{agent}")
        self.children.add(task)
        task.add_done_callback(self.children.discard)
        return await session.wait_started()

    async def _do_stop_supervision(self, session_id: str) -> dict:
        from callcore.acd.supervision import Supervision

        for task in list(self.children):
            session = Supervision.of(task)
            if session is not None and session.id == session_id:
                task.cancel()
                return {"stopped": session_id}
        raise ConversationError(f"no supervision session {session_id!r} on this call")
