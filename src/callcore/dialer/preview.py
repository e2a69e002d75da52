"""Preview dialling: the agent sees the lead first, then dials it or skips it (``callcore.api`` preview routes).

``next_lead`` reserves one callable lead of a preview campaign the agent serves (due, inside the callee's calling
window, not on a do-not-call list — the same dial-time query as the automatic modes) for ``reserve_seconds``;
asking again returns the same lead while the reservation lasts. ``dial`` checks the lead once more
(``may_dial``), reserves the agent for the call (it must be ready), and places the call through the campaign's
trunk without answering-machine detection (the agent hears a machine and says so in the disposition); when the
callee answers, the agent's phone rings at once. ``skip`` gives the lead back, still due.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from callcore.acd import agent_state as st
from callcore.calls.call import Call, OriginateFailed
from callcore.ids import uuid7
from callcore.leads import store as leads

if TYPE_CHECKING:
    from callcore.dialer.service import AttemptState, CampaignRun, DialerService

DEFAULT_RESERVE_SECONDS = 120.0


@dataclass
class _Hold:
    run: CampaignRun
    lead: leads.Lead
    until: datetime


class PreviewDialer:
    """Implements ``callcore.api.outbound_services.PreviewControl``."""

    def __init__(self, dialer: DialerService) -> None:
        self.dialer = dialer
        self.holds: dict[str, _Hold] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def next_lead(self, agent_id: str) -> Any:
        from callcore.api.outbound_services import PreviewOffer
        from callcore.api.services import NotFound, Rejected

        acd = self.dialer.acd
        if agent_id not in acd.config.agents:
            raise NotFound(f"unknown agent {agent_id!r}")
        if acd.agents[agent_id].state == "logged_out":
            raise Rejected(f"agent {agent_id!r} is not logged in")
        hold = self.holds.get(agent_id)
        if hold is not None:
            if hold.until > self._now():
                return PreviewOffer(hold.run.name, hold.lead, hold.until)
            await self._give_back(agent_id)
        runs = [r for r in self.dialer.runs.values()
                if r.config.mode == "preview" and r.config.enabled and agent_id in self.dialer._agents(r)]
        if not runs:
            raise Rejected(f"agent {agent_id!r} serves no preview campaign")
        for run in sorted(runs, key=lambda r: -r.config.priority):
            claimed = await leads.claim_due_leads(self.dialer.db, run.name, run.config, now=self._now(), limit=1,
                                                  agent_guaranteed=True)
            if claimed:
                seconds = run.config.preview_seconds or DEFAULT_RESERVE_SECONDS
                hold = _Hold(run, claimed[0], self._now() + timedelta(seconds=seconds))
                self.holds[agent_id] = hold
                return PreviewOffer(run.name, hold.lead, hold.until)
        return None

    def _held(self, agent_id: str, lead_id: int) -> _Hold:
        from callcore.api.services import NotFound

        hold = self.holds.get(agent_id)
        if hold is None or hold.lead.id != lead_id:
            raise NotFound(f"agent {agent_id!r} holds no lead {lead_id}")
        return hold

    async def skip(self, agent_id: str, lead_id: int, *, reason: str) -> None:
        self._held(agent_id, lead_id)
        await self._give_back(agent_id)

    async def _give_back(self, agent_id: str) -> None:
        hold = self.holds.pop(agent_id, None)
        if hold is not None:
            await leads.release_leads(self.dialer.db, [hold.lead.id], now=self._now())

    async def dial(self, agent_id: str, lead_id: int) -> uuid.UUID:
        from callcore.api.services import Rejected
        from callcore.dialer.service import AttemptState

        hold = self._held(agent_id, lead_id)
        if hold.until <= self._now():
            await self._give_back(agent_id)
            raise Rejected("the reservation of this lead ran out: ask for the next lead")
        run, lead = hold.run, hold.lead
        reason = await leads.may_dial(self.dialer.db, run.name, run.config, lead, now=self._now(),
                                      agent_guaranteed=True)
        if reason is not None:
            await self._give_back(agent_id)
            raise Rejected(reason)
        attempt = AttemptState(lead, uuid7(), self._now(), self.dialer.now())
        try:
            self.dialer.acd._apply(agent_id, st.Offered(str(attempt.attempt_id)))
        except st.InvalidTransition as exc:
            raise Rejected(str(exc)) from exc
        del self.holds[agent_id]
        run.attempts[attempt.attempt_id] = attempt
        run.dialed += 1
        task = asyncio.get_running_loop().create_task(self._place(run, attempt, agent_id),
                                                      name=f"preview:{lead.number}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return attempt.attempt_id

    async def _place(self, run: CampaignRun, attempt: AttemptState, agent_id: str) -> None:
        dialer, cfg = self.dialer, run.config
        runtime = dialer.runtime
        try:
            await runtime.place_call(
                cfg.dial_string(attempt.lead.number), partial(self._answered, run, attempt, agent_id),
                caller_id=cfg.caller_id_e164(), timeout=cfg.ring_timeout, call_id=attempt.attempt_id,
                data={"did": attempt.lead.number, "campaign": run.name, "lead_id": attempt.lead.id,
                      "preview_agent": agent_id})
        except OriginateFailed as exc:
            self._withdraw(agent_id, attempt)
            outcome = "busy" if exc.cause == 17 else "no_answer" if exc.cause in (18, 19, 0) else "failed"
            await dialer._record(run, attempt, outcome, hangup_cause=exc.cause, agent_guaranteed=True)
        except BaseException:
            self._withdraw(agent_id, attempt)
            await asyncio.shield(dialer._record(run, attempt, "failed", agent_guaranteed=True))
            raise

    def _withdraw(self, agent_id: str, attempt: AttemptState) -> None:
        acd = self.dialer.acd
        if acd.agents[agent_id].offer == str(attempt.attempt_id):
            acd._apply(agent_id, st.OfferCancelled(str(attempt.attempt_id), "preview call not answered"))

    async def _answered(self, run: CampaignRun, attempt: AttemptState, agent_id: str, call: Call) -> None:
        """In the call's own task: the callee answered; the reserved agent's phone rings now."""
        from callcore.acd.service import QueuedCaller

        acd, cfg = self.dialer.acd, run.config
        answered_at = self._now()
        entry = QueuedCaller(call, cfg.queue or "", 0, acd.now(), dict(cfg.skills), assigned=agent_id,
                             record=cfg.recording)
        acd.waiting[entry.id] = entry
        attempt.phase = "connected"
        extra: dict[str, Any] = {"answered_at": answered_at,
                                 "ring_seconds": (answered_at - attempt.started).total_seconds(),
                                 "agent_guaranteed": True}
        try:
            await acd._serve_loop(entry, acd.config.queues[cfg.queue or ""])
        finally:
            if entry.agent is not None and entry.connected_at is not None:
                extra.update(agent_id=entry.agent, connect_delay_seconds=round(entry.connected_at - entry.enqueued_at, 3),
                             talk_seconds=round(acd.now() - entry.connected_at, 3))
            await asyncio.shield(self.dialer._record(run, attempt, "human", **extra))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
