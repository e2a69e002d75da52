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

Scheduled callbacks (an agent's disposition ``callback``) come before fresh leads: each loop first asks which
callbacks are due and callable now (the store: calling windows, do-not-call), lets the pure
``callcore.dialer.callbacks.assign`` pair them with free agents (an agent-owned callback with its owner only,
until the campaign's grace period ends), **reserves** each agent, claims the callbacks by id and dials them like
preview calls: no AMD, the reserved agent's phone rings when the callee answers, so a callback is never
connected to another agent and never abandoned. Only then are fresh leads paced over the agents still free.

It never dials when the campaign is not running, when nobody who could take the calls is logged in, or when
no lead is callable now.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import structlog

from callcore.acd import agent_state as st
from callcore.calls.call import Call, CallHungUp, OriginateFailed
from callcore.dialer import callbacks as cbk
from callcore.dialer.compliance import AbandonLedger, AbandonPolicy, Budget
from callcore.dialer.estimators import CampaignModel
from callcore.campaigns.validate import eligible_agents
from callcore.dialer.pacing import Pacer, PacerConfig, PacingSnapshot
from callcore.ids import uuid7
from callcore.leads import store as leads

if TYPE_CHECKING:
    from callcore.acd.service import AcdService
    from callcore.calls.runtime import CallRuntime
    from callcore.campaigns.model import CampaignConfig

log = structlog.get_logger("callcore.dialer")

OUTBOUND_CONTEXT = "callcore-outbound"
#: The disposition of a machine attempt whose whole message was played (the machine did not hang up first).
MESSAGE_LEFT = "machine_message_left"
TICK_SECONDS = 1.0
# Q.850 causes of an unanswered originate, and how they count.
_BUSY = {17}
_NO_ANSWER = {18, 19, 0}


def _outcome_of(exc: OriginateFailed) -> str:
    """A refused originate (trunk down, bad dial string) is ``failed``, whatever its cause: nothing rang."""
    if exc.refused:
        return "failed"
    return "busy" if exc.cause in _BUSY else "no_answer" if exc.cause in _NO_ANSWER else "failed"
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
    callback: leads.Callback | None = None  # a scheduled callback being dialled
    agent: str | None = None  # the agent reserved for this call (callbacks, preview): it needs no free agent
    # The campaign's config when the call was launched: a live config change (PUT /campaigns/{name}) applies to
    # the next attempts, never halfway through a call. None: the run's current config.
    config: CampaignConfig | None = None


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

    @property
    def lines_in_use(self) -> int:
        """Trunk channels the campaign holds: ringing, waiting for an agent, or connected (what ``max_lines`` caps)."""
        return sum(1 for a in self.attempts.values() if a.phase != "done")

    @property
    def unreserved_in_flight(self) -> int:
        """Calls in flight that will need a free agent (those with a reserved agent do not)."""
        return sum(1 for a in self.attempts.values() if a.phase in ("ringing", "waiting_agent") and a.agent is None)


class DialerService:
    def __init__(self, campaigns: dict[str, CampaignConfig], acd: AcdService, runtime: CallRuntime, db: Any,
                 *, pacer: Pacer | None = None) -> None:
        self.acd = acd
        self.runtime = runtime
        self.db = db
        self.pacer = pacer  # given: every campaign uses it (tests); None: each campaign's own (its `pacing:`)
        self._pacers: dict[str, tuple[Any, Pacer]] = {}
        self.runs = {name: CampaignRun(name, cfg) for name, cfg in campaigns.items()}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        acd.on_agent_change(lambda _agent: self._wake.set())

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def pacer_of(self, run: CampaignRun) -> Pacer:
        """The campaign's pacer, made again when its ``pacing:`` settings change (a pacer keeps look-up caches)."""
        if self.pacer is not None:
            return self.pacer
        settings = run.config.pacing
        known = self._pacers.get(run.name)
        if known is None or known[0] != settings:
            known = self._pacers[run.name] = (settings, Pacer(PacerConfig(
                dispersion=settings.dispersion, max_lines_per_agent=settings.max_lines_per_agent)))
        return known[1]

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
        await leads.recover_callback_claims(self.db, name, now=_utcnow(), keep=self.callbacks_in_flight(name))
        # A one-hour control window on top of the policy's: abandons are spread, not bunched (docs/dialer.md).
        run.ledger = AbandonLedger(AbandonPolicy(**run.config.abandon_policy_fields()), control_windows=[3600])
        await self._replay_ledger(run)
        run.state = "running"
        run.task = asyncio.get_running_loop().create_task(self._loop(run), name=f"campaign:{name}")
        log.info("campaign started", campaign=name, mode=run.config.mode)

    async def _replay_ledger(self, run: CampaignRun, ledger: AbandonLedger | None = None) -> None:
        """The abandons already spent in the policy's window (before a restart, a stop and start) still count:
        the new ledger (``ledger``, default the run's) replays the campaign's recorded attempts of that window,
        oldest first."""
        ledger = ledger or run.ledger
        assert ledger is not None
        window = run.config.policy().window_seconds
        now_wall, now = _utcnow(), self.now()
        entries = await leads.ledger_entries(self.db, run.name, since=now_wall - timedelta(seconds=window))
        for e in entries:
            at = now - max(0.0, (now_wall - e.at).total_seconds())
            if e.outcome == "machine":
                ledger.record_amd_machine(at)
            else:
                ledger.record_live(at, abandoned=e.abandoned, number=e.number)
        if entries:
            counts = ledger.counts(now)
            log.info("abandonment ledger replayed", campaign=run.name, attempts=len(entries),
                     live=counts.live, abandons=counts.abandons)

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

    # -- campaigns defined through the API (callcore.campaigns.catalog) ----------------------------------------
    #: What a running campaign cannot change: its loop, pacer and agents are built around them.
    FIXED_WHILE_RUNNING = ("mode", "queue")

    def add_campaign(self, name: str, config: CampaignConfig) -> CampaignRun:
        """A campaign created while callcore runs: known at once, stopped until someone starts it."""
        if name in self.runs:
            raise DialerError(f"campaign {name!r} exists already")
        run = self.runs[name] = CampaignRun(name, config)
        log.info("campaign added", campaign=name, mode=config.mode)
        return run

    def file_campaign_problems(self, old: dict[str, CampaignConfig], new: dict[str, CampaignConfig]) -> list[str]:
        """Why a reloaded file's ``campaigns:`` (``new``, was ``old``) cannot be applied now (empty: it can)."""
        problems = []
        for name, config in new.items():
            if name in self.runs and config != self.runs[name].config:
                try:
                    self.check_config_change(name, config)
                except DialerError as exc:
                    problems.append(f"campaigns.{name}: {exc}")
        for name in sorted(set(old) - set(new)):
            run = self.runs.get(name)
            if run is not None and run.state != "stopped":
                problems.append(f"campaigns.{name}: removed from the file while it is {run.state}; stop it first")
        return problems

    def apply_file_campaigns(self, old: dict[str, CampaignConfig], new: dict[str, CampaignConfig]) -> None:
        """A reloaded file's campaigns (see :meth:`file_campaign_problems`): new ones are added stopped, changed
        ones take their new definition from the next attempt, removed (stopped) ones go."""
        for name, config in new.items():
            if name not in self.runs:
                self.add_campaign(name, config)
            elif config != self.runs[name].config:
                self.replace_config(name, config)
        for name in set(old) - set(new):
            self.discard_campaign(name)

    def discard_campaign(self, name: str) -> None:
        """Undo :meth:`add_campaign` (its definition could not be stored): only a campaign never started."""
        run = self.runs.get(name)
        if run is not None and run.state == "stopped" and not run.attempts:
            del self.runs[name]
            log.info("campaign discarded", campaign=name)

    def check_config_change(self, name: str, config: CampaignConfig) -> None:
        """DialerError when ``config`` may not replace the campaign's now (KeyError: unknown campaign)."""
        run = self.run_of(name)
        if run.state != "running":
            return
        changed = [f for f in self.FIXED_WHILE_RUNNING if getattr(config, f) != getattr(run.config, f)]
        if changed:
            raise DialerError(f"campaign {name!r} is running: its {' and '.join(changed)} cannot change while it "
                              "dials; pause or stop it first")

    def replace_config(self, name: str, config: CampaignConfig) -> None:
        """The running loop reads ``run.config`` at every step, so caller ID, windows, retry rules, dispositions,
        AMD and script apply from the next attempt; calls in progress keep the config they were launched with."""
        self.check_config_change(name, config)
        run = self.run_of(name)
        old, run.config = run.config, config
        if run.state == "running" and config.abandon_policy_fields() != old.abandon_policy_fields():
            self._spawn(self._swap_ledger(run, config), f"ledger:{name}")
        self._wake.set()
        log.info("campaign config replaced", campaign=name, state=run.state)

    async def _swap_ledger(self, run: CampaignRun, config: CampaignConfig) -> None:
        """A new abandonment policy: a ledger with its limits, filled from the recorded attempts, replaces the old
        one once ready (the old one keeps pacing meanwhile, so there is no moment without a ledger)."""
        ledger = AbandonLedger(AbandonPolicy(**config.abandon_policy_fields()), control_windows=[3600])
        await self._replay_ledger(run, ledger)
        if run.config is config and run.state == "running":
            run.ledger = ledger

    def status(self, name: str) -> dict[str, Any]:
        run = self.run_of(name)
        return {"campaign": name, "state": run.state, "mode": run.config.mode, "in_flight": run.in_flight,
                "connected": sum(1 for a in run.attempts.values() if a.phase == "connected"),
                "dialed": run.dialed, "last_decision": run.last_decision}

    def pacing(self, name: str) -> dict[str, Any]:
        """Read-only pacing figures for monitoring (``/metrics``); changes nothing but the ledger's clock.

        ``able``: the campaign's agents who can take a call soon (logged in, not paused: the pacer's line cap is
        per such agent); ``abandon_*``: the abandonment ledger's policy window (since the campaign was started in
        this process; zeros before)."""
        run = self.run_of(name)
        able = sum(1 for a in self._agents(run) if a in self.acd.agents
                   and self.acd.agents[a].state in ("ready", "reserved", "on_call", "wrap_up"))
        window = run.ledger.counts(self.now()) if run.ledger is not None else None
        policy = run.config.policy()
        return {"state": run.state, "in_flight": run.in_flight,
                "ringing": sum(1 for a in run.attempts.values() if a.phase == "ringing"),
                "connected": sum(1 for a in run.attempts.values() if a.phase == "connected"), "able": able,
                "abandon_live": window.live if window else 0.0, "abandon_abandons": window.abandons if window else 0.0,
                "abandon_limit": policy.limit, "abandon_window_seconds": policy.window_seconds}

    def callbacks_in_flight(self, name: str) -> list[int]:
        """Callbacks this process is dialling now for campaign ``name`` (their claims are not stale)."""
        return [a.callback.id for a in self.run_of(name).attempts.values() if a.callback is not None]

    # -- pacing -----------------------------------------------------------------------------------------
    def _agents(self, run: CampaignRun) -> list[str]:
        """Who takes this campaign's calls: the agents the ACD would route them to (its queue's, narrowed by the
        agents it names and its skills) — counting anyone else would dial for agents who never take the call."""
        return eligible_agents(run.config, self.acd.config)

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
        pending = run.unreserved_in_flight  # callbacks have their own agent reserved
        if run.config.mode == "progressive":
            n = max(0, spare - pending)
            run.last_decision = f"progressive: {len(ready)} ready, {inbound} inbound waiting, {pending} in flight"
        else:
            now = self.now()
            snap = PacingSnapshot(
                may_dial=True, agents_logged_in=len(logged_in), agents_ready=max(0, spare),
                talking=tuple(now - s.since for s in logged_in if s.state == "on_call"),
                wrapping=tuple(now - s.since for s in logged_in if s.state == "wrap_up"),
                ringing=tuple(now - a.launched_at for a in run.attempts.values()
                              if a.phase == "ringing" and a.agent is None),
                answered_waiting=sum(1 for a in run.attempts.values() if a.phase == "waiting_agent"),
                inbound_waiting=inbound,
                budget=run.ledger.budget(now) if run.ledger else Budget.empty(),
            )
            decision = self.pacer_of(run).decide(now, snap, run.model.snapshot())
            n = decision.launch
            run.last_decision = f"predictive: {decision.reason} ({decision.launch})"
        if cap is not None:
            n = min(n, max(0, cap - run.lines_in_use))
        return n

    async def _loop(self, run: CampaignRun) -> None:
        idle_logged = ""
        while run.state == "running":
            try:
                await self.serve_callbacks(run)
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

    # -- scheduled callbacks ----------------------------------------------------------------------------
    def _inbound_waiting(self, run: CampaignRun, agents: list[str]) -> int:
        return sum(1 for c in self.acd.waiting.values()
                   if c.callback_number is None and c.max_wait is None and c.queue != run.config.queue
                   and any(c.queue in self.acd.config.agents[a].queues for a in agents))

    def free_agents(self, run: CampaignRun) -> list[cbk.FreeAgent]:
        """The campaign's agents who could take a call now, longest idle first."""
        out = []
        for agent_id in self._agents(run):
            s = self.acd.agents[agent_id]
            if s.state == "ready" and s.active_calls < s.max_calls and not s.logout_pending:
                out.append(cbk.FreeAgent(agent_id, s.idle_since))
        return sorted(out, key=lambda a: (a.idle_since, a.id))

    async def serve_callbacks(self, run: CampaignRun) -> int:
        """Dial the callbacks that are due, each with its agent reserved (see the module doc). Returns how many
        were launched."""
        now = _utcnow()
        due = await leads.due_callbacks(self.db, run.name, run.config, now=now, limit=50)
        if not due:
            return 0
        # From here until each agent is reserved nothing awaits: the agents' states cannot change under us.
        agents = self._agents(run)
        free = self.free_agents(run)
        spare = len(free) - run.config.blending.reserve_agents
        if run.config.blending.priority == "inbound":
            spare -= self._inbound_waiting(run, agents)
        cap = run.config.max_lines - run.lines_in_use if run.config.max_lines is not None else None
        policy = cbk.CallbackPolicy.of(run.config)
        views = [cbk.DueCallback(c.id, c.due_at, c.owner_agent) for c in due]
        plan = cbk.assign(views, free, now, policy, max_any=max(0, spare), max_total=cap)
        waiting = cbk.waiting_for_owner(views, now, policy) - {agent for _, agent in plan}
        if waiting:
            log.debug("callbacks wait for their owners", campaign=run.name, owners=sorted(waiting))
        reserved: dict[int, tuple[str, uuid.UUID]] = {}
        for cb, agent_id in plan:
            attempt_id = uuid7()
            try:
                self.acd._apply(agent_id, st.Offered(str(attempt_id)))
            except st.InvalidTransition:
                continue
            reserved[cb.id] = (agent_id, attempt_id)
        if not reserved:
            return 0
        try:
            claimed = await leads.claim_due_callbacks(self.db, run.name, run.config, now=now, limit=len(reserved),
                                                      ids=list(reserved))
        except BaseException:
            for agent_id, attempt_id in reserved.values():
                self._withdraw(agent_id, attempt_id, "callback not claimed")
            raise
        by_id = {c.id: c for c in claimed}
        launched = 0
        for cb_id, (agent_id, attempt_id) in reserved.items():
            cb = by_id.get(cb_id)
            if cb is None:  # listed, out of its window or taken meanwhile: the agent is free again
                self._withdraw(agent_id, attempt_id, "callback no longer callable")
                continue
            try:
                lead = await leads.lead_for_callback(self.db, cb)
            except BaseException:
                self._withdraw(agent_id, attempt_id, "callback lead unreadable")
                await asyncio.shield(leads.release_callbacks(self.db, [cb.id], now=_utcnow()))
                raise
            attempt = AttemptState(lead, attempt_id, _utcnow(), self.now(), callback=cb, agent=agent_id,
                                   config=run.config)
            run.attempts[attempt_id] = attempt
            run.dialed += 1
            log.info("dialling a scheduled callback", campaign=run.name, callback=cb.id, agent=agent_id,
                     owner=cb.owner_agent, due=cb.due_local)
            self._spawn(self.dial_with_agent(run, attempt, agent_id), f"callback:{cb.id}")
            launched += 1
        return launched

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _withdraw(self, agent_id: str, attempt_id: uuid.UUID, reason: str) -> None:
        if self.acd.agents[agent_id].offer == str(attempt_id):
            self.acd._apply(agent_id, st.OfferCancelled(str(attempt_id), reason))

    async def dial_with_agent(self, run: CampaignRun, attempt: AttemptState, agent_id: str) -> None:
        """Dial with ``agent_id`` already reserved (a callback, a preview call): no AMD (the agent hears a
        machine and says so in the disposition); when the callee answers, the agent's phone rings at once."""
        cfg = attempt.config or run.config
        data: dict[str, Any] = {"did": attempt.lead.number, "campaign": run.name, "lead_id": attempt.lead.id or None,
                                "agent": agent_id}
        if attempt.callback is not None:
            data["scheduled_callback"] = attempt.callback.id
        try:
            await self.runtime.place_call(
                cfg.dial_string(attempt.lead.number), partial(self._answered_by, run, attempt, agent_id),
                caller_id=cfg.caller_id_e164(), caller_name=cfg.caller_name or None, timeout=cfg.ring_timeout, call_id=attempt.attempt_id, data=data)
        except OriginateFailed as exc:
            self._withdraw(agent_id, attempt.attempt_id, "call not answered")
            outcome = _outcome_of(exc)
            await self._record(run, attempt, outcome, hangup_cause=exc.cause, agent_guaranteed=True)
        except asyncio.CancelledError:
            self._withdraw(agent_id, attempt.attempt_id, "shutdown")
            if attempt.callback is not None:  # not dialled after all: it stays due, for its owner
                run.attempts.pop(attempt.attempt_id, None)
                await asyncio.shield(leads.release_callbacks(self.db, [attempt.callback.id], now=_utcnow()))
            else:
                await asyncio.shield(self._record(run, attempt, "failed", agent_guaranteed=True))
            raise
        except Exception:
            log.exception("dial attempt failed", campaign=run.name, number=attempt.lead.number)
            self._withdraw(agent_id, attempt.attempt_id, "call failed")
            await self._record(run, attempt, "failed", agent_guaranteed=True)
        finally:
            self._wake.set()

    async def _answered_by(self, run: CampaignRun, attempt: AttemptState, agent_id: str, call: Call) -> None:
        """In the call's own task: the callee answered; the reserved agent's phone rings now."""
        from callcore.acd.service import QueuedCaller

        acd, cfg = self.acd, attempt.config or run.config
        answered_at = _utcnow()
        entry = QueuedCaller(call, cfg.queue or "", 0, acd.now(), dict(cfg.skills), assigned=agent_id,
                             record=cfg.recording)
        acd.waiting[entry.id] = entry  # entry.id == the attempt id: the agent's offer is this call
        attempt.phase = "connected"
        extra: dict[str, Any] = {"answered_at": answered_at,
                                 "ring_seconds": (answered_at - attempt.started).total_seconds(),
                                 "agent_guaranteed": True}
        try:
            await acd._serve_loop(entry, acd.config.queues[cfg.queue or ""])
        finally:
            if entry.agent is not None and entry.connected_at is not None:
                extra.update(agent_id=entry.agent,
                             connect_delay_seconds=round(entry.connected_at - entry.enqueued_at, 3),
                             talk_seconds=round(acd.now() - entry.connected_at, 3))
            await asyncio.shield(self._record(run, attempt, "human", **extra))

    # -- one attempt ------------------------------------------------------------------------------------
    def _launch(self, run: CampaignRun, lead: leads.Lead) -> None:
        attempt = AttemptState(lead, uuid7(), _utcnow(), self.now(), config=run.config)
        run.attempts[attempt.attempt_id] = attempt
        run.dialed += 1
        task = asyncio.get_running_loop().create_task(self._dial(run, attempt), name=f"attempt:{lead.number}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial(self, run: CampaignRun, attempt: AttemptState) -> None:
        cfg = attempt.config or run.config
        amd = cfg.amd.dialplan_args() if cfg.amd.enabled else "off"
        # A machine that gets a message: the dialplan waits for its beep (see asterisk/extensions.conf).
        variables = {"CALLCORE_AMD": amd, "CALLCORE_MACHINE_WAIT": cfg.amd.machine_wait_args(),
                     "CALLCORE_NOTSURE_IS": "MACHINE" if cfg.amd.not_sure == "machine" else "HUMAN"}
        try:
            await self.runtime.place_call(
                cfg.dial_string(attempt.lead.number), partial(self._answered, run, attempt),
                caller_id=cfg.caller_id_e164(), caller_name=cfg.caller_name or None, timeout=cfg.ring_timeout, context=OUTBOUND_CONTEXT,
                call_id=attempt.attempt_id, variables=variables,
                data={"did": attempt.lead.number, "campaign": run.name, "lead_id": attempt.lead.id})
        except OriginateFailed as exc:
            outcome = _outcome_of(exc)
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
        cfg = attempt.config or run.config
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
                    # Played to its end (the machine did not hang up during it): the attempt says so.
                    extra["disposition"] = MESSAGE_LEFT
                await call.hangup()
            finally:
                await self._record(run, attempt, "machine", **extra)
            return
        attempt.phase = "waiting_agent"
        self._wake.set()
        verdict_at = self.acd.now()
        entry = None
        outcome = "human"  # connected to an agent; anything else ends "abandoned" (below)
        try:
            priority = {"inbound": -1000, "outbound": 1000, "equal": 0}[cfg.blending.priority] + cfg.priority
            connect = self.acd.connect_outbound(
                call, cfg.queue or "", priority=priority, skills=cfg.skills,
                max_wait=cfg.policy().agent_connect_seconds, timeout_sounds=cfg.compliance_message,
                record=cfg.recording)
            entry_task = asyncio.ensure_future(connect)
            entry = await self._track_connect(attempt, entry_task)
        except CallHungUp:
            pass  # the callee hung up before an agent came (often during the compliance message): see below
        finally:
            if entry is not None and entry.agent is not None and entry.connected_at is not None:
                extra.update(agent_id=entry.agent, connect_delay_seconds=round(entry.connected_at - verdict_at, 3),
                             talk_seconds=round(self.acd.now() - entry.connected_at, 3))
                run.model.observe_talk(self.acd.now() - entry.connected_at)
            else:
                # A person answered and never reached an agent: abandoned (compliance.is_abandoned), also when
                # they hung up on the compliance message — never "human", which would leave the lead connected.
                outcome = "abandoned"
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
        cfg = attempt.config or run.config
        run.attempts.pop(attempt.attempt_id, None)
        # A callback of a bare number has a stand-in lead with id 0: no lead row to move on.
        record = leads.Attempt(number=attempt.lead.number, started_at=attempt.started, outcome=outcome,
                               lead_id=attempt.lead.id or None, attempt_id=attempt.attempt_id,
                               call_id=attempt.attempt_id, ended_at=_utcnow(), **extra)
        if run.ledger is not None and outcome in ("human", "abandoned"):
            abandoned = outcome == "abandoned" or (record.connect_delay_seconds or 0) > \
                cfg.policy().agent_connect_seconds
            run.ledger.record_live(self.now(), abandoned=abandoned, number=attempt.lead.number)
        elif run.ledger is not None and outcome == "machine":
            run.ledger.record_amd_machine(self.now())
        try:
            await leads.record_attempt(self.db, run.name, cfg, record)
        except Exception:
            log.exception("could not record a dial attempt", campaign=run.name, attempt=str(attempt.attempt_id))
        if attempt.callback is not None:
            # Reached: the callback is done. Not reached: it is over too, and its lead goes on by the retry rules
            # of the outcome (dialled again later like any lead, by any agent).
            try:
                await leads.finish_callback(self.db, attempt.callback.id, "done" if outcome == "human" else "failed",
                                            now=_utcnow(), from_status="dialing")
            except Exception:
                log.exception("could not finish a scheduled callback", campaign=run.name,
                              callback=attempt.callback.id)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)
