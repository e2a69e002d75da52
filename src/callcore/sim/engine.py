"""A discrete-event call-center simulator that drives a pluggable router.

Pure and deterministic: no I/O, no wall clock; simulated time starts at 0 (seconds). ``simulate(scenario,
router, seed)`` always returns the same result for the same inputs.

How a run goes
    * All calls are drawn first, per call type from its own seeded stream: arrival time (Poisson, piecewise-
      constant rate), patience, handle time, wrap-up. So the *same calls* arrive whatever the router does:
      policies are compared on identical traffic (common random numbers).
    * Events: arrival, abandon (arrival + patience, if still waiting or ringing), answer (after the ring
      delay), end of talk, end of wrap-up. All events at the same instant are applied, then — if someone is
      waiting and some agent is ready — the router is asked once, with the waiting callers (arrival order)
      and the ready agents, and every offer it returns starts at once (``ring_delay`` 0) or rings first.
    * Each offer is checked: caller waiting, agent ready, neither used twice, agent has the skills
      (:class:`RouterError` otherwise). The engine also asserts its own invariants (an agent is never given
      a second call, a caller is never answered twice).
    * Arrivals stop at ``horizon_seconds``; the run goes on until every call is answered and finished or has
      abandoned (callers nobody can serve and who never abandon are counted as ``unresolved``).

Figures (per call type and overall, :class:`TypeStats`): offered, answered, abandoned, service level
``answered within T / (answered + abandoned after T)`` and the variant ``answered within T / offered``,
ASA (mean wait of answered calls), average wait of all calls, abandon rate, max queue length; occupancy per
agent group (talk + wrap-up time / logged-in time, over ``[warmup, horizon)``).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields

from callcore.sim.model import AgentView, CallerView, Router, Scenario, has_skills

__all__ = ["RouterError", "SimResult", "TypeStats", "combine", "generate_calls", "simulate"]

_ARRIVE, _ABANDON, _ANSWER, _END, _READY, _WAKE = 0, 1, 2, 3, 4, 5


class RouterError(RuntimeError):
    """The router returned an offer the simulator cannot carry out."""


@dataclass(frozen=True, slots=True)
class TypeStats:
    """Raw counts and sums for a call type (or overall); the rates are properties, so stats add up exactly."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    unresolved: int = 0
    answered_within_target: int = 0
    abandoned_within_target: int = 0
    delayed: int = 0
    """Calls that did not reach an agent the moment they arrived (waited > 0)."""
    wait_sum_answered: float = 0.0
    wait_sum_all: float = 0.0
    max_queue_length: int = 0

    @property
    def service_level(self) -> float:
        """Answered within T / (answered + abandoned after T + unresolved): short abandons left out."""
        den = self.offered - self.abandoned_within_target
        return self.answered_within_target / den if den else math.nan

    @property
    def service_level_all_abandons(self) -> float:
        """Answered within T / offered: every abandon counts against it."""
        return self.answered_within_target / self.offered if self.offered else math.nan

    @property
    def p_wait(self) -> float:
        """Fraction of the calls that had to wait (the simulated counterpart of Erlang C)."""
        return self.delayed / self.offered if self.offered else math.nan

    @property
    def asa(self) -> float:
        """Average speed of answer: mean wait of the answered calls (seconds)."""
        return self.wait_sum_answered / self.answered if self.answered else math.nan

    @property
    def avg_wait(self) -> float:
        """Mean time in queue of all calls, abandoned ones included (seconds)."""
        return self.wait_sum_all / self.offered if self.offered else math.nan

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.offered if self.offered else math.nan

    def __add__(self, other: TypeStats) -> TypeStats:
        vals = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        vals["max_queue_length"] = max(self.max_queue_length, other.max_queue_length)
        return TypeStats(**vals)


@dataclass(frozen=True, slots=True)
class SimResult:
    seeds: tuple[int, ...]
    target_seconds: float
    per_type: Mapping[str, TypeStats]
    overall: TypeStats
    occupancy: Mapping[str, float]
    """Per agent group: (talk + wrap-up) time / (agents × measured window)."""
    busy_seconds: Mapping[str, float]
    window_seconds: Mapping[str, float]
    """Per agent group: agents × measured window (the occupancy denominator)."""
    max_queue_length: int
    """Most callers waiting at once, all queues together."""
    events: int
    router_calls: int
    offers: int


