"""Supervisor listen, whisper and barge on a live ACD call, with ARI snoop channels.

The supervisor's phone rings first; only once they answer does Asterisk get a snoop channel on the agent's leg,
and the two are bridged. What the supervisor hears and who hears the supervisor is the snoop's ``spy`` and
``whisper`` direction, seen from the agent's channel ("in" = from the agent's phone, "out" = to it):

| mode | spy (supervisor hears) | whisper (supervisor is heard by) |
|---|---|---|
| listen | both: agent and caller | nobody |
| whisper | both | the agent only ("out": mixed into what the agent's phone receives) |
| barge | both | agent and caller ("both": also into what the agent sends to the call) |

A session ends when the supervisor hangs up, when it is stopped, or with the call (the conversation cancels it);
its snoop channel, the supervisor's leg and their bridge are torn down in every case.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from callcore.calls.call import Leg, OriginateFailed

if TYPE_CHECKING:
    from callcore.acd.conversation import Conversation

log = structlog.get_logger("callcore.acd")

MODES = {"listen": ("both", "none"), "whisper": ("both", "out"), "barge": ("both", "both")}
SUPERVISOR_RING_SECONDS = 20.0


class SupervisionEvent:
    STARTED = "supervision_started"  # data: session, agent, supervisor, mode, snoop_channel
    ENDED = "supervision_ended"  # data: session, agent, reason


class SupervisionError(Exception):
    pass


class Supervision:
    _by_task: dict[asyncio.Task[Any], Supervision] = {}

    def __init__(self, conversation: Conversation, agent: str, agent_leg: Leg, endpoint: str, mode: str) -> None:
        if mode not in MODES:
            raise SupervisionError(f"unknown supervision mode {mode!r} (listen, whisper, barge)")
        self.id = str(uuid.uuid4())
        self.conversation = conversation
        self.call = conversation.call
        self.agent = agent
        self.agent_leg = agent_leg
        self.endpoint = endpoint
        self.mode = mode
        self.snoop: Leg | None = None
        self.supervisor: Leg | None = None
        self.bridge_id: str | None = None
        self.end_reason = "stopped"  # why a cancelled session ended (the conversation sets "call ended")
        self._started: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    @classmethod
    def of(cls, task: asyncio.Task[Any]) -> Supervision | None:
        return cls._by_task.get(task)

    async def wait_started(self) -> dict[str, Any]:
        from callcore.acd.conversation import ConversationError

        try:
            return await asyncio.shield(self._started)
        except SupervisionError as exc:
            raise ConversationError(str(exc)) from exc

    async def run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        Supervision._by_task[task] = self
        reason = "stopped"
        try:
            await self._connect()
            waits = {self.supervisor.ended, self.snoop.ended, self.agent_leg.ended}  # type: ignore[union-attr]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            reason = "supervisor hung up" if self.supervisor.gone else "call ended"  # type: ignore[union-attr]
        except asyncio.CancelledError:
            reason = self.end_reason
            raise
        except Exception as exc:  # noqa: BLE001 - reported to whoever asked; the call itself is unaffected
            reason = f"failed: {exc}"
            if not self._started.done():
                self._started.set_exception(exc if isinstance(exc, SupervisionError) else SupervisionError(str(exc)))
                self._started.exception()
        finally:
            Supervision._by_task.pop(task, None)
            await asyncio.shield(self._teardown(reason))

    async def _connect(self) -> None:
        ari = self.call.ari
        try:
            self.supervisor = await self.call.originate(self.endpoint, timeout=SUPERVISOR_RING_SECONDS,
                                                        caller_id=f"{self.mode} {self.agent}")
        except OriginateFailed as exc:
            raise SupervisionError(f"the supervisor's phone {self.endpoint} did not answer") from exc
        spy, whisper = MODES[self.mode]
        snoop = Leg(channel_id=str(uuid.uuid4()), endpoint=f"snoop:{self.agent}")
        self.call.legs[snoop.channel_id] = snoop
        self.call.runtime.adopt_leg(self.call, snoop.channel_id)
        self.snoop = snoop
        await ari.channels.snoop(self.agent_leg.channel_id, ari.app, spy=spy, whisper=whisper,
                                 app_args=f"leg,{self.call.call_id}", snoop_id=snoop.channel_id)
        await asyncio.wait_for(asyncio.shield(snoop.answered), 5.0)  # its StasisStart
        self.bridge_id = (await ari.bridges.create(str(uuid.uuid4()), type="mixing")).id
        self.call.bridges.add(self.bridge_id)
        await ari.bridges.add_channel(self.bridge_id, [snoop.channel_id, self.supervisor.channel_id])
        info = {"session": self.id, "agent": self.agent, "supervisor": self.endpoint, "mode": self.mode,
                "snoop_channel": snoop.channel_id}
        self.call.emit(SupervisionEvent.STARTED, info)
        self._started.set_result(info)

    async def _teardown(self, reason: str) -> None:
        ari = self.call.ari
        # The bridge goes first: a snoop channel hung up while still bridged was seen to linger in Asterisk.
        if self.bridge_id is not None:
            try:
                await ari.bridges.destroy(self.bridge_id)
            except Exception as exc:  # noqa: BLE001
                log.info("supervision bridge already gone", error=str(exc))
            self.call.bridges.discard(self.bridge_id)
        for leg in (self.snoop, self.supervisor):
            if leg is not None and not leg.gone:
                try:
                    await ari.channels.hangup(leg.channel_id)
                except Exception as exc:  # noqa: BLE001 - already gone
                    log.info("supervision leg already gone", error=str(exc))
        if self._started.done() and not self._started.exception():
            self.call.emit(SupervisionEvent.ENDED, {"session": self.id, "agent": self.agent, "reason": reason})
        elif not self._started.done():
            self._started.set_exception(SupervisionError(f"supervision ended before it started: {reason}"))
            self._started.exception()
