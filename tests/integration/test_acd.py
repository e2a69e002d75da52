"""The ACD on real phones: sipp callers, sipp agent phones (PJSIP agent01..03), real Asterisk, PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from callcore.app import CallcoreApp
from callcore.config import load_config
from callcore.ivr.registry import CODE_FLOWS
from tests.integration.conftest import ACD_CONFIG as CONFIG, start_app
from tests.sip import AgentPhone, run_caller, run_cancel_caller
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def caller(did: str, hangup_after_ms: int | None = None, bye_timeout_ms: int = 40_000):
    return asyncio.create_task(asyncio.to_thread(
        run_caller, did, [], hangup_after_ms=hangup_after_ms, bye_timeout_ms=bye_timeout_ms, timeout=60))


async def events_of(app: CallcoreApp, did: str, types: tuple[str, ...]) -> list[tuple[str, dict]]:
    await app.writer.flush()
    rows = await app.pool.fetch(
        "SELECT e.type, e.payload FROM call_events e JOIN calls c USING (call_id) "
        "WHERE c.did = $1 AND e.type = ANY($2::text[]) ORDER BY e.id", did, list(types))
    return [(r["type"], r["payload"]) for r in rows]


async def agent_states(app: CallcoreApp, agent: str) -> list[tuple[str, str | None]]:
    await app.writer.flush()
    rows = await app.pool.fetch("SELECT state, reason FROM agent_events WHERE agent_id = $1 ORDER BY id", agent)
    return [(r["state"], r["reason"]) for r in rows]


async def test_skills_route_each_caller_to_the_agent_who_speaks_their_language(acd_app: CallcoreApp):
    acd = acd_app.acd
    acd.login("agent01")
    acd.login("agent02")
    with AgentPhone(1, hangup_after_ms=1500) as anna, AgentPhone(2, hangup_after_ms=1500) as bob:
        english, dutch = caller("7002"), caller("7001")
        (await english).check()
        (await dutch).check()
        await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1 and
                         bob.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="one call per agent")
    connected_en = [p["agent"] for t, p in await events_of(acd_app, "7002", ("connected",))]
    connected_nl = [p["agent"] for t, p in await events_of(acd_app, "7001", ("connected",))]
    assert connected_en == ["agent02"] and connected_nl == ["agent01"]
    await wait_until(lambda: acd.agents["agent01"].state == "ready", timeout=10, what="wrap-up to end")
    states = [s for s, _ in await agent_states(acd_app, "agent01")]
    assert states == ["ready", "reserved", "on_call", "wrap_up", "ready"]


async def test_a_priority_caller_jumps_the_line(acd_app: CallcoreApp):
    acd = acd_app.acd
    acd.login("agent01", paused=True)
    with AgentPhone(1, hangup_after_ms=1000):
        normal = caller("7001")
        await wait_until(lambda: len(acd.waiting) == 1, what="the first caller to queue")
        vip = caller("7004")
        await wait_until(lambda: len(acd.waiting) == 2, what="the VIP to queue")
        acd.ready("agent01")
        (await vip).check()
        (await normal).check()
    await acd_app.writer.flush()
    rows = await acd_app.pool.fetch(
        "SELECT c.did FROM call_events e JOIN calls c USING (call_id) WHERE e.type = 'connected' ORDER BY e.id")
    assert [r["did"] for r in rows] == ["7004", "7001"]


async def test_ring_no_answer_pauses_the_agent_and_the_caller_keeps_its_place_for_the_next(acd_app: CallcoreApp):
    acd = acd_app.acd
    acd.login("agent01")
    acd.login("agent03")
    # agent01 is the better match (nl 8, billing 5) but does not pick up within the queue's 4 s.
    with AgentPhone(1, ring_ms=10_000), AgentPhone(3, hangup_after_ms=1000):
        (await caller("7001")).check()
    offers = [p["agent"] for t, p in await events_of(acd_app, "7001", ("offered",))]
    assert offers == ["agent01", "agent03"]
    assert [p["agent"] for t, p in await events_of(acd_app, "7001", ("agent_no_answer",))] == ["agent01"]
    assert [p["agent"] for t, p in await events_of(acd_app, "7001", ("connected",))] == ["agent03"]
    assert acd.agents["agent01"].state == "paused" and acd.agents["agent01"].pause_reason == "no answer"
    assert ("paused", "no answer") in await agent_states(acd_app, "agent01")


async def test_a_caller_who_hangs_up_while_the_agent_rings_frees_the_agent(acd_app: CallcoreApp):
    acd = acd_app.acd
    acd.login("agent02")
    with AgentPhone(2, ring_ms=10_000) as bob:
        # Like app_queue, callcore answers a caller for whom an agent is free only when the agent does: this
        # caller hears ringing and gives up (CANCEL) while the agent's phone rings.
        (await asyncio.to_thread(run_cancel_caller, "7002", 2500)).check()
        await wait_until(lambda: acd.agents["agent02"].state == "ready", timeout=10, what="agent02 ready again")
        await wait_until(lambda: acd_app.runtime.live_calls == 0, what="the call to end")
        await wait_until(lambda: bob.stats().get("FailedCall(C)", 0) + bob.stats().get("SuccessfulCall(C)", 0) >= 1,
                         timeout=5, what="the agent's phone to stop ringing")
    abandoned = [p for t, p in await events_of(acd_app, "7002", ("abandoned",))]
    assert len(abandoned) == 1 and abandoned[0]["while"] == "ringing"
    states = await agent_states(acd_app, "agent02")
    assert [s for s, _ in states] == ["ready", "reserved", "ready"]


async def test_wrap_up_after_a_tech_call_also_holds_back_billing_calls(acd_app: CallcoreApp):
    acd = acd_app.acd
    acd.login("agent03")
    with AgentPhone(3, hangup_after_ms=1000) as cem:
        (await caller("7003")).check()  # a tech call; then 3 s wrap-up
        await wait_until(lambda: acd.agents["agent03"].state == "wrap_up", timeout=5, what="wrap-up")
        billing = caller("7001")
        await wait_until(lambda: len(acd.waiting) == 1, what="the billing caller to queue")
        assert acd.agents["agent03"].state == "wrap_up"  # not offered during wrap-up, whatever the queue
        (await billing).check()
        await wait_until(lambda: cem.stats().get("SuccessfulCall(C)") == 2, timeout=5, what="agent03's 2nd call")
    await acd_app.writer.flush()
    rows = await acd_app.pool.fetch(
        "SELECT state, occurred_at FROM agent_events WHERE agent_id = 'agent03' ORDER BY id")
    states = [r["state"] for r in rows]
    assert states == ["ready", "reserved", "on_call", "wrap_up", "ready", "reserved", "on_call", "wrap_up"] or \
        states == ["ready", "reserved", "on_call", "wrap_up", "ready", "reserved", "on_call", "wrap_up", "ready"]
    wrap_start, ready_again = rows[3]["occurred_at"], rows[4]["occurred_at"]
    assert (ready_again - wrap_start).total_seconds() >= 2.9


async def test_after_a_restart_agents_come_back_as_they_were_and_none_is_stuck(asterisk, pg_dsn, tmp_path, monkeypatch):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    path = tmp_path / "callcore.yaml"
    path.write_text(CONFIG.read_text())
    config = load_config(path, known_flows=set(CODE_FLOWS))
    first = await start_app(config)
    try:
        first.acd.login("agent01")
        first.acd.login("agent02")
        first.acd.pause("agent02", "lunch")
    finally:
        await first.stop(drain_seconds=1)
    second = await start_app(config)
    try:
        states = {a: (s.state, s.pause_reason) for a, s in second.acd.agents.items()}
        assert states == {"agent01": ("ready", None), "agent02": ("paused", "lunch"), "agent03": ("logged_out", None)}
        with AgentPhone(1, hangup_after_ms=1000):
            (await caller("7001")).check()  # and the restored agent takes calls
    finally:
        await second.stop(drain_seconds=1)


async def test_a_waiting_caller_hears_its_position_and_estimated_wait(acd_app: CallcoreApp):
    acd = acd_app.acd
    acd.login("agent03", paused=True)  # staffed, but nobody free: the caller waits
    (await caller("7003", hangup_after_ms=14_000)).check()  # announcements every 3 s after the last one ends
    await wait_until(lambda: acd_app.runtime.live_calls == 0, what="the call to end")
    events = await events_of(acd_app, "7003", ("queued", "announcement", "playback_started", "abandoned"))
    types = [t for t, _ in events]
    assert types[0] == "queued" and types.count("announcement") >= 2 and types[-1] == "abandoned"
    assert next(p for t, p in events if t == "announcement")["position"] == 1
    media = [p["media"] for t, p in events if t == "playback_started"]
    assert media[:3] == ["sound:callcore/queue-position", "number:1", "sound:callcore/queue-position-end"]
    assert "sound:callcore/estimated-wait" in media  # 1 caller x 180 s / 1 agent = 3 minutes


async def test_a_caller_overflowing_to_a_callback_is_called_back_once_an_agent_is_free(
    asterisk, pg_dsn, tmp_path, monkeypatch
):
    import yaml

    from tests.integration.conftest import app_from_yaml
    from tests.sip import PstnPhone

    data = yaml.safe_load(CONFIG.read_text())
    data["queues"]["billing"].update({"max_wait": 3, "overflow": {"action": "callback"}})
    async with app_from_yaml(yaml.safe_dump(data, sort_keys=False), pg_dsn, tmp_path, monkeypatch) as app:
        app.acd.login("agent01", paused=True)  # staffed, but nobody free: the caller waits, then overflows
        with AgentPhone(1, hangup_after_ms=8000) as anna, PstnPhone() as callers_line:
            (await caller("7001")).check()  # told the callback is booked, then hung up
            await wait_until(lambda: app.runtime.live_calls == 0, what="the caller's call to end")
            await asyncio.sleep(6)  # past the grace after hanging up: still nobody free, so nobody is dialled
            assert callers_line.stats().get("SuccessfulCall(C)", 0) == 0
            app.acd.ready("agent01")
            await wait_until(lambda: callers_line.stats().get("SuccessfulCall(C)") == 1 and
                             anna.stats().get("SuccessfulCall(C)") == 1, timeout=45,
                             what="the caller to be called back and put through to agent01")
        await wait_until(lambda: [r.status for r in app.web_callbacks.requests.values()] == ["done"], timeout=10,
                         what="the callback to be done")
        events = await events_of(app, "7001", ("queued", "overflow", "callback_requested", "callback_refused"))
        assert [t for t, _ in events] == ["queued", "overflow", "callback_requested"]
        assert events[1][1]["reason"] == "max_wait" and events[1][1]["action"] == "callback"
        request = events[2][1]
        assert request["number"] == "+31201234567" and request["queue"] == "billing"
        stored = await app.pool.fetchrow("SELECT * FROM web_callbacks WHERE id = $1::uuid", request["callback_id"])
        assert stored["status"] == "done" and stored["requested_by"] == "overflow:billing"
        connected = await app.pool.fetch(
            "SELECT e.payload FROM call_events e JOIN calls c USING (call_id) "
            "WHERE c.direction = 'outbound' AND e.type = 'connected'")
        assert [c["payload"]["agent"] for c in connected] == ["agent01"]
