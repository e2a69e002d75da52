"""The KPI formulas: one accumulator per kind of row, counts in, every ratio derived the same way (pure).

Real-time ("today so far") and historical reports both fold :mod:`callcore.kpi.facts` into these accumulators
(:mod:`callcore.kpi.report`), so one definition serves both. docs/kpis.md states each formula; the code says
the same thing in the ``@property`` of each ratio. Ratios whose denominator is 0 are ``None`` (not 0: "no
calls" is not "0 % service level").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from callcore.kpi.facts import AttemptRow, CallFacts, Segment, Span

DEFAULT_SHORT_ABANDON_SECONDS = 5.0
DEFAULT_FCR_DAYS = 7.0
DEFAULT_TARGET_SECONDS = 20.0
DEFAULT_TARGET_PERCENT = 80.0
SATISFIED = (4, 5)  # CSAT answers counted as satisfied ("top two boxes")
BUSY_STATES = ("on_call", "wrap_up")
STAFFED_STATES = ("ready", "reserved", "on_call", "wrap_up")  # logged in and not paused


@dataclass(frozen=True)
class KpiSettings:
    """The parameters of the definitions (docs/kpis.md), and what the config says about queues and campaigns."""

    short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS
    fcr_days: float = DEFAULT_FCR_DAYS
    timezone: str = "UTC"
    default_target_seconds: float = DEFAULT_TARGET_SECONDS
    default_target_percent: float = DEFAULT_TARGET_PERCENT
    targets: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # queue -> (percent, seconds)
    queue_agents: Mapping[str, frozenset[str]] = field(default_factory=dict)  # queue -> its member agents
    campaign_success: Mapping[str, frozenset[str]] = field(default_factory=dict)  # campaign -> success dispositions
    campaign_agents: Mapping[str, frozenset[str]] = field(default_factory=dict)  # campaign -> eligible agents
    queues: tuple[str, ...] = ()  # configured queues: a row for every interval even without calls
    agents: tuple[str, ...] = ()
    campaigns: tuple[str, ...] = ()

    def target_seconds(self, queue: str) -> float:
        return self.targets[queue][1] if queue in self.targets else self.default_target_seconds

    def target_percent(self, queue: str) -> float:
        return self.targets[queue][0] if queue in self.targets else self.default_target_percent

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> KpiSettings:
        """From a ``CallcoreConfig`` (queues' service-level targets and members, campaigns' success dispositions
        and agents). ``overrides``: any field (short_abandon_seconds, fcr_days, timezone...)."""
        queues = dict(getattr(config, "queues", {}) or {})
        agents = dict(getattr(config, "agents", {}) or {})
        campaigns = dict(getattr(config, "campaigns", {}) or {})
        members: dict[str, set[str]] = {q: set() for q in queues}
        for agent_id, agent in agents.items():
            for q in agent.queues:
                members.setdefault(q, set()).add(agent_id)
        success = {name: frozenset(d for d, disp in c.dispositions.items() if disp.is_success)
                   for name, c in campaigns.items()}
        campaign_agents = {name: frozenset(set(c.agents) | (members.get(c.queue, set()) if c.queue else set()))
                           for name, c in campaigns.items()}
        values: dict[str, Any] = {
            "targets": {q: (cfg.service_level.percent, cfg.service_level.seconds) for q, cfg in queues.items()},
            "queue_agents": {q: frozenset(a) for q, a in members.items()},
            "campaign_success": success,
            "campaign_agents": campaign_agents,
            "queues": tuple(queues),
            "agents": tuple(agents),
            "campaigns": tuple(campaigns),
        }
        values.update(overrides)
        return cls(**values)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


class _Stats:
    """Counts are dataclass fields; derived values are properties listed in ``DERIVED``."""

    DERIVED: tuple[str, ...] = ()

    def counts(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def derived(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.DERIVED}

    def as_dict(self) -> dict[str, Any]:
        return {**self.counts(), **self.derived()}


# ---- inbound: queues and agents ----------------------------------------------------------------------------


@dataclass
class HandleStats(_Stats):
    """What answered segments add: handle time, transfers, FCR, CSAT (shared by queues and agents)."""

    answered: int = 0
    handled: int = 0  # answered and completely handled (talk and wrap-up over): the AHT population
    talk_seconds: float = 0.0  # totals over the handled segments
    hold_seconds: float = 0.0
    wrap_up_seconds: float = 0.0
    transferred_out: int = 0
    fcr_eligible: int = 0
    fcr_resolved: int = 0
    csat_responses: int = 0
    csat_total: int = 0
    csat_satisfied: int = 0

    def add_handle(self, seg: Segment) -> None:
        self.answered += 1
        if seg.transferred:
            self.transferred_out += 1
        if seg.handled:
            self.handled += 1
            self.talk_seconds += seg.talk_seconds
            self.hold_seconds += seg.hold_seconds
            self.wrap_up_seconds += seg.wrap_seconds

    def add_fcr(self, call: CallFacts) -> None:
        if call.repeat is not None:
            self.fcr_eligible += 1
            self.fcr_resolved += 0 if call.repeat else 1

    def add_csat(self, score: int) -> None:
        self.csat_responses += 1
        self.csat_total += score
        self.csat_satisfied += 1 if score in SATISFIED else 0

    @property
    def aht_seconds(self) -> float | None:
        """(talk + hold + wrap-up) / handled."""
        return _ratio(self.talk_seconds + self.hold_seconds + self.wrap_up_seconds, self.handled)

    @property
    def avg_talk_seconds(self) -> float | None:
        return _ratio(self.talk_seconds, self.handled)

    @property
    def avg_hold_seconds(self) -> float | None:
        return _ratio(self.hold_seconds, self.handled)

    @property
    def avg_wrap_up_seconds(self) -> float | None:
        return _ratio(self.wrap_up_seconds, self.handled)

    @property
    def transfer_rate(self) -> float | None:
        """transferred_out / answered."""
        return _ratio(self.transferred_out, self.answered)

    @property
    def fcr_rate(self) -> float | None:
        """Answered calls with no repeat call from the same number within N days / answered calls whose caller
        number is known."""
        return _ratio(self.fcr_resolved, self.fcr_eligible)

    @property
    def csat_average(self) -> float | None:
        return _ratio(self.csat_total, self.csat_responses)

    @property
    def csat_satisfied_rate(self) -> float | None:
        """Answers of 4 or 5 / answers."""
        return _ratio(self.csat_satisfied, self.csat_responses)

    HANDLE_DERIVED = ("aht_seconds", "avg_talk_seconds", "avg_hold_seconds", "avg_wrap_up_seconds", "transfer_rate",
                      "fcr_rate", "csat_average", "csat_satisfied_rate")


@dataclass
class AgentTime(_Stats):
    """Seconds in each agent state (logged_out is not counted)."""

    ready_seconds: float = 0.0
    reserved_seconds: float = 0.0
    on_call_seconds: float = 0.0
    wrap_up_state_seconds: float = 0.0
    paused_seconds: float = 0.0

    def add_span(self, state: str, seconds: float) -> None:
        if state == "ready":
            self.ready_seconds += seconds
        elif state == "reserved":
            self.reserved_seconds += seconds
        elif state == "on_call":
            self.on_call_seconds += seconds
        elif state == "wrap_up":
            self.wrap_up_state_seconds += seconds
        elif state == "paused":
            self.paused_seconds += seconds

    @property
    def logged_in_seconds(self) -> float:
        return (self.ready_seconds + self.reserved_seconds + self.on_call_seconds + self.wrap_up_state_seconds
                + self.paused_seconds)

    @property
    def staffed_seconds(self) -> float:
        """Logged in and not paused: ready + reserved + on_call + wrap_up."""
        return self.logged_in_seconds - self.paused_seconds

    @property
    def occupancy(self) -> float | None:
        """(on_call + wrap_up) / (logged in − paused)."""
        return _ratio(self.on_call_seconds + self.wrap_up_state_seconds, self.staffed_seconds)


@dataclass
class QueueStats(HandleStats):
    target_seconds: float = DEFAULT_TARGET_SECONDS
    short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS
    offered: int = 0
    transferred_in: int = 0
    overflow_in: int = 0
    answered_within_target: int = 0
    abandoned: int = 0  # every abandon, short ones included
    short_abandoned: int = 0
    abandoned_after_target: int = 0  # not short, waited more than the target
    overflowed: int = 0
    virtual_hold: int = 0  # took the callback offer; the callback has not reached an agent (yet)
    virtual_hold_failed: int = 0
    ended: int = 0  # the call ended in the queue without an abandon (e.g. a shutdown)
    waiting: int = 0  # still in the queue at as_of
    answer_wait_seconds: float = 0.0
    max_answer_wait_seconds: float = 0.0
    abandon_wait_seconds: float = 0.0  # over the abandons that are not short
    queue_seconds: float = 0.0  # time in queue of every segment that left it, short abandons excepted
    staffed_seconds: float = 0.0  # of the queue's member agents (occupancy)
    busy_seconds: float = 0.0

    def add_segment(self, seg: Segment) -> None:
        self.offered += 1
        self.transferred_in += seg.entry == "transfer"
        self.overflow_in += seg.entry == "overflow"
        wait = seg.wait_seconds
        if seg.answered:
            self.add_handle(seg)
            assert wait is not None
            self.answered_within_target += wait <= self.target_seconds
            self.answer_wait_seconds += wait
            self.max_answer_wait_seconds = max(self.max_answer_wait_seconds, wait)
            self.queue_seconds += wait
        elif seg.outcome == "abandoned":
            assert wait is not None
            self.abandoned += 1
            if wait < self.short_abandon_seconds:
                self.short_abandoned += 1
            else:
                self.abandon_wait_seconds += wait
                self.queue_seconds += wait
                self.abandoned_after_target += wait > self.target_seconds
        elif seg.outcome == "overflow":
            self.overflowed += 1
            self.queue_seconds += wait or 0.0
        elif seg.outcome == "virtual_hold":
            self.virtual_hold += 1
        elif seg.outcome == "virtual_hold_failed":
            self.virtual_hold_failed += 1
        elif seg.outcome == "ended":
            self.ended += 1
        else:
            self.waiting += 1

    def add_agent_time(self, t: AgentTime) -> None:
        self.staffed_seconds += t.staffed_seconds
        self.busy_seconds += t.on_call_seconds + t.wrap_up_state_seconds

    @property
    def abandoned_counted(self) -> int:
        """Abandons that are not short."""
        return self.abandoned - self.short_abandoned

    @property
    def service_level(self) -> float | None:
        """answered within T / (answered + abandoned after T); short abandons are in neither."""
        return _ratio(self.answered_within_target, self.answered + self.abandoned_after_target)

    @property
    def abandon_rate(self) -> float | None:
        """(abandoned − short abandoned) / (offered − short abandoned)."""
        return _ratio(self.abandoned_counted, self.offered - self.short_abandoned)

    @property
    def asa_seconds(self) -> float | None:
        """Mean wait of the answered segments."""
        return _ratio(self.answer_wait_seconds, self.answered)

    @property
    def avg_abandon_wait_seconds(self) -> float | None:
        return _ratio(self.abandon_wait_seconds, self.abandoned_counted)

    @property
    def occupancy(self) -> float | None:
        """Of the queue's member agents: (on_call + wrap_up) / (logged in − paused)."""
        return _ratio(self.busy_seconds, self.staffed_seconds)

    @property
    def patience_seconds(self) -> float | None:
        """Mean caller patience (exponential, censored by answers): time in queue / abandons (not short).
        None without abandons (patience not observed: Erlang C)."""
        return _ratio(self.queue_seconds, self.abandoned_counted)

    DERIVED = ("abandoned_counted", "service_level", "abandon_rate", "asa_seconds", "avg_abandon_wait_seconds",
               "occupancy", *HandleStats.HANDLE_DERIVED)


