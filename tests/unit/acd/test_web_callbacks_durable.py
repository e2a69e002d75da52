"""Web "call me now" callbacks survive a restart: every request is a row of web_callbacks (real PostgreSQL),
rewritten on each change of state, and a new scheduler continues the open ones — at their place in line, not
before their window, with their attempt count; one that was ringing is redone (never twice at once)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest

from callcore.acd import web_callbacks as wc
from callcore.acd.model import AcdConfig, AgentConfig, QueueConfig, VirtualHold
from callcore.acd.service import AcdService
from callcore.acd.web_callbacks import CallbackStoreUnavailable, WebCallbacks
from callcore.api.services import Rejected
from callcore.calls.call import OriginateFailed
from callcore.events import utcnow
from tests.fakes.sinks import RecordingSink

NUMBER = "+31612345678"


class Phones:
    """The runtime's ``place_call`` for callbacks: records who was dialled when; nobody answers (or, with
    ``answer``, the callee answers and the conversation goes on)."""

    def __init__(self, answer: bool = False) -> None:
        self.dialled: list[tuple[str, datetime, uuid.UUID | None]] = []
        self.answer = answer
        self.ringing = 0
        self.most_ringing = 0

    async def place_call(self, endpoint: str, handler, *, call_id: uuid.UUID | None = None, **_kw):
        self.dialled.append((endpoint, utcnow(), call_id))
        self.ringing += 1
        self.most_ringing = max(self.most_ringing, self.ringing)
        try:
            await asyncio.sleep(0.05)
        finally:
            self.ringing -= 1
        if self.answer:
            return object()  # answered: the call's own task would greet the callee and ring the agent
        raise OriginateFailed(endpoint, 19, "no answer")


def acd(phones: Phones, *, agent_ready: bool = True) -> AcdService:
    config = AcdConfig(agents={"a1": AgentConfig(endpoint="PJSIP/a1", queues=["sales"])},
                       queues={"sales": QueueConfig()})
    service = AcdService(config, RecordingSink())
    service.runtime = phones  # type: ignore[assignment]
    if agent_ready:
        service.login("a1")
    return service


def quick(**kw) -> VirtualHold:
    # Validation keeps real ring times >= 15 s; the tests run on short ones.
    return VirtualHold.model_construct(**{**VirtualHold().model_dump(), "ring_timeout": 0.3, "retry_after": 0.3,
                                          "attempts": 2, **kw})


def crash(scheduler: WebCallbacks, service: AcdService) -> None:
    """The process dies: nothing of it runs any more (no timers, no ACD), nothing more is written."""
    for req in scheduler.requests.values():
        for timer in req.timers:
            timer.cancel()
    scheduler._dirty.clear()
    service.close()
    service.waiting.clear()
    service.callback_listener = None


async def until(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def row(pool, callback_id: str) -> dict:
    r = await pool.fetchrow("SELECT * FROM web_callbacks WHERE id = $1", uuid.UUID(callback_id))
    return dict(r) if r is not None else {}


async def test_a_request_is_stored_when_accepted_and_on_every_change(pg_pool) -> None:
    phones = Phones()
    service = acd(phones, agent_ready=False)
    service.login("a1", paused=True)  # serves the queue, takes nothing yet
    scheduler = WebCallbacks(service, quick(attempts=2), db=pg_pool)
    ticket = await scheduler.request(NUMBER, "sales", {"page": "https://telco.nl/glasvezel"}, None, None,
                                     requested_by="website")
    r = await row(pg_pool, ticket.id)  # written before the answer: a restart now keeps it
    assert (r["status"], r["number"], r["queue"], r["context"], r["requested_by"], r["attempts"]) == (
        "waiting", NUMBER, "sales", {"page": "https://telco.nl/glasvezel"}, "website", 0)
    assert r["estimated_at"] == ticket.promised_at and r["promised_at"] is None
    promised = ticket.promised_at + timedelta(seconds=120)
    await scheduler.record_promise(ticket.id, promised)
    await scheduler.flush()
    assert (await row(pg_pool, ticket.id))["promised_at"] == promised

    service.ready("a1")  # its turn: dialled, not answered, dialled again, given up
    for _ in range(100):
        await scheduler.flush()
        if (await row(pg_pool, ticket.id))["status"] == "failed":
            break
        await asyncio.sleep(0.05)
    r = await row(pg_pool, ticket.id)
    assert (r["status"], r["attempts"], r["last_outcome"]) == ("failed", 2, "no_answer")
    assert r["finished_at"] is not None and len(phones.dialled) == 2
    assert r["attempt_call_id"] == phones.dialled[-1][2]


async def test_every_state_is_written_in_order_and_the_latest_wins(pg_pool) -> None:
    phones = Phones(answer=True)
    service = acd(phones, agent_ready=False)
    service.login("a1", paused=True)
    scheduler = WebCallbacks(service, quick(), db=pg_pool)
    ticket = await scheduler.request(NUMBER, "sales", {}, None, None)
    seen = []
    original = wc.save_request

    async def spy(db, req, *, now):
        seen.append(req.status)
        await original(db, req, now=now)

    wc.save_request = spy  # type: ignore[assignment]
    try:
        service.ready("a1")
        for _ in range(100):
            await asyncio.sleep(0.02)
            if scheduler.requests[ticket.id].status == "connected":
                break
        await scheduler.flush()
        assert (await row(pg_pool, ticket.id))["status"] == "connected"
        req = scheduler.requests[ticket.id]
        scheduler._news(req.entry, "done")  # the conversation ended
        await scheduler.flush()
    finally:
        wc.save_request = original  # type: ignore[assignment]
    r = await row(pg_pool, ticket.id)
    assert (r["status"], r["attempts"], r["last_outcome"]) == ("done", 1, "answered")
    assert seen[-1] == "done" and set(seen) <= {"dialing", "connected", "done"}


async def test_scheduler_restarted_the_pending_request_is_dialled_at_its_promised_time(pg_pool) -> None:
    phones = Phones(answer=True)
    first = acd(phones)
    scheduler = WebCallbacks(first, quick(), db=pg_pool)
    not_before = utcnow() + timedelta(seconds=1.2)
    ticket = await scheduler.request(NUMBER, "sales", {"product": "glasvezel"}, not_before, None)
    await scheduler.record_promise(ticket.id, ticket.promised_at + timedelta(seconds=120))
    await scheduler.flush()
    crash(scheduler, first)  # a deploy, before its time came

    phones_after = Phones(answer=True)
    second = acd(phones_after)  # the new process: its agent is ready again
    restarted = await WebCallbacks.open(second, pg_pool, quick())
    assert restarted.pending() == 1 and phones_after.dialled == []  # not before the window opens
    status = await restarted.status(ticket.id)
    assert (status.status, status.number, status.created_at) == ("waiting", NUMBER, scheduler.requests[ticket.id].created_at)
    for _ in range(100):
        if phones_after.dialled:
            break
        await asyncio.sleep(0.05)
    assert phones.dialled == []  # the crashed process never dialled it
    ((endpoint, at, call_id),) = phones_after.dialled
    assert endpoint == f"PJSIP/{NUMBER}@trunk"
    assert not_before <= at <= ticket.promised_at  # at its time: not early, not lost
    await until(lambda: restarted.requests[ticket.id].status == "connected")
    await restarted.close()
    r = await row(pg_pool, ticket.id)
    assert (r["status"], r["attempts"], r["attempt_call_id"]) == ("connected", 1, call_id)
    assert r["context"] == {"product": "glasvezel"}
    events = [e.type for e in second.sink.events if getattr(e, "type", None) and str(e.call_id) == ticket.id]  # type: ignore[attr-defined]
    assert events[0] == wc.WebCallbackEvent.RESTORED


async def test_a_request_keeps_its_place_in_line_and_its_attempts_across_a_restart(pg_pool) -> None:
    phones = Phones()
    first = acd(phones, agent_ready=False)
    first.login("a1", paused=True)
    scheduler = WebCallbacks(first, quick(attempts=3), db=pg_pool)
    older = await scheduler.request("+31612345671", "sales", {}, None, None)
    newer = await scheduler.request("+31612345672", "sales", {}, None, None)
    # The older one was tried once before the restart (not answered; its retry time has passed).
    scheduler.requests[older.id].entry.attempts = 1
    scheduler._news(scheduler.requests[older.id].entry, "no_answer")
    scheduler.requests[older.id].retry_at = utcnow() - timedelta(seconds=1)
    scheduler._save(scheduler.requests[older.id])
    await scheduler.flush()
    crash(scheduler, first)

    phones_after = Phones(answer=True)
    second = acd(phones_after, agent_ready=False)
    second.login("a1", paused=True)
    restarted = await WebCallbacks.open(second, pg_pool, quick(attempts=3))
    await asyncio.sleep(0.05)
    first_in_line = await restarted.status(older.id)
    assert (first_in_line.position, first_in_line.attempts) == (1, 1)
    assert (await restarted.status(newer.id)).position == 2
    second.ready("a1")
    for _ in range(100):
        if phones_after.dialled:
            break
        await asyncio.sleep(0.02)
    assert phones_after.dialled[0][0] == "PJSIP/+31612345671@trunk"  # the older request first
    await until(lambda: restarted.requests[older.id].status == "connected")
    await restarted.close()
    assert (await row(pg_pool, older.id))["attempts"] == 2


async def test_a_request_ringing_when_the_process_died_is_redone_once_its_ring_is_over(pg_pool, monkeypatch) -> None:
    monkeypatch.setattr(wc, "RESTART_HOLD_OFF", 0.4)
    phones = Phones()
    first = acd(phones, agent_ready=False)
    first.login("a1", paused=True)
    scheduler = WebCallbacks(first, quick(attempts=2), db=pg_pool)
    ticket = await scheduler.request(NUMBER, "sales", {}, None, None)
    req = scheduler.requests[ticket.id]
    req.entry.attempts = 2  # its last attempt was ringing when the process died
    scheduler._news(req.entry, "dialing")
    await scheduler.flush()
    assert (await row(pg_pool, ticket.id))["status"] == "dialing"
    crash(scheduler, first)

    phones_after = Phones(answer=True)
    second = acd(phones_after)
    restarted = await WebCallbacks.open(second, pg_pool, quick(attempts=2))
    status = await restarted.status(ticket.id)
    assert (status.status, status.attempts) == ("waiting", 1)  # the interrupted attempt does not count
    await asyncio.sleep(0.3)
    assert phones_after.dialled == []  # Asterisk may still ring the old attempt: not twice at once
    for _ in range(100):
        if phones_after.dialled:
            break
        await asyncio.sleep(0.05)
    assert len(phones_after.dialled) == 1
    await until(lambda: restarted.requests[ticket.id].status == "connected")
    await restarted.close()
    r = await row(pg_pool, ticket.id)
    assert (r["status"], r["attempts"]) == ("connected", 2)


async def test_after_a_restart_connected_ones_are_done_late_ones_expired_and_finished_ones_still_answer(
    pg_pool,
) -> None:
    phones = Phones()
    first = acd(phones, agent_ready=False)
    first.login("a1", paused=True)
    scheduler = WebCallbacks(first, quick(), db=pg_pool)
    talking = await scheduler.request("+31612345671", "sales", {}, None, None)
    late = await scheduler.request("+31612345672", "sales", {}, None, utcnow() + timedelta(hours=1))
    cancelled = await scheduler.request("+31612345673", "sales", {}, None, None)
    scheduler._news(scheduler.requests[talking.id].entry, "connected")
    await scheduler.cancel(cancelled.id)
    await scheduler.flush()
    await pg_pool.execute("UPDATE web_callbacks SET not_after = now() - interval '1 minute' WHERE id = $1",
                          uuid.UUID(late.id))
    crash(scheduler, first)

    second = acd(Phones())
    restarted = await WebCallbacks.open(second, pg_pool, quick())
    await restarted.flush()
    assert restarted.pending() == 0
    assert (await row(pg_pool, talking.id))["status"] == "done"
    assert (await row(pg_pool, late.id))["status"] == "expired"
    assert (await restarted.status(cancelled.id)).status == "cancelled"  # from the table
    with pytest.raises(Rejected):
        await restarted.cancel(cancelled.id)


async def test_a_request_that_cannot_be_stored_is_refused_not_promised(pg_pool) -> None:
    service = acd(Phones())

    class Down:
        async def execute(self, *_a):
            raise OSError("connection refused")

    scheduler = WebCallbacks(service, quick(), db=Down())
    with pytest.raises(CallbackStoreUnavailable):
        await scheduler.request(NUMBER, "sales", {}, None, None)
    assert scheduler.pending() == 0 and service.waiting == {}


async def test_state_changes_are_retried_while_the_database_is_away(pg_pool) -> None:
    service = acd(Phones(), agent_ready=False)
    service.login("a1", paused=True)
    scheduler = WebCallbacks(service, quick(), db=pg_pool)
    ticket = await scheduler.request(NUMBER, "sales", {}, None, None)
    calls = {"n": 0}
    original = wc.save_request

    async def flaky(db, req, *, now):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError("database restarting")
        await original(db, req, now=now)

    wc.save_request = flaky  # type: ignore[assignment]
    try:
        await scheduler.cancel(ticket.id)
        await asyncio.wait_for(scheduler.flush(), 10)
    finally:
        wc.save_request = original  # type: ignore[assignment]
    assert calls["n"] == 3 and (await row(pg_pool, ticket.id))["status"] == "cancelled"


# -- through the API ---------------------------------------------------------------------------------------------------


async def test_the_api_keeps_the_promise_with_the_request_and_answers_503_when_it_cannot_be_stored() -> None:
    from tests.unit.api.outboundfakes import Clocks, FakeScheduler, outbound, start_outbound

    class Durable(FakeScheduler):
        down = False
        promises: dict[str, datetime] = {}

        async def request(self, *a, **kw):
            if self.down:
                raise CallbackStoreUnavailable("database away")
            return await super().request(*a, **kw)

        async def record_promise(self, callback_id: str, promised_at: datetime) -> None:
            self.promises[callback_id] = promised_at

    clocks = Clocks()
    scheduler = Durable(lambda: clocks.now)
    api = await start_outbound(outbound(clocks, callbacks=scheduler))
    try:
        status, body, _ = await api.call("POST", "/callbacks", "integrator", json={"number": "06 12345678"})
        assert status == 201, body
        assert scheduler.promises == {body["id"]: datetime.fromisoformat(body["promised_at"].replace("Z", "+00:00"))}
        scheduler.down = True
        status, body, headers = await api.call("POST", "/callbacks", "integrator", json={"number": "06 12345679"})
        assert status == 503 and body["error"]["code"] == "service_unavailable", body
        assert headers.get("Retry-After") == "30"
    finally:
        await api.client.close()


async def test_a_request_erased_under_the_gdpr_while_waiting_is_never_dialled(pg_pool) -> None:
    from callcore.acd.virtual_hold import VirtualHoldEvent
    from callcore.ops.gdpr import forget_number

    phones = Phones()
    service = acd(phones, agent_ready=False)
    service.login("a1", paused=True)  # nobody free yet: the request waits in line
    scheduler = WebCallbacks(service, quick(), db=pg_pool)
    ticket = await scheduler.request(NUMBER, "sales", {"note": "after 5 pm"}, None, None, requested_by="website")
    report = await forget_number(pg_pool, "06-12345678", region="NL")  # `callcore gdpr forget`, another process
    assert report.counts["web_callbacks_cancelled"] == 1
    service.ready("a1")  # its turn comes: the row says it was erased, so nobody is dialled
    await until(lambda: scheduler.requests[ticket.id].status == "cancelled")
    await asyncio.sleep(0.2)
    assert phones.dialled == []
    req = scheduler.requests[ticket.id]
    assert NUMBER not in (req.number, req.entry.callback_number, req.entry.call.caller_number) and req.context == {}
    assert service.agents["a1"].state == "ready" and service.agents["a1"].offer is None  # the agent is free again
    withdrawn = [e.data for e in service.sink.events if getattr(e, "type", None) == VirtualHoldEvent.WITHDRAWN]
    assert withdrawn == [{"queue": "sales", "reason": "cancelled"}]
    await scheduler.flush()
    stored = await row(pg_pool, ticket.id)
    assert stored["number"] != NUMBER and stored["status"] == "cancelled"  # the erasure is not written back
    service.close()