def combine(results: Iterable[SimResult]) -> SimResult:
    """Pool runs (e.g. several seeds): counts and times add up, maxima take the maximum."""
    rs = list(results)
    if not rs:
        raise ValueError("nothing to combine")
    per_type: dict[str, TypeStats] = {}
    busy: dict[str, float] = {}
    window: dict[str, float] = {}
    for r in rs:
        for name, st in r.per_type.items():
            per_type[name] = per_type.get(name, TypeStats()) + st
        for g, b in r.busy_seconds.items():
            busy[g] = busy.get(g, 0.0) + b
            window[g] = window.get(g, 0.0) + r.window_seconds[g]
    overall = TypeStats()
    for r in rs:
        overall = overall + r.overall
    return SimResult(
        seeds=tuple(s for r in rs for s in r.seeds),
        target_seconds=rs[0].target_seconds,
        per_type=per_type,
        overall=overall,
        occupancy={g: (busy[g] / window[g] if window[g] else 0.0) for g in busy},
        busy_seconds=busy,
        window_seconds=window,
        max_queue_length=max(r.max_queue_length for r in rs),
        events=sum(r.events for r in rs),
        router_calls=sum(r.router_calls for r in rs),
        offers=sum(r.offers for r in rs),
    )


# ------------------------------------------------------------------------------------------------------ state


class _Call:
    __slots__ = ("id", "ct", "arrive", "patience", "handle", "wrap", "state", "answered_at", "agent", "view",
                 "counted")

    def __init__(self, cid: str, ct: int, arrive: float, patience: float, handle: float, wrap: float) -> None:
        self.id = cid
        self.ct = ct
        self.arrive = arrive
        self.patience = patience
        self.handle = handle
        self.wrap = wrap
        self.state = "new"  # new → waiting → (ringing →) talking → done | abandoned
        self.answered_at = math.nan
        self.agent: _Agent | None = None
        self.view: CallerView | None = None
        self.counted = False


class _Agent:
    __slots__ = ("id", "group", "skills", "queues", "state", "idle_since", "call", "busy_from", "view")

    def __init__(self, aid: str, group: int, skills: Mapping[str, int], queues: frozenset[str]) -> None:
        self.id = aid
        self.group = group
        self.skills = skills
        self.queues = queues
        self.state = "ready"  # ready → (reserved →) on_call → (wrap_up →) ready (callcore.acd.AGENT_STATES)
        self.idle_since = 0.0
        self.call: _Call | None = None
        self.busy_from = math.nan
        self.view: AgentView | None = None


@dataclass(frozen=True, slots=True)
class GeneratedCall:
    arrive: float
    call_type: int
    patience: float
    handle: float
    wrap: float


def generate_calls(scenario: Scenario, seed: int) -> list[GeneratedCall]:
    """All calls of a run, sorted by arrival; each call type draws from its own stream seeded by
    ``(seed, name)``, so adding a call type or changing the router never changes another type's calls."""
    out: list[GeneratedCall] = []
    horizon = scenario.horizon_seconds
    for idx, ct in enumerate(scenario.call_types):
        rng = random.Random(f"callcore.sim:{seed}:{ct.name}")
        steps = ct.schedule()
        for i, (start, rate) in enumerate(steps):
            end = min(steps[i + 1][0] if i + 1 < len(steps) else horizon, horizon)
            if rate <= 0 or end <= start:
                continue
            t = start
            while True:
                t += rng.expovariate(rate)
                if t >= end:
                    break
                patience = ct.patience.sample(rng) if ct.patience is not None else math.inf
                handle = ct.handle_time.sample(rng)
                wrap = ct.wrap_up.sample(rng) if ct.wrap_up is not None else 0.0
                out.append(GeneratedCall(t, idx, patience, handle, wrap))
    out.sort(key=lambda c: (c.arrive, c.call_type))
    return out


