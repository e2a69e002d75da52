"""The extraction layer on the cases the scripted morning does not cover: attended transfers, conferences,
immediate overflows, open wrap-ups, callbacks outside the selection, CSAT answers that are not answers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from callcore.kpi.facts import (
    AgentRow,
    CallStart,
    EventRow,
    WrapRow,
    agent_spans,
    csat_score,
    extract_calls,
    mark_repeats,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
CALL = uuid.UUID("01900000-0000-7000-8000-00000000aaaa")


def t(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def evs(*items: tuple[float, str, dict[str, Any]], call: uuid.UUID = CALL) -> list[EventRow]:
    return [EventRow(call, typ, t(s), data) for s, typ, data in items]


def one(events: list[EventRow], wraps: list[WrapRow] | None = None, as_of: float = 3600):
    (facts,) = extract_calls(events, wraps or [], as_of=t(as_of))
    return facts


START = (0, "call_started", {"direction": "inbound", "caller_number": "+31600000001"})


def test_attended_transfer_ends_the_agents_talk_and_holds_while_consulting():
    facts = one(evs(
        START, (0, "queued", {"queue": "q"}), (8, "connected", {"queue": "q", "agent": "a1"}),
        (68, "consult_started", {"agent": "a1", "to_agent": "a2"}),
        (98, "consult_ended", {"agent": "a1", "outcome": "completed"}),
        (98, "transferred", {"kind": "attended", "from_agent": "a1", "to_agent": "a2"}),
        (400, "hangup", {"cause": 16}), (401, "call_ended", {})),
        [WrapRow("a1", CALL, t(98), t(128)), WrapRow("a2", CALL, t(400), t(420))])
    (seg,) = facts.segments  # an attended transfer is no new queue segment
    # talk 8 -> 98 = 90 s, of which 30 s on hold; a2's wrap-up is not this segment's
    assert (seg.wait_seconds, seg.talk_seconds, seg.hold_seconds, seg.wrap_seconds) == (8, 60, 30, 30)
    assert seg.transferred == "attended" and seg.handled and seg.handle_seconds == 120


def test_conference_ends_hold_and_talk_runs_until_the_agent_leaves():
    seg = one(evs(
        START, (0, "queued", {"queue": "q"}), (10, "connected", {"queue": "q", "agent": "a1"}),
        (20, "consult_started", {"agent": "a1", "to_number": "+31201234567"}),
        (50, "consult_ended", {"agent": "a1", "outcome": "conference"}),
        (50, "conference", {"parties": ["a1", "+31201234567"]}),
        (110, "party_left", {"agent": "a1", "number": None}),
        (200, "hangup", {"cause": 16}), (201, "call_ended", {}))).segments[0]
    assert (seg.talk_seconds, seg.hold_seconds, seg.transferred) == (70, 30, None)


def test_agent_leg_hangup_is_not_the_callers_and_consult_open_at_the_end_is_hold():
    seg = one(evs(
        START, (0, "queued", {"queue": "q"}), (10, "connected", {"queue": "q", "agent": "a1"}),
        (20, "hangup", {"cause": 16, "by": "remote", "endpoint": "PJSIP/ext"}),  # a consult target's leg
        (30, "consult_started", {"agent": "a1", "to_number": "+3120"}),
        (90, "hangup", {"cause": 16}), (91, "call_ended", {}))).segments[0]
    assert (seg.talk_seconds, seg.hold_seconds) == (20, 60)


def test_immediate_overflow_is_offered_and_overflowed_and_chains_into_the_target():
    facts = one(evs(
        START, (0, "overflow", {"queue": "q1", "reason": "no_agents", "action": "queue", "target": "q2"}),
        (0, "queued", {"queue": "q2"}), (5, "abandoned", {"queue": "q2", "wait_seconds": 5}),
        (5, "call_ended", {})))
    s1, s2 = facts.segments
    assert (s1.queue, s1.outcome, s1.wait_seconds, s1.entry) == ("q1", "overflow", 0, "new")
    assert (s2.queue, s2.entry, s2.outcome, s2.wait_seconds) == ("q2", "overflow", "abandoned", 5)


def test_blind_transfer_to_an_agent_is_a_new_segment_of_the_same_queue():
    facts = one(evs(
        START, (0, "queued", {"queue": "q"}), (3, "connected", {"queue": "q", "agent": "a1"}),
        (33, "transferred", {"kind": "blind", "from_agent": "a1", "to_agent": "a2"}),
        (34, "queued", {"queue": "q", "transferred": True, "agent": "a2"}),
        (40, "connected", {"queue": "q", "agent": "a2"}), (100, "hangup", {}), (100, "call_ended", {})))
    s1, s2 = facts.segments
    assert (s1.talk_seconds, s1.transferred, s2.entry, s2.agent, s2.wait_seconds, s2.talk_seconds) == (
        30, "blind", "transfer", "a2", 6, 60)


def test_open_talk_and_open_wrap_up_are_not_handled_yet():
    talking = one(evs(START, (0, "queued", {"queue": "q"}), (10, "connected", {"queue": "q", "agent": "a1"})),
                  as_of=100).segments[0]
    assert talking.talk_open and not talking.handled and talking.talk_seconds == 90
    wrapping = one(evs(START, (0, "queued", {"queue": "q"}), (10, "connected", {"queue": "q", "agent": "a1"}),
                       (50, "hangup", {}), (50, "call_ended", {})),
                   [WrapRow("a1", CALL, t(50), None)], as_of=70).segments[0]
    assert wrapping.wrap_open and not wrapping.handled and wrapping.wrap_seconds == 20


def test_events_after_as_of_do_not_exist_yet():
    seg = one(evs(START, (0, "queued", {"queue": "q"}), (30, "abandoned", {"queue": "q"})), as_of=20).segments[0]
    assert seg.outcome == "waiting" and seg.wait_seconds is None


def test_call_ended_while_waiting_without_an_abandon_is_ended():
    seg = one(evs(START, (0, "queued", {"queue": "q"}), (30, "call_ended", {}))).segments[0]
    assert (seg.outcome, seg.wait_seconds) == ("ended", 30)


def test_virtual_hold_without_callback_yet_and_failed():
    pending = one(evs(START, (0, "queued", {"queue": "q"}), (60, "virtual_hold_requested", {"queue": "q"}),
                      (70, "hangup", {}), (70, "call_ended", {}))).segments[0]
    assert pending.outcome == "virtual_hold"
    failed = one(evs(START, (0, "queued", {"queue": "q"}), (60, "virtual_hold_requested", {"queue": "q"}),
                     (70, "call_ended", {}), (900, "virtual_hold_failed", {"queue": "q", "attempts": 3}))).segments[0]
    assert failed.outcome == "virtual_hold_failed"


def test_a_callback_whose_original_is_not_selected_counts_nowhere():
    k = uuid.uuid4()
    facts = one(evs((0, "call_started", {"direction": "outbound", "callback_of": str(CALL)}),
                    (1, "queued", {"queue": "q", "virtual_hold": True, "agent": "a1"}),
                    (2, "connected", {"queue": "q", "agent": "a1"}), call=k))
    assert facts.segments == []


@pytest.mark.parametrize("value,score", [("1", 1), ("5", 5), (3, 3), (" 4 ", 4), ("0", None), ("6", None),
                                         ("", None), (None, None), ("4.5", None), ("abc", None)])
def test_csat_answers(value, score):
    assert csat_score(value) == score


def test_csat_last_valid_answer_wins():
    facts = one(evs(START, (1, "variables_set", {"csat": "2"}), (2, "variables_set", {"csat": "9"}),
                    (3, "variables_set", {"csat": "5"}), (4, "variables_set", {"csat": "x"})))
    assert facts.csat == 5


def test_fcr_window_and_who_is_eligible():
    other = uuid.uuid4()
    calls = extract_calls(evs(START), as_of=t(10))
    mark_repeats(calls, [CallStart(other, "+31600000001", t(7 * 86400 + 1))], days=7)
    assert calls[0].repeat is False  # the repeat came 1 s after the 7-day window
    mark_repeats(calls, [CallStart(other, "+31600000001", t(7 * 86400))], days=7)
    assert calls[0].repeat is True
    mark_repeats(calls, [CallStart(CALL, "+31600000001", t(0))], days=7)
    assert calls[0].repeat is False  # itself is no repeat
    anonymous = extract_calls(evs((0, "call_started", {"direction": "inbound", "caller_number": None})), as_of=t(1))
    mark_repeats(anonymous, [], days=7)
    assert anonymous[0].repeat is None


def test_agent_spans_start_with_the_state_held_at_the_start_and_stop_at_the_end():
    rows = [AgentRow("a", "ready", t(-100)), AgentRow("a", "paused", t(50), "lunch"), AgentRow("a", "ready", t(80)),
            AgentRow("b", "logged_out", t(-5)), AgentRow("b", "ready", t(90))]
    spans = sorted((s.agent_id, s.state, s.seconds) for s in agent_spans(rows, t(0), t(100)))
    assert spans == [("a", "paused", 30), ("a", "ready", 20), ("a", "ready", 50), ("b", "logged_out", 90),
                     ("b", "ready", 10)]
