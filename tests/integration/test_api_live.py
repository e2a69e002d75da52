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
