"""From stored events to per-contact facts (pure: no I/O, no clock; ``as_of`` is passed in).

The one extraction layer of the KPIs: :func:`extract_calls` turns a call's events (``call_events`` rows in emit
order) into a :class:`CallFacts` holding its queue *segments*; :func:`agent_spans` turns ``agent_events`` rows
into state spans. docs/kpis.md defines every field; in short:

* A **segment** is one presentation of a caller to one queue: it starts with ``queued`` (or with an
  ``overflow`` that refused the caller at once: queue full, nobody logged in) and ends ``answered``
  (``connected``), ``abandoned``, ``overflow`` (left for another queue, voicemail, callback...),
  ``virtual_hold`` (accepted to be called back, callback not answered yet), ``virtual_hold_failed``,
  ``ended`` (the call ended without any of these, e.g. a shutdown) or is still ``waiting``. A blind transfer to
  a queue or an agent and an overflow to a queue start a new segment (``entry`` ``transfer`` / ``overflow``).
* A virtual-hold callback is a call of its own (``call_started.callback_of``); its first segment (``entry``
  ``callback``) is merged into the original caller's segment: the wait runs from the original ``queued`` to the
  agent answering the callback.
* **Talk** runs from ``connected`` to the first of: ``transferred`` by the segment's agent, ``party_left`` of that
  agent, the caller's ``hangup``, ``call_ended`` (``as_of`` while none came: ``in_progress``). **Hold** is the
  time the segment's agent spent consulting (``consult_started`` → ``consult_ended``), inside the talk period;
  ``talk_seconds`` excludes it. **Wrap-up** comes from ``agent_events``: the agent's ``wrap_up`` row for the call
  to its next row (``as_of`` while none came).
* **CSAT**: a ``survey_result`` event (the post-call survey: score 1..5, the queue and agent it rates) or a
  ``variables_set`` event with ``csat`` = 1..5 on the call, or on a survey call whose variables name the call in
  ``survey_of``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CSAT_VARIABLE = "csat"
SURVEY_OF_VARIABLE = "survey_of"

# Event types read here (the writers: calls/runtime, ivr/commands, acd/service, acd/conversation, acd/virtual_hold).
CALL_STARTED = "call_started"
HANGUP = "hangup"
CALL_ENDED = "call_ended"
VARIABLES_SET = "variables_set"
IVR_STARTED = "ivr_started"
IVR_ENDED = "ivr_ended"
QUEUED = "queued"
OVERFLOW = "overflow"
AGENT_NO_ANSWER = "agent_no_answer"
CONNECTED = "connected"
ABANDONED = "abandoned"
TRANSFERRED = "transferred"
CONSULT_STARTED = "consult_started"
CONSULT_ENDED = "consult_ended"
PARTY_LEFT = "party_left"
VH_REQUESTED = "virtual_hold_requested"
VH_ATTEMPT = "virtual_hold_attempt"
VH_FAILED = "virtual_hold_failed"
SURVEY_RESULT = "survey_result"  # the post-call survey's answer, with the queue and agent it rates

# The event types that place a call in a period (its segments, its IVR visit, its start).
SELECTING_TYPES = (CALL_STARTED, QUEUED, OVERFLOW, IVR_STARTED)


# ---- input rows ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRow:
    """One ``call_events`` row."""

    call_id: uuid.UUID
    type: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    channel_id: str | None = None


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One ``agent_events`` row."""

    agent_id: str
    state: str
    at: datetime
    reason: str | None = None
    call_id: uuid.UUID | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class WrapRow:
    """An agent's ``wrap_up`` row for a call and the time of that agent's next row (None: still in wrap-up)."""

    agent_id: str
    call_id: uuid.UUID
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class CallStart:
    """A ``calls`` row reduced to what first-contact resolution needs (inbound calls of a caller)."""

    call_id: uuid.UUID
    caller_number: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One ``lead_attempts`` row (outbound)."""

    campaign: str
    started_at: datetime
    outcome: str  # human | machine | busy | no_answer | failed | abandoned
    abandoned: bool
    agent_id: str | None = None
    disposition: str | None = None
    talk_seconds: float | None = None
    connect_delay_seconds: float | None = None


# ---- facts -----------------------------------------------------------------------------------------------------


def _seconds(a: datetime, b: datetime) -> float:
    return max(0.0, (b - a).total_seconds())


@dataclass(slots=True)
class Segment:
    call_id: uuid.UUID
    queue: str
    offered_at: datetime
    entry: str = "new"  # new | transfer | overflow | callback
    outcome: str = "waiting"  # answered | abandoned | overflow | virtual_hold | virtual_hold_failed | ended | waiting
    agent: str | None = None
    connected_at: datetime | None = None
    left_at: datetime | None = None  # abandoned / overflowed / ended / accepted the callback offer
    talk_end: datetime | None = None
    hold_seconds: float = 0.0
    wrap_seconds: float = 0.0
    wrap_open: bool = False  # the agent is still in wrap-up at as_of
    talk_open: bool = False  # still talking at as_of (talk_end = as_of)
    transferred: str | None = None  # blind | attended: the agent transferred the caller on
    no_answers: list[str] = field(default_factory=list)  # agents whose phone rang out
    callback_call_id: uuid.UUID | None = None  # virtual hold: the callback call that reached the caller
    _hold_from: datetime | None = None

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"

    @property
    def wait_seconds(self) -> float | None:
        """Time in this queue: to the answer (answered) or to leaving the queue; None while waiting."""
        if self.connected_at is not None:
            return _seconds(self.offered_at, self.connected_at)
        if self.left_at is not None:
            return _seconds(self.offered_at, self.left_at)
        return None

    @property
    def talk_seconds(self) -> float:
        if self.connected_at is None or self.talk_end is None:
            return 0.0
        return max(0.0, _seconds(self.connected_at, self.talk_end) - self.hold_seconds)

    @property
    def handle_seconds(self) -> float:
        """Talk + hold + wrap-up."""
        return self.talk_seconds + self.hold_seconds + self.wrap_seconds

    @property
    def handled(self) -> bool:
        """Answered and completely handled: talk and wrap-up are over (counts in AHT)."""
        return self.answered and not self.talk_open and not self.wrap_open


@dataclass(slots=True)
class CallFacts:
    call_id: uuid.UUID
    direction: str | None = None
    caller_number: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    callback_of: uuid.UUID | None = None
    survey_of: uuid.UUID | None = None
    flow: str | None = None
    ivr_at: datetime | None = None
    ivr_outcome: str | None = None  # queue | transfer | hangup | error | abandoned | in_progress (None: no IVR)
    csat: int | None = None
    csat_queue: str | None = None  # the queue and agent a post-call survey named (None: the last answered)
    csat_agent: str | None = None
    segments: list[Segment] = field(default_factory=list)
    repeat: bool | None = None  # FCR: another inbound call from the same number within N days (None: not known)

    @property
    def first_answered(self) -> Segment | None:
        return next((s for s in self.segments if s.answered), None)

    @property
    def last_answered(self) -> Segment | None:
        return next((s for s in reversed(self.segments) if s.answered), None)

    @property
    def rated_segment(self) -> Segment | None:
        """The segment the CSAT answer rates: the last answered one of the survey's queue and agent, else the last
        answered one."""
        if self.csat_queue is not None:
            for s in reversed(self.segments):
                if s.answered and s.queue == self.csat_queue and (self.csat_agent is None or s.agent == self.csat_agent):
                    return s
        return self.last_answered


def _uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def csat_score(value: Any) -> int | None:
    """A CSAT answer: 1..5 (as digits or a number); anything else is not an answer."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text in {"1", "2", "3", "4", "5"} else None


