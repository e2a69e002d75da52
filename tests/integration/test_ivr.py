"""IVR flows from YAML on the real sandbox: sipp callers with RFC 2833 DTMF, a local CRM, PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from callcore.app import CallcoreApp
from callcore.config import load_config
from callcore.ivr.registry import CODE_FLOWS
from tests.fakes.crm import FakeCrm
from tests.integration.conftest import start_app
from tests.sip import AgentPhone, Dtmf, run_caller
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
TEST_FLOWS = Path(__file__).resolve().parents[1] / "data" / "ivr_test.yaml"




@pytest.fixture
async def crm():
    server = await FakeCrm(slow_seconds=4).start()
    try:
        yield server
    finally:
        await server.stop()


def write_config(tmp_path: Path, crm_url: str, text: str | None = None) -> Path:
    path = tmp_path / "callcore.yaml"
    path.write_text((text or TEST_FLOWS.read_text()).replace("@CRM_URL@", crm_url))
    return path


@pytest.fixture
async def ivr_app(asterisk, pg_dsn, tmp_path, crm, monkeypatch):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    config = load_config(write_config(tmp_path, crm.url), known_flows=set(CODE_FLOWS))
    app = await start_app(config)
    try:
        yield app
    finally:
        await asyncio.wait_for(app.stop(drain_seconds=2), 30)


async def story(app: CallcoreApp, did: str) -> tuple[dict, list[tuple[str, dict]]]:
    await wait_until(lambda: app.runtime.live_calls == 0, what="the call to end")
    await app.writer.flush()
    row = await app.pool.fetchrow("SELECT * FROM calls WHERE did = $1 ORDER BY started_at DESC LIMIT 1", did)
    events = await app.pool.fetch("SELECT type, payload FROM call_events WHERE call_id = $1 ORDER BY id", row["call_id"])
    return row, [(e["type"], e["payload"]) for e in events]


def path_of(events: list[tuple[str, dict]]) -> list[str]:
    return [p["node"] for t, p in events if t == "ivr_node_entered"]


async def test_given_a_gold_customer_when_they_navigate_three_levels_and_enter_their_account_then_they_reach_an_agent(
    ivr_app: CallcoreApp, crm: FakeCrm
):
    digits = [Dtmf("2", pause_before_ms=1500), Dtmf("1", pause_before_ms=1500), Dtmf("123456#", pause_before_ms=2000)]
    with AgentPhone(1, hangup_after_ms=1500) as agent:
        result = await asyncio.to_thread(run_caller, "5000", digits, bye_timeout_ms=30_000, timeout=60)
        result.check()
        await wait_until(lambda: agent.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="the agent's call")
    row, events = await story(ivr_app, "5000")
    assert path_of(events) == ["check_hours", "main_menu", "support_menu", "account", "lookup_customer",
                               "route_segment", "gold_queue"]
    assert crm.requests == [{"account": "123456", "caller": "+31201234567"}]
    lookup = next(p for t, p in events if t == "ivr_lookup")
    assert lookup["ok"] is True and lookup["latency_ms"] < 2000
    ended = next(p for t, p in events if t == "ivr_ended")
    assert ended["outcome"] == "queue" and ended["flow"] == "telco"
    assert row["variables"]["segment"] == "gold" and row["variables"]["account"] == "123456"
    assert row["variables"]["customer_id"] == "C-1001" and str(row["variables"]["balance"]) == "42"
    assert "bridged" in [t for t, _ in events]


async def test_given_a_lookup_that_hangs_when_the_timeout_passes_then_the_fallback_branch_is_taken(
    ivr_app: CallcoreApp, crm: FakeCrm
):
    t0 = time.monotonic()
    result = await asyncio.to_thread(
        run_caller, "5000", [Dtmf("2", pause_before_ms=1500), Dtmf("2", pause_before_ms=1500)],
        bye_timeout_ms=30_000, timeout=60)
    result.check()
    row, events = await story(ivr_app, "5000")
    assert path_of(events) == ["check_hours", "main_menu", "support_menu", "slow_lookup", "lookup_failed",
                               "normal_queue"]
    lookup = next(p for t, p in events if t == "ivr_lookup")
    assert lookup["ok"] is False and lookup["error"] == "timeout" and 900 <= lookup["latency_ms"] < 2000
    assert time.monotonic() - t0 < 20


async def test_given_closed_hours_then_the_closed_branch_plays_and_the_call_ends(ivr_app: CallcoreApp):
    result = await asyncio.to_thread(run_caller, "5001", [], bye_timeout_ms=20_000)
    result.check()
    _, events = await story(ivr_app, "5001")
    assert path_of(events) == ["check_hours", "closed_msg"]
    exited = next(p for t, p in events if t == "ivr_node_exited" and p["node"] == "check_hours")
    assert exited["outcome"] == "closed"
    assert ("playback_started", "sound:sorry") in [(t, p.get("media")) for t, p in events]


async def test_given_three_invalid_digits_then_the_configured_fallback_ends_the_call(ivr_app: CallcoreApp):
    digits = [Dtmf("7", pause_before_ms=1500), Dtmf("8", pause_before_ms=2500), Dtmf("9", pause_before_ms=2500)]
    result = await asyncio.to_thread(run_caller, "5000", digits, bye_timeout_ms=30_000, timeout=60)
    result.check()
    _, events = await story(ivr_app, "5000")
    assert path_of(events) == ["check_hours", "main_menu", "fallback"]
    invalid = [p["digits"] for t, p in events if t == "ivr_invalid"]
    assert invalid == ["7", "8", "9"]
    exited = next(p for t, p in events if t == "ivr_node_exited" and p["node"] == "main_menu")
    assert exited["next"] == "fallback"
