"""Every KPI of the scripted morning (tests/unit/kpi/scenario.py), computed by hand, against the pure fold.

Period 09:00-11:00 UTC in 1-hour intervals, as of 11:00. Hand computations are in the comments; ratios are
checked as fractions (definitions) and as the rounded percentages the API and CLI print (rows).
"""

from __future__ import annotations

import pytest

from callcore.kpi.report import (
    KpiData,
    agent_rows,
    agent_stats,
    campaign_rows,
    campaign_stats,
    fold,
    ivr_stats,
    queue_rows,
    queue_stats,
)
from tests.unit.kpi import scenario as sc

H9, H10 = 0, 1  # bucket indexes: 09:00-10:00, 10:00-11:00
START, END = sc.at("09:00:00"), sc.at("11:00:00")


@pytest.fixture(scope="module")
def folded():
    data = KpiData(START, END, sc.AS_OF, sc.events(), sc.wraps(), sc.agent_rows(START, END), sc.call_starts(),
                   sc.attempts())
    return fold(data, sc.SETTINGS, "1h")


def approx(x: float) -> object:
    return pytest.approx(x, abs=1e-9)


def test_sales_09(folded):
    q = queue_stats(folded)[("sales", H9)]
    # offered in 09:00-10:00: C1, C2, C3 (first segment), C4, C5
    assert q.offered == 5 and q.transferred_in == 0 and q.overflow_in == 0
    # answered: C1 (wait 10 <= 20: within), C3 (wait 45: not within)
    assert (q.answered, q.answered_within_target) == (2, 1)
    # abandoned: C2 (3 s: short), C4 (30 s > 20: after target), C5 (12 s)
    assert (q.abandoned, q.short_abandoned, q.abandoned_counted, q.abandoned_after_target) == (3, 1, 2, 1)
    # SL = within / (answered + abandoned after T) = 1 / (2 + 1)
    assert q.service_level == approx(1 / 3)
    # abandon rate = (3 - 1) / (5 - 1)
    assert q.abandon_rate == approx(0.5)
    # ASA = (10 + 45) / 2; longest answered wait 45; mean abandon wait (counted ones) = (30 + 12) / 2
    assert q.asa_seconds == approx(27.5) and q.max_answer_wait_seconds == 45
    assert q.avg_abandon_wait_seconds == approx(21.0)
    # handled: C1 talk 300 hold 0 wrap 30; C3 talk 300 - 60 = 240, hold 60, wrap 60
    assert q.handled == 2
    assert (q.talk_seconds, q.hold_seconds, q.wrap_up_seconds) == (540, 60, 90)
    # AHT = (540 + 60 + 90) / 2
    assert q.aht_seconds == approx(345.0)
    assert (q.avg_talk_seconds, q.avg_hold_seconds, q.avg_wrap_up_seconds) == (270, 30, 45)
    # C3 was transferred by a1: 1 / 2 answered
    assert q.transferred_out == 1 and q.transfer_rate == approx(0.5)
    # FCR (first answered segment here): C1 (called again at 10:45: not resolved), C3 (resolved) -> 1 / 2
    assert (q.fcr_eligible, q.fcr_resolved, q.fcr_rate) == (2, 1, 0.5)
    # CSAT (last answered segment here): C1 rated 4 by survey S1 -> avg 4, satisfied 1 / 1
    assert (q.csat_responses, q.csat_average, q.csat_satisfied_rate) == (1, 4.0, 1.0)
    # occupancy of a1 + a2 in 09-10: busy (600 + 90) + (240 + 10) = 940; staffed 3600 + (2700 - 285) = 6015
    assert q.occupancy == approx(940 / 6015)
    # patience: time in queue of those who left it (10 + 45 + 30 + 12 = 97) / 2 counted abandons
    assert q.patience_seconds == approx(48.5)


def test_support_09(folded):
    q = queue_stats(folded)[("support", H9)]
    # C3's second segment: transferred in 09:25:46, a2 answers after 20 s (target 30: within), talk 240, wrap 10
    assert (q.offered, q.transferred_in, q.answered, q.answered_within_target) == (1, 1, 1, 1)
    assert q.service_level == 1.0 and q.abandon_rate == 0.0 and q.asa_seconds == 20.0
    assert q.aht_seconds == approx(250.0) and q.transfer_rate == 0.0
    # FCR counts where the call was first answered (sales): nothing here
    assert q.fcr_eligible == 0 and q.fcr_rate is None
    # C3's csat=2 goes to its last answered segment: support; 2 is not satisfied
    assert (q.csat_responses, q.csat_average, q.csat_satisfied_rate) == (1, 2.0, 0.0)
    # members a2 (busy 250, staffed 2415) and a3 (not logged in)
    assert q.occupancy == approx(250 / 2415)


