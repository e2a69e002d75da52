"""The post-call survey on real phones: a sipp caller reaches agent01 (a sipp agent phone) through the billing
queue; the agent hangs up first; the caller stays on the line in the survey flow and presses 4; the score is a
``survey_result`` event with the queue and the agent, and the CSAT KPI counts it. A caller who hangs up first is
not surveyed. Real Asterisk, real PostgreSQL (the ACD test config plus a survey)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcore.app import CallcoreApp
from callcore.config import load_config
from callcore.events import utcnow
from callcore.ivr.registry import CODE_FLOWS
from callcore.kpi.definitions import KpiSettings
from callcore.kpi.store import PgKpis
from tests.integration.conftest import ACD_CONFIG, start_app
from tests.sip import AgentPhone, run_caller
from tests.sip.runner import Dtmf
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SURVEY_DID = "7010"
SURVEY_FLOW = {
    "language": "nl",
    "start": "rate",
    "nodes": {
        "rate": {"type": "collect", "prompt": ["callcore/survey-rate"], "variable": "csat", "max_digits": 1,
                 "pattern": "[1-5]", "first_timeout": 8, "retries": 2, "next": "thanks", "on_failure": "bye"},
        "thanks": {"type": "hangup", "sounds": ["callcore/survey-thanks"]},
        "bye": {"type": "hangup"},
    },
}


@pytest.fixture
async def survey_app(asterisk, pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """callcore with the ACD test config; the billing queue surveys its callers; DID 7010 → billing (Dutch)."""
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    data: dict[str, Any] = yaml.safe_load(ACD_CONFIG.read_text())
    data["queues"]["billing"]["survey"] = "survey"
    data["flows"]["survey"] = SURVEY_FLOW
    data["inbound"]["dids"][SURVEY_DID] = "billing_nl"
    path = tmp_path / "callcore.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    app = await start_app(load_config(path, known_flows=set(CODE_FLOWS)))
    try:
        yield app
    finally:
        await asyncio.wait_for(app.stop(drain_seconds=2), 30)


async def events_of(app: CallcoreApp, types: tuple[str, ...]) -> list[tuple[str, dict]]:
    await app.writer.flush()
    rows = await app.pool.fetch(
        "SELECT e.type, e.payload FROM call_events e JOIN calls c USING (call_id) "
        "WHERE c.did = $1 AND e.type = ANY($2::text[]) ORDER BY e.id", SURVEY_DID, list(types))
    return [(r["type"], r["payload"]) for r in rows]


async def test_the_caller_rates_the_call_after_the_agent_hangs_up(survey_app: CallcoreApp):
    acd = survey_app.acd
    acd.login("agent01")
    started = utcnow()
    # The agent's phone answers and hangs up 1.5 s later; the caller stays on the line, presses 4 once the
    # survey asks (4 s after its answer, which comes when the agent answers) and waits for callcore's BYE.
    with AgentPhone(1, hangup_after_ms=1500) as anna:
        result = await asyncio.to_thread(run_caller, SURVEY_DID, [Dtmf("4", pause_before_ms=4000)],
                                         bye_timeout_ms=40_000, timeout=60)
        result.check()
        await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="the agent's call")
    await wait_until(lambda: survey_app.runtime.live_calls == 0, what="the call to end")

    events = await events_of(survey_app, ("connected", "party_left", "survey_started", "variables_set",
                                          "survey_result", "hangup"))
    types = [t for t, _ in events]
    assert types.index("connected") < types.index("party_left") < types.index("survey_started") \
        < types.index("survey_result")
    assert [p for t, p in events if t == "survey_started"] == [{"flow": "survey", "queue": "billing",
                                                                 "agent": "agent01"}]
    assert {"csat": "4"} in [p for t, p in events if t == "variables_set"]
    assert [p for t, p in events if t == "survey_result"] == [{"flow": "survey", "queue": "billing",
                                                                "agent": "agent01", "score": 4}]
    # callcore hung up at the end of the survey (its BYE), not the caller.
    caller_hangups = [p for t, p in events if t == "hangup" and "endpoint" not in p]
    assert caller_hangups and caller_hangups[-1]["by"] == "callcore"
    # The agent was free for the next call while the caller rated this one.
    await wait_until(lambda: acd.agents["agent01"].state in ("wrap_up", "ready"), what="agent01 released")

    kpis = PgKpis(survey_app.pool, KpiSettings.from_config(survey_app.config), cache_seconds=0)
    end = utcnow() + timedelta(seconds=1)
    (billing,) = await kpis.queues(started - timedelta(minutes=1), end, queue="billing")
    assert (billing.csat_responses, billing.csat_average, billing.csat_satisfied_pct) == (1, 4.0, 100.0)
    (anna_row,) = await kpis.agents(started - timedelta(minutes=1), end, agent="agent01")
    assert (anna_row.csat_responses, anna_row.csat_average) == (1, 4.0)


async def test_a_caller_who_hangs_up_first_is_not_surveyed(survey_app: CallcoreApp):
    acd = survey_app.acd
    acd.login("agent01")
    with AgentPhone(1) as anna:  # the agent waits for the caller's BYE
        result = await asyncio.to_thread(run_caller, SURVEY_DID, [], hangup_after_ms=1500, timeout=60)
        result.check()
        await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1, timeout=10, what="the agent's call")
    await wait_until(lambda: survey_app.runtime.live_calls == 0, what="the call to end")
    types = [t for t, _ in await events_of(survey_app, ("connected", "survey_started", "survey_result"))]
    assert types == ["connected"]
