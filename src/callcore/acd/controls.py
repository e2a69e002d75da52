"""What agents and supervisors do to a connected call: transfer, consult, conference, record, supervise.

These are the ACD service's methods for the API and the CLI. Each finds the agent's conversation and submits a
request to it; the call's own task carries it out (see ``callcore.acd.conversation``). Bad requests raise
``ConversationError`` (or ``InvalidTransition`` for an agent that cannot take the call): 409 in the API.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from callcore.acd import agent_state as st
from callcore.acd.conversation import Conversation, ConversationError

if TYPE_CHECKING:
    from callcore.acd.service import AcdService, QueuedCaller

# A number to dial out: digits with an optional leading +. Anything else could smuggle a second dial string
# (``&``) or options into Dial, so it is refused before it reaches Asterisk.
_NUMBER = re.compile(r"^\+?[0-9]{2,20}$")


class CallControls:
    # -- lookups -----------------------------------------------------------------------------------------
    def conversation_of(self: AcdService, agent_id: str) -> Conversation:
        if agent_id not in self.config.agents:
            raise KeyError(f"unknown agent {agent_id!r}")
        for conv in self.conversations.values():
            if agent_id in conv.agents:
                return conv
        raise ConversationError(f"agent {agent_id!r} is not on a call")

    async def _await_conversation(self: AcdService, agent_id: str, patience: float = 2.0) -> Conversation:
        """The agent's conversation; an agent who just answered (on_call, bridge being made) gets it within a moment,
        so a quick click on "transfer" is not refused for being a few milliseconds early."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            try:
                return self.conversation_of(agent_id)
            except ConversationError:
                status = self.agents.get(agent_id)
                if status is None or status.state not in ("on_call", "reserved") or loop.time() >= deadline:
                    raise
            await asyncio.sleep(0.05)

    def conversation_for_call(self: AcdService, call_id: str) -> Conversation:
        conv = self.conversations.get(call_id)
        if conv is None:
            raise ConversationError(f"call {call_id!r} is not a connected ACD call")
        return conv

    def register(self: AcdService, conv: Conversation) -> None:
        self.conversations[str(conv.call.call_id)] = conv

    def unregister(self: AcdService, conv: Conversation) -> None:
        if self.conversations.get(str(conv.call.call_id)) is conv:
            del self.conversations[str(conv.call.call_id)]

    # -- transfers ---------------------------------------------------------------------------------------
    async def transfer(self: AcdService, agent_id: str, *, queue: str | None = None, to_agent: str | None = None,
                       number: str | None = None) -> Any:
        """Blind transfer of the agent's call to a queue, another agent or an external number."""
        targets = [t for t in (queue, to_agent, number) if t is not None]
        if len(targets) != 1:
            raise ConversationError("a transfer needs exactly one of queue, agent or number")
        conv = await self._await_conversation(agent_id)
        if queue is not None:
            return await conv.submit("blind_queue", agent=agent_id, queue=queue)
        if to_agent is not None:
            self._known_agent(to_agent)
            return await conv.submit("blind_agent", agent=agent_id, target=to_agent)
        return await conv.submit("blind_number", agent=agent_id, number=self.check_number(number or ""))

    async def consult(self: AcdService, agent_id: str, *, to_agent: str | None = None,
                      number: str | None = None) -> Any:
        """Attended transfer, step one: the caller holds, the agent talks to the other agent or number."""
        conv = await self._await_conversation(agent_id)
        if to_agent is not None:
            self._known_agent(to_agent)
        if number is not None:
            number = self.check_number(number)
        return await conv.submit("consult", agent=agent_id, target_agent=to_agent, number=number)

    async def complete_transfer(self: AcdService, agent_id: str) -> Any:
        return await (await self._await_conversation(agent_id)).submit("complete", agent=agent_id)

    async def cancel_consult(self: AcdService, agent_id: str) -> Any:
        return await (await self._await_conversation(agent_id)).submit("cancel", agent=agent_id)

    async def conference(self: AcdService, agent_id: str) -> Any:
        """Turn the agent's consultation into a three-way call with the caller."""
        return await (await self._await_conversation(agent_id)).submit("conference", agent=agent_id)

    # -- recording and supervision ----------------------------------------------------------------------
    async def recording(self: AcdService, agent_id: str, operation: str) -> Any:
        """operation: start, pause, resume, stop."""
        if operation not in ("start", "pause", "resume", "stop"):
            raise ConversationError(f"unknown recording operation {operation!r} (start, pause, resume, stop)")
        return await (await self._await_conversation(agent_id)).submit("record", operation=operation)

    async def supervise(self: AcdService, agent_id: str, endpoint: str, mode: str = "listen") -> Any:
        """A supervisor on ``endpoint`` listens to, whispers to or barges into the agent's call."""
        if mode not in ("listen", "whisper", "barge"):
            raise ConversationError(f"unknown supervision mode {mode!r} (listen, whisper, barge)")
        if not endpoint or "&" in endpoint or "," in endpoint:
            raise ConversationError(f"not a single dial string: {endpoint!r}")
        return await (await self._await_conversation(agent_id)).submit("supervise", agent=agent_id, endpoint=endpoint, mode=mode)

    async def stop_supervision(self: AcdService, agent_id: str, session_id: str) -> Any:
        return await (await self._await_conversation(agent_id)).submit("stop_supervision", session_id=session_id)

    async def start_recording_if_configured(self: AcdService, conv: Conversation) -> None:
        queue = self.config.queues.get(conv.queue)
        if (queue is not None and queue.recording) or conv.entry.record:
            try:
                await conv._do_record("start")
            except Exception as exc:  # noqa: BLE001 - a failed recording must not drop the call; it is logged
                conv.call.log.warning("could not start the queue's recording", error=str(exc))

    # -- helpers for the conversation --------------------------------------------------------------------
    def _known_agent(self: AcdService, agent_id: str) -> None:
        if agent_id not in self.config.agents:
            raise ConversationError(f"unknown agent {agent_id!r}")

    def check_number(self: AcdService, number: str) -> str:
        number = number.strip().replace(" ", "")
        if not _NUMBER.match(number):
            raise ConversationError(f"not a phone number: {number!r} (digits, optionally with a leading +)")
        return number

    def external_endpoint(self: AcdService, number: str) -> str:
        return self.config.transfers.external_endpoint.format(number=self.check_number(number))

    @property
    def transfer_ring_timeout(self: AcdService) -> float:
        return self.config.transfers.ring_timeout

    def check_transfer_queue(self: AcdService, queue: str) -> None:
        if queue not in self.config.queues:
            raise ConversationError(f"unknown queue {queue!r}")
        if not self._staffed(queue):
            raise ConversationError(f"nobody is logged in to serve queue {queue!r}")

    def reserve(self: AcdService, agent_id: str, entry: QueuedCaller) -> None:
        """Hold an agent for a transfer or consultation (it must be ready: InvalidTransition otherwise)."""
        self._known_agent(agent_id)
        self._apply(agent_id, st.Offered(entry.id), call=entry.call, queue=entry.queue)

    def offer_withdrawn(self: AcdService, agent_id: str, entry: QueuedCaller, reason: str) -> None:
        if self.agents[agent_id].offer == entry.id:
            self._apply(agent_id, st.OfferCancelled(entry.id, reason), call=entry.call, queue=entry.queue)

    def answered(self: AcdService, agent_id: str, entry: QueuedCaller) -> None:
        self._apply(agent_id, st.Answered(entry.id), call=entry.call, queue=entry.queue)

    def record_handle_time(self: AcdService, queue: str, seconds: float) -> None:
        from callcore.acd.service import DEFAULT_HANDLE_SECONDS, HANDLE_TIME_WEIGHT

        old = self.handle_seconds.get(queue, DEFAULT_HANDLE_SECONDS)
        self.handle_seconds[queue] = (1 - HANDLE_TIME_WEIGHT) * old + HANDLE_TIME_WEIGHT * seconds
