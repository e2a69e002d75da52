"""The dialer serves scheduled callbacks (real PostgreSQL, the real ACD, a fake phone network): due callbacks go
before fresh leads, each with an agent reserved; an agent-owned one waits for its owner until the campaign's
grace period ends; do-not-call and the callee's calling window are checked when it is dialled; preview offers a
callback to its owner first."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from callcore.acd.model import AcdConfig, AgentConfig, QueueConfig
from callcore.acd.service import AcdService
from callcore.calls.call import OriginateFailed
from callcore.campaigns.model import CampaignConfig
from callcore.dialer import preview as preview_mod
from callcore.dialer import service as service_mod
from callcore.dialer.preview import PreviewDialer
from callcore.dialer.service import DialerService
from callcore.leads import dnc, store
from tests.fakes.sinks import RecordingSink

UTC = timezone.utc
# Wednesday 1 July 2026, 10:00 UTC = 12:00 in Amsterdam.
NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=1)


class Network:
    """``place_call`` of the runtime: every call rings until the test says how it ends."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    async def place_call(self, endpoint, handler, *, call_id=None, data=None, context=None, **_kw):
        ending: asyncio.Future = asyncio.get_running_loop().create_future()
        self.calls.append({"endpoint": endpoint, "call_id": call_id, "data": data or {}, "context": context,
                           "end": ending})
        return await ending

    def numbers(self) -> list[str]:
        return [c["endpoint"].split("/")[1].split("@")[0] for c in self.calls]

    def no_answer(self, i: int = -1) -> None:
        self.calls[i]["end"].set_exception(OriginateFailed(self.calls[i]["endpoint"], 19, "no answer"))


def campaign(**kw) -> CampaignConfig:
    base = dict(caller_id="+31881234567", default_region="NL", queue="retention", compliance_message=["x"],
                windows=[{"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-20:30"}])
    return CampaignConfig(**{**base, **kw})


@pytest.fixture
def clock(monkeypatch):
    now = {"t": NOW}
    monkeypatch.setattr(service_mod, "_utcnow", lambda: now["t"])
    monkeypatch.setattr(preview_mod.PreviewDialer, "_now", lambda self: now["t"])
    return now


def world(pg_pool, cfg: CampaignConfig, agents=("agent01", "agent02")) -> tuple[DialerService, AcdService, Network]:
    acd = AcdService(AcdConfig(agents={a: AgentConfig(endpoint=f"PJSIP/{a}", queues=["retention"]) for a in agents},
                               queues={"retention": QueueConfig()}), RecordingSink())
    network = Network()
    acd.runtime = network  # type: ignore[assignment]
    dialer = DialerService({"c": cfg}, acd, network, pg_pool)  # type: ignore[arg-type]
    return dialer, acd, network


async def lead(pool, cfg, number: str, **kw) -> store.Lead:
    made = await store.add_lead(pool, "c", cfg, number, now=EARLIER, **kw)
    assert made is not None
    return made