def _end_talk(seg: Segment | None, at: datetime) -> None:
    if seg is not None and seg.connected_at is not None and seg.talk_end is None:
        seg.talk_end = at
        if seg._hold_from is not None:
            seg.hold_seconds += _seconds(seg._hold_from, at)
            seg._hold_from = None


def _call_facts(call_id: uuid.UUID, events: Sequence[EventRow], as_of: datetime) -> CallFacts:
    facts = CallFacts(call_id)
    seg: Segment | None = None  # the latest segment
    overflow_to: str | None = None  # an overflow to this queue: the next ``queued`` there continues the caller
    for ev in events:
        t, d = ev.type, ev.data
        if t == CALL_STARTED:
            facts.direction = d.get("direction") or facts.direction
            facts.caller_number = d.get("caller_number") or facts.caller_number
            facts.started_at = ev.at if facts.started_at is None else min(facts.started_at, ev.at)
            facts.callback_of = _uuid(d.get("callback_of")) or facts.callback_of
            facts.survey_of = _uuid(d.get(SURVEY_OF_VARIABLE)) or facts.survey_of
        elif t == QUEUED:
            if seg is not None and seg.outcome == "waiting":
                seg.outcome, seg.left_at = "ended", ev.at  # defensive: a queued without an outcome before it
            if seg is not None:
                _end_talk(seg, ev.at)
            queue = str(d.get("queue") or "")
            if d.get("virtual_hold"):
                entry = "callback"
            elif d.get("transferred"):
                entry = "transfer"
            elif overflow_to is not None and overflow_to == queue:
                entry = "overflow"
            else:
                entry = "new"
            overflow_to = None
            seg = Segment(call_id, queue, ev.at, entry=entry)
            facts.segments.append(seg)
        elif t == OVERFLOW:
            queue = str(d.get("queue") or "")
            if seg is not None and seg.queue == queue and seg.outcome == "waiting":
                seg.outcome, seg.left_at = "overflow", ev.at
            else:  # refused at once (queue full, nobody logged in): offered and overflowed, no wait
                entry = "overflow" if overflow_to is not None and overflow_to == queue else "new"
                seg = Segment(call_id, queue, ev.at, entry=entry, outcome="overflow", left_at=ev.at)
                facts.segments.append(seg)
            overflow_to = str(d.get("target")) if d.get("action") == "queue" and d.get("target") else None
        elif seg is None:
            _call_level(facts, ev)
        elif t == AGENT_NO_ANSWER:
            if d.get("agent"):
                seg.no_answers.append(str(d["agent"]))
        elif t == CONNECTED:
            if seg.outcome == "waiting":
                seg.outcome, seg.connected_at, seg.agent = "answered", ev.at, str(d.get("agent") or "") or None
        elif t == ABANDONED:
            if seg.outcome == "waiting":
                seg.outcome, seg.left_at = "abandoned", ev.at
        elif t == VH_REQUESTED:
            if seg.outcome == "waiting":
                seg.outcome, seg.left_at = "virtual_hold", ev.at
        elif t == VH_ATTEMPT:
            if d.get("outcome") == "answered":
                seg.callback_call_id = _uuid(d.get("callback_call_id"))
        elif t == VH_FAILED:
            if seg.outcome == "virtual_hold":
                seg.outcome = "virtual_hold_failed"
        elif t == CONSULT_STARTED:
            if seg.answered and seg.talk_end is None and d.get("agent") == seg.agent and seg._hold_from is None:
                seg._hold_from = ev.at
        elif t == CONSULT_ENDED:
            if seg._hold_from is not None and d.get("agent") == seg.agent:
                seg.hold_seconds += _seconds(seg._hold_from, ev.at)
                seg._hold_from = None
        elif t == TRANSFERRED:
            if seg.answered and seg.talk_end is None and d.get("from_agent") == seg.agent:
                seg.transferred = str(d.get("kind") or "blind")
                _end_talk(seg, ev.at)
        elif t == PARTY_LEFT:
            if d.get("agent") is not None and d.get("agent") == seg.agent:
                _end_talk(seg, ev.at)
        elif t == HANGUP and "endpoint" not in d:  # the caller's side (an agent leg's hangup names its endpoint)
            _end_talk(seg, ev.at)
            _call_level(facts, ev)
        elif t == CALL_ENDED:
            _end_talk(seg, ev.at)
            if seg.outcome == "waiting":
                seg.outcome, seg.left_at = "ended", ev.at
            _call_level(facts, ev)
        else:
            _call_level(facts, ev)
    for s in facts.segments:
        if s.connected_at is not None and s.talk_end is None:
            _end_talk(s, as_of)
            s.talk_open = True
    if facts.flow is not None and facts.ivr_outcome is None:
        facts.ivr_outcome = "abandoned" if facts.ended_at is not None else "in_progress"
    return facts