@dataclass
class AgentStats(HandleStats, AgentTime):
    no_answers: int = 0  # offers the agent let ring out

    DERIVED = ("logged_in_seconds", "staffed_seconds", "occupancy", *HandleStats.HANDLE_DERIVED)


# ---- IVR ---------------------------------------------------------------------------------------------------


@dataclass
class IvrStats(_Stats):
    calls: int = 0
    contained: int = 0  # ivr_ended outcome hangup: the flow finished the call (no queue, no transfer)
    to_queue: int = 0
    transferred: int = 0
    errors: int = 0
    abandoned: int = 0  # the caller hung up inside the flow
    in_progress: int = 0

    def add_call(self, call: CallFacts) -> None:
        self.calls += 1
        outcome = call.ivr_outcome
        if outcome == "hangup":
            self.contained += 1
        elif outcome == "queue":
            self.to_queue += 1
        elif outcome == "transfer":
            self.transferred += 1
        elif outcome == "abandoned":
            self.abandoned += 1
        elif outcome == "in_progress":
            self.in_progress += 1
        else:
            self.errors += 1

    @property
    def containment_rate(self) -> float | None:
        """contained / (IVR calls − still in the IVR)."""
        return _ratio(self.contained, self.calls - self.in_progress)

    DERIVED = ("containment_rate",)


