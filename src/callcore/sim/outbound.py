"""A discrete-event simulator of an outbound campaign that drives a dial policy — callcore's real pacer or a baseline.

Pure and deterministic (no I/O, no clock; time in seconds from 0): ``simulate_outbound(scenario, policy, seed)``
always gives the same :class:`OutboundResult`.

How a run goes
    * Every ``tick`` seconds the simulator builds the same :class:`~callcore.dialer.pacing.PacingSnapshot` the live
      dialer would (agents ready / talking / in wrap-up with elapsed times, calls ringing with elapsed times, live
      answers waiting, inbound demand, leads left, the :class:`~callcore.dialer.compliance.AbandonLedger`'s budget,
      ``may_dial``) and launches the number of calls the policy returns.
    * **Common random numbers**: the k-th attempt of a run has the same outcome draws whatever the policy (a
      uniform compared with the answer rate at dial time, a time to a live answer, another outcome and its time,
      an AMD draw), and the j-th connected call the same talk and wrap-up times. Policies are compared on the same
      lists and the same conversations.
    * A live answer takes a ready agent at once, or waits at most ``connect_limit`` seconds for one (an agent
      finishing wrap-up takes inbound callers first, then the oldest waiting answer); otherwise it is abandoned.
      AMD false positives (live people hung up on as machines) are abandons when the policy counts them.
    * Agents log in at 0 and stay for ``hours``; ``logouts`` make a share of them leave at a given time (a busy
      agent leaves when the call and wrap-up are done). Dialling stops at the horizon; calls still out finish.

Metrics (:class:`OutboundResult`): utilization = talk time / logged-in time, occupancy = (talk + wrap-up) /
logged-in time, abandonment overall and per clock hour and per 15 minutes (abandons / live answers, by the time the
call was answered), connects per agent-hour.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from callcore.dialer.compliance import PRESETS, AbandonLedger, AbandonPolicy
from callcore.dialer.estimators import CampaignModel, ModelPriors, TrafficModel
from callcore.dialer.pacing import Pacer, PacerConfig, PacingSnapshot
from callcore.sim.model import Constant, Distribution, LogNormal

__all__ = ["CallcorePacer", "DialPolicy", "OutboundResult", "OutboundScenario", "simulate_outbound"]

HOUR = 3600.0
QUARTER = 900.0
DEFAULT_OTHER: tuple[tuple[float, Distribution], ...] = (
    (0.60, Constant(30.0)),      # no answer: the dialler gives up after 30 s of ringing
    (0.15, LogNormal(4.0, 0.5)),  # busy, unobtainable, network failure
    (0.25, LogNormal(12.0, 0.4)),  # answering machine, detected by AMD and hung up
)


@dataclass(frozen=True, slots=True)
class OutboundScenario:
    """``answer_rate``: P(a live person answers) — constant, or ``((from_second, rate), ...)``. ``logouts``:
    ``((at_second, share_of_agents), ...)``. ``closed``: ``((start, end), ...)`` intervals where dialling is not
    allowed (paused, outside the calling window). ``leads`` None: the list never runs out."""

    agents: int = 20
    hours: float = 8.0
    answer_rate: float | tuple[tuple[float, float], ...] = 0.3
    talk: Distribution = LogNormal(180.0, 1.0)
    wrap: Distribution = Constant(30.0)
    live_ring: Distribution = LogNormal(8.0, 0.5)
    other_outcomes: tuple[tuple[float, Distribution], ...] = DEFAULT_OTHER
    connect_limit: float = 2.0
    logouts: tuple[tuple[float, float], ...] = ()
    inbound_per_hour: float = 0.0
    leads: int | None = None
    closed: tuple[tuple[float, float], ...] = ()
    amd_false_positive: float = 0.0
    tick: float = 1.0
    policy: AbandonPolicy = PRESETS["us_ftc"]
    control_windows: tuple[float, ...] = (HOUR,)

    @property
    def horizon(self) -> float:
        return self.hours * HOUR

    def answer_rate_at(self, t: float) -> float:
        if isinstance(self.answer_rate, (int, float)):
            return float(self.answer_rate)
        rate = 0.0
        for start, r in sorted(self.answer_rate):
            if t >= start:
                rate = r
        return rate


class DialPolicy(Protocol):
    """``launches(now, snapshot)`` → calls to launch now; ``observe(now, kind, value)`` sees every outcome:
    ``live`` / ``other`` (seconds from dial), ``connected`` (wait), ``abandoned``, ``talk``, ``wrap`` (seconds),
    ``dialed`` (count)."""

    name: str

    def launches(self, now: float, snap: PacingSnapshot) -> int: ...

    def observe(self, now: float, kind: str, value: float) -> None: ...


class CallcorePacer:
    """callcore's pacer (:class:`~callcore.dialer.pacing.Pacer`) with its online :class:`CampaignModel`, refreshed
    every ``refresh`` seconds — as the live dialer service runs it."""

    def __init__(self, config: PacerConfig = PacerConfig(), priors: ModelPriors = ModelPriors(), *,
                 refresh: float = 30.0, name: str = "callcore") -> None:
        self.name = name
        self.pacer = Pacer(config)
        self.model = CampaignModel(priors)
        self.refresh = refresh
        self._view: TrafficModel | None = None
        self._at = -math.inf
        self.reasons: Counter[str] = Counter()

    def launches(self, now: float, snap: PacingSnapshot) -> int:
        if self._view is None or now - self._at >= self.refresh:
            self._view = self.model.snapshot()
            self._at = now
        d = self.pacer.decide(now, snap, self._view)
        self.reasons[d.reason] += 1
        return d.launch

    def observe(self, now: float, kind: str, value: float) -> None:
        if kind == "live":
            self.model.observe_attempt(True, value)
        elif kind == "other":
            self.model.observe_attempt(False, value)
        elif kind == "talk":
            self.model.observe_talk(value)
        elif kind == "wrap":
            self.model.observe_wrap(value)


@dataclass(slots=True)
class OutboundResult:
    policy: str
    seed: int
    hours: float
    logged_in_seconds: float = 0.0
    talk_seconds: float = 0.0
    busy_seconds: float = 0.0
    attempts: int = 0
    live: int = 0
    connected: int = 0
    abandoned: int = 0
    amd_false_positives: int = 0
    inbound_handled: int = 0
    counted_live: float = 0.0
    counted_abandons: float = 0.0
    hourly: list[list[float]] = field(default_factory=list)  # [live, abandons] per clock hour (policy-counted)
    quarterly: list[list[float]] = field(default_factory=list)  # the same per 15 minutes
    max_in_flight: int = 0
    max_lines_per_agent: float = 0.0
    min_headroom_after_first_hour: float = math.inf
    dialed_while_closed: int = 0

    @property
    def utilization(self) -> float:
        return self.talk_seconds / self.logged_in_seconds if self.logged_in_seconds else 0.0

    @property
    def occupancy(self) -> float:
        return self.busy_seconds / self.logged_in_seconds if self.logged_in_seconds else 0.0

    @property
    def abandon_rate(self) -> float:
        return self.counted_abandons / self.counted_live if self.counted_live else 0.0

    @property
    def connects_per_agent_hour(self) -> float:
        return self.connected / (self.logged_in_seconds / HOUR) if self.logged_in_seconds else 0.0

    @staticmethod
    def _worst(windows: Sequence[Sequence[float]], skip: int) -> float:
        rates = [ab / lv for lv, ab in windows[skip:] if lv > 0]
        return max(rates, default=0.0)

    @property
    def worst_hour_rate(self) -> float:
        """Worst complete clock hour after the first."""
        return self._worst(self.hourly[:int(self.hours + 1e-9)], 1)

    @property
    def worst_quarter_rate(self) -> float:
        """Worst complete 15-minute window after the first hour."""
        return self._worst(self.quarterly[:int(self.hours * 4 + 1e-9)], 4)


_TICK, _RESOLVE, _DEADLINE, _TALK_END, _WRAP_END, _INBOUND, _LOGOUT = range(7)


class _Agent:
    __slots__ = ("idx", "state", "since", "leaving", "gone_at", "wrap")

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.state = "ready"  # ready | talking | wrapping | gone
        self.since = 0.0
        self.leaving = False
        self.gone_at = math.inf
        self.wrap = 0.0


def _pick(rng: random.Random, outcomes: Sequence[tuple[float, Distribution]]) -> float:
    total = sum(w for w, _ in outcomes)
    u = rng.random() * total
    for w, dist in outcomes:
        u -= w
        if u <= 0:
            return dist.sample(rng)
    return outcomes[-1][1].sample(rng)


def simulate_outbound(sc: OutboundScenario, policy: DialPolicy, seed: int = 0) -> OutboundResult:
    """One replication of ``sc`` under ``policy`` (see the module docstring)."""
    horizon = sc.horizon
    res = OutboundResult(policy.name, seed, sc.hours)
    n_hours = max(1, math.ceil(sc.hours))
    res.hourly = [[0.0, 0.0] for _ in range(n_hours)]
    res.quarterly = [[0.0, 0.0] for _ in range(n_hours * 4)]
    ledger = AbandonLedger(sc.policy, sc.control_windows)
    streams = {k: random.Random(f"callcore.sim.outbound:{seed}:{k}")
               for k in ("live", "ring", "other", "amd", "talk", "wrap", "in", "in_talk", "in_wrap")}
    agents = [_Agent(i) for i in range(sc.agents)]
    ready: dict[int, _Agent] = {a.idx: a for a in agents}
    in_flight: dict[int, float] = {}  # attempt id -> dial time
    waiting: deque[tuple[int, float]] = deque()  # live answers waiting for an agent: (attempt id, answered at)
    inbound_q: deque[float] = deque()
    heap: list[tuple[float, int, int, object]] = []
    seq = 0
    leads = sc.leads

    def push(t: float, kind: int, obj: object) -> None:
        nonlocal seq
        heapq.heappush(heap, (t, seq, kind, obj))
        seq += 1

    def window(t: float, live: float, abandons: float) -> None:
        h = min(int(t // HOUR), n_hours - 1)
        q = min(int(t // QUARTER), n_hours * 4 - 1)
        res.hourly[h][0] += live
        res.hourly[h][1] += abandons
        res.quarterly[q][0] += live
        res.quarterly[q][1] += abandons
        res.counted_live += live
        res.counted_abandons += abandons
        if abandons and t >= HOUR:
            res.min_headroom_after_first_hour = min(res.min_headroom_after_first_hour,
                                                    sc.policy.limit * res.counted_live - res.counted_abandons)

    def busy(start: float, end: float) -> float:
        return max(0.0, min(end, horizon) - max(start, 0.0))

    def start_talk(a: _Agent, now: float, inbound: bool) -> None:
        # talk and wrap-up are drawn in connect order: the j-th conversation is the same whatever the policy
        a.state, a.since = "talking", now
        if inbound:
            talk, a.wrap = sc.talk.sample(streams["in_talk"]), sc.wrap.sample(streams["in_wrap"])
            res.inbound_handled += 1
        else:
            talk, a.wrap = sc.talk.sample(streams["talk"]), sc.wrap.sample(streams["wrap"])
        push(now + talk, _TALK_END, a)

    def agent_free(a: _Agent, now: float) -> None:
        if a.leaving:
            a.state, a.gone_at = "gone", now
            return
        if inbound_q:
            inbound_q.popleft()
            start_talk(a, now, True)
        elif waiting:
            _, answered_at = waiting.popleft()
            connect(a, now, answered_at)
        else:
            a.state, a.since = "ready", now
            ready[a.idx] = a

    def connect(a: _Agent, now: float, answered_at: float) -> None:
        res.connected += 1
        ledger.record_live(now, abandoned=False)
        window(answered_at, 1.0, 0.0)
        policy.observe(now, "connected", now - answered_at)
        start_talk(a, now, False)

    push(0.0, _TICK, None)
    for at, share in sc.logouts:
        push(at, _LOGOUT, share)
    if sc.inbound_per_hour > 0:
        t, rate = 0.0, sc.inbound_per_hour / HOUR
        while True:
            t += streams["in"].expovariate(rate)
            if t >= horizon:
                break
            push(t, _INBOUND, None)

    while heap:
        now, _, kind, obj = heapq.heappop(heap)
        if kind == _TICK:
            closed = now >= horizon or any(s <= now < e for s, e in sc.closed) or leads == 0
            staying = [a for a in agents if a.state != "gone" and not a.leaving]
            snap = PacingSnapshot(
                may_dial=not closed,
                agents_logged_in=len(staying),
                agents_ready=len(ready),
                talking=tuple(now - a.since for a in staying if a.state == "talking"),
                wrapping=tuple(now - a.since for a in staying if a.state == "wrapping"),
                ringing=tuple(now - t0 for t0 in in_flight.values()),
                answered_waiting=len(waiting),
                inbound_waiting=len(inbound_q),
                inbound_rate=sc.inbound_per_hour / HOUR,
                leads_left=leads,
                budget=ledger.budget(now),
            )
            n = policy.launches(now, snap)
            if not isinstance(n, int) or n < 0:
                raise ValueError(f"policy {policy.name} returned {n!r} launches")
            if n and (closed or not staying):
                res.dialed_while_closed += n
            if leads is not None:
                n = min(n, leads)
                leads -= n
            for _ in range(n):
                k = res.attempts
                res.attempts += 1
                u = streams["live"].random()
                ring = sc.live_ring.sample(streams["ring"])
                other = _pick(streams["other"], sc.other_outcomes)
                fp = streams["amd"].random() < sc.amd_false_positive
                live = u < sc.answer_rate_at(now)
                in_flight[k] = now
                push(now + (ring if live else other), _RESOLVE, (k, live, fp))
            if n:
                policy.observe(now, "dialed", float(n))
            able = len(ready) + sum(1 for a in staying if a.state in ("talking", "wrapping"))
            res.max_in_flight = max(res.max_in_flight, len(in_flight))
            if able:
                res.max_lines_per_agent = max(res.max_lines_per_agent, len(in_flight) / able)
            if now < horizon:
                push(min(now + sc.tick, horizon), _TICK, None)
        elif kind == _RESOLVE:
            k, live, fp = obj  # type: ignore[misc]
            dialed = in_flight.pop(k)
            if not live:
                policy.observe(now, "other", now - dialed)
                continue
            res.live += 1
            if fp:  # AMD said "machine": hung up on a live person
                res.amd_false_positives += 1
                policy.observe(now, "other", now - dialed)
                ledger.record_amd_false_positive(now)
                if sc.policy.count_amd_false_positives:
                    window(now, 1.0, 1.0)
                continue
            policy.observe(now, "live", now - dialed)
            if ready:
                a = ready.pop(next(iter(ready)))
                connect(a, now, now)
            else:
                waiting.append((k, now))
                push(now + sc.connect_limit, _DEADLINE, k)
        elif kind == _DEADLINE:
            if waiting and any(k == obj for k, _ in waiting):
                answered_at = next(t for k, t in waiting if k == obj)
                waiting.remove((obj, answered_at))  # type: ignore[arg-type]
                res.abandoned += 1
                ledger.record_live(now, abandoned=True)
                window(answered_at, 1.0, 1.0)
                policy.observe(now, "abandoned", 0.0)
        elif kind == _TALK_END:
            a = obj  # type: ignore[assignment]
            res.talk_seconds += busy(a.since, now)
            res.busy_seconds += busy(a.since, now)
            policy.observe(now, "talk", now - a.since)
            if a.wrap > 0:
                a.state, a.since = "wrapping", now
                push(now + a.wrap, _WRAP_END, a)
            else:
                agent_free(a, now)
        elif kind == _WRAP_END:
            a = obj  # type: ignore[assignment]
            res.busy_seconds += busy(a.since, now)
            policy.observe(now, "wrap", now - a.since)
            agent_free(a, now)
        elif kind == _INBOUND:
            if ready:
                start_talk(ready.pop(next(iter(ready))), now, True)
            else:
                inbound_q.append(now)
        elif kind == _LOGOUT:
            staying = [a for a in agents if a.state != "gone" and not a.leaving]
            for a in staying[len(staying) - round(obj * len(staying)):]:  # type: ignore[operator]
                a.leaving = True
                if a.state == "ready":
                    del ready[a.idx]
                    a.state, a.gone_at = "gone", now

    res.logged_in_seconds = sum(min(a.gone_at, horizon) for a in agents)
    return res