async def callback(pool, cfg, the_lead, *, due: datetime, owner: str | None = None) -> store.Callback:
    return await store.schedule_callback(pool, "c", cfg, lead_id=the_lead.id, when=due, owner_agent=owner,
                                         created_by=owner, now=EARLIER)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_due_callback_for_any_agent_is_dialled_before_fresh_leads_with_an_agent_reserved(
    pg_pool, clock
) -> None:
    cfg = campaign()
    dialer, acd, network = world(pg_pool, cfg)
    fresh = await lead(pg_pool, cfg, "0612345671", priority=9)
    promised = await lead(pg_pool, cfg, "0612345672")
    cb = await callback(pg_pool, cfg, promised, due=NOW - timedelta(minutes=1))
    acd.login("agent01")
    run = dialer.run_of("c")
    assert await dialer.serve_callbacks(run) == 1
    await settle()
    assert network.numbers() == ["+31612345672"]
    (attempt,) = run.attempts.values()
    assert attempt.callback.id == cb.id and attempt.agent == "agent01"
    assert acd.agents["agent01"].state == "reserved" and acd.agents["agent01"].offer == str(attempt.attempt_id)
    assert network.calls[0]["context"] is None  # no AMD: the reserved agent hears the callee
    assert network.calls[0]["data"]["scheduled_callback"] == cb.id
    assert dialer.how_many(run) == 0  # the only agent is taken: no fresh lead now
    assert (await store.callbacks_of(pg_pool, "c", status="dialing"))[0].id == cb.id
    # Not answered: the callback is over, the lead goes on by its retry rule, the agent is free again.
    network.no_answer()
    await settle()
    await asyncio.sleep(0.05)
    assert run.attempts == {} and acd.agents["agent01"].state == "ready"
    assert [c.id for c in await store.callbacks_of(pg_pool, "c", status="failed")] == [cb.id]
    after = await store.get_lead(pg_pool, promised.id)
    assert (after.status, after.attempts, after.last_outcome) == ("pending", 1, "no_answer")
    row = await pg_pool.fetchrow("SELECT agent_guaranteed, outcome FROM lead_attempts")
    assert (row["agent_guaranteed"], row["outcome"]) == (True, "no_answer")
    assert (await store.get_lead(pg_pool, fresh.id)).status == "pending"


async def test_the_loop_serves_callbacks_first(pg_pool, clock) -> None:
    cfg = campaign()
    dialer, acd, network = world(pg_pool, cfg)
    await lead(pg_pool, cfg, "0612345671", priority=9)
    promised = await lead(pg_pool, cfg, "0612345672")
    await callback(pg_pool, cfg, promised, due=NOW - timedelta(minutes=1))
    acd.login("agent01")
    acd.login("agent02")
    await dialer.start("c")
    try:
        for _ in range(100):
            if len(network.calls) >= 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await dialer.close()
    assert network.numbers()[0] == "+31612345672"  # the callback first, then one fresh lead for the other agent
    assert sorted(network.numbers()) == ["+31612345671", "+31612345672"]


async def test_an_owned_callback_waits_for_its_owner_and_reserves_exactly_that_agent(pg_pool, clock) -> None:
    cfg = campaign()
    dialer, acd, network = world(pg_pool, cfg)
    promised = await lead(pg_pool, cfg, "0612345672")
    cb = await callback(pg_pool, cfg, promised, due=NOW - timedelta(minutes=2), owner="agent02")
    run = dialer.run_of("c")
    acd.login("agent01")  # another agent is free: not for this callback
    assert await dialer.serve_callbacks(run) == 0
    assert network.calls == [] and acd.agents["agent01"].state == "ready"
    acd.login("agent02", paused=True)  # the owner is there but not ready: still waiting
    assert await dialer.serve_callbacks(run) == 0
    acd.ready("agent02")
    assert await dialer.serve_callbacks(run) == 1
    await settle()
    (attempt,) = run.attempts.values()
    assert attempt.agent == "agent02" and acd.agents["agent02"].offer == str(attempt.attempt_id)
    assert acd.agents["agent01"].state == "ready"  # the other agent is left for fresh leads
    assert dialer.how_many(run) == 1
    await dialer.close()  # shut down while it rings: the callback stays due for its owner
    assert acd.agents["agent02"].state == "ready"
    assert [c.id for c in await store.callbacks_of(pg_pool, "c")] == [cb.id]


