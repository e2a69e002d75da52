"""CSAT from the post-call survey (``survey_result`` events), per queue, agent and interval, computed by hand.

Queue sales, agents a1 and a2, 09:00-11:00 UTC in 1-hour intervals. Each call: queued, connected, the agent
hangs up first (``party_left``), the caller rates the call in the survey flow.

| call | offered | agent | survey score |
|---|---|---|---|
| R1 | 09:10 | a1 | 5 |
| R2 | 09:20 | a1 | 4 |
| R3 | 09:40 | a2 | 2 |
| R4 | 09:50 | a2 | none (hung up in the survey: ``score`` null) |
| R5 | 10:15 | a1 | 3 |
| R6 | 10:30 | a2 | 4, but the survey names queue sales / agent a1 — R6 was transferred: a2 in support first |
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from callcore.kpi.definitions import KpiSettings
from callcore.kpi.facts import EventRow
from callcore.kpi.report import KpiData, agent_rows, agent_stats, fold, queue_rows, queue_stats

DAY = datetime(2026, 3, 2, tzinfo=timezone.utc)
START, END = DAY + timedelta(hours=9), DAY + timedelta(hours=11)
SETTINGS = KpiSettings(timezone="UTC", queues=("sales", "support"), agents=("a1", "a2"),
                       queue_agents={"sales": frozenset({"a1", "a2"}), "support": frozenset({"a2"})})


def at(hm: str, seconds: int = 0) -> datetime:
    h, m = (int(x) for x in hm.split(":"))
    return DAY + timedelta(hours=h, minutes=m, seconds=seconds)


def rid(n: int) -> uuid.UUID:
    return uuid.UUID(f"01900000-0000-7000-8000-{n:012d}")


def answered_then_survey(n: int, hm: str, agent: str, score: int | None, *, queue: str = "sales",
                         survey_queue: str | None = None, survey_agent: str | None = None) -> list[EventRow]:
    c = rid(n)
    rows: list[tuple[datetime, str, dict[str, Any]]] = [
        (at(hm), "call_started", {"direction": "inbound", "caller_number": f"+3161000000{n}"}),
        (at(hm), "queued", {"queue": queue, "priority": 0, "skills": {}, "position": 1}),
        (at(hm, 10), "connected", {"queue": queue, "agent": agent, "wait_seconds": 10.0}),
        (at(hm, 190), "party_left", {"agent": agent, "number": None}),
        (at(hm, 190), "variables_set", {"survey_queue": survey_queue or queue, "survey_agent": survey_agent or agent}),
        (at(hm, 190), "survey_started", {"flow": "survey", "queue": survey_queue or queue,
                                         "agent": survey_agent or agent}),
    ]
    if score is not None:
        rows.append((at(hm, 200), "variables_set", {"csat": str(score)}))
    rows.append((at(hm, 201), "survey_result", {"flow": "survey", "queue": survey_queue or queue,
                                                "agent": survey_agent or agent, "score": score}))
    rows.append((at(hm, 202), "call_ended", {}))
    return [EventRow(c, t, when, d) for when, t, d in rows]


def transferred_then_survey() -> list[EventRow]:
    """R6: sales / a1 answers at 10:30, blind-transfers to support, a2 answers there and hangs up first; the
    survey names sales / a1 (as a queue's survey could be configured to rate the first queue)."""
    c = rid(6)
    rows = [
        (at("10:30"), "call_started", {"direction": "inbound", "caller_number": "+31610000006"}),
        (at("10:30"), "queued", {"queue": "sales", "priority": 0, "skills": {}, "position": 1}),
        (at("10:30", 5), "connected", {"queue": "sales", "agent": "a1", "wait_seconds": 5.0}),
        (at("10:32"), "transferred", {"kind": "blind", "from_agent": "a1", "to_queue": "support"}),
        (at("10:32"), "queued", {"queue": "support", "priority": 0, "skills": {}, "position": 1}),
        (at("10:32", 5), "connected", {"queue": "support", "agent": "a2", "wait_seconds": 5.0}),
        (at("10:35"), "party_left", {"agent": "a2", "number": None}),
        (at("10:35", 20), "survey_result", {"flow": "survey", "queue": "sales", "agent": "a1", "score": 4}),
        (at("10:35", 21), "call_ended", {}),
    ]
    return [EventRow(c, t, when, d) for when, t, d in rows]


@pytest.fixture(scope="module")
def folded():
    events = [*answered_then_survey(1, "09:10", "a1", 5), *answered_then_survey(2, "09:20", "a1", 4),
              *answered_then_survey(3, "09:40", "a2", 2), *answered_then_survey(4, "09:50", "a2", None),
              *answered_then_survey(5, "10:15", "a1", 3), *transferred_then_survey()]
    return fold(KpiData(START, END, END, events, [], [], [], []), SETTINGS, "1h")


def test_queue_csat_per_interval(folded):
    q = queue_stats(folded)
    # 09:00: 5, 4, 2 answered; R4 gave no answer. mean (5 + 4 + 2) / 3; satisfied (4 or 5): 2 of 3
    s9 = q[("sales", 0)]
    assert (s9.csat_responses, s9.csat_total, s9.csat_satisfied) == (3, 11, 2)
    assert s9.csat_average == pytest.approx(11 / 3) and s9.csat_satisfied_rate == pytest.approx(2 / 3)
    # 10:00: R5 3 (a1), R6 4 rates sales/a1 (the survey says so, not the last answered segment in support)
    s10 = q[("sales", 1)]
    assert (s10.csat_responses, s10.csat_average, s10.csat_satisfied_rate) == (2, 3.5, 0.5)
    assert q[("support", 1)].csat_responses == 0


def test_agent_csat_per_interval(folded):
    a = agent_stats(folded)
    assert (a[("a1", 0)].csat_responses, a[("a1", 0)].csat_average, a[("a1", 0)].csat_satisfied_rate) == (2, 4.5, 1.0)
    assert (a[("a2", 0)].csat_responses, a[("a2", 0)].csat_average, a[("a2", 0)].csat_satisfied_rate) == (1, 2.0, 0.0)
    assert (a[("a1", 1)].csat_responses, a[("a1", 1)].csat_average) == (2, 3.5)
    assert a[("a2", 1)].csat_responses == 0


def test_rows_print_the_average_and_the_satisfied_share(folded):
    (s9, s10) = queue_rows(folded, "sales")
    assert (s9.csat_responses, s9.csat_average, s9.csat_satisfied_pct) == (3, 3.67, 66.67)
    assert (s10.csat_responses, s10.csat_average, s10.csat_satisfied_pct) == (2, 3.5, 50.0)
    # the whole period, from the summed counts: (11 + 7) / 5 = 3.6; satisfied 3 of 5
    (whole,) = queue_rows(fold(folded.data, SETTINGS, None), "sales")
    assert (whole.csat_responses, whole.csat_average, whole.csat_satisfied_pct) == (5, 3.6, 60.0)
    (a2_9, _a2_10) = agent_rows(folded, "a2")
    assert (a2_9.csat_responses, a2_9.csat_average, a2_9.csat_satisfied_pct) == (1, 2.0, 0.0)
