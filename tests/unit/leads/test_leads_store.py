"""The dialer's queries against a real PostgreSQL: due leads, dial-time checks, retries, dispositions,
callbacks, the UK 72-hour rule and the abandonment ledger."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from callcore.campaigns.model import CampaignConfig
from callcore.leads import dnc, store
from callcore.leads.store import Attempt

UTC = timezone.utc
# Wednesday 1 July 2026, 10:00 UTC = 12:00 in Amsterdam, 06:00 in New York.
NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def campaign(**kw) -> CampaignConfig:
    base = dict(caller_id="+31881234567", default_region="NL", queue="retention", compliance_message=["x"],
                windows=[{"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-20:30"}])
    return CampaignConfig(**{**base, **kw})


NL = campaign()


async def add(pool, number: str, c: CampaignConfig = NL, name: str = "c", **kw) -> store.Lead:
    lead = await store.add_lead(pool, name, c, number, now=kw.pop("now", NOW - timedelta(hours=1)), **kw)
    assert lead is not None
    return lead


async def test_claim_picks_due_callable_leads_best_first_and_only_once(pg_pool) -> None:
    a = await add(pg_pool, "0612345671")
    b = await add(pg_pool, "0612345672", priority=5)
    await add(pg_pool, "0612345673", now=NOW + timedelta(hours=1))  # not due yet
    ny = await add(pg_pool, "+12125550123")  # 06:00 in New York: outside the windows
    await add(pg_pool, "0612345674", name="other")  # another campaign
    assert await store.add_lead(pg_pool, "c", NL, "06-12345671", now=NOW) is None  # already there
    assert [x.id for x in await store.due_leads(pg_pool, "c", NL, now=NOW)] == [b.id, a.id]

    claimed, again = await asyncio.gather(
        store.claim_due_leads(pg_pool, "c", NL, now=NOW, limit=10),
        store.claim_due_leads(pg_pool, "c", NL, now=NOW, limit=10),
    )
    assert sorted(x.id for x in claimed + again) == sorted([a.id, b.id])  # never twice
    assert all(x.status == "dialing" for x in claimed + again)
    assert await store.claim_due_leads(pg_pool, "c", NL, now=NOW, limit=10) == []
    assert await store.release_leads(pg_pool, [a.id], now=NOW) == 1  # not dialled after all
    assert (await store.get_lead(pg_pool, a.id)).status == "pending"
    # Three hours later New York is at 09:00 and the third lead is due; a was given back.
    later = NOW + timedelta(hours=3)
    got = await store.claim_due_leads(pg_pool, "c", NL, now=later, limit=10)
    assert [x.number for x in got] == [a.number, ny.number, "+31612345673"]  # due longest first
    assert await store.recover_claims(pg_pool, "c", now=later + timedelta(minutes=1)) == 1  # only b is stale
    assert await store.recover_claims(pg_pool, "c", now=later + timedelta(hours=1)) == 3
    assert await store.lead_counts(pg_pool, "c") == {"pending": 4}


async def test_do_not_call_is_checked_at_dial_time(pg_pool) -> None:
    lead = await add(pg_pool, "0612345678")
    await dnc.add(pg_pool, "06-12345678", region="NL", campaign="other", now=NOW)
    assert [x.id for x in await store.due_leads(pg_pool, "c", NL, now=NOW)] == [lead.id]
    assert await store.may_dial(pg_pool, "c", NL, lead, now=NOW) is None
    # Listed after the import: the lead is skipped from now on, without being touched.
    await dnc.add(pg_pool, "06-12345678", region="NL", campaign="c", now=NOW)
    assert await store.claim_due_leads(pg_pool, "c", NL, now=NOW, limit=5) == []
    assert await store.may_dial(pg_pool, "c", NL, lead, now=NOW) == "on the campaign's do-not-call list"
    await dnc.remove(pg_pool, "06-12345678", region="NL", campaign="c", now=NOW)
    await dnc.add(pg_pool, "06-12345678", region="NL", now=NOW, expires_at=NOW + timedelta(days=1))
    assert await store.may_dial(pg_pool, "c", NL, lead, now=NOW) == "on the global do-not-call list"
    assert await store.due_leads(pg_pool, "c", NL, now=NOW) == []
    # The entry lapses.
    assert [x.id for x in await store.due_leads(pg_pool, "c", NL, now=NOW + timedelta(days=2))] == [lead.id]
    sunday = NOW + timedelta(days=4)
    assert await store.may_dial(pg_pool, "c", NL, lead, now=sunday) == (
        "outside the calling windows in the callee's time zone")


async def test_retry_rules_per_outcome_and_max_attempts(pg_pool) -> None:
    c = campaign(retry={"busy": {"delay": 600, "max_attempts": 2}, "no_answer": {"delay": 3600, "max_attempts": 5}},
                 max_attempts=3)
    lead = await add(pg_pool, "0612345678", c)
    t = NOW
    u = await store.record_attempt(pg_pool, "c", c, Attempt(lead_id=lead.id, number=lead.number, started_at=t,
                                                             outcome="busy", ring_seconds=3.0), now=t)
    assert (u.status, u.next_attempt_at) == ("pending", t + timedelta(seconds=600))
    # A no-answer at 18:00 UTC (20:00 in Amsterdam): +1 h is outside the window → next morning 09:00.
    t2 = datetime(2026, 7, 1, 18, 0, tzinfo=UTC)
    u = await store.record_attempt(pg_pool, "c", c, Attempt(lead_id=lead.id, number=lead.number, started_at=t2,
                                                             ended_at=t2 + timedelta(seconds=25),
                                                             outcome="no_answer", ring_seconds=25.0), now=t2)
    assert (u.status, u.next_attempt_at) == ("pending", datetime(2026, 7, 2, 7, 0, tzinfo=UTC))
    u = await store.record_attempt(pg_pool, "c", c, Attempt(lead_id=lead.id, number=lead.number, started_at=t2,
                                                             outcome="busy"), now=t2)
    assert u.status == "exhausted" and u.next_attempt_at is None  # busy twice (its max_attempts 2)
    row = await store.get_lead(pg_pool, lead.id)
    assert (row.attempts, row.last_outcome, row.status) == (3, "busy", "exhausted")
    history = await store.attempts_of(pg_pool, lead.id)
    assert [h["outcome"] for h in history] == ["busy", "no_answer", "busy"]
    assert history[0]["ring_seconds"] == 3.0 and history[0]["mode"] == "progressive"

    other = await add(pg_pool, "0612345679", c)
    for i, outcome in enumerate(["no_answer", "failed", "no_answer"]):
        u = await store.record_attempt(pg_pool, "c", c, Attempt(lead_id=other.id, number=other.number,
                                                                 started_at=NOW + timedelta(minutes=i),
                                                                 outcome=outcome), now=NOW)
    assert u.status == "exhausted"  # the campaign's max_attempts (3) over all outcomes


async def test_attempts_are_idempotent_and_validated(pg_pool) -> None:
    lead = await add(pg_pool, "0612345678")
    aid = uuid.uuid4()
    a = Attempt(lead_id=lead.id, number=lead.number, started_at=NOW, outcome="busy", attempt_id=aid)
    first = await store.record_attempt(pg_pool, "c", NL, a, now=NOW)
    second = await store.record_attempt(pg_pool, "c", NL, a, now=NOW)
    assert not first.duplicate and second.duplicate
    assert (await store.get_lead(pg_pool, lead.id)).attempts == 1
    with pytest.raises(ValueError, match="unknown outcome"):
        Attempt(number="+31612345678", started_at=NOW, outcome="answered")
    with pytest.raises(ValueError, match="timezone-aware"):
        Attempt(number="+31612345678", started_at=NOW.replace(tzinfo=None), outcome="busy")
    # An attempt without a lead (a manual dial) is stored all the same.
    u = await store.record_attempt(pg_pool, "c", NL, Attempt(number="+31201234567", started_at=NOW,
                                                             outcome="failed", hangup_cause=34), now=NOW)
    assert u.lead_id is None and await pg_pool.fetchval("SELECT count(*) FROM lead_attempts") == 2


async def test_dispositions_close_retry_add_to_dnc_or_schedule_a_callback(pg_pool) -> None:
    c = campaign(dispositions={
        "sale": {"is_success": True},
        "later": {"retry_as": "no_answer"},
        "dnc": {"adds_to_dnc": True},
        "dnc_here": {"adds_to_dnc": True, "dnc_scope": "campaign"},
        "callback": {"schedules_callback": True},
    })

    async def talk(number: str, disposition: str | None = None, **kw):
        lead = await add(pg_pool, number, c)
        u = await store.record_attempt(pg_pool, "c", c, Attempt(
            lead_id=lead.id, number=lead.number, started_at=NOW, answered_at=NOW + timedelta(seconds=9),
            ended_at=NOW + timedelta(minutes=5), outcome="human", agent_id="agent04", connect_delay_seconds=0.4,
            talk_seconds=291.0, disposition=disposition), now=NOW)
        return lead, u

    lead, u = await talk("0612345601")
    assert u.status == "connected" and not u.abandoned
    u = await store.set_disposition(pg_pool, "c", c, u.attempt_id, "sale", agent_id="agent04", now=NOW)
    assert u.status == "done" and (await store.get_lead(pg_pool, lead.id)).disposition == "sale"

    lead, u = await talk("0612345602", "later")  # the disposition may come with the attempt
    assert u.status == "pending" and u.next_attempt_at == NOW + timedelta(minutes=5, hours=3)

    lead, u = await talk("0612345603", "dnc")
    assert u.status == "dnc"
    (entry,) = await dnc.check(pg_pool, lead.number, region="NL", all_campaigns=True, now=NOW)
    assert entry.campaign is None and entry.source == "disposition:agent04" and entry.reason == "disposition dnc"
    lead, u = await talk("0612345604", "dnc_here")
    assert [e.campaign for e in await dnc.check(pg_pool, lead.number, region="NL", all_campaigns=True, now=NOW)] == [
        "c"]

    lead, u = await talk("0612345605")
    with pytest.raises(KeyError, match="no disposition 'maybe'"):
        await store.set_disposition(pg_pool, "c", c, u.attempt_id, "maybe", now=NOW)
    with pytest.raises(ValueError, match="give the time"):
        await store.set_disposition(pg_pool, "c", c, u.attempt_id, "callback", now=NOW)
    with pytest.raises(ValueError, match="outside the campaign's calling windows; the next allowed time is "
                                         "2026-07-02 09:00 Europe/Amsterdam"):
        await store.set_disposition(pg_pool, "c", c, u.attempt_id, "callback", now=NOW,
                                    callback_at=datetime(2026, 7, 1, 21, 0))
    u = await store.set_disposition(pg_pool, "c", c, u.attempt_id, "callback", agent_id="agent04", now=NOW,
                                    callback_at=datetime(2026, 7, 2, 14, 30), note="na de lunch")
    assert u.status == "callback" and u.next_attempt_at == datetime(2026, 7, 2, 12, 30, tzinfo=UTC)
    (cb,) = await store.callbacks_of(pg_pool, "c")
    assert (cb.due_local, cb.owner_agent, cb.note, cb.lead_id) == (
        "2026-07-02 14:30 Europe/Amsterdam", "agent04", "na de lunch", lead.id)
    assert (await store.get_lead(pg_pool, lead.id)).status == "callback"
    assert lead.id not in [x.id for x in await store.due_leads(pg_pool, "c", c, now=NOW + timedelta(days=1))]


async def test_callbacks_at_callee_local_time_owned_or_for_anyone(pg_pool) -> None:
    us = campaign(caller_id="+12125550100", default_region="US", timezone="America/Chicago",
                  windows=[{"hours": "08:00-21:00"}], abandon={"preset": "us_ftc"})
    ny = await add(pg_pool, "(212) 555-0123", us)
    la = await add(pg_pool, "(415) 555-0199", us)
    # 09:00 on each callee's own clock, on 2 July.
    cb_ny = await store.schedule_callback(pg_pool, "c", us, lead_id=ny.id, when=datetime(2026, 7, 2, 9, 0),
                                          owner_agent="agent01", now=NOW)
    cb_la = await store.schedule_callback(pg_pool, "c", us, lead_id=la.id, when=datetime(2026, 7, 2, 9, 0), now=NOW)
    assert cb_ny.due_at == datetime(2026, 7, 2, 13, 0, tzinfo=UTC) and cb_la.due_at == datetime(2026, 7, 2, 16, 0,
                                                                                               tzinfo=UTC)
    assert cb_la.due_local == "2026-07-02 09:00 America/Los_Angeles" and cb_la.owner_agent is None
    # A new callback for a lead replaces its open one.
    cb_ny = await store.schedule_callback(pg_pool, "c", us, lead_id=ny.id, when=datetime(2026, 7, 2, 9, 30),
                                          owner_agent="agent01", now=NOW)
    assert len(await store.callbacks_of(pg_pool, "c")) == 2
    assert len(await store.callbacks_of(pg_pool, "c", status="cancelled")) == 1
    # A bare number (a web "call me" request) gets the number's zone.
    web = await store.schedule_callback(pg_pool, "c", us, number="+1 312 555 0142", when=datetime(2026, 7, 2, 10, 0),
                                        now=NOW)
    assert web.timezone == "America/Chicago" and web.lead_id is None
    with pytest.raises(ValueError, match="in the past"):
        await store.schedule_callback(pg_pool, "c", us, lead_id=la.id, when=NOW - timedelta(hours=2), now=NOW)

    t = datetime(2026, 7, 2, 16, 30, tzinfo=UTC)  # all three due
    # agent01 is not available: its callback waits; the others go to anyone.
    got = await store.claim_due_callbacks(pg_pool, "c", us, now=t, limit=10, agents=["agent02"])
    assert [g.id for g in got] == [web.id, cb_la.id]
    await dnc.add(pg_pool, "(212) 555-0123", region="US", now=t)
    assert await store.claim_due_callbacks(pg_pool, "c", us, now=t, limit=10, agents=["agent01"]) == []  # DNC now
    await store.finish_callback(pg_pool, web.id, "done", now=t)
    assert [c.id for c in await store.callbacks_of(pg_pool, "c", status="done")] == [web.id]
    with pytest.raises(ValueError):
        await store.finish_callback(pg_pool, web.id, "dialing", now=t)


async def test_uk_72_hour_rule_after_an_abandoned_call(pg_pool) -> None:
    uk = campaign(abandon={"preset": "uk_ofcom"}, retry={"abandoned": {"delay": 3600, "max_attempts": 3}},
                  windows=[{"hours": "09:00-20:30"}])  # every day
    us = campaign(abandon={"preset": "us_ftc"}, retry={"abandoned": {"delay": 3600, "max_attempts": 3}})
    lead = await add(pg_pool, "0612345678", uk, "uk")
    twin = await add(pg_pool, "0612345678", us, "us")
    u = await store.record_attempt(pg_pool, "uk", uk, Attempt(
        lead_id=lead.id, number=lead.number, started_at=NOW, answered_at=NOW + timedelta(seconds=8),
        ended_at=NOW + timedelta(seconds=12), outcome="abandoned", ring_seconds=8.0), now=NOW)
    assert u.abandoned and u.status == "pending" and u.next_attempt_at == NOW + timedelta(seconds=3612)

    day2 = NOW + timedelta(days=1)
    assert await store.due_leads(pg_pool, "uk", uk, now=day2) == []
    assert await store.may_dial(pg_pool, "uk", uk, lead, now=day2) == (
        "a call to this number was abandoned within the last 72 h (no agent guaranteed)")
    # With an agent guaranteed (preview, or an agent reserved) the number may be called.
    assert [x.id for x in await store.claim_due_leads(pg_pool, "uk", uk, now=day2, limit=5, agent_guaranteed=True)
            ] == [lead.id]
    assert await store.may_dial(pg_pool, "uk", uk, lead, now=day2, agent_guaranteed=True) is None
    # The US preset has no such rule.
    assert [x.id for x in await store.due_leads(pg_pool, "us", us, now=day2)] == [twin.id]
    await store.release_leads(pg_pool, [lead.id], now=day2)
    # Exactly 72 hours after the abandoned call it is callable again.
    assert await store.due_leads(pg_pool, "uk", uk, now=NOW + timedelta(hours=71, minutes=59)) == []
    assert [x.id for x in await store.due_leads(pg_pool, "uk", uk, now=NOW + timedelta(hours=72, minutes=1))] == [
        lead.id]
    assert await store.recently_abandoned(pg_pool, lead.number, now=day2, seconds=72 * 3600)

    # A person who waited longer than agent_connect_seconds for an agent counts as abandoned too.
    late = await add(pg_pool, "0612345679", uk, "uk")
    u = await store.record_attempt(pg_pool, "uk", uk, Attempt(
        lead_id=late.id, number=late.number, started_at=NOW, outcome="human", connect_delay_seconds=2.6,
        agent_id="agent04"), now=NOW)
    assert u.abandoned and u.status == "connected"
    assert await store.recently_abandoned(pg_pool, late.number, now=day2, seconds=72 * 3600)


async def test_ambiguous_numbers_with_ambiguous_timezone_all(pg_pool) -> None:
    base = dict(caller_id="+12125550100", default_region="US", timezone="America/New_York",
                windows=[{"hours": "09:00-20:00"}], abandon={"preset": "us_ftc"})
    fallback = campaign(**base)
    strict = campaign(**base, ambiguous_timezone="all")
    lead = await add(pg_pool, "+1 800 555 0199", fallback)  # toll-free: from Guam to Adak
    assert lead.tz_source == "campaign" and len(lead.timezones) > 5
    t = datetime(2026, 7, 1, 15, 0, tzinfo=UTC)  # 11:00 in New York, 05:00 in Honolulu
    assert [x.id for x in await store.due_leads(pg_pool, "c", fallback, now=t)] == [lead.id]
    assert await store.due_leads(pg_pool, "c", strict, now=t) == []
    assert await store.may_dial(pg_pool, "c", strict, lead, now=t) is not None


async def test_abandonment_ledger_by_window_and_rolling(pg_pool) -> None:
    uk = campaign(abandon={"preset": "uk_ofcom"}, amd={"enabled": True, "false_positive_estimate": 0.1})
    day = datetime(2026, 7, 1, tzinfo=UTC)

    async def attempt(at: datetime, outcome: str, **kw) -> None:
        await store.record_attempt(pg_pool, "c", uk, Attempt(number="+31612345678", started_at=at, outcome=outcome,
                                                             **kw), now=at)

    # Day 1: 40 live answers, 1 abandoned (+1 person who waited 3 s), 10 machines (1 false positive estimated).
    for i in range(38):
        await attempt(day + timedelta(hours=9, minutes=i), "human", connect_delay_seconds=0.5)
    await attempt(day + timedelta(hours=12), "abandoned")
    await attempt(day + timedelta(hours=12, minutes=1), "human", connect_delay_seconds=3.0)
    for i in range(10):
        await attempt(day + timedelta(hours=13, minutes=i), "machine", amd_status="MACHINE")
    for i in range(5):
        await attempt(day + timedelta(hours=14, minutes=i), "no_answer")
    # Day 2: quiet. Day 3: 10 live answers, 1 abandoned: 10 %.
    for i in range(9):
        await attempt(day + timedelta(days=2, hours=10, minutes=i), "human", connect_delay_seconds=1.0)
    await attempt(day + timedelta(days=2, hours=11), "abandoned")
    await attempt(day + timedelta(days=4), "abandoned")  # outside the report

    ledger = await store.abandonment_ledger(pg_pool, "c", uk, since=day, until=day + timedelta(days=3))
    assert [(w.attempts, w.live_answers, w.abandoned, w.machine) for w in ledger] == [
        (55, 40, 2, 10), (0, 0, 0, 0), (10, 10, 1, 0)]
    d1 = ledger[0]
    assert d1.false_positives == pytest.approx(1.0)
    assert d1.rate == pytest.approx(3 / 41) and not d1.passed and d1.limit == 0.03
    assert ledger[1].rate == 0 and ledger[1].passed
    assert ledger[2].rate == pytest.approx(0.1) and ledger[2].end == day + timedelta(days=3)
    assert ledger[0].as_dict()["passed"] is False

    rolling = await store.current_abandon_rate(pg_pool, "c", uk, now=day + timedelta(days=2, hours=12))
    assert (rolling.live_answers, rolling.abandoned) == (10, 1)
    # Without counting false positives (an override), day 1 is 2/40 = 5 %.
    no_fp = campaign(abandon={"preset": "uk_ofcom", "count_machine_false_positives": False},
                     amd={"enabled": True, "false_positive_estimate": 0.1})
    (d1,) = await store.abandonment_ledger(pg_pool, "c", no_fp, since=day, until=day + timedelta(days=1))
    assert d1.false_positives == 0 and d1.rate == pytest.approx(0.05)
    # The US preset measures 30 days: one window holds all of it; partial last window ends at `until`.
    us = campaign(abandon={"preset": "us_ftc"})
    (month,) = await store.abandonment_ledger(pg_pool, "c", us, since=day, until=day + timedelta(days=10))
    assert (month.live_answers, month.abandoned) == (51, 4) and month.end == day + timedelta(days=10)
    assert await store.first_attempt_at(pg_pool, "c") == day + timedelta(hours=9)


async def test_an_attempt_never_reopens_a_closed_lead(pg_pool) -> None:
    lead = await add(pg_pool, "0612345678")
    await pg_pool.execute("UPDATE leads SET status = 'cancelled' WHERE id = $1", lead.id)
    u = await store.record_attempt(pg_pool, "c", NL, Attempt(lead_id=lead.id, number=lead.number, started_at=NOW,
                                                             outcome="busy"), now=NOW)
    row = await store.get_lead(pg_pool, lead.id)
    assert u.status == "cancelled" and (row.status, row.attempts, row.last_outcome) == ("cancelled", 1, "busy")