async def test_after_the_grace_period_any_agent_takes_an_owned_callback_unless_the_campaign_says_owner(
    pg_pool, clock
) -> None:
    cfg = campaign(callbacks={"owner_grace_seconds": 600})
    dialer, acd, network = world(pg_pool, cfg)
    promised = await lead(pg_pool, cfg, "0612345672")
    await callback(pg_pool, cfg, promised, due=NOW - timedelta(minutes=5), owner="agent02")  # owner logged out
    acd.login("agent01")
    run = dialer.run_of("c")
    assert await dialer.serve_callbacks(run) == 0  # within the 10 minutes
    clock["t"] = NOW + timedelta(minutes=5, seconds=1)
    assert await dialer.serve_callbacks(run) == 1
    await settle()
    assert next(iter(run.attempts.values())).agent == "agent01"
    await dialer.close()

    patient = campaign(callbacks={"owner_grace_seconds": 600, "after_grace": "owner"})
    dialer2, acd2, network2 = world(pg_pool, patient)
    acd2.login("agent01")
    clock["t"] = NOW + timedelta(hours=3)
    assert await dialer2.serve_callbacks(dialer2.run_of("c")) == 0 and network2.calls == []


async def test_do_not_call_and_the_callees_window_are_checked_when_it_is_dialled(pg_pool, clock) -> None:
    cfg = campaign()
    dialer, acd, network = world(pg_pool, cfg)
    listed = await lead(pg_pool, cfg, "0612345673")
    await callback(pg_pool, cfg, listed, due=NOW - timedelta(minutes=1))
    await dnc.add(pg_pool, "0612345673", region="NL", now=NOW - timedelta(seconds=1))  # listed after scheduling
    # "tomorrow 10:00" for a callee in New York: 14:00 UTC; at 13:59 UTC it is not due yet.
    ny = await lead(pg_pool, cfg, "+12125550123")
    ny_cb = await store.schedule_callback(pg_pool, "c", cfg, lead_id=ny.id, when=datetime(2026, 7, 2, 10, 0),
                                         now=NOW)
    assert ny_cb.due_at == datetime(2026, 7, 2, 14, 0, tzinfo=UTC)
    acd.login("agent01")
    run = dialer.run_of("c")
    assert await dialer.serve_callbacks(run) == 0
    clock["t"] = datetime(2026, 7, 2, 13, 59, tzinfo=UTC)
    assert await dialer.serve_callbacks(run) == 0
    clock["t"] = datetime(2026, 7, 2, 14, 0, tzinfo=UTC)
    assert await dialer.serve_callbacks(run) == 1
    await settle()
    assert network.numbers() == ["+12125550123"]
    await dialer.close()


async def test_a_callback_taken_meanwhile_gives_its_reserved_agent_back(pg_pool, clock, monkeypatch) -> None:
    cfg = campaign()
    dialer, acd, network = world(pg_pool, cfg)
    promised = await lead(pg_pool, cfg, "0612345672")
    await callback(pg_pool, cfg, promised, due=NOW - timedelta(minutes=1))
    acd.login("agent01")
    real_claim = store.claim_due_callbacks

    async def claimed_by_another_dialer(*a, **kw):
        return []

    monkeypatch.setattr(service_mod.leads, "claim_due_callbacks", claimed_by_another_dialer)
    assert await dialer.serve_callbacks(dialer.run_of("c")) == 0
    assert acd.agents["agent01"].state == "ready" and network.calls == []
    monkeypatch.setattr(service_mod.leads, "claim_due_callbacks", real_claim)


async def test_callbacks_left_dialling_by_a_crash_are_due_again_at_start(pg_pool, clock) -> None:
    cfg = campaign()
    promised = await lead(pg_pool, cfg, "0612345672")
    cb = await callback(pg_pool, cfg, promised, due=NOW - timedelta(minutes=1))
    assert [c.id for c in await store.claim_due_callbacks(pg_pool, "c", cfg, now=NOW, limit=5)] == [cb.id]
    dialer, acd, network = world(pg_pool, cfg)  # the process that claimed it died
    await dialer.start("c")
    await dialer.close()
    assert [c.id for c in await store.callbacks_of(pg_pool, "c")] == [cb.id]


