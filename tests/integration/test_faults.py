"""Faults with nothing lost: PostgreSQL goes away for 60 s under call load (real Asterisk, sipp, PostgreSQL)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from callcore.app import CallcoreApp
from callcore.store.embedded import EmbeddedPostgres
from tests.integration.conftest import make_config, start_app
from tests.sip import Dtmf, run_callers
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
OUTAGE_SECONDS = 60


async def test_postgres_away_for_a_minute_under_load_loses_no_event(asterisk, tmp_path: Path):
    # A PostgreSQL of this test's own, so it can be stopped and started again on the same port.
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="callcore-outage-pg-")), settings={"fsync": "off"})
    await asyncio.to_thread(server.start)
    app: CallcoreApp | None = None
    try:
        app = await start_app(make_config(server.dsn, tmp_path))
        calls = 120
        # 120 callers at 1.5/s (80 s): each presses 7 and hears it read back (the say_digit flow).
        load = asyncio.create_task(asyncio.to_thread(
            run_callers, "1000", calls, 1.5, segments=[Dtmf("7", pause_before_ms=2500)], bye_timeout_ms=30_000,
            timeout=200))
        await asyncio.sleep(8)
        await asyncio.to_thread(server.stop)  # PostgreSQL is gone ...
        await wait_until(lambda: app.writer.spool is not None and not app.writer.spool.empty, timeout=20,
                         what="events to be spooled to disk")
        await asyncio.sleep(OUTAGE_SECONDS - 5)
        spooled = app.writer.spool.pending  # type: ignore[union-attr]
        await asyncio.to_thread(server.start)  # ... and back after a minute
        result = await load
        assert result.successful == calls and result.failed == 0, result.describe()  # calls never noticed
        await wait_until(lambda: app.runtime.live_calls == 0, what="all call tasks to end")
        await asyncio.wait_for(app.writer.flush(), 60)
        assert app.writer.spool.empty  # type: ignore[union-attr]
        stats = app.writer.stats
        assert stats.dropped == 0 and stats.rejected == 0
        rows = await app.pool.fetch("SELECT call_id, answered_at, ended_at, hangup_cause FROM calls")
        assert len(rows) == calls  # sipp's own count: every call is in the store ...
        assert all(r["answered_at"] and r["ended_at"] and r["hangup_cause"] == 16 for r in rows)
        per_call = await app.pool.fetch(
            "SELECT array_agg(type ORDER BY id) AS types FROM call_events GROUP BY call_id")
        # ... with its whole story, in order (ids are assigned at insert: the spool kept the order).
        assert all(r["types"][0] == "call_started" and r["types"][-1] == "call_ended" for r in per_call)
        assert len({tuple(r["types"]) for r in per_call}) == 1
        print(f"spooled during the outage: {spooled} events; written after: {stats.written}")
    finally:
        if app is not None:
            await asyncio.wait_for(app.stop(drain_seconds=2), 60)
        await asyncio.to_thread(server.stop)


async def test_the_disk_fills_up_during_a_database_outage_calls_go_on_and_the_alarm_is_loud(
        asterisk, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Fault 4 on a real filesystem: the spool's disk (a 48 KB tmpfs) fills up while PostgreSQL is away. Calls
    never notice; the writer raises a CRITICAL alarm naming the disk error; the policy holds (what reached the
    disk and memory is kept and written later, the newest events are dropped and counted); no torn record."""
    import subprocess

    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k,mode=0755", "tmpfs", str(state)], check=True)
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="callcore-diskfull-pg-")), settings={"fsync": "off"})
    await asyncio.to_thread(server.start)
    app: CallcoreApp | None = None
    try:
        config = make_config(server.dsn, state)
        config.event_store = config.event_store.model_copy(
            update={"buffer_max": 100, "spool_after_s": 1.0, "spool_max_mb": 1})  # the disk is the limit
        app = await start_app(config)
        calls = 30
        load = asyncio.create_task(asyncio.to_thread(
            run_callers, "1000", calls, 1.5, segments=[Dtmf("7", pause_before_ms=2500)], bye_timeout_ms=30_000,
            timeout=120))
        await asyncio.sleep(3)
        await asyncio.to_thread(server.stop)
        spool = app.writer.spool
        assert spool is not None
        await wait_until(lambda: spool.disk_error is not None, timeout=60, what="the spool's disk to fill up")
        result = await load
        assert result.successful == calls and result.failed == 0, result.describe()  # calls never noticed
        await wait_until(lambda: app.runtime.live_calls == 0, what="all call tasks to end")
        assert "No space left on device" in (spool.disk_error or "")
        dropped = app.writer.stats.dropped
        assert dropped > 0  # memory (100 events) and disk were both full: the newest went
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(app.writer.flush(), 60)
        assert spool.empty and app.writer.stats.rejected == 0  # every spooled line was a whole record
        stats = app.writer.stats
        stored = await app.pool.fetchval("SELECT count(*) FROM call_events")
        assert stored == stats.written - stats.duplicates and stored > 0
        out = capsys.readouterr().out
        assert "event_writer.spool_full" in out and "No space left on device" in out
        print(f"disk full: {stored} events kept and written, {dropped} dropped and counted")
    finally:
        if app is not None:
            await asyncio.wait_for(app.stop(drain_seconds=2), 60)
        await asyncio.to_thread(server.stop)
        subprocess.run(["umount", "-l", str(state)], check=False)


