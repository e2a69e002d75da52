"""A callcore crash mid-conversation: the caller and agent keep talking in Asterisk, the next callcore takes over.

Real processes: `callcore run` is killed with SIGKILL while a sipp caller talks to agent01's sipp phone; a new
callcore (same database) adopts the call, puts agent01 back on_call with it, and ends it normally (wrap-up).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from callcore.config import load_config
from callcore.ivr.registry import CODE_FLOWS
from tests.integration.conftest import assert_no_bridge_in_use, start_app
from tests.integration.test_acd import CONFIG, caller
from tests.sip import AgentPhone
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]


AGENT01_AT_START = ("queues: [billing, callme]}", "queues: [billing, callme], login_at_start: true}")


def write_config(directory: Path, extra: str = "") -> Path:
    """The ACD test config with agent01 logged in at start (a `callcore run` has no test to log it in)."""
    path = directory / "callcore.yaml"
    path.write_text(CONFIG.read_text().replace(*AGENT01_AT_START) + extra)
    return path


def spawn(config: Path, log_path: Path, dsn: str) -> subprocess.Popen[bytes]:
    """`callcore run -c config` as a real process, its output in ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "callcore.cli", "run", "-c", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, "CALLCORE_DATABASE_URL": dsn}, cwd=REPO)


async def wait_for_event(dsn: str, type_: str, log_path: Path, timeout: float = 15.0) -> None:
    """Until another process's writer has stored an event of ``type_`` (it flushes within its batch interval)."""
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(int(timeout * 10)):
            if await conn.fetchval("SELECT count(*) FROM call_events WHERE type = $1", type_):
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    pytest.fail(f"no {type_} event within {timeout} s: " + log_path.read_text()[-2000:])


class Crash:
    """A real `callcore run` (agent01 logged in at start) to be killed with SIGKILL, and the in-process callcore
    that takes over from it; both are gone when the block ends."""

    def __init__(self, tmp_path: Path, dsn: str) -> None:
        self.path = write_config(tmp_path)
        self.log = tmp_path / "first.log"
        self.dsn = dsn
        self.first: subprocess.Popen[bytes] | None = None
        self.second = None

    async def __aenter__(self) -> Crash:
        self.first = spawn(self.path, self.log, self.dsn)
        await wait_until(lambda: b"ARI connected" in self.log.read_bytes(), timeout=30, what="callcore run")
        return self

    async def kill_and_restart(self):  # noqa: ANN201 - the new CallcoreApp
        assert self.first is not None
        self.first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.first.wait, 10)
        self.second = await start_app(load_config(self.path, known_flows=set(CODE_FLOWS)))
        return self.second

    async def __aexit__(self, *exc: object) -> None:
        if self.first is not None and self.first.poll() is None:
            self.first.kill()
        if self.second is not None:
            await asyncio.wait_for(self.second.stop(drain_seconds=2), 30)


async def test_a_crash_mid_call_leaves_the_conversation_alive_and_the_next_process_resumes_it(
    asterisk, pg_dsn, tmp_path, monkeypatch
):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    async with Crash(tmp_path, pg_dsn) as crash:
        with AgentPhone(1) as anna:
            call = caller("7001", hangup_after_ms=12_000)  # talks 12 s, then hangs up
            await wait_for_event(pg_dsn, "connected", crash.log)
            await asyncio.sleep(1.0)  # talking
            second = await crash.kill_and_restart()
            acd = second.acd
            await wait_until(lambda: any("agent01" in c.agents for c in acd.conversations.values()), timeout=10,
                             what="the conversation to be resumed")
            assert acd.agents["agent01"].state == "on_call"
            assert second.runtime.counters["adopted"] == 1
            (await call).check()  # the caller talked on through the crash and hung up normally
            await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1, timeout=5,
                             what="agent01's phone to be hung up")
            await wait_until(lambda: acd.agents["agent01"].state == "wrap_up", timeout=5, what="wrap-up")
        await second.writer.flush()
        rows = await second.pool.fetch("SELECT type, payload FROM call_events ORDER BY id")
        types = [r["type"] for r in rows]
        assert types.count("call_started") == 1 and "call_adopted" in types and types[-1] == "call_ended"
        resumed = next(r["payload"] for r in rows if r["type"] == "conversation_resumed")
        assert resumed == {"queue": "billing", "agents": ["agent01"], "other_parties": [], "dropped_legs": []}
        states = await second.pool.fetch("SELECT state, reason FROM agent_events WHERE agent_id = 'agent01' "
                                         "ORDER BY id")
        assert [(r["state"], r["reason"]) for r in states][-3:] == [
            ("ready", "login"), ("on_call", "call resumed after restart"), ("wrap_up", "call ended")]
        await assert_no_bridge_in_use(second)


async def test_a_caller_waiting_in_a_queue_when_callcore_dies_keeps_its_place_in_the_next_process(
    asterisk, pg_dsn, tmp_path, monkeypatch
):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    # agent01 is logged in at start but its phone is off: the offer fails at once, agent01 is paused ("no
    # answer") and the caller waits in the billing queue with hold music.
    async with Crash(tmp_path, pg_dsn) as crash:
        call = caller("7001", bye_timeout_ms=60_000)
        await wait_for_event(pg_dsn, "agent_no_answer", crash.log)
        await asyncio.sleep(3)  # waiting, with hold music
        second = await crash.kill_and_restart()
        await wait_until(lambda: len(second.acd.waiting) == 1, timeout=10, what="the caller back in its queue")
        entry = next(iter(second.acd.waiting.values()))
        assert second.acd.now() - entry.enqueued_at >= 3  # its wait (its place) survived the restart
        assert second.acd.agents["agent01"].state == "paused"  # as it was
        with AgentPhone(1, hangup_after_ms=1000):
            second.acd.ready("agent01")
            (await call).check()
        await second.writer.flush()
        rows = await second.pool.fetch("SELECT type, payload FROM call_events ORDER BY id")
        types = [r["type"] for r in rows]
        assert "queue_resumed" in types and types.count("call_started") == 1 and "connected" in types
        resumed = next(r["payload"] for r in rows if r["type"] == "queue_resumed")
        assert resumed["queue"] == "billing" and resumed["waited_seconds"] >= 3


async def test_a_caller_in_the_ivr_when_callcore_dies_goes_on_at_the_flows_safe_node(
    asterisk, pg_dsn, tmp_path, monkeypatch
):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    async with Crash(tmp_path, pg_dsn) as crash:
        call = caller("7006", hangup_after_ms=9_000)  # hears the welcome and the menu, presses nothing
        await wait_for_event(pg_dsn, "ivr_started", crash.log)
        await asyncio.sleep(1.0)
        second = await crash.kill_and_restart()
        (await call).check()  # never left in silence: the flow went on, the caller hung up as planned
        await wait_until(lambda: second.runtime.live_calls == 0, what="the call to end")
        await second.writer.flush()
        rows = await second.pool.fetch("SELECT type, payload FROM call_events WHERE type IN "
                                       "('ivr_started', 'call_adopted', 'call_ended') ORDER BY id")
        started = [r["payload"] for r in rows if r["type"] == "ivr_started"]
        assert [s["start"] for s in started] == ["welcome", "menu"] and started[1]["resumed"] is True
        assert [r["type"] for r in rows][-1] == "call_ended" and "call_adopted" in [r["type"] for r in rows]