async def test_preview_offers_a_callback_to_its_owner_first(pg_pool, clock) -> None:
    cfg = campaign(mode="preview", callbacks={"owner_grace_seconds": 900})
    dialer, acd, network = world(pg_pool, cfg)
    preview = PreviewDialer(dialer)
    await lead(pg_pool, cfg, "0612345671", priority=9)
    promised = await lead(pg_pool, cfg, "0612345672")
    cb = await callback(pg_pool, cfg, promised, due=NOW - timedelta(minutes=1), owner="agent02")
    acd.login("agent01")
    acd.login("agent02")
    other = await preview.next_lead("agent01")
    assert other.lead.number == "+31612345671"  # not agent02's callback: a fresh lead
    assert other.callback is None
    mine = await preview.next_lead("agent02")
    assert mine.lead.id == promised.id and preview.holds["agent02"].callback.id == cb.id
    # The offer says it is a callback: whose, when (UTC and as agreed locally), and the note.
    assert mine.callback is not None
    assert (mine.callback.id, mine.callback.owner_agent, mine.callback.due_at) == (cb.id, "agent02", cb.due_at)
    assert (mine.callback.due_local, mine.callback.timezone, mine.callback.note) == (cb.due_local, cb.timezone,
                                                                                      cb.note)
    assert (await preview.next_lead("agent02")).callback == mine.callback  # the same hold, the same offer
    await preview.skip("agent02", promised.id, reason="not now")  # back, still due, still agent02's
    assert [c.id for c in await store.callbacks_of(pg_pool, "c")] == [cb.id]
    again = await preview.next_lead("agent02")
    assert again.lead.id == promised.id
    call_id = await preview.dial("agent02", promised.id)
    await settle()
    assert isinstance(call_id, uuid.UUID) and network.numbers() == ["+31612345672"]
    assert acd.agents["agent02"].offer == str(call_id)
    network.no_answer()
    await asyncio.sleep(0.05)
    assert [c.id for c in await store.callbacks_of(pg_pool, "c", status="failed")] == [cb.id]
    assert acd.agents["agent02"].state == "ready"
    await preview.close()


async def test_preview_after_the_grace_period_another_agent_gets_the_callback(pg_pool, clock) -> None:
    cfg = campaign(mode="preview", callbacks={"owner_grace_seconds": 900})
    dialer, acd, network = world(pg_pool, cfg)
    preview = PreviewDialer(dialer)
    promised = await lead(pg_pool, cfg, "0612345672")
    cb = await callback(pg_pool, cfg, promised, due=NOW - timedelta(minutes=1), owner="agent02")
    acd.login("agent01")
    assert await preview.next_lead("agent01") is None  # agent02's for 15 minutes
    clock["t"] = NOW + timedelta(minutes=15)
    offer = await preview.next_lead("agent01")
    assert offer.lead.id == promised.id and preview.holds["agent01"].callback.id == cb.id


async def test_a_preview_reservation_lapses_by_itself_and_a_crashed_ones_lead_comes_back(pg_pool, clock) -> None:
    cfg = campaign(mode="preview", preview_seconds=1)
    dialer, acd, _ = world(pg_pool, cfg)
    preview = PreviewDialer(dialer)
    held = await lead(pg_pool, cfg, "0612345671")
    acd.login("agent01")
    assert (await preview.next_lead("agent01")).lead.id == held.id
    acd.logout("agent01")  # gone without dialling or skipping
    clock["t"] = NOW + timedelta(seconds=5)
    await asyncio.sleep(2.2)  # the reservation's own timer gives it back, nobody asked again
    assert "agent01" not in preview.holds
    status = await pg_pool.fetchval("SELECT status FROM leads WHERE id = $1", held.id)
    assert status == "pending"
    # A process that died holding a lead: the next process gives it back before offering leads.
    await pg_pool.execute("UPDATE leads SET status = 'dialing', updated_at = $2 WHERE id = $1", held.id,
                          NOW - timedelta(hours=1))
    acd.login("agent02")
    restarted = PreviewDialer(dialer)
    assert (await restarted.next_lead("agent02")).lead.id == held.id
    await preview.close()
    await restarted.close()
