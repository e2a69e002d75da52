"""The whole chain, for real: sipp caller → Asterisk → ARI → callcore → PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from callcore.app import CallcoreApp
from callcore.store.queries import call_events_for
from tests.sip import Dtmf, run_caller, run_callers
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]




async def test_given_a_caller_on_did_1000_when_they_press_7_then_callcore_reads_it_back_and_stores_the_story(
    callcore: CallcoreApp,
):
    # The digit comes 2.5 s after the answer: after the greeting ("hello world", ≈1.4 s) has finished.
    result = await asyncio.to_thread(run_caller, "1000", [Dtmf("7", pause_before_ms=2500)], bye_timeout_ms=20_000)
    result.check()  # answered, and callcore sent the BYE
    await callcore.writer.flush()

    row = await callcore.pool.fetchrow("SELECT * FROM calls ORDER BY started_at DESC LIMIT 1")
    assert row["direction"] == "inbound" and row["did"] == "1000"
    assert row["caller_number"] == "+31201234567"
    assert row["answered_at"] is not None and row["ended_at"] is not None
    assert row["started_at"] <= row["answered_at"] <= row["ended_at"]
    assert row["hangup_cause"] == 16 and row["variables"] == {"digit": "7"}
    assert row["config_version"] == "test"

    events = await call_events_for(callcore.pool, row["call_id"])
    story = [(e["type"], e["payload"].get("media") or e["payload"].get("digit") or e["payload"].get("digits"))
             for e in events]
    assert story == [
        ("call_started", None),
        ("answered", None),
        ("playback_started", "sound:hello-world"),
        ("playback_finished", "sound:hello-world"),
        ("dtmf", "7"),
        ("digits_collected", "7"),
        ("variables_set", "7"),  # {"digit": "7"}
        ("playback_started", "sound:you-entered"),
        ("playback_started", "digits:7"),
        ("playback_finished", "digits:7"),
        ("playback_started", "sound:goodbye"),
        ("playback_finished", "sound:goodbye"),
        ("hangup", None),
        ("call_ended", None),
    ]
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times)
    assert events[-2]["payload"]["by"] == "callcore"
    assert callcore.runtime.live_calls == 0


async def test_given_a_caller_who_hangs_up_during_the_greeting_then_the_call_is_closed_with_their_cause(
    callcore: CallcoreApp,
):
    result = await asyncio.to_thread(run_caller, "1000", [], hangup_after_ms=600)
    result.check()
    await wait_until(lambda: callcore.runtime.live_calls == 0, what="call task to end")
    await callcore.writer.flush()
    row = await callcore.pool.fetchrow("SELECT * FROM calls ORDER BY started_at DESC LIMIT 1")
    events = [e["type"] for e in await call_events_for(callcore.pool, row["call_id"])]
    # The greeting stops; the channel is destroyed with the caller's cause (16, from their BYE).
    assert events[-3:] == ["playback_finished", "hangup", "call_ended"]
    hangup = await callcore.pool.fetchrow(
        "SELECT payload FROM call_events WHERE call_id = $1 AND type = 'hangup'", row["call_id"])
    assert hangup["payload"]["by"] == "remote" and row["hangup_cause"] == 16
    assert row["ended_at"] is not None


async def test_given_50_calls_at_10_per_second_then_all_complete_and_50_complete_rows_are_stored(
    callcore: CallcoreApp,
):
    result = await asyncio.to_thread(
        run_callers, "1000", 50, 10, segments=[Dtmf("7", pause_before_ms=2500)], bye_timeout_ms=30_000,
        timeout=120,
    )
    assert result.successful == 50 and result.failed == 0, result.describe()
    await wait_until(lambda: callcore.runtime.live_calls == 0, what="all call tasks to end")
    await callcore.writer.flush()
    rows = await callcore.pool.fetch("SELECT * FROM calls")
    assert len(rows) == 50
    assert all(r["answered_at"] and r["ended_at"] and r["hangup_cause"] == 16 for r in rows)
    assert all(r["variables"] == {"digit": "7"} for r in rows)
    per_call = await callcore.pool.fetch(
        "SELECT call_id, array_agg(type ORDER BY id) AS types FROM call_events GROUP BY call_id")
    assert len(per_call) == 50
    for r in per_call:
        assert r["types"][0] == "call_started" and r["types"][-1] == "call_ended"
        assert "dtmf" in r["types"]
    assert callcore.writer.stats.dropped == 0 and callcore.writer.stats.rejected == 0
