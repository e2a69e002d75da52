"""Real Asterisk, real SIP, real PostgreSQL: restarts, primitives (originate, bridge), failures, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callcore.calls.call import Call
from callcore.store.queries import call_events_for
from tests.integration.conftest import assert_no_bridge_in_use, make_config, start_app
from tests.sip import AgentPhone, Dtmf, run_caller
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
REPO = Path(__file__).resolve().parents[2]




async def test_given_asterisk_restarts_during_a_call_then_callcore_closes_it_reconnects_and_takes_the_next_call(
    asterisk, callcore
):
    # A caller waits in the menu (no digit) while Asterisk goes down under them.
    waiting = asyncio.create_task(asyncio.to_thread(run_caller, "1000", [], hangup_after_ms=15_000, timeout=40))
    await wait_until(lambda: callcore.runtime.live_calls == 1, what="the call to reach callcore")
    await asyncio.to_thread(asterisk.down)
    await wait_until(lambda: callcore.runtime.live_calls == 0, what="the dead call to be closed")
    await asyncio.to_thread(asterisk.up, 120)
    back = time.monotonic()
    await wait_until(lambda: callcore.stream.stats.connected, timeout=10, what="callcore to reconnect")
    reconnected_after = time.monotonic() - back
    assert callcore.stream.stats.reconnects >= 1
    assert reconnected_after < 5.0, f"took {reconnected_after:.1f} s to reconnect after ARI was back"
    await waiting  # the first caller's sipp ended (Asterisk hung up on it); its process is gone

    result = await asyncio.to_thread(run_caller, "1000", [Dtmf("7", pause_before_ms=2500)], bye_timeout_ms=20_000)
    result.check()
    await callcore.writer.flush()
    rows = await callcore.pool.fetch("SELECT * FROM calls ORDER BY started_at")
    assert len(rows) == 2
    first, second = rows
    assert first["ended_at"] is not None  # closed, with whatever Asterisk said (or 'vanished')
    first_events = [e["type"] for e in await call_events_for(callcore.pool, first["call_id"])]
    assert first_events[-1] == "call_ended" and "hangup" in first_events
    assert second["variables"] == {"digit": "7"} and second["hangup_cause"] == 16


async def test_given_a_flow_that_rings_an_agent_then_caller_and_agent_are_bridged_and_all_is_cleaned_up(
    asterisk, pg_dsn, tmp_path
):
    bridged = asyncio.Event()

    async def connect_agent(call: Call) -> None:
        await call.answer()
        leg = await call.originate("PJSIP/agent01", timeout=10)
        await call.bridge_with(leg)
        bridged.set()
        await asyncio.sleep(1.5)  # caller and agent talk
        await call.hangup()

    app = await start_app(make_config(pg_dsn, tmp_path, {"2000": "connect_agent"}), {"connect_agent": connect_agent})
    try:
        with AgentPhone(1) as agent:
            result = await asyncio.to_thread(run_caller, "2000", [], bye_timeout_ms=20_000)
            result.check()
            assert bridged.is_set()
            await wait_until(lambda: agent.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="agent's BYE")
        await wait_until(lambda: app.runtime.live_calls == 0, what="call task to end")
        # The bridge is empty and back in the runtime's pool (the next call reuses it); stop destroys it.
        await wait_until(lambda: app.runtime.primary.bridge_pool.idle != [], timeout=5, what="the bridge back in the pool")
        await assert_no_bridge_in_use(app)
        await app.writer.flush()
        row = await app.pool.fetchrow("SELECT * FROM calls")
        events = await call_events_for(app.pool, row["call_id"])
        types = [e["type"] for e in events]
        assert types[:2] == ["call_started", "answered"]
        assert types.index("originated") < types.index("bridged")
        leg_channel = next(e["channel_id"] for e in events if e["type"] == "originated")
        assert any(e["type"] == "answered" and e["channel_id"] == leg_channel for e in events)
        assert types[-1] == "call_ended" and row["hangup_cause"] == 16
    finally:
        await app.stop(drain_seconds=2)


async def test_given_a_bug_in_a_flow_then_the_caller_hears_the_fallback_and_the_error_is_recorded(
    asterisk, pg_dsn, tmp_path
):
    async def broken(call: Call) -> None:
        await call.answer()
        raise RuntimeError("bug in a flow")

    app = await start_app(make_config(pg_dsn, tmp_path, {"3000": "broken"}), {"broken": broken})
    try:
        result = await asyncio.to_thread(run_caller, "3000", [], bye_timeout_ms=20_000)
        result.check()  # the fallback dialplan played its apology and hung up: nobody was stranded
        await wait_until(lambda: app.runtime.live_calls == 0, what="call task to end")
        await wait_until(lambda: not app.runtime.primary._by_channel, what="the channel's end")
        await app.writer.flush()
        row = await app.pool.fetchrow("SELECT * FROM calls")
        events = await call_events_for(app.pool, row["call_id"])
        error = next(e for e in events if e["type"] == "handler_error")
        assert "bug in a flow" in error["payload"]["error"]
        hangup = next(e for e in events if e["type"] == "hangup")
        assert hangup["payload"]["by"] == "dialplan" and hangup["payload"]["cause"] is not None
        assert events[-1]["payload"] == {"reason": "released_to_dialplan"}
    finally:
        await app.stop(drain_seconds=2)


def _write_config(tmp_path: Path) -> Path:
    config = tmp_path / "callcore.yaml"
    config.write_text(
        "state_dir: state\n"
        "ari: {password: callcore-sandbox, reconnect_initial: 0.2, reconnect_max: 1}\n"
        "logging: {format: json}\n"
        "calls: {drain_seconds: 20}\n"
        "inbound: {dids: {'1000': say_digit}}\n"
    )
    return config


async def test_given_callcore_run_when_sigterm_arrives_mid_call_then_the_call_finishes_and_it_exits_0(
    asterisk, pg_dsn, tmp_path
):
    config = _write_config(tmp_path)
    log_path = tmp_path / "callcore.log"
    env = {**os.environ, "CALLCORE_DATABASE_URL": pg_dsn}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "callcore.cli", "run", "-c", str(config)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )
    try:
        await wait_until(lambda: b"ARI connected" in log_path.read_bytes(), timeout=30, what="callcore run to connect")
        call = asyncio.create_task(
            asyncio.to_thread(run_caller, "1000", [Dtmf("7", pause_before_ms=2500)], bye_timeout_ms=20_000))
        await asyncio.sleep(1.5)  # the caller is hearing the greeting
        proc.send_signal(signal.SIGTERM)
        result = await call
        result.check()  # the flow ran to its end despite the SIGTERM: drain
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log_path.read_text()
    assert '"event": "shutting down"' in text and "callcore-sandbox" not in text  # no secret in the log
    import asyncpg

    conn = await asyncpg.connect(pg_dsn)
    try:
        row = await conn.fetchrow("SELECT * FROM calls")
        assert row["ended_at"] is not None and row["hangup_cause"] == 16
        n = await conn.fetchval("SELECT count(*) FROM call_events WHERE call_id = $1", row["call_id"])
        assert n == 14  # every event of the call was flushed before exit
    finally:
        await conn.close()


async def test_given_sigterm_then_new_callers_go_to_the_dialplan_and_a_caller_still_waiting_is_handed_back_at_the_limit(
    asterisk, pg_dsn, tmp_path
):
    """Fault 6, the rest of it: while callcore drains, a new caller is not taken (the dialplan's fallback gets it at
    once); a caller still waiting in a queue when the drain limit passes is handed back to the dialplan (not cut
    off), its record closed as released; the process exits 0."""
    from tests.integration.test_acd_restart import spawn, wait_for_event, write_config

    # agent01 is logged in at start with its phone off: the offer fails, the caller waits in the billing queue.
    config = write_config(tmp_path, "calls: {drain_seconds: 3}\nlogging: {format: json}\n")
    log_path = tmp_path / "callcore.log"
    proc = spawn(config, log_path, pg_dsn)
    try:
        await wait_until(lambda: b"ARI connected" in log_path.read_bytes(), timeout=30, what="callcore run to connect")
        waiting = asyncio.create_task(asyncio.to_thread(run_caller, "7001", [], bye_timeout_ms=30_000, timeout=45))
        await wait_for_event(pg_dsn, "agent_no_answer", log_path)
        await asyncio.sleep(1.0)  # waiting, with hold music
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        started = time.monotonic()
        newcomer = await asyncio.to_thread(run_caller, "7002", [], answer_timeout_ms=8_000, timeout=20)
        assert newcomer.successful == 0  # not taken: the dialplan's fallback apologised and refused it
        result = await waiting
        result.check()  # the waiting caller was released to the dialplan, which ended the call properly
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0, log_path.read_text()[-3000:]
        assert time.monotonic() - started < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    import asyncpg

    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch("SELECT c.did, c.ended_at, e.payload->>'reason' AS reason FROM calls c "
                                "JOIN call_events e ON e.call_id = c.call_id AND e.type = 'call_ended'")
        assert [(r["did"], r["reason"]) for r in rows] == [("7001", "released_to_dialplan")], rows
        assert all(r["ended_at"] is not None for r in rows)
    finally:
        await conn.close()
