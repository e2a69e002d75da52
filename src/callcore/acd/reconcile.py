"""Reconciliation after a restart: conversations that lived on in Asterisk are taken over, not dropped.

When callcore stops without draining (a crash, a kill, a host reboot of the app alone), Asterisk keeps the
channels in the app and the bridges between callers and agents: the people go on talking. The new process
adopts the caller's channel (its call id is a channel variable) and its legs; the runtime finds the caller still
bridged and asks ``resume_handler`` for a handler. The agent of each leg is read from the leg's own channel
variables, set when the ACD rang it (``CALLCORE_AGENT``, ``CALLCORE_QUEUE``). The agent goes to ``on_call``
with that call (``Resumed``), the conversation continues (transfers, recording, supervision all work again),
and the call ends with wrap-up as usual. Legs outside the caller's bridge (a consultation, a supervisor's
snoop) are not resumed: an agent's leg is put back with the caller, any other leg is hung up.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import structlog

from callcore.acd import agent_state as st
from callcore.ari.errors import AriError
from callcore.calls.call import Call

if TYPE_CHECKING:
    from callcore.acd.service import AcdService
    from callcore.calls.runtime import Handler

log = structlog.get_logger("callcore.acd")

AGENT_VARIABLE = "CALLCORE_AGENT"
QUEUE_VARIABLE = "CALLCORE_QUEUE"
# On a caller's channel while it waits in a queue: "queue|priority|enqueued epoch seconds|skills JSON".
WAITING_VARIABLE = "CALLCORE_WAITING"


class ReconcileEvent:
    RESUMED = "conversation_resumed"  # data: queue, agents, other_parties, dropped_legs
    REQUEUED = "queue_resumed"  # data: queue, waited_seconds (the place kept across the restart)


class ReconcileMixin:
    def resume_handler(self: AcdService, call: Call, bridge_id: str | None) -> Handler:
        if bridge_id is None:
            return self._resume_waiting
        return partial(self._resume, bridge_id=bridge_id)

    async def mark_waiting(self: AcdService, call: Call, entry: object) -> None:
        """Note on the caller's channel that it waits, where and since when: a restarted callcore reads it back
        (``_resume_waiting``) and the caller keeps its place. One request, only for callers who really wait."""
        import json
        import time

        e = entry  # a QueuedCaller
        since = time.time() - (self.now() - e.enqueued_at)  # type: ignore[attr-defined]
        value = f"{e.queue}|{e.priority}|{since:.3f}|{json.dumps(e.skills, separators=(',', ':'))}"  # type: ignore[attr-defined]
        try:
            await call.ari.channels.set_variable(call.channel_id, WAITING_VARIABLE, value)
        except AriError as exc:
            log.info("could not note the waiting caller on its channel", error=str(exc))

    async def _resume_waiting(self: AcdService, call: Call) -> None:
        """An adopted caller who is not in a conversation: back in its queue with its original place if it was
        waiting in one; otherwise its flow starts again from the top (the IVR's safe node)."""
        import json
        import time

        from callcore.acd.service import QueuedCaller

        raw = await self._variable(call, call.channel_id, WAITING_VARIABLE)
        parts = raw.split("|", 3) if raw else []
        if len(parts) == 4 and parts[0] in self.config.queues:
            for leg in list(call.legs.values()):
                await call._hangup_leg(leg)  # an agent phone that was ringing for it: the offer is void now
            try:
                priority, since, skills = int(parts[1]), float(parts[2]), json.loads(parts[3])
            except ValueError:
                priority, since, skills = 0, time.time(), {}
            waited = max(0.0, time.time() - since)
            call.emit(ReconcileEvent.REQUEUED, {"queue": parts[0], "waited_seconds": round(waited, 3)})
            entry = QueuedCaller(call, parts[0], priority, self.now() - waited, dict(skills))
            await self._serve(entry)
            return
        assert self.runtime is not None
        handler = self.runtime.router(call)
        if handler is not None:
            await handler(call)

    async def _variable(self: AcdService, call: Call, channel_id: str, name: str) -> str:
        """A variable of the call's channel or of one of its legs (on the call's own Asterisk node)."""
        try:
            return await call.ari.channels.get_variable(channel_id, name)
        except AriError:
            return ""

    async def _resume(self: AcdService, call: Call, *, bridge_id: str) -> None:
        from callcore.acd.conversation import Conversation, Party
        from callcore.acd.service import QueuedCaller

        ari = call.ari
        in_bridge = set((await ari.bridges.get(bridge_id)).channels)
        call.bridges.add(bridge_id)  # ours again: destroyed when the call ends
        agents: list[tuple[str, str, str]] = []  # (agent, queue, leg channel)
        others: list[str] = []
        dropped: list[str] = []
        for leg in list(call.legs.values()):
            agent = await self._variable(call, leg.channel_id, AGENT_VARIABLE)
            if agent in self.config.agents:
                queue = await self._variable(call, leg.channel_id, QUEUE_VARIABLE)
                agents.append((agent, queue, leg.channel_id))
                if leg.channel_id not in in_bridge:
                    await ari.bridges.add_channel(bridge_id, [leg.channel_id])  # back with the caller
            elif leg.channel_id in in_bridge:
                others.append(leg.channel_id)
            else:
                dropped.append(leg.channel_id)
                await call._hangup_leg(leg)
        queue_name = next((q for _, q, _ in agents if q in self.config.queues), "")
        call.emit(ReconcileEvent.RESUMED, {"queue": queue_name, "agents": [a for a, _, _ in agents],
                                           "other_parties": others, "dropped_legs": dropped})
        if not agents and not others:
            return  # nobody left to talk to: the runtime hangs the caller up
        entry = QueuedCaller(call, queue_name, 0, self.now(), {})
        for agent, _, _ in agents:
            self._apply(agent, st.Resumed(entry.id), call=call, queue=queue_name or None)
        parties = [Party(call.legs[ch], agent) for agent, _, ch in agents]
        parties += [Party(call.legs[ch], None, number=call.legs[ch].endpoint) for ch in others]
        first = parties[0]
        conv = Conversation(self, entry, first.agent_id or "", first.leg, bridge_id)
        conv.parties = parties
        log.info("conversation resumed after restart", agents=[a for a, _, _ in agents], queue=queue_name)
        await conv.run()
