"""Load on the real stack: 20 agent phones, 100 callers at 5 calls/s, everything accounted for in PostgreSQL."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

import pytest
import yaml

from callcore.config import load_config
from callcore.ivr.registry import CODE_FLOWS
from tests.integration.conftest import start_app
from tests.sip import AgentPhone, run_callers
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
AGENTS = 20
CALLERS = 100


def load_config_text() -> str:
    return yaml.safe_dump({
        "state_dir": "state",
        "ari": {"password": "callcore-sandbox", "reconnect_initial": 0.2, "reconnect_max": 1},
        "inbound": {"dids": {"8000": "support"}},
        "skills": ["support"],
        "agents": {f"agent{n:02d}": {"endpoint": f"PJSIP/agent{n:02d}", "skills": {"support": 5},
                                     "queues": ["support"], "login_at_start": True} for n in range(1, AGENTS + 1)},
        "queues": {"support": {"required_skills": {"support": 1}, "ring_timeout": 10, "wrap_up_seconds": 1}},
        "flows": {"support": {"start": "q", "nodes": {"q": {"type": "queue", "queue": "support"}}}},
    })


async def test_100_callers_at_5_per_second_on_20_agents_all_accounted_for_and_no_agent_double_booked(
    asterisk, pg_dsn, tmp_path, monkeypatch
):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    path = tmp_path / "callcore.yaml"
    path.write_text(load_config_text())
    app = await start_app(load_config(path, known_flows=set(CODE_FLOWS)))
    try:
        with ExitStack() as phones:
            for n in range(1, AGENTS + 1):
                phones.enter_context(AgentPhone(n, hangup_after_ms=2000))
            result = await asyncio.to_thread(
                run_callers, "8000", CALLERS, 5, bye_timeout_ms=60_000, timeout=150)
            assert result.successful == CALLERS and result.failed == 0, result.describe()
            await wait_until(lambda: app.runtime.live_calls == 0, timeout=30, what="all calls to end")
            await wait_until(lambda: all(s.state == "ready" for s in app.acd.agents.values()), timeout=10,
                             what="every agent back to ready")
        await app.writer.flush()
        db = app.pool
        assert await db.fetchval("SELECT count(*) FROM calls WHERE did = '8000'") == CALLERS
        assert await db.fetchval("SELECT count(*) FROM calls WHERE ended_at IS NULL") == 0
        connected = await db.fetchval("SELECT count(*) FROM call_events WHERE type = 'connected'")
        abandoned = await db.fetchval("SELECT count(*) FROM call_events WHERE type = 'abandoned'")
        overflowed = await db.fetchval("SELECT count(*) FROM call_events WHERE type = 'overflow'")
        assert connected == CALLERS and abandoned == 0 and overflowed == 0
        # No agent was ever reserved or on a call while already reserved or on a call: replay each agent's
        # timeline from its events and check every offer found it ready.
        rows = await db.fetch("SELECT agent_id, state, previous FROM agent_events ORDER BY id")
        per_agent: dict[str, list[tuple[str, str | None]]] = {}
        for r in rows:
            per_agent.setdefault(r["agent_id"], []).append((r["state"], r["previous"]))
        for agent, timeline in per_agent.items():
            for state, previous in timeline:
                if state == "reserved":
                    assert previous == "ready", (agent, timeline)
            for (state, _), (_, previous) in zip(timeline, timeline[1:]):
                assert previous == state, f"{agent}: transitions do not chain: {timeline}"
        offers = await db.fetchval("SELECT count(*) FROM agent_events WHERE state = 'reserved'")
        assert offers == CALLERS  # every caller rang exactly one agent: no ring-all, no double offers
        assert sum(1 for t in per_agent.values() if any(s == "on_call" for s, _ in t)) >= 10  # load was spread
    finally:
        await asyncio.wait_for(app.stop(drain_seconds=5), 60)
