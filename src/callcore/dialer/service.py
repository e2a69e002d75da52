"""The live dialer: runs campaigns against real phones (the pure pacer and the lead store do the deciding).

One task per running campaign loops about once a second, or at once when an agent's state changes: it decides
how many calls to launch (progressive: one per free agent; predictive: ``Pacer.decide``), claims that many
leads that may be dialled now (due, inside the callee's calling window, not on a do-not-call list, not
abandoned within the policy's no-redial period — all checked in one query at dial time), and starts one
attempt per lead. An attempt is a call the runtime places through the trunk into the ``callcore-outbound``
context, where Asterisk's AMD() listens first; the answered call then runs ``_answered`` in its own task: a
machine is hung up (or gets the campaign's message), a person goes to the ACD, which must connect an agent
within the policy's limit (2 s) or the callee hears the identification message and the call counts as
abandoned. Every attempt ends as one ``lead_attempts`` row (``callcore.leads.store.record_attempt``).

It never dials when the campaign is not running, when nobody who could take the calls is logged in, or when
no lead is callable now.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import structlog

from callcore.calls.call import Call, CallHungUp, OriginateFailed
from callcore.dialer.compliance import AbandonLedger, AbandonPolicy, Budget
from callcore.dialer.estimators import CampaignModel
from callcore.dialer.pacing import Pacer, PacingSnapshot
from callcore.ids import uuid7
from callcore.leads import store as leads

if TYPE_CHECKING:
    from callcore.acd.service import AcdService
    from callcore.calls.runtime import CallRuntime
    from callcore.campaigns.model import CampaignConfig

log = structlog.get_logger("callcore.dialer")

OUTBOUND_CONTEXT = "callcore-outbound"
TICK_SECONDS = 1.0
# Q.850 causes of an unanswered originate, and how they count.
_BUSY = {17}
_NO_ANSWER = {18, 19, 0}
State = Literal["stopped", "running", "paused"]


class DialerError(Exception):
    """A request the campaign's state or config does not allow (409/422 in the API)."""


@dataclass
class AttemptState:
    lead: leads.Lead
    attempt_id: uuid.UUID
    started: datetime
    launched_at: float  # service clock
    phase: Literal["ringing", "waiting_agent", "connected", "done"] = "ringing"


@dataclass
class CampaignRun:
    name: str
    config: CampaignConfig
    state: State = "stopped"
    task: asyncio.Task[None] | None = None
    attempts: dict[uuid.UUID, AttemptState] = field(default_factory=dict)
    model: CampaignModel = field(default_factory=CampaignModel)
    ledger: AbandonLedger | None = None
    last_decision: str = ""
    dialed: int = 0

    @property
    def in_flight(self) -> int:
        return sum(1 for a in self.attempts.values() if a.phase in ("ringing", "waiting_agent"))


