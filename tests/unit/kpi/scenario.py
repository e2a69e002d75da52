"""A scripted morning of a small contact center (Monday 2 March 2026, UTC), shared by the KPI tests.

Queues: sales (target 80 % in 20 s; agents a1, a2), support (80 % in 30 s; agents a2, a3). Campaign retention
(success disposition ``retained``; agents a1, a2). Short abandons: under 5 s. FCR window: 7 days.
The report is made at 11:00:00 (AS_OF). Every expected number of test_kpi_definitions.py is computed by hand
from this script; the script is the same events the real writers emit (types and data as in the ACD/IVR code).

Calls (times hh:mm:ss):

C1  +31611111111  09:00:00 start, IVR main 09:00:01-09:00:10 (queue), sales 09:00:10, a1 connects 09:00:20
                  (wait 10), caller hangs up 09:05:20 (talk 300); a1 wrap-up 09:05:20-09:05:50 (30).
                  Rated 4 by survey call S1. The same number calls again at 10:45 (C13): not resolved (FCR).
S1  outbound      09:06:00 survey call, IVR survey, sets survey_of=C1 csat=4 (outbound: not an IVR contact).
C2  +31622222222  sales 09:10:00, abandons 09:10:03 (3 s: short).
C3  +31633333333  sales 09:20:00, a2 rings out 09:20:15, a1 connects 09:20:45 (wait 45), consults an outside
                  number 09:22:45-09:23:45 (hold 60), blind transfer to support 09:25:45 (talk 300 - 60 = 240);
                  a1 wrap-up 09:25:45-09:26:45 (60). support 09:25:46, a2 connects 09:26:06 (wait 20), caller
                  hangs up 09:30:06 (talk 240); a2 wrap-up 09:30:06-09:30:16 (10). csat=2 during the call.
C4  +31644444444  sales 09:40:00, abandons 09:40:30 (30 s: after target).
C5  +31655555555  sales 09:50:00, abandons 09:50:12 (12 s: neither short nor after target).
C6  +31666666666  IVR main 09:55:00-09:56:00 outcome hangup (contained).
C8  anonymous     IVR main 10:05:00, hangs up 10:05:30 inside it (IVR abandoned).
C9  +31699999999  sales 10:10:00, overflow (max_wait) to support 10:12:00 (120 s in sales); support 10:12:00,
                  a2 connects 10:12:10 (wait 10), caller hangs up 10:14:10 (talk 120); wrap 10:14:10-10:14:40 (30).
C10 +31610101010  sales 10:20:00, takes the virtual-hold offer 10:21:00 and hangs up; callback call K10 starts
                  10:29:50 (a1 reserved), caller answers, a1 connects 10:30:05 (wait 10:20:00 → 10:30:05 = 605),
                  hangs up 10:33:05 (talk 180); a1 wrap 10:33:05-10:33:35 (30).
C11 +31611111112  sales 10:50:00, still waiting at 11:00.
C12 +31612121212  support 10:55:00, a3 connects 10:55:05 (wait 5), still talking at 11:00 (not handled yet).
C13 +31611111111  10:45:00-10:45:20, a call without IVR or queue: C1's repeat call.

Agents: a1 ready since 08:30 (before the period), paused "lunch" 10:40, logged out 10:50. a2 logs in 09:15,
no answer → paused 09:20:15, ready 09:25, logs out 10:45. a3 logs in 10:50, on a call from 10:55:05.

Outbound (retention, 09:00-10:00): 8 attempts — human retained (talk 120, a1), human not_interested (60, a1),
machine, no_answer, busy, abandoned (nobody free), human whose agent came late (abandoned column true, talk 30,
a2), failed.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from callcore.events import AgentEvent, CallEvent
from callcore.kpi.definitions import KpiSettings
from callcore.kpi.facts import AgentRow, AttemptRow, CallStart, EventRow
from callcore.store.writer import EventWriter

DAY = datetime(2026, 3, 2, tzinfo=timezone.utc)
AS_OF = DAY + timedelta(hours=11)


def at(hms: str) -> datetime:
    h, m, s = (int(x) for x in hms.split(":"))
    return DAY + timedelta(hours=h, minutes=m, seconds=s)


def cid(n: int) -> uuid.UUID:
    return uuid.UUID(f"01900000-0000-7000-8000-{n:012d}")


C1, C2, C3, C4, C5, C6, C8, C9, C10, C11, C12, C13 = (cid(n) for n in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13))
S1, K10 = cid(101), cid(110)

SETTINGS = KpiSettings(
    short_abandon_seconds=5.0, fcr_days=7.0, timezone="UTC",
    targets={"sales": (80.0, 20.0), "support": (80.0, 30.0)},
    queue_agents={"sales": frozenset({"a1", "a2"}), "support": frozenset({"a2", "a3"})},
    campaign_success={"retention": frozenset({"retained"})},
    campaign_agents={"retention": frozenset({"a1", "a2"})},
    queues=("sales", "support"), agents=("a1", "a2", "a3"), campaigns=("retention",),
)


def _inbound(number: str | None) -> dict[str, Any]:
    return {"direction": "inbound", "did": "1000", "caller_number": number}


# (call, time, type, data, channel) in emit order per call
SCRIPT: list[tuple[uuid.UUID, str, str, dict[str, Any]]] = [
    # C1
    (C1, "09:00:00", "call_started", _inbound("+31611111111")),
    (C1, "09:00:01", "ivr_started", {"flow": "main", "version": "v1", "language": "nl"}),
    (C1, "09:00:05", "variables_set", {"lang": "nl"}),
    (C1, "09:00:10", "ivr_ended", {"flow": "main", "outcome": "queue", "node": "to_sales", "queue": "sales"}),
    (C1, "09:00:10", "queued", {"queue": "sales", "priority": 0, "skills": {}, "position": 1}),
    (C1, "09:00:10", "offered", {"queue": "sales", "agent": "a1", "wait_seconds": 0.0}),
    (C1, "09:00:20", "connected", {"queue": "sales", "agent": "a1", "wait_seconds": 10.0}),
    (C1, "09:05:20", "hangup", {"cause": 16, "cause_text": "Normal Clearing", "by": "remote"}),
    (C1, "09:05:20", "party_left", {"agent": None, "number": None}),
    (C1, "09:05:21", "call_ended", {}),
    # S1: an outbound survey call rating C1
    (S1, "09:06:00", "call_started", {"direction": "outbound", "endpoint": "PJSIP/+31611111111@trunk"}),
    (S1, "09:06:05", "ivr_started", {"flow": "survey", "version": "v1", "language": "nl"}),
    (S1, "09:06:30", "variables_set", {"survey_of": str(C1), "csat": "4"}),
    (S1, "09:06:40", "ivr_ended", {"flow": "survey", "outcome": "hangup", "node": "bye", "queue": None}),
    (S1, "09:06:41", "call_ended", {}),
    # C2: short abandon
    (C2, "09:10:00", "call_started", _inbound("+31622222222")),
    (C2, "09:10:00", "queued", {"queue": "sales", "priority": 0, "skills": {}, "position": 1}),
    (C2, "09:10:03", "abandoned", {"queue": "sales", "wait_seconds": 3.0, "while": "waiting"}),
    (C2, "09:10:03", "hangup", {"cause": 16, "cause_text": "", "by": "remote"}),
    (C2, "09:10:03", "call_ended", {}),
    # C3: no answer, consult, blind transfer to support
    (C3, "09:20:00", "call_started", _inbound("+31633333333")),
    (C3, "09:20:00", "queued", {"queue": "sales", "priority": 0, "skills": {}, "position": 1}),
    (C3, "09:20:00", "offered", {"queue": "sales", "agent": "a2", "wait_seconds": 0.0}),
    (C3, "09:20:15", "agent_no_answer", {"queue": "sales", "agent": "a2"}),
    (C3, "09:20:15", "offered", {"queue": "sales", "agent": "a1", "wait_seconds": 15.0}),
    (C3, "09:20:45", "connected", {"queue": "sales", "agent": "a1", "wait_seconds": 45.0}),
    (C3, "09:22:45", "consult_started", {"agent": "a1", "to_agent": None, "to_number": "+31201234567"}),
    (C3, "09:23:45", "consult_ended", {"agent": "a1", "outcome": "cancelled"}),
    (C3, "09:25:45", "transferred", {"kind": "blind", "from_agent": "a1", "to_queue": "support"}),
    (C3, "09:25:46", "queued", {"queue": "support", "priority": 0, "skills": {}, "position": 1,
                                "transferred": True, "agent": None}),
    (C3, "09:25:46", "offered", {"queue": "support", "agent": "a2", "wait_seconds": 0.0}),
    (C3, "09:26:06", "connected", {"queue": "support", "agent": "a2", "wait_seconds": 20.0}),
    (C3, "09:29:00", "variables_set", {"csat": "2"}),
    (C3, "09:30:06", "hangup", {"cause": 16, "cause_text": "", "by": "remote"}),
    (C3, "09:30:07", "call_ended", {}),
    # C4, C5: abandons
    (C4, "09:40:00", "call_started", _inbound("+31644444444")),
    (C4, "09:40:00", "queued", {"queue": "sales", "priority": 0, "skills": {}, "position": 1}),
    (C4, "09:40:30", "abandoned", {"queue": "sales", "wait_seconds": 30.0, "while": "waiting"}),
    (C4, "09:40:30", "call_ended", {}),
    (C5, "09:50:00", "call_started", _inbound("+31655555555")),
    (C5, "09:50:00", "queued", {"queue": "sales", "priority": 0, "skills": {}, "position": 1}),
    (C5, "09:50:12", "abandoned", {"queue": "sales", "wait_seconds": 12.0, "while": "waiting"}),
    (C5, "09:50:12", "call_ended", {}),
    # C6: contained in the IVR; C8: abandoned in the IVR
    (C6, "09:55:00", "call_started", _inbound("+31666666666")),
    (C6, "09:55:00", "ivr_started", {"flow": "main", "version": "v1", "language": "nl"}),
    (C6, "09:56:00", "ivr_ended", {"flow": "main", "outcome": "hangup", "node": "bye", "queue": None}),
    (C6, "09:56:01", "call_ended", {}),
    (C8, "10:05:00", "call_started", _inbound(None)),
    (C8, "10:05:00", "ivr_started", {"flow": "main", "version": "v1", "language": "nl"}),
    (C8, "10:05:30", "hangup", {"cause": 16, "cause_text": "", "by": "remote"}),
    (C8, "10:05:30", "call_ended", {}),
    # C9: overflow from sales to support
    (C9, "10:10:00", "call_started", _inbound("+31699999999")),
    (C9, "10:10:00", "queued", {"queue": "sales", "priority": 0, "skills": {}, "position": 1}),
    (C9, "10:12:00", "overflow", {"queue": "sales", "reason": "max_wait", "action": "queue", "target": "support"}),
    (C9, "10:12:00", "queued", {"queue": "support", "priority": 0, "skills": {}, "position": 1}),
    (C9, "10:12:00", "offered", {"queue": "support", "agent": "a2", "wait_seconds": 120.0}),
    (C9, "10:12:10", "connected", {"queue": "support", "agent": "a2", "wait_seconds": 130.0}),
    (C9, "10:14:10", "hangup", {"cause": 16, "cause_text": "", "by": "remote"}),
    (C9, "10:14:11", "call_ended", {}),
    # C10 and its virtual-hold callback K10
    (C10, "10:20:00", "call_started", _inbound("+31610101010")),
    (C10, "10:20:00", "queued", {"queue": "sales", "priority": 0, "skills": {}, "position": 1}),
    (C10, "10:21:00", "virtual_hold_requested", {"queue": "sales", "number": "+31610101010", "position": 1}),
    (C10, "10:21:10", "hangup", {"cause": 16, "cause_text": "", "by": "callcore"}),
    (C10, "10:21:10", "call_ended", {}),
    (K10, "10:29:50", "call_started", {"direction": "outbound", "endpoint": "PJSIP/+31610101010@trunk",
                                       "did": "+31610101010", "callback_of": str(C10), "queue": "sales"}),
    (C10, "10:30:00", "virtual_hold_attempt", {"queue": "sales", "attempt": 1, "callback_call_id": str(K10),
                                               "outcome": "answered"}),
    (K10, "10:30:00", "answered", {}),
    (K10, "10:30:00", "queued", {"queue": "sales", "priority": 0, "skills": {}, "position": 1,
                                 "virtual_hold": True, "agent": "a1"}),
    (K10, "10:30:05", "connected", {"queue": "sales", "agent": "a1", "wait_seconds": 605.0}),
    (K10, "10:33:05", "hangup", {"cause": 16, "cause_text": "", "by": "remote"}),
    (K10, "10:33:06", "call_ended", {}),
    # C13: C1's caller again
    (C13, "10:45:00", "call_started", _inbound("+31611111111")),
    (C13, "10:45:20", "hangup", {"cause": 16, "cause_text": "", "by": "remote"}),
    (C13, "10:45:20", "call_ended", {}),
    # C11 waits, C12 talks at 11:00
    (C11, "10:50:00", "call_started", _inbound("+31611111112")),
    (C11, "10:50:00", "queued", {"queue": "sales", "priority": 0, "skills": {}, "position": 1}),
    (C12, "10:55:00", "call_started", _inbound("+31612121212")),
    (C12, "10:55:00", "queued", {"queue": "support", "priority": 0, "skills": {}, "position": 1}),
    (C12, "10:55:00", "offered", {"queue": "support", "agent": "a3", "wait_seconds": 0.0}),
    (C12, "10:55:05", "connected", {"queue": "support", "agent": "a3", "wait_seconds": 5.0}),
]

# (agent, time, state, reason, call)
AGENT_SCRIPT: list[tuple[str, str, str, str | None, uuid.UUID | None]] = [
    ("a1", "08:30:00", "ready", "login", None),
    ("a1", "09:00:10", "reserved", "offered", C1),
    ("a1", "09:00:20", "on_call", "answered", C1),
    ("a1", "09:05:20", "wrap_up", "call ended", C1),
    ("a1", "09:05:50", "ready", "wrap-up over", None),
    ("a2", "09:15:00", "ready", "login", None),
    ("a2", "09:20:00", "reserved", "offered", C3),
    ("a2", "09:20:15", "paused", "no answer", C3),
    ("a1", "09:20:15", "reserved", "offered", C3),
    ("a2", "09:25:00", "ready", "ready", None),
    ("a1", "09:20:45", "on_call", "answered", C3),
    ("a1", "09:25:45", "wrap_up", "call ended", C3),
    ("a2", "09:25:46", "reserved", "offered", C3),
    ("a2", "09:26:06", "on_call", "answered", C3),
    ("a1", "09:26:45", "ready", "wrap-up over", None),
    ("a2", "09:30:06", "wrap_up", "call ended", C3),
    ("a2", "09:30:16", "ready", "wrap-up over", None),
    ("a2", "10:12:00", "reserved", "offered", C9),
    ("a2", "10:12:10", "on_call", "answered", C9),
    ("a2", "10:14:10", "wrap_up", "call ended", C9),
    ("a2", "10:14:40", "ready", "wrap-up over", None),
    ("a1", "10:29:50", "reserved", "offered", C10),
    ("a1", "10:30:05", "on_call", "answered", K10),
    ("a1", "10:33:05", "wrap_up", "call ended", K10),
    ("a1", "10:33:35", "ready", "wrap-up over", None),
    ("a1", "10:40:00", "paused", "lunch", None),
    ("a2", "10:45:00", "logged_out", "logout", None),
    ("a1", "10:50:00", "logged_out", "logout", None),
    ("a3", "10:50:00", "ready", "login", None),
    ("a3", "10:55:00", "reserved", "offered", C12),
    ("a3", "10:55:05", "on_call", "answered", C12),
]

# (started, outcome, abandoned, agent, disposition, talk)
ATTEMPTS: list[tuple[str, str, bool, str | None, str | None, float | None]] = [
    ("09:01:00", "human", False, "a1", "retained", 120.0),
    ("09:05:00", "human", False, "a1", "not_interested", 60.0),
    ("09:10:00", "machine", False, None, None, None),
    ("09:15:00", "no_answer", False, None, None, None),
    ("09:20:00", "busy", False, None, None, None),
    ("09:25:00", "abandoned", True, None, None, None),
    ("09:30:00", "human", True, "a2", None, 30.0),
    ("09:35:00", "failed", False, None, None, None),
]


def events() -> list[EventRow]:
    rows = [EventRow(c, t, at(hms), dict(d)) for c, hms, t, d in SCRIPT]
    # The store hands them over grouped by call, each call in emit order (call_events.id).
    order = {c: i for i, c in enumerate(dict.fromkeys(r.call_id for r in rows))}
    return sorted(rows, key=lambda r: order[r.call_id])  # stable: emit order within a call


def agent_rows(start: datetime, end: datetime) -> list[AgentRow]:
    """What the store selects: per agent its last row before ``start``, then the rows in ``[start, end)``."""
    rows = [AgentRow(a, s, at(hms), reason, call) for a, hms, s, reason, call in AGENT_SCRIPT]
    out: list[AgentRow] = []
    for agent in sorted({r.agent_id for r in rows}):
        mine = [r for r in rows if r.agent_id == agent]
        before = [r for r in mine if r.at < start]
        out += before[-1:] + [r for r in mine if start <= r.at < end]
    return out


def wraps() -> list:
    from callcore.kpi.facts import WrapRow

    rows = [AgentRow(a, s, at(hms), reason, call) for a, hms, s, reason, call in AGENT_SCRIPT]
    out = []
    for i, r in enumerate(rows):
        if r.state == "wrap_up" and r.call_id is not None:
            nxt = next((x for x in rows[i + 1:] if x.agent_id == r.agent_id), None)
            out.append(WrapRow(r.agent_id, r.call_id, r.at, nxt.at if nxt else None))
    return out


def call_starts() -> list[CallStart]:
    return [CallStart(c, d["caller_number"], at(hms)) for c, hms, t, d in SCRIPT
            if t == "call_started" and d.get("direction") == "inbound" and d.get("caller_number")]


def attempts() -> list[AttemptRow]:
    return [AttemptRow("retention", at(hms), outcome, abandoned, agent, disposition, talk)
            for hms, outcome, abandoned, agent, disposition, talk in ATTEMPTS]


async def write_scenario(pool: Any) -> None:
    """The script into PostgreSQL through the real EventWriter (emitted in time order), plus the attempts."""
    writer = EventWriter(pool, flush_interval=0.01)
    await writer.start()
    items: list[tuple[datetime, int, CallEvent | AgentEvent]] = []
    for i, (call, hms, typ, data) in enumerate(SCRIPT):
        items.append((at(hms), i, CallEvent(call, typ, at(hms), data=dict(data))))
    for i, (agent, hms, state, reason, call) in enumerate(AGENT_SCRIPT):
        items.append((at(hms), 10_000 + i, AgentEvent(agent, state, at(hms), reason=reason, call_id=call)))
    for _, _, event in sorted(items, key=lambda x: (x[0], x[1])):  # emitted as they happened
        writer.emit(event)
    await writer.close()
    assert writer.stats.written == len(items) and writer.stats.rejected == 0
    for hms, outcome, abandoned, agent, disposition, talk in ATTEMPTS:
        await pool.execute(
            "INSERT INTO lead_attempts (attempt_id, campaign, number, started_at, outcome, abandoned, agent_id,"
            " disposition, talk_seconds) VALUES (gen_random_uuid(), 'retention', '+31600000000', $1, $2, $3, $4,"
            " $5, $6)", at(hms), outcome, abandoned, agent, disposition, talk)
