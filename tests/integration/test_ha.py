"""Active/standby with real processes: two `callcore run` share PostgreSQL; the leader is SIGKILLed mid-call and
the standby takes over within seconds, re-adopting the conversation (real Asterisk, sipp, PostgreSQL)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

from tests.integration.test_acd import caller
from tests.integration.test_acd_restart import spawn, wait_for_event, write_config
from tests.sip import AgentPhone
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def start(tmp: Path, name: str, dsn: str) -> tuple[subprocess.Popen[bytes], Path]:
    d = tmp / name
    d.mkdir()
    log = d / "callcore.log"
    return spawn(write_config(d, "ha: {enabled: true, poll_seconds: 0.5}\n"), log, dsn), log


async def test_the_standby_takes_over_within_seconds_when_the_leader_dies_mid_call(asterisk, pg_dsn, tmp_path):
    leader, leader_log = start(tmp_path, "a", pg_dsn)
    standby = None
    try:
        await wait_until(lambda: b"ARI connected" in leader_log.read_bytes(), timeout=30, what="the leader")
        standby, standby_log = start(tmp_path, "b", pg_dsn)
        await wait_until(lambda: b"standby" in standby_log.read_bytes(), timeout=30, what="the standby")
        assert b"ARI connected" not in standby_log.read_bytes()  # a standby never talks to Asterisk
        with AgentPhone(1) as anna:
            call = caller("7001", hangup_after_ms=15_000)
            await wait_for_event(pg_dsn, "connected", leader_log)
            conn = await asyncpg.connect(pg_dsn)
            try:
                leader.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                await asyncio.to_thread(leader.wait, 10)
                await wait_until(lambda: b"ARI connected" in standby_log.read_bytes(), timeout=15,
                                 what="the standby to take over")
                took_over = time.monotonic() - killed
                (await call).check()  # the conversation went on through the take-over
                await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1, timeout=10, what="agent BYE")
                await asyncio.sleep(1.0)
                rows = await conn.fetch("SELECT type FROM call_events ORDER BY id")
            finally:
                await conn.close()
        types = [r["type"] for r in rows]
        assert "conversation_resumed" in types and types[-1] == "call_ended"
        assert took_over < 5, f"take-over took {took_over:.1f} s"
        print(f"standby connected to ARI {took_over:.2f} s after the leader was killed")
    finally:
        for p in (leader, standby):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(p.wait, 30)
                except subprocess.TimeoutExpired:
                    p.kill()
