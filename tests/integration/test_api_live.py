"""The HTTP API and `callcore agent` against a running callcore with real phones, Asterisk and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from callcore.app import CallcoreApp
from tests.integration.test_acd import caller, events_of
from tests.sip import AgentPhone
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]
ADMIN = {"Authorization": "Bearer admin-secret-token-for-tests"}
ANNA = "anna-secret-token-for-tests"


def agent_cli(app: CallcoreApp, *args: str, token: str = ANNA) -> subprocess.CompletedProcess[str]:
    assert app.api is not None
    return subprocess.run([sys.executable, "-m", "callcore.cli", "agent", *args, "--url", app.api.url,
                           "--token", token], capture_output=True, text=True, timeout=30, cwd=REPO)


async def test_an_agent_logs_in_from_the_cli_and_cannot_touch_another_agent(acd_app: CallcoreApp):
    done = await asyncio.to_thread(agent_cli, acd_app, "login", "agent01")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["agent01", "ready"]
    assert acd_app.acd.agents["agent01"].state == "ready"
    refused = await asyncio.to_thread(agent_cli, acd_app, "pause", "agent02", "--reason", "lunch")
    assert refused.returncode == 2 and "403" in refused.stderr
    bad = await asyncio.to_thread(agent_cli, acd_app, "login", "agent01")  # already logged in
    assert bad.returncode == 1 and "409" in bad.stderr
    paused = await asyncio.to_thread(agent_cli, acd_app, "pause", "agent01", "--reason", "lunch")
    assert paused.returncode == 0 and acd_app.acd.agents["agent01"].pause_reason == "lunch"


async def test_a_supervisor_transfers_a_live_call_through_the_api(acd_app: CallcoreApp):
    assert acd_app.api is not None
    base = acd_app.api.url
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        for agent in ("agent01", "agent03"):
            async with http.post(f"{base}/agents/{agent}/login", json={}) as r:
                assert r.status == 200, await r.text()
        with AgentPhone(1) as anna, AgentPhone(3, hangup_after_ms=1500) as cem:
            call = caller("7001")
            await wait_until(lambda: acd_app.acd.agents["agent01"].state == "on_call", timeout=10,
                             what="agent01 on the call")
            async with http.get(f"{base}/calls") as r:
                live = (await r.json())["items"]
            assert len(live) == 1
            call_id = live[0]["call_id"]
            async with http.post(f"{base}/calls/{call_id}/transfer", json={"mode": "blind", "queue": "nope"}) as r:
                assert r.status in (404, 409, 422) and (await r.json())["error"]["message"]
            async with http.post(f"{base}/calls/{call_id}/transfer", json={"mode": "blind", "queue": "tech"}) as r:
                assert r.status == 200, await r.text()
            (await call).check()
            await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1 and
                             cem.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="both agents done")
        await acd_app.writer.flush()
        async with http.get(f"{base}/calls/{call_id}") as r:
            story = await r.json()
        assert r.status == 200
    types = [e["type"] for e in story["events"]]
    assert "transferred" in types and types.count("connected") == 2
    assert [p["agent"] for t, p in await events_of(acd_app, "7001", ("connected",))] == ["agent01", "agent03"]


async def test_call_me_now_from_a_web_page_rings_the_visitor_when_an_agent_is_free(acd_app: CallcoreApp):
    from tests.sip import PstnPhone

    assert acd_app.api is not None
    base = acd_app.api.url
    acd_app.acd.login("agent01", paused=True)  # staffed, but nobody free yet
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        async with http.post(f"{base}/callbacks", json={"number": "+44 7911 123456"}) as r:
            refused = await r.json()
        assert r.status in (403, 422) and refused["error"]["code"]  # not an allowed destination
        with AgentPhone(1, hangup_after_ms=5000) as anna, PstnPhone() as visitor:
            body = {"number": "020 123 4599", "context": {"page": "/internet/glasvezel", "product": "1 Gbit/s"}}
            async with http.post(f"{base}/callbacks", json=body) as r:
                created = await r.json()
            assert r.status == 201, created
            assert created["number"] == "+31201234599" and created["position"] == 1 and created["promised_at"]
            async with http.post(f"{base}/callbacks", json=body) as r:
                assert r.status == 429  # one callback per number per day
            acd_app.acd.ready("agent01")  # its turn: agent01 is reserved, the visitor's phone rings
            await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1 and
                             visitor.stats().get("SuccessfulCall(C)") == 1, timeout=30,
                             what="the visitor to be called back and connected to agent01")
        await wait_until(lambda: acd_app.web_callbacks.requests[created["id"]].status == "done", timeout=10,
                         what="the callback to be done")
        async with http.get(f"{base}/callbacks/{created['id']}") as r:
            status = await r.json()
        assert r.status == 200 and status["status"] == "done" and status["attempts"] == 1
    await acd_app.writer.flush()
    rows = await acd_app.pool.fetch(
        "SELECT c.direction, e.type, e.payload FROM call_events e JOIN calls c USING (call_id) "
        "WHERE e.type IN ('web_callback_requested', 'connected', 'call_started') ORDER BY e.id")
    requested = next(r["payload"] for r in rows if r["type"] == "web_callback_requested")
    assert requested["context"] == {"page": "/internet/glasvezel", "product": "1 Gbit/s"}
    connected = [r["payload"] for r in rows if r["type"] == "connected"]
    assert [c["agent"] for c in connected] == ["agent01"]


async def test_the_wallboard_in_a_real_browser_shows_what_the_api_says_during_live_calls(acd_app: CallcoreApp):
    from tests.browser import Browser, open_wallboard, value_of, wait_wallboard_matches

    assert acd_app.api is not None
    base = acd_app.api.url
    acd_app.acd.login("agent01")
    acd_app.acd.login("agent03", paused=True)
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        async def get(path: str):
            async with http.get(base + path) as r:
                assert r.status == 200, (path, r.status)
                return await r.json()

        async with Browser.launch() as browser:
            page = await open_wallboard(browser, base, "admin-secret-token-for-tests")
            with AgentPhone(1, hangup_after_ms=4000):
                calls = [caller("7001") for _ in range(2)]  # one talks to agent01, one waits in billing
                await wait_until(lambda: len(acd_app.acd.waiting) == 1, timeout=10, what="a caller waiting")
                shown = await wait_wallboard_matches(page, get, timeout=10)
                assert value_of(shown, "waiting", queue="billing").text == "1"
                for c in calls:
                    (await c).check()
            await acd_app.writer.flush()
            shown = await wait_wallboard_matches(page, get, timeout=15)  # today's KPIs after the calls
            assert value_of(shown, "answered").text == "2"


async def test_click_to_call_rings_the_agent_then_the_number_and_the_api_hangs_it_up(acd_app: CallcoreApp):
    from tests.sip import PstnPhone

    assert acd_app.api is not None
    base = acd_app.api.url
    acd = acd_app.acd
    acd.login("agent01")
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        with AgentPhone(1) as anna, PstnPhone() as customer:
            async with http.post(f"{base}/calls", json={"number": "0201234567", "agent_id": "agent01"}) as r:
                created = await r.json()
            assert r.status == 201, created
            call_id = created["call_id"]
            async with http.post(f"{base}/calls", json={"number": "0201234567", "agent_id": "agent01"}) as r:
                assert r.status == 409  # agent01 is reserved for the first one
            await wait_until(lambda: acd.agents["agent01"].state == "on_call", timeout=10, what="agent01 answers")
            await wait_until(lambda: customer.stats().get("IncomingCall(C)", 0) == 1, timeout=10,
                             what="the customer's phone to ring")
            await asyncio.sleep(1.0)
            async with http.post(f"{base}/calls/{call_id}/hangup", json={}) as r:
                assert r.status == 200, await r.text()
            await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1 and
                             customer.stats().get("SuccessfulCall(C)") == 1, timeout=10, what="both hung up")
        await wait_until(lambda: acd_app.runtime.live_calls == 0, what="the call to end")
        assert acd.agents["agent01"].state == "ready"
        async with http.get(f"{base}/metrics") as r:
            metrics = await r.text()
    assert "callcore_calls_in_progress" in metrics or "callcore_" in metrics
    await acd_app.writer.flush()
    row = await acd_app.pool.fetchrow("SELECT direction, did, answered_at, ended_at FROM calls WHERE call_id = $1::uuid",
                                      call_id)
    assert row["direction"] == "outbound" and row["did"] in ("+31201234567", "0201234567")
    assert row["answered_at"] and row["ended_at"]


async def test_a_campaign_created_through_the_api_is_checked_against_asterisks_sounds(acd_app: CallcoreApp):
    assert acd_app.api is not None
    await wait_until(lambda: acd_app.sounds is not None, timeout=10, what="Asterisk's sound list")
    body = {"name": "winback", "queue": "billing", "caller_id": "+31881234567", "default_region": "NL",
            "compliance_message": ["callcore/no-such-prompt"]}
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        async with http.post(f"{acd_app.api.url}/campaigns", json=body) as r:
            refused = await r.json()
        assert r.status == 422 and "no-such-prompt" in str(refused), refused  # never stored, never silent
        async with http.post(f"{acd_app.api.url}/campaigns", json={**body, "compliance_message": ["callcore/sorry"]}) as r:
            assert r.status == 201, await r.text()
        async with http.get(f"{acd_app.api.url}/kpis/campaigns/winback") as r:  # its KPIs exist at once
            assert r.status == 200, await r.text()
