"""Preview dialling: the agent sees the lead first, then dials it or skips it (``callcore.api`` preview routes).

``next_lead`` reserves one callable lead of a preview campaign the agent serves (due, inside the callee's calling
window, not on a do-not-call list — the same dial-time query as the automatic modes) for ``reserve_seconds``;
asking again returns the same lead while the reservation lasts. ``dial`` checks the lead once more
(``may_dial``), reserves the agent for the call (it must be ready), and places the call through the campaign's
trunk without answering-machine detection (the agent hears a machine and says so in the disposition); when the
callee answers, the agent's phone rings at once. ``skip`` gives the lead back, still due.

Scheduled callbacks come first: an agent asking for its next lead gets its own due callback (earliest first),
else a due callback any agent may take (one for anyone, or an owned one whose grace period passed — see
``callcore.dialer.callbacks``), else a fresh lead. The offer shows the callback's lead and says it is a callback (whose, when, the note); dialling it reserves the
agent and dials like any preview call; skipping it (or letting the reservation run out) gives it back, still due
and still its owner's.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from callcore.acd import agent_state as st
from callcore.dialer import callbacks as cbk
from callcore.ids import uuid7
from callcore.leads import store as leads

if TYPE_CHECKING:
    from callcore.dialer.service import CampaignRun, DialerService

DEFAULT_RESERVE_SECONDS = 120.0


@dataclass
class _Hold:
    run: CampaignRun
    lead: leads.Lead
    until: datetime
    callback: leads.Callback | None = None  # the hold is a scheduled callback of this lead


def _offer(hold: _Hold) -> Any:
    """The offer the agent sees: a scheduled callback says so (for whom, when, the note), so the agent opens the
    call as the callback the callee agreed to, not as a cold call."""
    from callcore.api.outbound_services import PreviewCallback, PreviewOffer

    cb = hold.callback
    callback = None if cb is None else PreviewCallback(cb.id, cb.owner_agent, cb.due_at, cb.due_local, cb.timezone,
                                                       cb.note)
    return PreviewOffer(hold.run.name, hold.lead, hold.until, callback)


class PreviewDialer:
    """Implements ``callcore.api.outbound_services.PreviewControl``."""

    def __init__(self, dialer: DialerService) -> None:
        self.dialer = dialer
        self.holds: dict[str, _Hold] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._recovered: set[str] = set()

    def _now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def next_lead(self, agent_id: str) -> Any:
        from callcore.api.services import NotFound, Rejected

        acd = self.dialer.acd
        if agent_id not in acd.config.agents:
            raise NotFound(f"unknown agent {agent_id!r}")
        if acd.agents[agent_id].state == "logged_out":
            raise Rejected(f"agent {agent_id!r} is not logged in")
        hold = self.holds.get(agent_id)
        if hold is not None:
            if hold.until > self._now():
                return _offer(hold)
            await self._give_back(agent_id)
        runs = [r for r in self.dialer.runs.values()
                if r.config.mode == "preview" and r.config.enabled and agent_id in self.dialer._agents(r)]
        if not runs:
            raise Rejected(f"agent {agent_id!r} serves no preview campaign")
        runs = sorted(runs, key=lambda r: -r.config.priority)
        offer = await self._next_callback(agent_id, runs)
        if offer is not None:
            return offer
        for run in runs:
            claimed = await leads.claim_due_leads(self.dialer.db, run.name, run.config, now=self._now(), limit=1,
                                                  agent_guaranteed=True)
            if claimed:
                seconds = run.config.preview_seconds or DEFAULT_RESERVE_SECONDS
                hold = _Hold(run, claimed[0], self._now() + timedelta(seconds=seconds))
                self._hold(agent_id, hold, seconds)
                return _offer(hold)
        return None

    async def _next_callback(self, agent_id: str, runs: list[CampaignRun]) -> Any:
        """The agent's own due callback, else one any agent may take (campaigns by priority); claimed and held."""
        db = self.dialer.db
        for own_only in (True, False):
            for run in runs:
                await self._recover(run)
                now = self._now()
                due = await leads.due_callbacks(db, run.name, run.config, now=now, limit=50)
                views = [cbk.DueCallback(c.id, c.due_at, c.owner_agent) for c in due]
                pick = cbk.pick_for_agent(views, agent_id, now, cbk.CallbackPolicy.of(run.config))
                if pick is None or (own_only and pick.owner != agent_id):
                    continue
                claimed = await leads.claim_due_callbacks(db, run.name, run.config, now=now, limit=1, ids=[pick.id])
                if not claimed:
                    continue  # listed or taken meanwhile
                lead = await leads.lead_for_callback(db, claimed[0])
                seconds = run.config.preview_seconds or DEFAULT_RESERVE_SECONDS
                hold = _Hold(run, lead, self._now() + timedelta(seconds=seconds), claimed[0])
                self._hold(agent_id, hold, seconds)
                return _offer(hold)
        return None

    def _hold(self, agent_id: str, hold: _Hold, seconds: float) -> None:
        """Reserve the lead for the agent; it goes back by itself when the reservation runs out (the agent logged
        out, closed the screen), not only when the agent asks again."""
        self.holds[agent_id] = hold
        asyncio.get_running_loop().call_later(seconds + 1.0, self._lapse, agent_id, hold)

    def _lapse(self, agent_id: str, hold: _Hold) -> None:
        if self.holds.get(agent_id) is hold and hold.until <= self._now():
            task = asyncio.get_running_loop().create_task(self._give_back(agent_id), name=f"preview-lapse:{agent_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _recover(self, run: CampaignRun) -> None:
        """Once per campaign: leads and callbacks a crashed process left claimed go back to the pool (preview
        campaigns are never started, so the dialer's start-up recovery does not cover them; nothing of this
        campaign can be held or dialled by this process yet)."""
        if run.name in self._recovered:
            return
        busy = [h.callback.id for h in self.holds.values() if h.callback is not None and h.run is run]
        busy += self.dialer.callbacks_in_flight(run.name)
        await leads.recover_callback_claims(self.dialer.db, run.name, now=self._now(), keep=busy)
        await leads.recover_claims(self.dialer.db, run.name, now=self._now())
        self._recovered.add(run.name)

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
        if hold is None:
            return
        if hold.callback is not None:  # still due, still its owner's
            await leads.release_callbacks(self.dialer.db, [hold.callback.id], now=self._now())
        else:
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
        attempt = AttemptState(lead, uuid7(), self._now(), self.dialer.now(), callback=hold.callback, agent=agent_id)
        try:
            self.dialer.acd._apply(agent_id, st.Offered(str(attempt.attempt_id)))
        except st.InvalidTransition as exc:
            raise Rejected(str(exc)) from exc
        del self.holds[agent_id]
        run.attempts[attempt.attempt_id] = attempt
        run.dialed += 1
        task = asyncio.get_running_loop().create_task(self.dialer.dial_with_agent(run, attempt, agent_id),
                                                      name=f"preview:{lead.number}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return attempt.attempt_id

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
