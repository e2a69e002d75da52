"""The live ACD: callers wait in queues, the pure router picks (caller, agent) pairs, phones ring.

Ownership: each waiting caller is driven by its own call task (``handle``, the IVR's queue handler): it
waits for an assignment, rings the assigned agent's phone, bridges, and stays until the call ends. This
service only owns the shared state — who waits, each agent's status — and decides assignments with
``router.route``; it never does telephony for a call itself. Every agent state change is an ``AgentEvent``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from callcore.acd import agent_state as st
from callcore.acd.callback_booking import CallbackBooker
from callcore.acd.callback_guard import CallbackGuard
from callcore.acd.model import MAX_LEVEL, MIN_LEVEL, AcdConfig, QueueConfig, VirtualHold, caller_skills, media_uri
from callcore.acd.policies import DEFAULT_POLICY, CallerView, RoutingPolicy
from callcore.acd.router import (
    estimated_wait,
    max_wait_reached,
    next_relaxation_at,
    only_offered_left,
    queue_full,
    route,
)
from callcore.acd.controls import CallControls
from callcore.acd.conversation import Conversation, PostCallSurvey, Requeue
from callcore.acd.reconcile import AGENT_VARIABLE, QUEUE_VARIABLE, ReconcileMixin
from callcore.acd.virtual_hold import VIRTUAL_HOLD, VirtualHoldMixin
from callcore.api.callbacks_config import CallbacksSettings
from callcore.ari.errors import AriError
from callcore.calls.call import Call, CallHungUp, OriginateFailed
from callcore.calls.runtime import CallRuntime
from callcore.events import AgentEvent, EventSink, utcnow
from callcore.ivr.commands import SURVEY_AGENT_VARIABLE, SURVEY_OUTCOME_PREFIX, SURVEY_QUEUE_VARIABLE, IvrEventType
from callcore.ivr.commands import Queue

log = structlog.get_logger("callcore.acd")


class AcdEventType:
    QUEUED = "queued"  # data: queue, priority, skills, position
    OFFERED = "offered"  # data: queue, agent, wait_seconds
    AGENT_NO_ANSWER = "agent_no_answer"  # data: queue, agent
    CONNECTED = "connected"  # data: queue, agent, wait_seconds
    ABANDONED = "abandoned"  # data: queue, wait_seconds, while ("waiting" | "ringing")
    OVERFLOW = "overflow"  # data: queue, reason ("max_wait" | "max_length" | "no_agents"), action, target
    ANNOUNCEMENT = "announcement"  # data: queue, position


@dataclass
class QueuedCaller:
    call: Call
    queue: str
    priority: int
    enqueued_at: float
    skills: dict[str, int]
    offered_to: set[str] = field(default_factory=set)
    assigned: str | None = None  # the agent the dispatcher picked (its phone rings)
    wakeup: asyncio.Future[None] | None = None  # resolved to make the waiting task look again
    # Virtual hold: the caller hung up and keeps its place; ``ident`` is the id of the next callback attempt.
    callback_number: str | None = None
    ident: str | None = None
    attempts: int = 0
    callback: VirtualHold | None = None  # how it is called back (the queue's virtual hold, or web callbacks')
    record: bool = False  # record once connected, whatever the queue says (a campaign's recording policy)
    whisper: list[str] = field(default_factory=list)  # played to the agent before bridging, after the queue's
    # Outbound (the dialer): the caller's own wait limit, and what it hears when it passes (then hang up).
    max_wait: float | None = None
    on_max_wait: list[str] | None = None
    connected_at: float | None = None  # when it was bridged to an agent (service clock)
    agent: str | None = None  # who it was connected to
    # Virtual hold: why this caller's number may not be called back (toll-fraud guard): no offer is made.
    callback_refusal: str | None = None
    # A callback request ended by its owner (cancelled, expired, erased): never put back in line or dialled.
    withdrawn: str | None = None

    @property
    def id(self) -> str:
        return self.ident or str(self.call.call_id)

    @property
    def live(self) -> bool:
        """Can be routed: a caller on the line, or a virtual-hold caller waiting for its callback."""
        return self.callback_number is not None or not self.call.gone

    def view(self) -> CallerView:
        return CallerView(self.id, self.queue, self.priority, self.enqueued_at, dict(self.skills),
                          frozenset(self.offered_to))


DEFAULT_HANDLE_SECONDS = 180.0
HANDLE_TIME_WEIGHT = 0.2  # exponential moving average: recent calls count most


class AcdService(CallControls, VirtualHoldMixin, ReconcileMixin):
    def __init__(
        self,
        config: AcdConfig,
        sink: EventSink,
        *,
        clock: Callable[[], float] | None = None,
        policy: RoutingPolicy = DEFAULT_POLICY,
    ) -> None:
        self.config = config
        self.sink = sink
        self._clock = clock
        self.policy = policy
        now = self.now()
        self.agents: dict[str, st.AgentStatus] = {
            agent_id: st.new_agent(agent_id, max_calls=cfg.max_calls, now=now)
            for agent_id, cfg in config.agents.items()
        }
        self.waiting: dict[str, QueuedCaller] = {}  # in enqueue order; callers whose agent rings stay, assigned
        self._wrap_timers: dict[str, asyncio.TimerHandle] = {}
        self._dispatch_scheduled = False
        self._relax_timer: asyncio.TimerHandle | None = None
        self._moh: set[str] = set()  # channels with hold music on
        # Recent handle time (talk + wrap-up) per queue, for wait estimates; a typical 3 minutes until measured.
        self.handle_seconds: dict[str, float] = {q: DEFAULT_HANDLE_SECONDS for q in config.queues}
        self.conversations: dict[str, Conversation] = {}  # by call id: connected calls
        self.runtime: CallRuntime | None = None  # set by the app: places virtual-hold callbacks
        self._agent_listeners: list[Callable[[str], None]] = []
        self.offer_listeners: list[Callable[[float], None]] = []  # routing latency of each offer (metrics)
        # Told how each callback attempt ended: "dialing", "connected", "no_answer", "failed" (web callbacks).
        self.callback_listener: Callable[[QueuedCaller, str], None] | None = None
        # Overflow callbacks are booked here (set by the app; this default books nothing and refuses every number).
        self.callback_booker = CallbackBooker(CallbackGuard(CallbacksSettings()))
        self._callbacks: set[asyncio.Task[None]] = set()

    def now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    # -- a reloaded config -----------------------------------------------------------------------------
    def config_change_problems(self, new: AcdConfig) -> list[str]:
        """Why ``new`` cannot replace the running config now (empty: it can). A queue still holding callers (or
        connected calls) and an agent still logged in cannot disappear under them."""
        problems = []
        for queue in sorted(set(self.config.queues) - set(new.queues)):
            held = sum(1 for c in self.waiting.values() if c.queue == queue)
            held += sum(1 for c in self.conversations.values() if c.entry.queue == queue)
            if held:
                problems.append(f"queues.{queue}: removed, but {held} call(s) are in it now; remove it when empty")
        for agent in sorted(set(self.config.agents) - set(new.agents)):
            if self.agents[agent].state != "logged_out":
                problems.append(f"agents.{agent}: removed, but the agent is {self.agents[agent].state}; log them out "
                                "first")
        return problems

    def apply_config(self, new: AcdConfig) -> None:
        """Use ``new`` from now on (see :meth:`config_change_problems`): queues, their options, agents, skills and
        transfers apply to the next routing decision and the next caller; callers keep their place. Skills changed
        through the API go back to the file's. New agents start logged out (or logged in: ``login_at_start``)."""
        old, self.config = self.config, new
        now = self.now()
        for agent_id, cfg in new.agents.items():
            status = self.agents.get(agent_id)
            if status is None:
                self.agents[agent_id] = st.new_agent(agent_id, max_calls=cfg.max_calls, now=now)
                if cfg.login_at_start:
                    self.login(agent_id)
            elif status.max_calls != cfg.max_calls:
                self.agents[agent_id] = dataclasses.replace(status, max_calls=cfg.max_calls)
        for agent_id in set(old.agents) - set(new.agents):
            self.agents.pop(agent_id, None)
        for queue in new.queues:
            self.handle_seconds.setdefault(queue, DEFAULT_HANDLE_SECONDS)
        self._kick()

    # -- agent state ----------------------------------------------------------------------------------
    def _apply(self, agent_id: str, event: object, *, call: Call | None = None, queue: str | None = None) -> None:
        if agent_id not in self.agents:
            raise KeyError(f"unknown agent {agent_id!r}")
        status, transitions = st.apply(self.agents[agent_id], event, self.now())  # type: ignore[arg-type]
        self.agents[agent_id] = status
        for t in transitions:
            self.sink.emit(AgentEvent(
                agent_id, t.to_state, utcnow(), previous=t.from_state, reason=t.reason,
                call_id=call.call_id if call is not None else _uuid(t.call_id), queue=queue,
            ))
        timer = self._wrap_timers.pop(agent_id, None)
        if timer is not None:
            timer.cancel()
        if status.state == "wrap_up" and status.wrap_up_until is not None:
            delay = max(0.0, status.wrap_up_until - self.now())
            self._wrap_timers[agent_id] = asyncio.get_running_loop().call_later(delay, self._wrap_up_over, agent_id)
        self._kick()
        if transitions:
            for listener in self._agent_listeners:
                listener(agent_id)

    def on_agent_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(agent_id)`` after every agent state change (the dialer paces on it)."""
        self._agent_listeners.append(listener)

    def _wrap_up_over(self, agent_id: str) -> None:
        self._wrap_timers.pop(agent_id, None)
        if self.agents[agent_id].state == "wrap_up":
            self._apply(agent_id, st.WrapUpExpired())

    def restore(self, last: dict[str, tuple[str, str | None]]) -> None:
        """Rebuild agent states from their last recorded state after a restart.

        Logged-in agents come back logged in: paused ones with their reason; ready, ringing, talking or in
        wrap-up ones as ready, since the call they had is no longer ours to track (a live bridge keeps
        talking in Asterisk). Nothing stays stuck in reserved or on_call."""
        for agent_id, (state, reason) in last.items():
            if agent_id not in self.agents or state == "logged_out":
                continue
            if state == "paused":
                self._apply(agent_id, st.Login(paused=True))
                if reason and reason != "login":
                    self._apply(agent_id, st.Pause(reason))
            else:
                self._apply(agent_id, st.Login())

    # Service methods (the API and the CLI call these). Invalid ones raise st.InvalidTransition.
    def login(self, agent_id: str, *, paused: bool = False) -> None:
        self._apply(agent_id, st.Login(paused=paused))

    def logout(self, agent_id: str) -> None:
        self._apply(agent_id, st.Logout())

    def ready(self, agent_id: str) -> None:
        self._apply(agent_id, st.Ready())

    def pause(self, agent_id: str, reason: str = "break") -> None:
        self._apply(agent_id, st.Pause(reason))

    def end_wrap_up(self, agent_id: str) -> None:
        """The agent is done with its after-call work before the wrap-up timer runs out."""
        status = self.agents.get(agent_id)
        if status is None:
            raise KeyError(f"unknown agent {agent_id!r}")
        if status.state != "wrap_up":
            raise st.InvalidTransition(agent_id, status.state, "end wrap-up", "the agent is not in wrap-up")
        self._apply(agent_id, st.Ready())

    def set_skills(self, agent_id: str, skills: dict[str, int]) -> None:
        """Change an agent's skills while running (the API); routing uses them from the next decision on.
        The YAML is not rewritten: a reload or restart brings back the configured skills."""
        agent = self.config.agents.get(agent_id)
        if agent is None:
            raise KeyError(f"unknown agent {agent_id!r}")
        unknown = sorted(set(skills) - set(self.config.skills))
        if unknown:
            raise ValueError(f"unknown skills: {', '.join(unknown)}")
        bad = sorted(k for k, v in skills.items() if not MIN_LEVEL <= v <= MAX_LEVEL)
        if bad:
            raise ValueError(f"skill levels must be {MIN_LEVEL}-{MAX_LEVEL}: {', '.join(bad)}")
        self.config.agents[agent_id] = agent.model_copy(update={"skills": dict(skills)})
        log.info("agent skills changed", agent=agent_id, skills=skills)
        self._kick()

    def close(self) -> None:
        """Cancel timers (wrap-up ends, relaxation wake-ups): nothing of the ACD runs after shutdown."""
        for timer in self._wrap_timers.values():
            timer.cancel()
        self._wrap_timers.clear()
        if self._relax_timer is not None:
            self._relax_timer.cancel()
            self._relax_timer = None
        for task in self._callbacks:
            task.cancel()

    # -- dispatching ----------------------------------------------------------------------------------
    def _kick(self) -> None:
        """Route soon (once per loop iteration, however many changes asked for it)."""
        if not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        now = self.now()
        free = {c.id: c for c in self.waiting.values() if c.assigned is None and c.live}
        if not free:
            # Nobody to route (most dispatches: an agent's state changed with no caller waiting): skip building
            # every agent's view; there is no relaxation step to wait for either.
            if self._relax_timer is not None:
                self._relax_timer.cancel()
                self._relax_timer = None
            return
        agents = [s.view(self.config.agents[a].skills, set(self.config.agents[a].queues))
                  for a, s in self.agents.items()]
        for caller in free.values():
            # Every agent that could take this caller rang out: start a new round rather than wait forever.
            if caller.offered_to and only_offered_left(caller.view(), agents, self.config.queues, now):
                caller.offered_to.clear()
        views = [c.view() for c in free.values()]
        for offer in route(now, views, agents, self.config.queues, self.policy):
            entry = free.pop(offer.caller_id)
            self._apply(offer.agent_id, st.Offered(entry.id), call=entry.call, queue=entry.queue)
            entry.assigned = offer.agent_id
            entry.call.emit(AcdEventType.OFFERED, {"queue": entry.queue, "agent": offer.agent_id,
                                                   "wait_seconds": round(now - entry.enqueued_at, 3)})
            # Routing latency: from the later of "caller queued" and "agent became free" to this offer.
            since = max(entry.enqueued_at, self.agents[offer.agent_id].idle_since)
            for listener in self.offer_listeners:
                listener(max(0.0, now - since))
            if entry.callback_number is not None:
                self._start_callback(entry)  # virtual hold: its turn has come, call the caller back
            _wake(entry)
        if self._relax_timer is not None:
            self._relax_timer.cancel()
        at = next_relaxation_at([c.view() for c in free.values()], self.config.queues, now)
        self._relax_timer = asyncio.get_running_loop().call_later(at - now, self._kick) if at else None

    # -- the IVR queue node ---------------------------------------------------------------------------
    async def handle(self, call: Call, cmd: Queue) -> str:
        """The IVR's queue node: queue the caller; return when the call is over ("bridged") or overflowed
        ("overflow:<action>"). Runs in the call's own task."""
        try:
            skills = caller_skills(cmd.skills)
        except ValueError as exc:
            log.warning("bad caller skills from the IVR; using the queue's", error=str(exc))
            skills = {}
        return await self._serve(QueuedCaller(call, cmd.queue, cmd.priority, self.now(), skills))

    async def _serve(self, entry: QueuedCaller) -> str:
        call = entry.call
        queue = self.config.queues.get(entry.queue)
        if queue is None:
            log.error("a caller was sent to an unknown queue", queue=entry.queue)
            return "no_agents"
        # Callers holding a line: callback requests waiting in this queue hold none (max_length is about lines).
        waiting_here = sum(1 for c in self.waiting.values() if c.queue == entry.queue and c.callback_number is None)
        if queue_full(queue, waiting_here):
            return await self._overflow(entry, queue, "max_length")
        if not self._staffed(entry.queue):
            return await self._overflow(entry, queue, "no_agents")
        self.waiting[entry.id] = entry
        call.emit(AcdEventType.QUEUED, {"queue": entry.queue, "priority": entry.priority, "skills": entry.skills,
                                        "position": self.position(entry)})
        # Route first: a caller for whom an agent is free goes straight to ringing, with no hold music to
        # start and stop (two REST round trips; measured in bench/routing_latency.py).
        self._dispatch()
        return await self._serve_loop(entry, queue)

    async def _serve_loop(self, entry: QueuedCaller, queue: QueueConfig, greeting: list[str] | None = None) -> str:
        """Wait in line, ring agents, talk, follow transfers: until the call is over or overflows."""
        call = entry.call
        try:
            if greeting:
                await call.play([media_uri(m) for m in greeting])
            while True:
                if entry.assigned is None and call.channel_id not in self._moh:
                    await call.ensure_answered()  # the caller must wait: answer, and play hold music
                    await asyncio.gather(self._hold_music(call, queue), self.mark_waiting(call, entry))
                agent_id = await self._wait_for_agent(entry, queue)
                if agent_id == VIRTUAL_HOLD:
                    accepted = await self._accept_virtual_hold(entry, queue)
                    if accepted is not None:
                        return accepted
                    continue  # the number may not be called back: the caller was told and keeps waiting
                if agent_id is None:
                    self.waiting.pop(entry.id, None)
                    await self._stop_music(call)
                    if entry.on_max_wait is not None:
                        return await self._no_agent_in_time(entry)
                    return await self._overflow(entry, queue, "max_wait")
                outcome = await self._ring(entry, queue, agent_id)
                if isinstance(outcome, Requeue):
                    entry, queue = self._requeue(entry, outcome)
                    # The new queue's music; and its place noted on the channel (a restart puts it back there).
                    await asyncio.gather(self._hold_music(call, queue), self.mark_waiting(call, entry))
                elif isinstance(outcome, PostCallSurvey):
                    return _hand_to_survey(call, outcome)
                elif outcome:
                    return "bridged"
        except CallHungUp:
            wait = round(self.now() - entry.enqueued_at, 3)
            call.emit(AcdEventType.ABANDONED, {"queue": entry.queue, "wait_seconds": wait,
                                               "while": "ringing" if entry.assigned else "waiting"})
            raise
        finally:
            self.waiting.pop(entry.id, None)
            self._moh.discard(call.channel_id)
            if entry.assigned and self.agents[entry.assigned].offer == entry.id:
                # Assigned (or transferred to) but never rung: the offer must not keep the agent reserved.
                self._apply(entry.assigned, st.OfferCancelled(entry.id, "caller hung up"), call=call,
                            queue=entry.queue)
            self._kick()

    async def connect_outbound(self, call: Call, queue_name: str, *, priority: int, skills: dict[str, int],
                               max_wait: float, timeout_sounds: list[str], record: bool = False) -> QueuedCaller:
        """A person the dialer reached: connect them to the best free agent of ``queue_name`` within
        ``max_wait`` seconds (the compliance limit, e.g. 2 s), or play ``timeout_sounds`` and hang up. Runs in the
        call's task until the call is over; the returned entry says whether and when an agent took it."""
        queue = self.config.queues[queue_name]
        entry = QueuedCaller(call, queue_name, priority, self.now(), dict(skills), max_wait=max_wait,
                             on_max_wait=list(timeout_sounds), record=record)
        self.waiting[entry.id] = entry
        call.emit(AcdEventType.QUEUED, {"queue": queue_name, "priority": priority, "skills": entry.skills,
                                        "position": self.position(entry), "outbound": True})
        self._dispatch()
        await self._serve_loop(entry, queue)
        return entry

    async def _no_agent_in_time(self, entry: QueuedCaller) -> str:
        """Outbound: no agent within the limit. The callee hears who called (the law's identification message)."""
        entry.call.emit(AcdEventType.OVERFLOW, {"queue": entry.queue, "reason": "connect_limit",
                                                "action": "message", "target": None})
        if entry.on_max_wait:
            await entry.call.play([media_uri(m) for m in entry.on_max_wait])
        await entry.call.hangup()
        return "no_agent"

    def _requeue(self, old: QueuedCaller, outcome: Requeue) -> tuple[QueuedCaller, QueueConfig]:
        """A blind transfer: the caller waits again in ``outcome.queue`` with its priority and data; a
        transfer to one agent arrives already assigned (that agent was reserved by the transfer)."""
        entry = QueuedCaller(old.call, outcome.queue, old.priority, self.now(), caller_attributes(old.skills))
        entry.assigned = outcome.agent
        self.waiting[entry.id] = entry
        old.call.emit(AcdEventType.QUEUED, {"queue": entry.queue, "priority": entry.priority, "skills": entry.skills,
                                            "position": self.position(entry), "transferred": True,
                                            "agent": outcome.agent})
        self._kick()
        return entry, self.config.queues[outcome.queue]

    def position(self, entry: QueuedCaller) -> int:
        """1-based place in line among callers of the same queue (priority first, then who came first)."""
        ahead = [c for c in self.waiting.values() if c.queue == entry.queue and c is not entry
                 and (c.priority, -c.enqueued_at) > (entry.priority, -entry.enqueued_at)]
        return len(ahead) + 1

    def _staffed(self, queue: str) -> bool:
        """Is anyone logged in who could ever take a call of ``queue``? If not, waiting is pointless."""
        q = self.config.queues[queue]
        groups = {queue} | {g for step in q.relaxation for g in step.add_agents_from}
        return any(s.state != "logged_out" and groups & set(self.config.agents[a].queues)
                   for a, s in self.agents.items())

    async def _stop_music(self, call: Call) -> None:
        if call.channel_id not in self._moh:
            return  # never started: no request
        self._moh.discard(call.channel_id)
        try:
            await call.ari.channels.stop_moh(call.channel_id)
        except Exception:  # noqa: BLE001 - already stopped, or the caller is gone
            pass

    async def _hold_music(self, call: Call, queue: QueueConfig) -> None:
        try:
            self._moh.add(call.channel_id)
            await call.ari.channels.start_moh(call.channel_id, queue.music_on_hold)
        except Exception as exc:  # noqa: BLE001 - hold music is a nicety, never a reason to drop a caller
            log.warning("could not start music on hold", error=str(exc))

    async def _wait_for_agent(self, entry: QueuedCaller, queue: QueueConfig) -> str | None:
        """Wait until the dispatcher assigns an agent; announce while waiting. None when max_wait passed,
        VIRTUAL_HOLD when the caller took the offer to be called back."""
        ann = queue.announcements
        every = ann.every if (ann.position or ann.periodic or ann.estimated_wait) else None
        next_announcement = self.now() + every if every else None
        vh = queue.virtual_hold if self.can_call_back(entry) else None
        offer_at = entry.enqueued_at + vh.offer_after if vh else None
        offered = False
        while entry.assigned is None:
            now = self.now()
            limit = entry.max_wait if entry.max_wait is not None else queue.max_wait
            deadlines = [d for d in (next_announcement, None if offered else offer_at,
                                     entry.enqueued_at + limit if limit else None) if d is not None]
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            entry.wakeup = asyncio.get_running_loop().create_future()
            if offered:
                entry.call.digit_waiter().add_done_callback(lambda _f, e=entry: _wake(e))
            try:
                await entry.call.wait_for(entry.wakeup, timeout)
            except TimeoutError:
                pass
            if entry.assigned is not None:
                break
            if vh and offered and vh.digit in entry.call.take_digits():
                return VIRTUAL_HOLD
            now = self.now()
            if entry.max_wait is not None and now - entry.enqueued_at >= entry.max_wait:
                return None
            if max_wait_reached(queue, now - entry.enqueued_at):
                return None
            announce_now = next_announcement is not None and now >= next_announcement
            if vh and not offered and offer_at is not None and now >= offer_at:
                offered, announce_now = True, True
                entry.call.take_digits()  # digits pressed before the offer do not accept it
            if announce_now:
                await self._announce(entry, queue, extra=vh.offer if (vh and offered) else [])
                next_announcement = self.now() + every if every else None
                if vh and offered and vh.digit in entry.call.take_digits():
                    return VIRTUAL_HOLD  # pressed while the offer played
        return entry.assigned

    async def _announce(self, entry: QueuedCaller, queue: QueueConfig, extra: list[str] | None = None) -> None:
        media: list[str] = []
        position = self.position(entry)
        if queue.announcements.position:
            media += ["sound:callcore/queue-position", f"number:{position}", "sound:callcore/queue-position-end"]
        if queue.announcements.estimated_wait:
            serving = sum(1 for a, s in self.agents.items()
                          if s.state != "logged_out" and entry.queue in self.config.agents[a].queues)
            wait = estimated_wait(position, serving, self.handle_seconds.get(entry.queue, DEFAULT_HANDLE_SECONDS))
            if wait < 60:
                media.append("sound:callcore/less-than-a-minute")
            elif wait < 3600:
                media += ["sound:callcore/estimated-wait", f"number:{math.ceil(wait / 60)}", "sound:callcore/minutes"]
        media += [media_uri(m) for m in queue.announcements.periodic]
        media += [media_uri(m) for m in extra or []]
        if not media:
            return
        entry.call.emit(AcdEventType.ANNOUNCEMENT, {"queue": entry.queue, "position": position})
        await self._stop_music(entry.call)
        try:
            await entry.call.play(media)
        finally:
            if not entry.call.gone and entry.assigned is None:
                await self._hold_music(entry.call, queue)

    async def _ring(self, entry: QueuedCaller, queue: QueueConfig, agent_id: str) -> Requeue | PostCallSurvey | bool:
        """Ring the agent. False on no answer (back in line); True once the connected call is over; a
        ``Requeue`` when a blind transfer sends the caller back to a queue; a ``PostCallSurvey`` when the agent
        hung up first and the queue has a survey."""
        call = entry.call
        agent = self.config.agents[agent_id]
        try:
            # Who and which queue, on the agent's channel: what a restarted callcore reads to resume the call.
            leg = await call.originate(agent.endpoint, timeout=queue.ring_timeout,
                                       variables={AGENT_VARIABLE: agent_id, QUEUE_VARIABLE: entry.queue})
        except OriginateFailed:
            call.emit(AcdEventType.AGENT_NO_ANSWER, {"queue": entry.queue, "agent": agent_id})
            self._apply(agent_id, st.RingNoAnswer(entry.id, pause=queue.no_answer_pause), call=call,
                        queue=entry.queue)
            entry.offered_to.add(agent_id)
            entry.assigned = None  # back in line, keeping its place: enqueued_at is unchanged
            self._kick()
            return False
        except BaseException:
            if self.agents[agent_id].state == "reserved":
                self._apply(agent_id, st.OfferCancelled(entry.id, "caller hung up"), call=call, queue=entry.queue)
            raise
        self.waiting.pop(entry.id, None)
        await asyncio.gather(call.ensure_answered(), self._stop_music(call))
        self._apply(agent_id, st.Answered(entry.id), call=call, queue=entry.queue)
        wait = round(self.now() - entry.enqueued_at, 3)
        conversation: Conversation | None = None
        try:
            if queue.whisper or entry.whisper:
                await call.play([media_uri(m) for m in [*queue.whisper, *entry.whisper]], channel_id=leg.channel_id)
            try:
                bridge_id = await call.bridge_with(leg)
            except AriError:
                if call.gone or not leg.gone:
                    raise
                # The agent hung up before the caller was put through (e.g. during the whisper): back in line.
                call.emit(AcdEventType.AGENT_NO_ANSWER, {"queue": entry.queue, "agent": agent_id,
                                                         "reason": "agent hung up before connect"})
                entry.assigned = None
                self.waiting[entry.id] = entry
                await self._hold_music(call, queue)
                return False
            call.emit(AcdEventType.CONNECTED, {"queue": entry.queue, "agent": agent_id, "wait_seconds": wait})
            entry.connected_at, entry.agent = self.now(), agent_id
            conversation = Conversation(self, entry, agent_id, leg, bridge_id)
            await self.start_recording_if_configured(conversation)
            outcome = await conversation.run()
        finally:
            if conversation is None:  # failed before the conversation took over the agent
                self._apply(agent_id, st.CallEnded(entry.id, wrap_up_seconds=queue.wrap_up_for(agent)), call=call,
                            queue=entry.queue)
        return outcome if outcome is not None else True

    async def _overflow(self, entry: QueuedCaller, queue: QueueConfig, reason: str) -> str:
        call = entry.call
        overflow = queue.overflow
        action = overflow.action if overflow else "hangup"
        target = overflow.target if overflow else None
        call.emit(AcdEventType.OVERFLOW, {"queue": entry.queue, "reason": reason, "action": action, "target": target})
        if action == "queue" and target and target != entry.queue:
            # Keeps its priority and its original wait: an overflow must not send a caller to the back.
            return await self._serve(QueuedCaller(call, target, entry.priority, entry.enqueued_at,
                                                  caller_attributes(entry.skills)))
        sounds = [media_uri(m) for m in (overflow.sounds if overflow else [])]
        if action == "callback":
            # A real booking (callcore.acd.callback_booking): dialled in turn once this call is over, keeping the
            # caller's place; a number the policy refuses, or no booking possible, is told rather than promised.
            into = target or entry.queue
            booking = await self.callback_booker.book(call.caller_number, into, dict(call.variables),
                                                      requested_by=f"overflow:{entry.queue}", call=call,
                                                      keep_place_since=entry.enqueued_at, priority=entry.priority,
                                                      skills=entry.skills)
            if booking.allowed:
                call.emit(IvrEventType.CALLBACK_REQUESTED, {"number": booking.number, "queue": into, "reason": reason,
                                                            "context": dict(call.variables),
                                                            "callback_id": booking.callback_id})
                await call.play("sound:callcore/callback-confirmed")
            else:
                call.emit(IvrEventType.CALLBACK_REFUSED, {"number": booking.number, "queue": into, "reason": reason,
                                                          "code": booking.code, "detail": booking.reason})
                await call.play(sounds or ["sound:callcore/callback-refused"])
        elif action == "voicemail":
            await call.play(sounds or ["sound:callcore/leave-message"])
            name = f"overflow-{call.call_id}"
            ok, duration = await call.record(name, max_seconds=120)
            call.emit(IvrEventType.RECORDING, {"name": name, "ok": ok, "duration_seconds": duration,
                                               "queue": entry.queue})
            await call.play("sound:callcore/message-saved")
        else:  # message, hangup
            await call.play(sounds or ["sound:callcore/busy-call-later"])
        await call.hangup()
        return f"overflow:{action}"