async def test_asterisk_restarts_under_acd_traffic_nothing_stays_stuck_and_new_calls_route_at_once(
        asterisk, acd_app: CallcoreApp):
    """Fault 1 with live traffic: three callers talking to agents and three waiting in queues when Asterisk goes
    down. Every call record is closed, no agent stays reserved or on a call, the queues are empty; once ARI is
    back callcore reconnects on its own and routes the next caller to an agent."""
    import time

    from tests.sip import AgentPhone

    acd = acd_app.acd
    for agent in ("agent01", "agent02", "agent03"):
        acd.login(agent)
    with AgentPhone(1), AgentPhone(2), AgentPhone(3):  # they talk until hung up on
        dutch = asyncio.create_task(asyncio.to_thread(
            run_callers, "7001", 3, 3.0, bye_timeout_ms=60_000, timeout=90))  # Anna and Cem take two
        english = asyncio.create_task(asyncio.to_thread(
            run_callers, "7002", 3, 3.0, bye_timeout_ms=60_000, timeout=90))  # Bob takes one
        await wait_until(lambda: sum(a.state == "on_call" for a in acd.agents.values()) == 3
                         and len(acd.waiting) == 3, timeout=30, what="3 calls bridged and 3 callers waiting")
        await asyncio.to_thread(asterisk.down)
        await wait_until(lambda: acd_app.runtime.live_calls == 0 and not acd.waiting, timeout=20,
                         what="every call of the dead Asterisk to be closed")
        assert not [a for a, s in acd.agents.items() if s.state in ("reserved", "on_call")]
        await asyncio.gather(dutch, english, return_exceptions=True)  # sipp saw its calls die: not our concern
        await asyncio.to_thread(asterisk.up, 120)
        back = time.monotonic()
        await wait_until(lambda: acd_app.stream.stats.connected, timeout=10, what="callcore to reconnect")
        await wait_until(lambda: all(s.state == "ready" for s in acd.agents.values()), timeout=10,
                         what="agents back to ready after their wrap-up")
    with AgentPhone(1, hangup_after_ms=1000):
        result = await asyncio.to_thread(run_callers, "7001", 1, 1.0, bye_timeout_ms=20_000, timeout=40)
    result.check()
    assert time.monotonic() - back < 15  # reconnect (< 5 s) + the whole next call
    # The record closes when the channel's ChannelDestroyed arrives, just after sipp saw its BYE answered.
    for _ in range(100):
        await acd_app.writer.flush()
        if not await acd_app.pool.fetchval("SELECT count(*) FROM calls WHERE ended_at IS NULL"):
            break
        await asyncio.sleep(0.1)
    open_calls = await acd_app.pool.fetchval("SELECT count(*) FROM calls WHERE ended_at IS NULL")
    assert open_calls == 0  # the six calls Asterisk took down with it are closed too
    stories = {r["call_id"]: r["types"] for r in await acd_app.pool.fetch(
        "SELECT c.call_id, c.started_at, array_agg(e.type ORDER BY e.id) AS types FROM calls c "
        "JOIN call_events e USING (call_id) GROUP BY c.call_id, c.started_at ORDER BY c.started_at")}
    last = list(stories.values())[-1]
    assert "connected" in last and last[-1] == "call_ended", stories  # the caller after the restart got an agent
    assert await acd_app.pool.fetchval("SELECT count(*) FROM calls") == 7