class DialerService:
    def __init__(self, campaigns: dict[str, CampaignConfig], acd: AcdService, runtime: CallRuntime, db: Any,
                 *, pacer: Pacer | None = None) -> None:
        self.acd = acd
        self.runtime = runtime
        self.db = db
        self.pacer = pacer or Pacer()
        self.runs = {name: CampaignRun(name, cfg) for name, cfg in campaigns.items()}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        acd.on_agent_change(lambda _agent: self._wake.set())

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- control (API, CLI) -----------------------------------------------------------------------------
    def run_of(self, name: str) -> CampaignRun:
        run = self.runs.get(name)
        if run is None:
            raise KeyError(f"unknown campaign {name!r}")
        return run

    async def start(self, name: str) -> None:
        run = self.run_of(name)
        if not run.config.enabled:
            raise DialerError(f"campaign {name!r} is disabled in the config")
        if run.config.mode == "preview":
            raise DialerError("preview campaigns are dialled by their agents, one lead at a time")
        if not run.config.queue or run.config.queue not in self.acd.config.queues:
            raise DialerError(f"campaign {name!r} needs an ACD queue to connect its calls to agents")
        if run.state == "running":
            return
        # Leads a crashed process left claimed go back to the pool first.
        await leads.recover_claims(self.db, name, now=_utcnow(), older_than=60.0)
        # A one-hour control window on top of the policy's: abandons are spread, not bunched (docs/dialer.md).
        run.ledger = AbandonLedger(AbandonPolicy(**run.config.abandon_policy_fields()), control_windows=[3600])
        run.state = "running"
        run.task = asyncio.get_running_loop().create_task(self._loop(run), name=f"campaign:{name}")
        log.info("campaign started", campaign=name, mode=run.config.mode)

    async def pause(self, name: str) -> None:
        """Stop launching calls; calls in progress go on."""
        run = self.run_of(name)
        run.state = "paused"
        await self._stop_loop(run)

    async def stop(self, name: str) -> None:
        run = self.run_of(name)
        run.state = "stopped"
        await self._stop_loop(run)

    async def _stop_loop(self, run: CampaignRun) -> None:
        if run.task is not None:
            run.task.cancel()
            await asyncio.gather(run.task, return_exceptions=True)
            run.task = None
        log.info("campaign no longer dialling", campaign=run.name, state=run.state)

    async def close(self) -> None:
        for run in self.runs.values():
            if run.state == "running":
                run.state = "paused"
            await self._stop_loop(run)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self, name: str) -> dict[str, Any]:
        run = self.run_of(name)
        return {"campaign": name, "state": run.state, "mode": run.config.mode, "in_flight": run.in_flight,
                "connected": sum(1 for a in run.attempts.values() if a.phase == "connected"),
                "dialed": run.dialed, "last_decision": run.last_decision}

    # -- pacing -----------------------------------------------------------------------------------------
    def _agents(self, run: CampaignRun) -> list[str]:
        """Who takes this campaign's calls: agents of its queue and those it names."""
        queue = run.config.queue
        named = set(run.config.agents)
        return [a for a, cfg in self.acd.config.agents.items() if a in named or (queue and queue in cfg.queues)]

    def how_many(self, run: CampaignRun) -> int:
        """Calls to launch now (0 when nobody can take them)."""
        agents = self._agents(run)
        states = [self.acd.agents[a] for a in agents]
        logged_in = [s for s in states if s.state != "logged_out" and not s.logout_pending]
        if not logged_in:
            run.last_decision = "no agents logged in"
            return 0
        ready = [s for s in logged_in if s.state == "ready" and s.active_calls < s.max_calls]
        # Inbound first (blending): callers already waiting for these agents will take some of them.
        inbound = sum(1 for c in self.acd.waiting.values()
                      if c.callback_number is None and c.max_wait is None and c.queue != run.config.queue
                      and any(c.queue in self.acd.config.agents[a].queues for a in agents))
        spare = len(ready) - run.config.blending.reserve_agents
        if run.config.blending.priority == "inbound":
            spare -= inbound
        cap = run.config.max_lines if run.config.max_lines is not None else None
        if run.config.mode == "progressive":
            n = max(0, spare - run.in_flight)
            run.last_decision = f"progressive: {len(ready)} ready, {inbound} inbound waiting, {run.in_flight} in flight"
        else:
            now = self.now()
            snap = PacingSnapshot(
                may_dial=True, agents_logged_in=len(logged_in), agents_ready=max(0, spare),
                talking=tuple(now - s.since for s in logged_in if s.state == "on_call"),
                wrapping=tuple(now - s.since for s in logged_in if s.state == "wrap_up"),
                ringing=tuple(now - a.launched_at for a in run.attempts.values() if a.phase == "ringing"),
                answered_waiting=sum(1 for a in run.attempts.values() if a.phase == "waiting_agent"),
                inbound_waiting=inbound,
                budget=run.ledger.budget(now) if run.ledger else Budget.empty(),
            )
            decision = self.pacer.decide(now, snap, run.model.snapshot())
            n = decision.launch
            run.last_decision = f"predictive: {decision.reason} ({decision.launch})"
        if cap is not None:
            n = min(n, max(0, cap - run.in_flight))
        return n

    async def _loop(self, run: CampaignRun) -> None:
        idle_logged = ""
        while run.state == "running":
            try:
                n = self.how_many(run)
                if n > 0:
                    claimed = await leads.claim_due_leads(self.db, run.name, run.config, now=_utcnow(), limit=n)
                    for lead in claimed:
                        self._launch(run, lead)
                    if not claimed:
                        run.last_decision += "; no lead callable now"
                if run.last_decision != idle_logged:
                    log.debug("pacing", campaign=run.name, decision=run.last_decision)
                    idle_logged = run.last_decision
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign loop step failed; retrying", campaign=run.name)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            except TimeoutError:
                pass

    # -- one attempt ------------------------------------------------------------------------------------
    def _launch(self, run: CampaignRun, lead: leads.Lead) -> None:
        attempt = AttemptState(lead, uuid7(), _utcnow(), self.now())
        run.attempts[attempt.attempt_id] = attempt
        run.dialed += 1
        task = asyncio.get_running_loop().create_task(self._dial(run, attempt), name=f"attempt:{lead.number}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial(self, run: CampaignRun, attempt: AttemptState) -> None:
        cfg = run.config
        amd = cfg.amd.dialplan_args() if cfg.amd.enabled else "off"
        try:
            await self.runtime.place_call(
                cfg.dial_string(attempt.lead.number), partial(self._answered, run, attempt),
                caller_id=cfg.caller_id_e164(), timeout=cfg.ring_timeout, context=OUTBOUND_CONTEXT,
                call_id=attempt.attempt_id, variables={"CALLCORE_AMD": amd},
                data={"did": attempt.lead.number, "campaign": run.name, "lead_id": attempt.lead.id})
        except OriginateFailed as exc:
            outcome = "busy" if exc.cause in _BUSY else "no_answer" if exc.cause in _NO_ANSWER else "failed"
            run.model.observe_attempt(False, self.now() - attempt.launched_at)
            await self._record(run, attempt, outcome, hangup_cause=exc.cause)
        except asyncio.CancelledError:
            await asyncio.shield(leads.release_leads(self.db, [attempt.lead.id], now=_utcnow()))
            run.attempts.pop(attempt.attempt_id, None)
            raise
        except Exception:
            log.exception("dial attempt failed", campaign=run.name, number=attempt.lead.number)
            await self._record(run, attempt, "failed")
        finally:
            self._wake.set()

    async def _answered(self, run: CampaignRun, attempt: AttemptState, call: Call) -> None:
        """Runs in the answered call's own task: machine or person, and what became of it."""
        cfg = run.config
        verdict = call.args[1] if len(call.args) > 1 else "NOAMD"
        cause = call.args[2] if len(call.args) > 2 else ""
        answered_at = _utcnow()
        ring = (answered_at - attempt.started).total_seconds()
        machine = verdict == "MACHINE" or (verdict == "NOTSURE" and cfg.amd.not_sure == "machine")
        run.model.observe_attempt(not machine, self.now() - attempt.launched_at)
        extra: dict[str, Any] = {"answered_at": answered_at, "ring_seconds": ring,
                                 "amd_status": None if verdict == "NOAMD" else verdict, "amd_cause": cause or None}
        if machine:
            try:
                if cfg.amd.machine_action == "message":
                    await call.play([m if ":" in m.split("/")[0] else f"sound:{m}" for m in cfg.amd.machine_message])
                await call.hangup()
            finally:
                await self._record(run, attempt, "machine", **extra)
            return
        attempt.phase = "waiting_agent"
        self._wake.set()
        verdict_at = self.acd.now()
        entry = None
        outcome = "human"
        try:
            priority = {"inbound": -1000, "outbound": 1000, "equal": 0}[cfg.blending.priority] + cfg.priority
            connect = self.acd.connect_outbound(
                call, cfg.queue or "", priority=priority, skills=cfg.skills,
                max_wait=cfg.policy().agent_connect_seconds, timeout_sounds=cfg.compliance_message,
                record=cfg.recording)
            entry_task = asyncio.ensure_future(connect)
            entry = await self._track_connect(attempt, entry_task)
            if entry.agent is None and entry.on_max_wait is not None and call.hangup_recorded and \
                    self.acd.now() - verdict_at >= cfg.policy().agent_connect_seconds:
                outcome = "abandoned"
        except CallHungUp:
            pass  # the callee hung up before an agent came: not the dialer's abandon
        finally:
            if entry is not None and entry.agent is not None and entry.connected_at is not None:
                extra.update(agent_id=entry.agent, connect_delay_seconds=round(entry.connected_at - verdict_at, 3),
                             talk_seconds=round(self.acd.now() - entry.connected_at, 3))
                run.model.observe_talk(self.acd.now() - entry.connected_at)
            await asyncio.shield(self._record(run, attempt, outcome, **extra))

    async def _track_connect(self, attempt: AttemptState, task: asyncio.Future[Any]) -> Any:
        """Await the ACD's connect; mark the attempt connected as soon as an agent takes it (for pacing)."""
        while not task.done():
            await asyncio.wait({task}, timeout=0.2)
            if attempt.phase == "waiting_agent" and str(attempt.attempt_id) in self.acd.conversations:
                attempt.phase = "connected"
                self._wake.set()
        return task.result()

    async def _record(self, run: CampaignRun, attempt: AttemptState, outcome: str, **extra: Any) -> None:
        attempt.phase = "done"
        run.attempts.pop(attempt.attempt_id, None)
        record = leads.Attempt(number=attempt.lead.number, started_at=attempt.started, outcome=outcome,
                               lead_id=attempt.lead.id, attempt_id=attempt.attempt_id, call_id=attempt.attempt_id,
                               ended_at=_utcnow(), **extra)
        if run.ledger is not None and outcome in ("human", "abandoned"):
            abandoned = outcome == "abandoned" or (record.connect_delay_seconds or 0) > \
                run.config.policy().agent_connect_seconds
            run.ledger.record_live(self.now(), abandoned=abandoned, number=attempt.lead.number)
        elif run.ledger is not None and outcome == "machine":
            run.ledger.record_amd_machine(self.now())
        try:
            await leads.record_attempt(self.db, run.name, run.config, record)
        except Exception:
            log.exception("could not record a dial attempt", campaign=run.name, attempt=str(attempt.attempt_id))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)