def _call_level(facts: CallFacts, ev: EventRow) -> None:
    t, d = ev.type, ev.data
    if t == CALL_ENDED:
        facts.ended_at = ev.at if facts.ended_at is None else facts.ended_at
    elif t == IVR_STARTED:
        if facts.flow is None:
            facts.flow, facts.ivr_at = str(d.get("flow") or ""), ev.at
    elif t == IVR_ENDED:
        if facts.flow is not None and facts.ivr_outcome is None:
            facts.ivr_outcome = str(d.get("outcome") or "error")
    elif t == VARIABLES_SET:
        if CSAT_VARIABLE in d:
            score = csat_score(d[CSAT_VARIABLE])
            if score is not None:
                facts.csat = score  # the last answer wins
        if SURVEY_OF_VARIABLE in d:
            facts.survey_of = _uuid(d[SURVEY_OF_VARIABLE]) or facts.survey_of
    elif t == SURVEY_RESULT:
        score = csat_score(d.get("score"))
        if score is not None:  # an unanswered survey (null score) is no answer
            facts.csat = score
            facts.csat_queue = str(d["queue"]) if d.get("queue") else None
            facts.csat_agent = str(d["agent"]) if d.get("agent") else None


def _attach_wraps(calls: dict[uuid.UUID, CallFacts], wraps: Iterable[WrapRow], as_of: datetime) -> None:
    """Each wrap_up row goes to the latest answered segment of that agent on that call that connected before it."""
    for w in sorted(wraps, key=lambda w: w.start):
        facts = calls.get(w.call_id)
        if facts is None:
            continue
        target = None
        for s in facts.segments:
            if s.answered and s.agent == w.agent_id and s.connected_at is not None and s.connected_at <= w.start:
                target = s
        if target is None:
            continue
        end = w.end if w.end is not None else as_of
        target.wrap_seconds += _seconds(w.start, min(end, as_of))
        target.wrap_open = target.wrap_open or w.end is None