# ---- outbound ----------------------------------------------------------------------------------------------


@dataclass
class CampaignStats(_Stats):
    attempts: int = 0
    human: int = 0  # a person answered and an agent took the call: a contact
    abandoned_outcome: int = 0  # a person answered and no agent came: outcome "abandoned"
    machine: int = 0
    busy: int = 0
    no_answer: int = 0
    failed: int = 0
    abandoned: int = 0  # abandoned under the campaign's policy (column lead_attempts.abandoned)
    success: int = 0  # contacts whose disposition is a success of the campaign
    talk_seconds: float = 0.0
    talked: int = 0  # contacts with a known talk time
    agent_seconds: float = 0.0  # staffed time (logged in − paused) of the campaign's agents

    def add_attempt(self, a: AttemptRow, success_dispositions: frozenset[str]) -> None:
        self.attempts += 1
        if a.outcome == "human":
            self.human += 1
            if a.disposition is not None and a.disposition in success_dispositions:
                self.success += 1
            if a.talk_seconds is not None:
                self.talk_seconds += a.talk_seconds
                self.talked += 1
        elif a.outcome == "abandoned":
            self.abandoned_outcome += 1
        elif a.outcome == "machine":
            self.machine += 1
        elif a.outcome == "busy":
            self.busy += 1
        elif a.outcome == "no_answer":
            self.no_answer += 1
        else:
            self.failed += 1
        self.abandoned += bool(a.abandoned)

    @property
    def live_answers(self) -> int:
        """A person answered: human + abandoned outcome."""
        return self.human + self.abandoned_outcome

    @property
    def contact_rate(self) -> float | None:
        """live answers / attempts."""
        return _ratio(self.live_answers, self.attempts)

    @property
    def conversion_rate(self) -> float | None:
        """success dispositions / contacts (outcome human)."""
        return _ratio(self.success, self.human)

    @property
    def abandon_rate(self) -> float | None:
        """abandoned / live answers (without the AMD false-positive estimate of the compliance ledger)."""
        return _ratio(self.abandoned, self.live_answers)

    @property
    def connects_per_agent_hour(self) -> float | None:
        """contacts / (staffed agent seconds / 3600)."""
        return _ratio(self.human, self.agent_seconds / 3600.0)

    @property
    def avg_talk_seconds(self) -> float | None:
        return _ratio(self.talk_seconds, self.talked)

    DERIVED = ("live_answers", "contact_rate", "conversion_rate", "abandon_rate", "connects_per_agent_hour",
               "avg_talk_seconds")


def add_spans(times: dict[str, AgentTime], spans: Iterable[Span]) -> None:
    for s in spans:
        times.setdefault(s.agent_id, AgentTime()).add_span(s.state, s.seconds)


__all__ = [
    "BUSY_STATES",
    "DEFAULT_FCR_DAYS",
    "DEFAULT_SHORT_ABANDON_SECONDS",
    "DEFAULT_TARGET_PERCENT",
    "DEFAULT_TARGET_SECONDS",
    "STAFFED_STATES",
    "AgentStats",
    "AgentTime",
    "CampaignStats",
    "HandleStats",
    "IvrStats",
    "KpiSettings",
    "QueueStats",
    "add_spans",
]