def caller_attributes(skills: dict[str, int]) -> dict[str, int]:
    """What a caller takes to another queue (overflow, blind transfer): skills that describe the caller — names
    with a namespace, such as ``language:nl`` —, not the call-type skills it needed in the first queue (``internet``):
    the new queue's ``required_skills`` say what its calls need. Otherwise an overflow to a general queue would
    still wait for the one specialist."""
    return {name: level for name, level in skills.items() if ":" in name}


def _hand_to_survey(call: Call, survey: PostCallSurvey) -> str:
    """The agent hung up first: the caller stays for the queue's survey flow, which the IVR runner runs on the
    outcome ``survey:<flow>`` (other callers of ``_serve_loop`` ignore it, so only IVR callers are surveyed).
    The queue and agent become call variables, so the survey's answer is tied to them."""
    variables = {SURVEY_QUEUE_VARIABLE: survey.queue, SURVEY_AGENT_VARIABLE: survey.agent or ""}
    call.variables.update(variables)
    call.emit(IvrEventType.VARIABLES, variables)
    call.emit(IvrEventType.SURVEY_STARTED, {"flow": survey.flow, "queue": survey.queue, "agent": survey.agent})
    return f"{SURVEY_OUTCOME_PREFIX}{survey.flow}"


def _wake(entry: QueuedCaller) -> None:
    if entry.wakeup is not None and not entry.wakeup.done():
        entry.wakeup.set_result(None)


def _uuid(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None