def test_sales_10(folded):
    q = queue_stats(folded)[("sales", H10)]
    # C9 (overflowed after 120 s), C10 (virtual hold, answered on the callback), C11 (waiting)
    assert (q.offered, q.answered, q.overflowed, q.waiting, q.abandoned, q.virtual_hold) == (3, 1, 1, 1, 0, 0)
    # C10's wait runs from its queued 10:20:00 to a1 answering the callback 10:30:05 = 605 s (> 20)
    assert q.answered_within_target == 0 and q.asa_seconds == 605.0
    # SL = 0 / (1 + 0); abandon rate 0 / 3
    assert q.service_level == 0.0 and q.abandon_rate == 0.0
    # C10 handled on K10: talk 180, wrap 30
    assert q.handled == 1 and q.aht_seconds == approx(210.0)
    assert (q.fcr_eligible, q.fcr_resolved) == (1, 1)
    # members a1 (busy 210, staffed 3000 - 600 paused = 2400) and a2 (busy 150, staffed 2700)
    assert q.occupancy == approx(360 / 5100)
    # no abandons: patience not observed
    assert q.patience_seconds is None


def test_support_10(folded):
    q = queue_stats(folded)[("support", H10)]
    # C9 overflowed in (answered after 10 s), C12 (answered after 5 s, still talking)
    assert (q.offered, q.overflow_in, q.answered, q.answered_within_target) == (2, 1, 2, 2)
    assert q.service_level == 1.0 and q.asa_seconds == approx(7.5)
    # only C9 is completely handled: talk 120 + wrap 30
    assert q.handled == 1 and q.aht_seconds == approx(150.0)
    # FCR: C9 and C12 first answered here, neither called again
    assert (q.fcr_eligible, q.fcr_resolved, q.fcr_rate) == (2, 2, 1.0)
    # a2 busy 150 staffed 2700; a3 busy 295 (on_call 10:55:05-11:00) staffed 600
    assert q.occupancy == approx(445 / 3300)


def test_queue_rows_print_percentages(folded):
    rows = {(r.queue, r.start.hour): r for r in queue_rows(folded)}
    assert len(rows) == 4
    r = rows[("sales", 9)]
    assert (r.service_level_pct, r.abandon_rate_pct, r.asa_seconds, r.aht_seconds) == (33.33, 50.0, 27.5, 345.0)
    assert (r.fcr_pct, r.csat_average, r.csat_satisfied_pct, r.occupancy_pct) == (50.0, 4.0, 100.0, 15.63)
    assert r.start == sc.at("09:00:00") and r.end == sc.at("10:00:00") and r.target_seconds == 20.0
    assert rows[("support", 10)].occupancy_pct == 13.48  # 445 / 3300 = 13.4848..%


def test_agents(folded):
    a = agent_stats(folded)
    a1 = a[("a1", H9)]
    # a1 answered C1 and C3 (sales 09): handle 330 + 360, one transfer; FCR C1 no, C3 yes; CSAT C1 = 4
    assert (a1.answered, a1.handled, a1.aht_seconds, a1.transferred_out) == (2, 2, 345.0, 1)
    assert (a1.fcr_eligible, a1.fcr_resolved, a1.csat_average) == (2, 1, 4.0)
    # time 09-10: ready 10 + 865 + 1995, reserved 10 + 30, on_call 300 + 300, wrap 30 + 60
    assert (a1.ready_seconds, a1.reserved_seconds, a1.on_call_seconds, a1.wrap_up_state_seconds) == (
        2870, 40, 600, 90)
    assert a1.logged_in_seconds == 3600 and a1.occupancy == approx(690 / 3600)
    a2 = a[("a2", H9)]
    # a2 let C3 ring out, then took C3 in support: talk 240 + wrap 10; CSAT 2
    assert (a2.answered, a2.no_answers, a2.aht_seconds, a2.csat_average) == (1, 1, 250.0, 2.0)
    # logged in 09:15: 2700 s, 285 of them paused ("no answer")
    assert (a2.logged_in_seconds, a2.paused_seconds, a2.staffed_seconds) == (2700, 285, 2415)
    assert a2.occupancy == approx(250 / 2415)
    a1b = a[("a1", H10)]
    # C10 on the callback: 180 + 30; paused 10:40-10:50; logged out 10:50
    assert (a1b.answered, a1b.aht_seconds, a1b.paused_seconds, a1b.logged_in_seconds) == (1, 210.0, 600, 3000)
    assert a1b.occupancy == approx(210 / 2400)
    a3 = a[("a3", H10)]
    # C12: answered, still talking: not handled, no AHT; ready 300, reserved 5, on_call 295
    assert (a3.answered, a3.handled, a3.aht_seconds, a3.on_call_seconds) == (1, 0, None, 295)
    assert a3.occupancy == approx(295 / 600)
    assert a[("a3", H9)].logged_in_seconds == 0 and a[("a3", H9)].occupancy is None
    rows = {(r.agent, r.start.hour): r for r in agent_rows(folded)}
    assert len(rows) == 6 and rows[("a1", 9)].occupancy_pct == 19.17 and rows[("a2", 9)].occupancy_pct == 10.35