def _merge_callbacks(calls: dict[uuid.UUID, CallFacts]) -> None:
    """A virtual-hold callback's first segment continues the original caller's segment (and is dropped)."""
    for facts in calls.values():
        if facts.callback_of is None:
            continue
        cb = next((s for s in facts.segments if s.entry == "callback"), None)
        if cb is None:
            continue
        facts.segments.remove(cb)
        original = calls.get(facts.callback_of)
        if original is None:
            continue  # the original caller is outside this selection: it counts where it was offered
        seg = next((s for s in reversed(original.segments)
                    if s.queue == cb.queue and s.outcome in ("virtual_hold", "virtual_hold_failed")), None)
        if seg is None:
            continue
        seg.outcome = cb.outcome
        seg.callback_call_id = facts.call_id
        seg.no_answers.extend(cb.no_answers)
        if cb.outcome == "waiting":
            seg.outcome = "virtual_hold"  # dialled back, waiting for the reserved agent's phone
            continue
        seg.agent, seg.connected_at, seg.talk_end = cb.agent, cb.connected_at, cb.talk_end
        seg.hold_seconds, seg.wrap_seconds = cb.hold_seconds, cb.wrap_seconds
        seg.talk_open, seg.wrap_open, seg.transferred = cb.talk_open, cb.wrap_open, cb.transferred
        seg.left_at = cb.left_at
        if cb.answered and original.csat is None:
            original.csat, original.csat_queue, original.csat_agent = facts.csat, facts.csat_queue, facts.csat_agent


