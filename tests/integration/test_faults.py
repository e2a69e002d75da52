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
