"""/metrics per outbound campaign: running, calls in flight and connected, the pacing (dial) level and the
abandonment rate in the policy window, read from the real DialerService's state at scrape time."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import datetime, timezone
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from callcore.api.metrics import Metrics
from callcore.dialer.compliance import AbandonLedger, AbandonPolicy
from callcore.dialer.service import AttemptState, DialerService
from tests.unit.api.apifakes import FakeAcd, acd_config
from tests.unit.api.outboundfakes import campaign_config, lead, outbound, start_outbound


class Acd(FakeAcd):
    """The parts of AcdService the dialer reads: config, agents, on_agent_change."""

    def on_agent_change(self, listener: Any) -> None:
        pass


def dialer() -> tuple[DialerService, Acd]:
    acd = Acd(acd_config())
    campaigns = {"retention": campaign_config(mode="predictive", queue="sales"),
                 "winback": campaign_config(mode="progressive", queue="billing")}
    return DialerService(campaigns, acd, runtime=None, db=None), acd  # type: ignore[arg-type]


def attempt(phase: str) -> AttemptState:
    return AttemptState(lead(1), uuid.uuid4(), datetime(2026, 3, 10, 10, tzinfo=timezone.utc), 0.0,
                        phase=phase)  # type: ignore[arg-type]


def scrape(text: str) -> dict[tuple[str, str], float]:
    """{(sample name, campaign label): value} of the callcore_dialer_* samples."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("callcore_dialer_"):
                out[(sample.name, sample.labels["campaign"])] = sample.value
    return out


async def test_a_running_campaigns_pacing_and_abandonment_are_scraped():
    d, acd = dialer()
    run = d.run_of("retention")
    run.state = "running"
    # sales: a1 and a2 serve it. a1 talks, a2 is ready: 2 agents able to take a call soon.
    acd.on_call("a1", uuid.uuid4())
    acd.login("a2")
    for phase in ("ringing", "ringing", "ringing", "waiting_agent", "connected"):
        a = attempt(phase)
        run.attempts[a.attempt_id] = a
    # 40 live answers, 1 of them abandoned, in the policy window.
    now = asyncio.get_running_loop().time()
    run.ledger = AbandonLedger(AbandonPolicy(limit=0.03, window_seconds=86400))
    for n in range(40):
        run.ledger.record_live(now - 100 + n, abandoned=n == 7)

    api = await start_outbound(outbound(campaigns=d))
    try:
        status, text, _ = await api.call("GET", "/metrics", None)
    finally:
        await api.client.close()
    assert status == 200
    got = scrape(text)
    assert got[("callcore_dialer_campaign_running", "retention")] == 1.0
    assert got[("callcore_dialer_calls_in_flight", "retention")] == 4.0  # 3 ringing + 1 waiting for an agent
    assert got[("callcore_dialer_calls_connected", "retention")] == 1.0
    assert got[("callcore_dialer_pacing_level", "retention")] == 2.0  # 4 lines / 2 agents
    assert got[("callcore_dialer_window_live_answers", "retention")] == 40.0
    assert got[("callcore_dialer_window_abandons", "retention")] == 1.0
    assert got[("callcore_dialer_abandon_rate", "retention")] == 0.025  # 1 / 40
    assert got[("callcore_dialer_abandon_limit", "retention")] == 0.03
    # A campaign never started: present, all zeros, its preset's limit.
    assert got[("callcore_dialer_campaign_running", "winback")] == 0.0
    assert got[("callcore_dialer_calls_in_flight", "winback")] == 0.0
    assert got[("callcore_dialer_pacing_level", "winback")] == 0.0
    assert got[("callcore_dialer_abandon_rate", "winback")] == 0.0


async def test_the_accessor_counts_only_agents_who_can_take_a_call():
    d, acd = dialer()
    run = d.run_of("retention")
    acd.login("a1", paused=True)  # paused: not able
    acd.login("a2")
    assert d.pacing("retention")["able"] == 1
    acd.logout("a2")
    a = attempt("ringing")
    run.attempts[a.attempt_id] = a
    p = d.pacing("retention")
    assert (p["able"], p["in_flight"], p["ringing"]) == (0, 1, 1)
    m = Metrics()
    m.set_campaign("retention", p)
    assert math.isnan(m.registry.get_sample_value("callcore_dialer_pacing_level", {"campaign": "retention"}))


def test_campaigns_that_go_are_dropped():
    class Dialer:
        def __init__(self) -> None:
            self.runs = {"a": None, "b": None}

        def pacing(self, name: str) -> dict[str, Any]:
            return {"state": "running", "in_flight": 3, "able": 2, "abandon_live": 0.0, "abandon_abandons": 0.0,
                    "abandon_limit": 0.03}

    m, d = Metrics(), Dialer()
    m.update_from_dialer(d)
    assert m.registry.get_sample_value("callcore_dialer_pacing_level", {"campaign": "b"}) == 1.5
    del d.runs["b"]
    m.update_from_dialer(d)
    assert m.registry.get_sample_value("callcore_dialer_pacing_level", {"campaign": "b"}) is None
    assert m.registry.get_sample_value("callcore_dialer_abandon_rate", {"campaign": "a"}) == 0.0


async def test_a_dialer_without_the_accessor_leaves_the_scrape_alone():
    api = await start_outbound(outbound())  # the fake dialer has no pacing()
    try:
        status, text, _ = await api.call("GET", "/metrics", None)
    finally:
        await api.client.close()
    assert status == 200 and scrape(text) == {}
