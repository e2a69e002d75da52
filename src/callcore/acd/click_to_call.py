"""Click-to-call (``POST /calls``): the agent's phone rings first; once the agent answers, callcore dials the
number and puts the two together. Implements ``callcore.api.services.CallActions`` (with ``hangup``).

The agent must be ready: it is reserved for the call at once (``Offered``), so the ACD cannot hand it an inbound
caller meanwhile; no answer → the offer is withdrawn and the agent is ready again. The request returns the call
id at once; the call itself runs in its own task (placed by the runtime), and its story is in the store like any
call's (direction outbound, ``did`` the number dialled).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

import structlog

from callcore.acd import agent_state as st
from callcore.acd.conversation import ConversationError
from callcore.calls.call import Call, CallHungUp, OriginateFailed
from callcore.ids import uuid7

if TYPE_CHECKING:
    from callcore.acd.service import AcdService

log = structlog.get_logger("callcore.acd")


class ClickToCall:
    def __init__(self, acd: AcdService) -> None:
        self.acd = acd
        self._tasks: set[asyncio.Task[None]] = set()

    async def originate(self, *, number: str, agent_id: str | None, endpoint: str | None, caller_id: str | None,
                        variables: Mapping[str, str], timeout: float) -> uuid.UUID:
        from callcore.api.services import NotFound, Rejected

        acd = self.acd
        if acd.runtime is None:
            raise Rejected("callcore is not connected to Asterisk")
        try:
            target = acd.external_endpoint(number)
        except ConversationError as exc:
            raise Rejected(str(exc)) from exc
        call_id = uuid7()
        if agent_id is not None:
            agent = acd.config.agents.get(agent_id)
            if agent is None:
                raise NotFound(f"unknown agent {agent_id!r}")
            try:
                acd._apply(agent_id, st.Offered(str(call_id)))
            except st.InvalidTransition as exc:
                raise Rejected(exc.message if "ready" in exc.message else str(exc)) from exc
            first = agent.endpoint
        elif endpoint:
            first = endpoint
        else:
            raise Rejected("click-to-call needs an agent or an endpoint to ring first")
        task = asyncio.get_running_loop().create_task(
            self._place(call_id, first, agent_id, target, number, caller_id, dict(variables), timeout),
            name=f"click-to-call:{call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return call_id

    async def _place(self, call_id: uuid.UUID, first: str, agent_id: str | None, target: str, number: str,
                     caller_id: str | None, variables: dict[str, str], timeout: float) -> None:
        acd = self.acd
        assert acd.runtime is not None
        try:
            await acd.runtime.place_call(
                first, partial(self._connect, agent_id, target, number, caller_id), caller_id=number,
                timeout=timeout, call_id=call_id, variables=variables,
                data={"did": number, "click_to_call": True, "agent": agent_id})
        except (OriginateFailed, CallHungUp):
            self._release(agent_id, call_id, answered=False)
        except Exception:
            log.exception("click-to-call failed", number=number)
            self._release(agent_id, call_id, answered=False)

    async def _connect(self, agent_id: str | None, target: str, number: str, caller_id: str | None,
                       call: Call) -> None:
        """Runs in the call's own task once the agent answered: dial the number, bridge, wait for the end."""
        acd = self.acd
        if agent_id is not None:
            acd._apply(agent_id, st.Answered(str(call.call_id)), call=call)
        try:
            leg = await call.originate(target, timeout=acd.transfer_ring_timeout + 10, caller_id=caller_id)
            await call.bridge_with(leg)
            await asyncio.wait({call.gone_future, leg.ended}, return_when=asyncio.FIRST_COMPLETED)
        except (OriginateFailed, CallHungUp):
            pass  # busy, no answer, or the agent gave up: the runtime hangs up what is left
        finally:
            self._release(agent_id, call.call_id, answered=True)

    def _release(self, agent_id: str | None, call_id: uuid.UUID, *, answered: bool) -> None:
        if agent_id is None:
            return
        status = self.acd.agents[agent_id]
        if not answered and status.offer == str(call_id):
            self.acd._apply(agent_id, st.OfferCancelled(str(call_id), "click-to-call not answered"))
        elif answered and str(call_id) in status.calls:
            wrap = self.acd.config.agents[agent_id].wrap_up_seconds or 0.0
            self.acd._apply(agent_id, st.CallEnded(str(call_id), wrap_up_seconds=wrap))

    async def hangup(self, call_id: uuid.UUID, *, reason: str) -> None:
        from callcore.api.services import NotFound

        runtime = self.acd.runtime
        call = next((c for c in runtime.calls() if c.call_id == call_id), None) if runtime else None
        if call is None or call.gone:
            raise NotFound(f"no live call {call_id}")
        await call.hangup("normal")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
