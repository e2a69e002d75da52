"""The dialer on real phones: a progressive campaign over a 30-lead CSV against the simulated phone network
(sipp: people, busy lines, no answer, answering machines), sipp agent phones, real Asterisk with AMD(), and
PostgreSQL. What the network received (sipp's SIP trace) and what PostgreSQL says must agree."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcore.app import CallcoreApp
from callcore.leads import dnc
from callcore.leads.csv_import import import_leads
from tests.integration.conftest import app_from_yaml
from tests.sip import AgentPhone, PstnNetwork
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
CONFIG = Path(__file__).resolve().parents[1] / "data" / "dialer_test.yaml"
ZONES = ["Pacific/Kiritimati", "Pacific/Auckland", "Asia/Tokyo", "Asia/Kolkata", "Europe/Amsterdam",
         "America/Sao_Paulo", "America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "Pacific/Pago_Pago"]


def zone_at(hours: range) -> str:
    """A time zone whose local hour now is in ``hours`` (the calling window is 08:00-21:00 local)."""
    now = datetime.now(timezone.utc)
    for name in ZONES:
        if now.astimezone(ZoneInfo(name)).hour in hours:
            return name
    raise AssertionError(f"no zone with a local hour in {hours}")


@pytest.fixture
async def dialer_app(asterisk, pg_dsn, tmp_path, monkeypatch):
    async with app_from_yaml(CONFIG.read_text(), pg_dsn, tmp_path, monkeypatch) as app:
        yield app


def number(n: int) -> str:
    return f"+316123456{n:02d}"  # the last digit picks the callee's behaviour (tests/sip/scenarios/pstn_sim.xml)


async def load_leads(app: CallcoreApp, tmp_path: Path, rows: list[tuple[int, str]]) -> None:
    csv = tmp_path / "leads.csv"
    csv.write_text("name,phone,timezone\n" + "".join(f"Lead {n},{number(n)},{tz}\n" for n, tz in rows))
    assert app.dialer is not None
    report = await import_leads(app.pool, "winback", app.dialer.run_of("winback").config, csv)
    assert report.imported == len(rows), report


async def attempts(app: CallcoreApp) -> list[dict]:
    rows = await app.pool.fetch("SELECT number, outcome, abandoned, agent_id, amd_status, connect_delay_seconds "
                                "FROM lead_attempts ORDER BY id")
    return [dict(r) for r in rows]


async def test_a_progressive_campaign_dials_its_list_right(dialer_app: CallcoreApp, tmp_path: Path):
    app = dialer_app
    assert app.dialer is not None
    day, night = zone_at(range(9, 20)), zone_at(range(0, 7))
    person, busy, no_answer, machine = [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31], \
        [4, 5, 14, 15, 24, 25], [6, 16], [8, 9, 18, 19]
    dnc_global, dnc_campaign, out_of_window = [1, 11], [21], [2, 12]
    rows = [(n, night if n in out_of_window else day) for n in person + busy + no_answer + machine]
    rows += [(40, day), (41, day), (42, day), (43, day)][: 30 - len(rows)]
    person += [40, 41, 42, 43][: 30 - len(person + busy + no_answer + machine)]
    await load_leads(app, tmp_path, rows)
    for n in dnc_global:
        await dnc.add(app.pool, number(n), region="NL", reason="asked", source="test")
    for n in dnc_campaign:
        await dnc.add(app.pool, number(n), region="NL", campaign="winback", reason="asked", source="test")
    app.acd.login("agent01")
    app.acd.login("agent02")
    never = {number(n) for n in dnc_global + dnc_campaign + out_of_window}
    reachable_people = [n for n in person if number(n) not in never]
    with AgentPhone(1, hangup_after_ms=1500) as anna, AgentPhone(2, hangup_after_ms=1500) as bob, \
            PstnNetwork() as network:
        await app.dialer.start("winback")
        expected_attempts = len(reachable_people) + 2 * len(busy) + len(no_answer) + len(machine)
        await wait_until(lambda: app.dialer.run_of("winback").dialed >= expected_attempts,
                         timeout=150, what=f"{expected_attempts} attempts")
        await wait_until(lambda: app.dialer.run_of("winback").attempts == {}, timeout=30, what="the last calls")
        await wait_until(lambda: app.runtime.live_calls == 0, timeout=15, what="every call to end")
        await asyncio.sleep(3)  # nothing more is due (retries used up): the dialer must stay quiet
        dialled = network.dialled()
        talks = anna.stats().get("SuccessfulCall(C)", 0) + bob.stats().get("SuccessfulCall(C)", 0)
    # What the network saw: never a DNC or out-of-window number; busy numbers twice, others once.
    assert never.isdisjoint(dialled), sorted(never & set(dialled))
    assert sorted(dialled) == sorted([number(n) for n in reachable_people + no_answer + machine]
                                     + [number(n) for n in busy] * 2)
    rows = await attempts(app)
    by_number: dict[str, list[str]] = {}
    for r in rows:
        by_number.setdefault(r["number"], []).append(r["outcome"])
    for n in reachable_people:
        assert by_number[number(n)] == ["human"], (n, by_number.get(number(n)))
    for n in busy:
        assert by_number[number(n)] == ["busy", "busy"]
    for n in no_answer:
        assert by_number[number(n)] == ["no_answer"]
    for n in machine:
        assert by_number[number(n)] == ["machine"]
    humans = [r for r in rows if r["outcome"] == "human"]
    assert all(r["agent_id"] in ("agent01", "agent02") and r["amd_status"] == "HUMAN" for r in humans)
    assert all(r["connect_delay_seconds"] is not None and r["connect_delay_seconds"] < 2 for r in humans)
    assert talks == len(reachable_people)
    await app.writer.flush()
    recorded = await app.pool.fetchval("SELECT count(*) FROM call_events WHERE type = 'recording_stopped'")
    assert recorded == len(reachable_people)  # the campaign's recording policy: every conversation
    assert not any(r["abandoned"] for r in rows)
    statuses = dict(await app.pool.fetch("SELECT number, status FROM leads"))
    assert all(statuses[number(n)] == "exhausted" for n in busy + no_answer + machine)
    assert all(statuses[number(n)] == "connected" for n in reachable_people)  # until the agent's disposition
    assert all(statuses[number(n)] == "pending" for n in out_of_window + dnc_global + dnc_campaign)


async def test_a_person_with_no_agent_in_time_hears_who_called_and_counts_as_abandoned(
    dialer_app: CallcoreApp, tmp_path: Path
):
    app = dialer_app
    assert app.dialer is not None
    day = zone_at(range(9, 20))
    await load_leads(app, tmp_path, [(0, day), (10, day), (20, day)])
    app.acd.login("agent03")
    # agent03's phone rings out (4 s, longer than the 2 s the law allows): the callee gets the message.
    with AgentPhone(3, ring_ms=10_000), PstnNetwork():
        await app.dialer.start("winback")
        await wait_until(lambda: app.dialer.run_of("winback").dialed >= 1, timeout=10, what="the first attempt")
        await wait_until(lambda: app.dialer.run_of("winback").attempts == {} and app.runtime.live_calls == 0,
                         timeout=40, what="the attempt to end")
        assert app.acd.agents["agent03"].state == "paused"  # no answer: auto-paused
        await asyncio.sleep(3)
        # Nobody is ready any more: the dialer must not dial the other two leads.
        assert app.dialer.run_of("winback").dialed == 1
        assert "ready" in app.dialer.run_of("winback").last_decision or app.dialer.how_many(
            app.dialer.run_of("winback")) == 0
    rows = await attempts(app)
    assert [(r["outcome"], r["abandoned"]) for r in rows] == [("abandoned", True)]
    await app.writer.flush()
    events = await app.pool.fetch("SELECT type, payload FROM call_events WHERE call_id = "
                                  "(SELECT call_id FROM lead_attempts LIMIT 1) ORDER BY id")
    types = [e["type"] for e in events]
    assert "overflow" in types and next(e["payload"] for e in events if e["type"] == "overflow")["reason"] == \
        "connect_limit"
    played = [e["payload"]["media"] for e in events if e["type"] == "playback_started"]
    assert played == ["sound:callcore/outbound-abandoned"]
    ledger = await app.pool.fetchrow("SELECT count(*) FILTER (WHERE abandoned) AS a, count(*) AS n FROM lead_attempts")
    assert (ledger["a"], ledger["n"]) == (1, 1)


async def test_preview_the_agent_sees_the_lead_dials_it_and_talks_or_skips_it(dialer_app: CallcoreApp,
                                                                               tmp_path: Path):
    from callcore.leads.csv_import import import_leads as load

    app = dialer_app
    assert app.preview is not None and app.dialer is not None
    day = zone_at(range(9, 20))
    csv = tmp_path / "preview.csv"
    csv.write_text(f"name,phone,timezone\nFirst,{number(50)},{day}\nSecond,{number(60)},{day}\n")
    await load(app.pool, "lookahead", app.dialer.run_of("lookahead").config, csv)
    app.acd.login("agent01")
    offer = await app.preview.next_lead("agent01")
    assert offer is not None and offer.campaign == "lookahead" and offer.lead.number == number(50)
    again = await app.preview.next_lead("agent01")
    assert again.lead.id == offer.lead.id  # the same lead while it is reserved
    with AgentPhone(1, hangup_after_ms=1500) as anna, PstnNetwork() as network:
        call_id = await app.preview.dial("agent01", offer.lead.id)
        await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1, timeout=20, what="the conversation")
        await wait_until(lambda: app.runtime.live_calls == 0, timeout=10, what="the call to end")
        second = await app.preview.next_lead("agent01")
        assert second is not None and second.lead.number == number(60)
        await app.preview.skip("agent01", second.lead.id, reason="not now")
        dialled = network.dialled()
    assert dialled == [number(50)]  # the skipped lead was never dialled
    row = await app.pool.fetchrow("SELECT outcome, agent_id, call_id, agent_guaranteed FROM lead_attempts")
    assert (row["outcome"], row["agent_id"], row["call_id"], row["agent_guaranteed"]) == (
        "human", "agent01", call_id, True)
    statuses = dict(await app.pool.fetch("SELECT number, status FROM leads WHERE campaign = 'lookahead'"))
    assert statuses == {number(50): "connected", number(60): "pending"}


async def test_an_agent_owned_callback_is_dialled_when_due_and_connected_to_its_owner(dialer_app: CallcoreApp,
                                                                                      tmp_path: Path):
    """Anna (agent01) and Bob (agent02) are both ready; Bob's callback, due in a few seconds, must ring the
    callee then — not before — and be put through to Bob, never to Anna."""
    from datetime import timedelta

    from callcore.leads import store

    app = dialer_app
    assert app.dialer is not None
    day = zone_at(range(9, 20))
    await load_leads(app, tmp_path, [(30, day)])
    cfg = app.dialer.run_of("winback").config
    (lead_id,) = [r["id"] for r in await app.pool.fetch("SELECT id FROM leads WHERE number = $1", number(30))]
    due = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=6)
    cb = await store.schedule_callback(app.pool, "winback", cfg, lead_id=lead_id, when=due, owner_agent="agent02",
                                       created_by="agent02", now=datetime.now(timezone.utc))
    assert cb.owner_agent == "agent02" and cb.due_at == due
    app.acd.login("agent01")
    app.acd.login("agent02")
    with AgentPhone(1, hangup_after_ms=1500) as anna, AgentPhone(2, hangup_after_ms=1500) as bob, \
            PstnNetwork() as network:
        await app.dialer.start("winback")  # the lead waits for its callback: nothing fresh to dial
        await asyncio.sleep(2)
        assert network.dialled() == [] and app.dialer.run_of("winback").dialed == 0
        await wait_until(lambda: app.dialer.run_of("winback").dialed >= 1, timeout=20, what="the callback")
        dialled_at = datetime.now(timezone.utc)
        assert dialled_at >= due - timedelta(seconds=0.5)  # at its time (the loop ticks every second)
        assert dialled_at <= due + timedelta(seconds=5)
        await wait_until(lambda: bob.stats().get("SuccessfulCall(C)") == 1, timeout=30, what="Bob's conversation")
        await wait_until(lambda: app.runtime.live_calls == 0, timeout=15, what="the call to end")
        await asyncio.sleep(2)
        assert network.dialled() == [number(30)]  # once
        assert anna.stats().get("IncomingCall(C)", 0) == 0  # never offered to Anna
    row = await app.pool.fetchrow("SELECT outcome, agent_id, agent_guaranteed, amd_status FROM lead_attempts")
    assert (row["outcome"], row["agent_id"], row["agent_guaranteed"], row["amd_status"]) == (
        "human", "agent02", True, None)
    assert await app.pool.fetchval("SELECT status FROM scheduled_callbacks WHERE id = $1", cb.id) == "done"
    assert await app.pool.fetchval("SELECT status FROM leads WHERE id = $1", lead_id) == "connected"