def _attach_surveys(calls: dict[uuid.UUID, CallFacts]) -> None:
    for facts in calls.values():
        if facts.survey_of is not None and facts.csat is not None:
            rated = calls.get(facts.survey_of)
            if rated is not None and rated.call_id != facts.call_id:
                rated.csat = facts.csat


def extract_calls(events: Iterable[EventRow], wraps: Iterable[WrapRow] = (), *, as_of: datetime) -> list[CallFacts]:
    """Facts of every call in ``events`` (grouped by call; each call's events in emit order)."""
    by_call: dict[uuid.UUID, list[EventRow]] = defaultdict(list)
    for ev in events:
        if ev.at <= as_of:
            by_call[ev.call_id].append(ev)
    calls = {cid: _call_facts(cid, evs, as_of) for cid, evs in by_call.items()}
    _attach_wraps(calls, (w for w in wraps if w.start <= as_of), as_of)
    _merge_callbacks(calls)
    _attach_surveys(calls)
    return list(calls.values())


def mark_repeats(calls: Iterable[CallFacts], starts: Iterable[CallStart], days: float) -> None:
    """First-contact resolution: ``repeat`` is True when the same caller number called in again (another inbound
    call) within ``days`` after the call started; False when not (so far); None when it cannot be known (no
    number, not an inbound call, a callback)."""
    by_number: dict[str, list[tuple[datetime, uuid.UUID]]] = defaultdict(list)
    for s in starts:
        if s.caller_number:
            by_number[s.caller_number].append((s.started_at, s.call_id))
    window = days * 86400.0
    for facts in calls:
        if facts.direction != "inbound" or not facts.caller_number or facts.started_at is None \
                or facts.callback_of is not None:
            facts.repeat = None
            continue
        start = facts.started_at
        facts.repeat = any(
            cid != facts.call_id and start < at and (at - start).total_seconds() <= window
            for at, cid in by_number.get(facts.caller_number, ())
        )


# ---- agent time ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    agent_id: str
    state: str
    start: datetime
    end: datetime
    reason: str | None = None

    @property
    def seconds(self) -> float:
        return _seconds(self.start, self.end)


def agent_spans(rows: Iterable[AgentRow], start: datetime, end: datetime) -> list[Span]:
    """Each agent's state spans within ``[start, end)``. ``rows``: per agent in order, the last row before
    ``start`` (the state the agent was in at ``start``) and the rows up to ``end``. The last state lasts until
    ``end`` (pass ``min(period end, as_of)``)."""
    by_agent: dict[str, list[AgentRow]] = defaultdict(list)
    for r in rows:
        by_agent[r.agent_id].append(r)
    out: list[Span] = []
    for agent_id, items in by_agent.items():
        for i, r in enumerate(items):
            s = max(r.at, start)
            e = min(items[i + 1].at if i + 1 < len(items) else end, end)
            if e > s:
                out.append(Span(agent_id, r.state, s, e, r.reason))
    return out


__all__ = [
    "CSAT_VARIABLE",
    "SELECTING_TYPES",
    "SURVEY_OF_VARIABLE",
    "AgentRow",
    "AttemptRow",
    "CallFacts",
    "CallStart",
    "EventRow",
    "Segment",
    "Span",
    "WrapRow",
    "agent_spans",
    "csat_score",
    "extract_calls",
    "mark_repeats",
]
