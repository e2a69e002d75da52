"""Virtual hold and web callbacks: an attempt that waits for its retry time is not put back in line when its request
was cancelled or expired meanwhile; any failure of an attempt ends in a defined state (retried, then failed with a
reason); and the number goes through the same toll-fraud policy as ``POST /callbacks`` (never premium-rate, never
on the do-not-call list)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from callcore.acd.callback_guard import CallbackGuard
from callcore.acd.model import AcdConfig, AgentConfig, QueueConfig, VirtualHold
from callcore.acd.service import AcdService, QueuedCaller
from callcore.acd.virtual_hold import VirtualHoldEvent
from callcore.acd.web_callbacks import WebCallbacks
from callcore.api.callbacks_config import CallbacksSettings
from callcore.calls.call import OriginateFailed
from callcore.events import CallEvent, utcnow
from tests.fakes.sinks import RecordingSink

NUMBER = "+31612345678"
PREMIUM = "+31900123456"  # 0900: premium rate
POLICY = CallbacksSettings(default_region="NL", allowed_prefixes=["+31"])


class Phones:
    """The runtime's ``place_call``: records each dial; nobody answers, or every dial fails with ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.dialled: list[str] = []
        self.error = error

    async def place_call(self, endpoint: str, handler: Any, **_kw: Any) -> Any:
        self.dialled.append(endpoint)
        await asyncio.sleep(0.02)
        if self.error is not None:
            raise self.error
        raise OriginateFailed(endpoint, 19, "no answer")


class Dnc:
    def __init__(self, *numbers: str, broken: bool = False) -> None:
        self.numbers = set(numbers)
        self.broken = broken

    async def check(self, number: str, *, region: str, campaign: str | None) -> list[str]:
        if self.broken:
            raise ConnectionError("database away")
        return ["entry"] if number in self.numbers else []


def quick(**kw: Any) -> VirtualHold:
    # Validation keeps real ring and retry times long; the tests run on short ones.
    return VirtualHold.model_construct(**{**VirtualHold().model_dump(), "ring_timeout": 0.1, "retry_after": 0.3,
                                          "attempts": 3, **kw})


def acd(phones: Phones, *, ready: bool = True, virtual_hold: VirtualHold | None = None) -> AcdService:
    config = AcdConfig(agents={"a1": AgentConfig(endpoint="PJSIP/a1", queues=["sales"])},
                       queues={"sales": QueueConfig(virtual_hold=virtual_hold)})
    service = AcdService(config, RecordingSink())
    service.runtime = phones  # type: ignore[assignment]
    service.login("a1", paused=not ready)
    return service


def events(service: AcdService, type_: str) -> list[dict[str, Any]]:
    return [e.data for e in service.sink.events  # type: ignore[attr-defined]
            if isinstance(e, CallEvent) and e.type == type_]