def _overlap(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def simulate(
    scenario: Scenario,
    router: Router,
    seed: int = 0,
    *,
    check_skills: bool = True,
    wakeup: Callable[[float, list[CallerView]], float | None] | None = None,
) -> SimResult:
    """Run one replication of ``scenario`` under ``router`` with ``seed`` (see the module docstring).

    ``wakeup(now, waiting_callers)`` → the next time the router's answer may change although nothing happened
    (e.g. a relaxation step falling due), or None; the router is asked again then. Default: the router's own
    ``next_wakeup`` attribute, if it has one. ``check_skills`` False lets a router offer agents below the
    callers' nominal requirements (a router with relaxation does).
    """
    if wakeup is None:
        wakeup = getattr(router, "next_wakeup", None)
    wake_at = math.inf
    cts = scenario.call_types
    target = scenario.target_seconds
    warm, horizon = scenario.warmup_seconds, scenario.horizon_seconds
    ring = scenario.ring_delay

    agents: dict[str, _Agent] = {}
    for gi, g in enumerate(scenario.agent_groups):
        queues = scenario.queues_of(g)
        skills = dict(g.skills)
        width = max(2, len(str(g.count)))
        for k in range(g.count):
            a = _Agent(f"{g.name}-{k + 1:0{width}d}", gi, skills, queues)
            a.view = AgentView(a.id, skills, queues, "ready", 0.0)
            agents[a.id] = a
    busy_by_group = [0.0] * len(scenario.agent_groups)

    heap: list[tuple[float, int, int, object]] = []
    seq = 0
    calls = generate_calls(scenario, seed)
    width = max(6, len(str(len(calls))))
    for n, gc in enumerate(calls):
        c = _Call(f"c{n + 1:0{width}d}", gc.call_type, gc.arrive, gc.patience, gc.handle, gc.wrap)
        heap.append((gc.arrive, seq, _ARRIVE, c))
        seq += 1
    heapq.heapify(heap)

    waiting: dict[str, _Call] = {}  # insertion order = arrival order
    ready: dict[str, _Agent] = dict(agents)
    queue_len: dict[str, int] = {}
    tallies = [dict(offered=0, answered=0, abandoned=0, unresolved=0, answered_within_target=0,
                    abandoned_within_target=0, delayed=0, wait_sum_answered=0.0, wait_sum_all=0.0, max_queue_length=0)
               for _ in cts]
    qmax: dict[str, int] = {}
    max_total = 0
    events = router_calls = offers_made = 0
    now = 0.0

    def count(c: _Call, outcome: str, wait: float) -> None:
        assert not c.counted, f"call {c.id} resolved twice"
        c.counted = True
        if c.arrive < warm:
            return
        t = tallies[c.ct]
        t["offered"] += 1
        t["wait_sum_all"] += wait
        if wait > 0:
            t["delayed"] += 1
        if outcome == "answered":
            t["answered"] += 1
            t["wait_sum_answered"] += wait
            if wait <= target:
                t["answered_within_target"] += 1
        elif outcome == "abandoned":
            t["abandoned"] += 1
            if wait <= target:
                t["abandoned_within_target"] += 1
        else:
            t["unresolved"] += 1

    def leave_queue(c: _Call) -> None:
        del waiting[c.id]
        queue_len[cts[c.ct].queue_name] -= 1

    def make_ready(a: _Agent, now: float) -> None:
        assert a.call is None and a.id not in ready
        a.state = "ready"
        a.idle_since = now
        a.view = AgentView(a.id, a.skills, a.queues, "ready", now)
        ready[a.id] = a

    def add_busy(a: _Agent, start: float, end: float) -> None:
        busy_by_group[a.group] += _overlap(start, end, warm, horizon)

    def start_talk(c: _Call, a: _Agent, now: float) -> None:
        nonlocal seq
        c.state = "talking"
        c.answered_at = now
        a.state = "on_call"
        a.busy_from = now
        count(c, "answered", now - c.arrive)
        heapq.heappush(heap, (now + c.handle, seq, _END, c))
        seq += 1

    while heap:
        now = heap[0][0]
        while heap and heap[0][0] == now:
            _, _, kind, obj = heapq.heappop(heap)
            events += 1
            if kind == _ARRIVE:
                c = obj  # type: ignore[assignment]
                ct = cts[c.ct]
                c.state = "waiting"
                c.view = CallerView(c.id, ct.queue_name, ct.priority, now, ct.skills)
                waiting[c.id] = c
                q = ct.queue_name
                queue_len[q] = queue_len.get(q, 0) + 1
                if now >= warm:
                    qmax[q] = max(qmax.get(q, 0), queue_len[q])
                    max_total = max(max_total, len(waiting))
                if math.isfinite(c.patience):
                    heapq.heappush(heap, (now + c.patience, seq, _ABANDON, c))
                    seq += 1
            elif kind == _ABANDON:
                c = obj  # type: ignore[assignment]
                if c.state == "waiting":
                    leave_queue(c)
                elif c.state == "ringing":
                    a = c.agent
                    assert a is not None and a.call is c and a.state == "reserved"
                    a.call = None
                    c.agent = None
                    # the agent never took a call: back to ready, still idle since the same moment
                    a.state = "ready"
                    a.view = AgentView(a.id, a.skills, a.queues, "ready", a.idle_since)
                    ready[a.id] = a
                else:
                    continue  # answered already: the patience timer is moot
                c.state = "abandoned"
                count(c, "abandoned", now - c.arrive)
            elif kind == _ANSWER:
                c = obj  # type: ignore[assignment]
                if c.state != "ringing":
                    continue  # abandoned while ringing
                a = c.agent
                assert a is not None and a.call is c and a.state == "reserved"
                start_talk(c, a, now)
            elif kind == _END:
                c = obj  # type: ignore[assignment]
                a = c.agent
                assert c.state == "talking" and a is not None and a.call is c and a.state == "on_call"
                c.state = "done"
                if c.wrap > 0:
                    a.state = "wrap_up"
                    heapq.heappush(heap, (now + c.wrap, seq, _READY, a))
                    seq += 1
                else:
                    add_busy(a, a.busy_from, now)
                    a.call = None
                    make_ready(a, now)
            elif kind == _READY:  # end of wrap-up
                a = obj  # type: ignore[assignment]
                assert a.state == "wrap_up" and a.call is not None
                add_busy(a, a.busy_from, now)
                a.call = None
                make_ready(a, now)
            else:  # _WAKE: only asks the router again
                if obj == now:
                    wake_at = math.inf

        if not waiting or not ready:
            continue
        router_calls += 1
        offers = router(now, [c.view for c in waiting.values()], [a.view for a in ready.values()])  # type: ignore[misc]
        used_agents: set[str] = set()
        for caller_id, agent_id in offers:
            c = waiting.get(caller_id)
            a = ready.get(agent_id)
            if c is None:
                raise RouterError(f"t={now:.3f}: offer for caller {caller_id!r}, who is not waiting")
            if a is None:
                why = "offered twice" if agent_id in used_agents else "not ready"
                raise RouterError(f"t={now:.3f}: offer to agent {agent_id!r}, who is {why}")
            if check_skills and not has_skills(a.skills, cts[c.ct].skills):
                raise RouterError(f"t={now:.3f}: agent {agent_id!r} lacks the skills {dict(cts[c.ct].skills)} "
                                  f"for caller {caller_id!r}")
            assert a.state == "ready" and a.call is None and c.state == "waiting" and c.agent is None
            used_agents.add(agent_id)
            leave_queue(c)
            del ready[agent_id]
            a.call = c
            c.agent = a
            offers_made += 1
            if ring > 0:
                c.state = "ringing"
                a.state = "reserved"
                heapq.heappush(heap, (now + ring, seq, _ANSWER, c))
                seq += 1
            else:
                start_talk(c, a, now)
        if wakeup is not None and waiting:
            at = wakeup(now, [c.view for c in waiting.values()])  # type: ignore[misc]
            if at is not None and now < at < wake_at:
                wake_at = at
                heapq.heappush(heap, (at, seq, _WAKE, at))
                seq += 1

    end_time = now if events else 0.0
    for c in waiting.values():  # nobody could serve them and they never give up
        count(c, "unresolved", end_time - c.arrive)

    per_type: dict[str, TypeStats] = {}
    for ct, t in zip(cts, tallies):
        t["max_queue_length"] = qmax.get(ct.queue_name, 0)
        per_type[ct.name] = TypeStats(**t)  # type: ignore[arg-type]
    overall = TypeStats()
    for st in per_type.values():
        overall = overall + st
    overall = TypeStats(**{**{f.name: getattr(overall, f.name) for f in fields(overall)},
                           "max_queue_length": max_total})
    measured = horizon - warm
    busy = {g.name: busy_by_group[i] for i, g in enumerate(scenario.agent_groups)}
    window = {g.name: g.count * measured for g in scenario.agent_groups}
    return SimResult(
        seeds=(seed,),
        target_seconds=target,
        per_type=per_type,
        overall=overall,
        occupancy={g: (busy[g] / window[g] if window[g] else 0.0) for g in busy},
        busy_seconds=busy,
        window_seconds=window,
        max_queue_length=max_total,
        events=events,
        router_calls=router_calls,
        offers=offers_made,
    )