def test_ivr(folded):
    ivr = ivr_stats(folded)
    # 09: C1 (to queue), C6 (contained); S1 is an outbound survey call: not an IVR contact
    m9 = ivr[("main", H9)]
    assert (m9.calls, m9.contained, m9.to_queue, m9.containment_rate) == (2, 1, 1, 0.5)
    assert ("survey", H9) not in ivr
    # 10: C8 hung up inside the flow
    m10 = ivr[("main", H10)]
    assert (m10.calls, m10.abandoned, m10.containment_rate) == (1, 1, 0.0)


def test_campaign(folded):
    c = campaign_stats(folded)[("retention", H9)]
    # 8 attempts; a person answered in 3 (human) + 1 (abandoned outcome) = 4
    assert (c.attempts, c.human, c.abandoned_outcome, c.live_answers) == (8, 3, 1, 4)
    assert (c.machine, c.busy, c.no_answer, c.failed) == (1, 1, 1, 1)
    # contact rate 4 / 8; conversion: 1 retained / 3 contacts; abandoned (policy column) 2 / 4 live answers
    assert c.contact_rate == 0.5 and c.conversion_rate == approx(1 / 3) and c.abandon_rate == 0.5
    # talk (120 + 60 + 30) / 3; agents a1 + a2 staffed 3600 + 2415 s -> 3 / (6015 / 3600) connects per hour
    assert c.avg_talk_seconds == approx(70.0)
    assert c.agent_seconds == 6015 and c.connects_per_agent_hour == approx(3 * 3600 / 6015)
    empty = campaign_stats(folded)[("retention", H10)]
    assert empty.attempts == 0 and empty.contact_rate is None
    row = next(r for r in campaign_rows(folded) if r.start.hour == 9)
    assert (row.contact_rate_pct, row.conversion_pct, row.abandon_rate_pct, row.connects_per_agent_hour) == (
        50.0, 33.33, 50.0, 1.8)


def test_whole_period_is_the_sum_of_its_intervals():
    """No interval: one row for 09-11. Counts add up; ratios are recomputed from the sums (not averaged)."""
    data = KpiData(START, END, sc.AS_OF, sc.events(), sc.wraps(), sc.agent_rows(START, END), sc.call_starts())
    q = queue_stats(fold(data, sc.SETTINGS, None))[("sales", 0)]
    assert (q.offered, q.answered, q.answered_within_target, q.abandoned_after_target) == (8, 3, 1, 1)
    # SL = 1 / (3 + 1); ASA = (10 + 45 + 605) / 3
    assert q.service_level == 0.25 and q.asa_seconds == approx(220.0)


def test_short_abandon_threshold_and_target_are_parameters():
    from dataclasses import replace

    data = KpiData(START, END, sc.AS_OF, sc.events(), sc.wraps(), sc.agent_rows(START, END), sc.call_starts())
    settings = replace(sc.SETTINGS, short_abandon_seconds=0.0, targets={"sales": (80.0, 60.0)})
    q = queue_stats(fold(data, settings, "1h"))[("sales", H9)]
    # nothing short; T = 60: C1 and C3 within, no abandon after 60 s -> SL 2 / 2; abandon rate 3 / 5
    assert (q.short_abandoned, q.answered_within_target, q.abandoned_after_target) == (0, 2, 0)
    assert q.service_level == 1.0 and q.abandon_rate == approx(0.6)