async def until(predicate: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


# ---- (a) cancelled or expired while waiting for the retry -----------------------------------------------------------


async def test_a_request_cancelled_while_waiting_for_its_retry_is_never_dialled_again() -> None:
    phones = Phones()
    service = acd(phones)
    scheduler = WebCallbacks(service, quick())
    ticket = await scheduler.request(NUMBER, "sales", {}, None, None)
    await until(lambda: scheduler.requests[ticket.id].last_outcome == "no_answer")  # first attempt unanswered
    assert len(phones.dialled) == 1
    await scheduler.cancel(ticket.id)  # the visitor no longer wants it, during the retry wait
    await asyncio.sleep(0.5)  # past retry_after
    assert len(phones.dialled) == 1 and service.waiting == {}
    assert scheduler.requests[ticket.id].status == "cancelled"
    assert events(service, VirtualHoldEvent.WITHDRAWN) == [{"queue": "sales", "reason": "cancelled"}]
    assert service.agents["a1"].state == "ready" and service.agents["a1"].offer is None
    service.close()


async def test_a_request_that_expires_while_waiting_for_its_retry_is_never_dialled_again() -> None:
    phones = Phones()
    service = acd(phones)
    scheduler = WebCallbacks(service, quick())
    ticket = await scheduler.request(NUMBER, "sales", {}, None, None)
    req = scheduler.requests[ticket.id]
    await until(lambda: req.last_outcome == "no_answer")
    scheduler._expire(req)  # its window (not_after) ends during the retry wait
    await asyncio.sleep(0.5)
    assert len(phones.dialled) == 1 and service.waiting == {} and req.status == "expired"
    assert events(service, VirtualHoldEvent.WITHDRAWN) == [{"queue": "sales", "reason": "expired"}]
    service.close()


# ---- (b) any other failure of an attempt --------------------------------------------------------------------------


async def test_an_attempt_that_fails_otherwise_is_retried_then_finished_with_the_reason() -> None:
    phones = Phones(error=RuntimeError("ARI answered 500"))
    service = acd(phones)
    scheduler = WebCallbacks(service, quick(attempts=2))
    ticket = await scheduler.request(NUMBER, "sales", {}, None, None)
    req = scheduler.requests[ticket.id]
    await until(lambda: req.status == "failed")
    assert len(phones.dialled) == 2  # retried per the policy, never stuck out of line
    attempts = events(service, VirtualHoldEvent.ATTEMPT)
    assert [a["outcome"] for a in attempts] == ["error", "error"]
    assert "ARI answered 500" in attempts[0]["cause"]
    assert events(service, VirtualHoldEvent.FAILED) == [{"queue": "sales", "attempts": 2, "reason": "error"}]
    assert req.last_outcome == "error" and service.waiting == {}
    assert service.agents["a1"].state == "ready" and service.agents["a1"].offer is None  # the agent is free again
    service.close()


# ---- toll fraud: the callback number policy ---------------------------------------------------------------------------


class Caller:
    """The original caller's call, as the virtual-hold offer sees it."""

    def __init__(self, sink: RecordingSink, number: str) -> None:
        self.call_id = uuid.uuid4()
        self.caller_number = number
        self.channel_id = "ch-1"
        self.gone = False
        self.variables: dict[str, str] = {}
        self.played: list[list[str]] = []
        self.hung_up = False
        self._sink = sink

    def emit(self, type_: str, data: dict[str, Any] | None = None, channel_id: str | None = None) -> None:
        self._sink.emit(CallEvent(self.call_id, type_, utcnow(), channel_id, data or {}))

    async def play(self, media: list[str], **_kw: Any) -> None:
        self.played.append(list(media))

    async def hangup(self) -> None:
        self.hung_up = True


async def test_a_premium_rate_caller_is_not_offered_a_callback_once_told_in_an_event() -> None:
    service = acd(Phones(), ready=False, virtual_hold=quick())
    service.callback_guard = CallbackGuard(POLICY)
    premium = QueuedCaller(Caller(service.sink, PREMIUM), "sales", 0, service.now(), {})  # type: ignore[arg-type]
    assert service.can_call_back(premium) is False
    assert service.can_call_back(premium) is False
    refused = events(service, VirtualHoldEvent.NOT_OFFERED)
    assert len(refused) == 1 and refused[0]["code"] == "destination_not_allowed"
    assert "premium" in refused[0]["detail"]
    fine = QueuedCaller(Caller(service.sink, NUMBER), "sales", 0, service.now(), {})  # type: ignore[arg-type]
    assert service.can_call_back(fine) is True
    abroad = QueuedCaller(Caller(service.sink, "+4915112345678"), "sales", 0, service.now(), {})  # type: ignore[arg-type]
    assert service.can_call_back(abroad) is False  # not on the allow-list
    service.close()


async def test_a_caller_on_the_do_not_call_list_who_accepts_is_told_and_keeps_waiting() -> None:
    service = acd(Phones(), ready=False, virtual_hold=quick())
    service.callback_guard = CallbackGuard(POLICY, Dnc(NUMBER))
    call = Caller(service.sink, NUMBER)
    entry = QueuedCaller(call, "sales", 0, service.now(), {})  # type: ignore[arg-type]
    service.waiting[entry.id] = entry
    queue = service.config.queues["sales"]
    assert await service._accept_virtual_hold(entry, queue) is None
    assert call.played == [["sound:callcore/callback-refused"]] and not call.hung_up
    assert list(service.waiting.values()) == [entry] and entry.callback_number is None  # its place, on the line
    assert events(service, VirtualHoldEvent.REFUSED)[0]["code"] == "number_on_dnc"
    assert events(service, VirtualHoldEvent.REQUESTED) == []
    assert service.can_call_back(entry) is False  # not offered again
    service.close()


async def test_a_number_put_on_the_do_not_call_list_meanwhile_is_not_dialled() -> None:
    phones = Phones()
    service = acd(phones)
    dnc = Dnc()
    service.callback_guard = CallbackGuard(POLICY, dnc)
    scheduler = WebCallbacks(service, quick())
    dnc.numbers.add(NUMBER)  # accepted earlier; on the list by the time its turn comes
    ticket = await scheduler.request(NUMBER, "sales", {}, None, None)
    req = scheduler.requests[ticket.id]
    await until(lambda: req.status == "failed")
    assert phones.dialled == [] and req.last_outcome == "refused"
    failed = events(service, VirtualHoldEvent.FAILED)
    assert failed[0]["reason"] == "destination_refused" and failed[0]["code"] == "number_on_dnc"
    assert service.agents["a1"].state == "ready" and service.agents["a1"].offer is None
    service.close()


async def test_an_unreadable_do_not_call_list_fails_the_attempt_without_dialling() -> None:
    phones = Phones()
    service = acd(phones)
    service.callback_guard = CallbackGuard(POLICY, Dnc(broken=True))
    scheduler = WebCallbacks(service, quick(attempts=2))
    ticket = await scheduler.request(NUMBER, "sales", {}, None, None)
    req = scheduler.requests[ticket.id]
    await until(lambda: req.status == "failed")
    assert phones.dialled == []  # never a number we could not check
    assert [a["outcome"] for a in events(service, VirtualHoldEvent.ATTEMPT)] == ["error", "error"]
    assert req.last_outcome == "error"
    service.close()


async def test_the_guard_is_the_callbacks_policy_plus_the_do_not_call_list() -> None:
    guard = CallbackGuard(POLICY, Dnc("+31201234567"))
    assert (await guard.check("06-12345678")).number == NUMBER  # read in NL, E.164 out
    assert (await guard.check(PREMIUM)).code == "destination_not_allowed"
    assert (await guard.check("12")).code == "invalid_number"
    assert (await guard.check("020 1234567")).code == "number_on_dnc"
    # No callbacks: section at all: secure by default, like POST /callbacks, nothing is called back.
    assert (await CallbackGuard(CallbacksSettings()).check(NUMBER)).allowed is False
