"""A callback promised on the phone is booked: the IVR's callback node and a queue's overflow to a callback make a
real callback request (dialled in turn, after the caller's own call is over), after the same number policy as
``POST /callbacks``; when none can be booked the caller is told so, never promised a call nobody would make."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callcore.acd import web_callbacks
from callcore.acd.callback_booking import CallbackBooker
from callcore.acd.callback_guard import CallbackGuard
from callcore.acd.model import AcdConfig, AgentConfig, Overflow, QueueConfig
from callcore.acd.service import AcdService, QueuedCaller
from callcore.acd.web_callbacks import WebCallbacks
from callcore.api.callbacks_config import CallbacksSettings
from callcore.ivr.commands import CallbackChecked, CheckCallback, IvrEventType
from callcore.ivr.runner import FlowRunner
from tests.fakes.sinks import RecordingSink
from tests.unit.acd.test_virtual_hold import NUMBER, POLICY, PREMIUM, Caller, Dnc, Phones, events, quick, until


class LiveCaller(Caller):
    """A caller still on the line: ``end()`` hangs up, and whoever waits for that is told."""

    def __init__(self, sink: RecordingSink, number: str) -> None:
        super().__init__(sink, number)
        self._when_gone: list[Any] = []

    async def play(self, media: str | list[str], **_kw: Any) -> None:
        self.played.append([media] if isinstance(media, str) else list(media))

    def when_gone(self, fn: Any) -> None:
        if self.gone:
            asyncio.get_running_loop().call_soon(fn)
        else:
            self._when_gone.append(fn)

    def end(self) -> None:
        self.gone = True
        for fn in self._when_gone:
            asyncio.get_running_loop().call_soon(fn)


def center(phones: Phones, *, overflow: Overflow | None = None, max_length: int | None = None) -> AcdService:
    config = AcdConfig(agents={"a1": AgentConfig(endpoint="PJSIP/a1", queues=["sales"], skills={"language:nl": 5})},
                       queues={"sales": QueueConfig(overflow=overflow, max_length=max_length)})
    service = AcdService(config, RecordingSink())
    service.runtime = phones  # type: ignore[assignment]
    service.login("a1")
    return service


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_callbacks, "HANG_UP_GRACE", 0.05)


async def test_the_ivr_callback_node_books_a_callback_that_is_dialled_only_once_the_caller_hung_up() -> None:
    phones = Phones()
    service = center(phones)
    scheduler = WebCallbacks(service, quick())
    call = LiveCaller(service.sink, NUMBER)
    runner = FlowRunner(call, None, None, None,  # type: ignore[arg-type]
                        callback_booker=CallbackBooker(CallbackGuard(POLICY), scheduler))
    booked = await runner.execute(CheckCallback("06-12345678", "sales", (("account", "123"),), "ivr:main/cb"))
    assert isinstance(booked, CallbackChecked) and booked.allowed and booked.number == NUMBER
    req = scheduler.requests[booked.callback_id]  # type: ignore[index]
    assert (req.number, req.queue, req.context, req.requested_by) == (NUMBER, "sales", {"account": "123"},
                                                                      "ivr:main/cb")
    await asyncio.sleep(0.2)
    assert phones.dialled == [] and service.waiting == {}  # the caller is still on this line: not dialled yet
    # Pressing the key again (or calling again) keeps the one request.
    again = await runner.execute(CheckCallback(NUMBER, "sales", (), "ivr:main/cb"))
    assert again.callback_id == booked.callback_id and len(scheduler.requests) == 1  # type: ignore[union-attr]
    call.end()
    await until(lambda: len(phones.dialled) == 1)  # its turn: a1 is free, the caller's number is dialled
    assert NUMBER in phones.dialled[0]
    service.close()


async def test_a_number_the_policy_refuses_is_not_booked_and_without_a_scheduler_nothing_is_promised() -> None:
    service = center(Phones())
    scheduler = WebCallbacks(service, quick())
    call = LiveCaller(service.sink, PREMIUM)
    runner = FlowRunner(call, None, None, None,  # type: ignore[arg-type]
                        callback_booker=CallbackBooker(CallbackGuard(POLICY, Dnc("+31201234567")), scheduler))
    premium = await runner.execute(CheckCallback(PREMIUM, "sales"))
    assert premium.allowed is False and premium.code == "destination_not_allowed"  # type: ignore[union-attr]
    dnc = await runner.execute(CheckCallback("020 1234567", "sales"))
    assert dnc.allowed is False and dnc.code == "number_on_dnc"  # type: ignore[union-attr]
    unknown = await runner.execute(CheckCallback(NUMBER, "nope"))
    assert unknown.allowed is False and unknown.code == "queue_unavailable"  # type: ignore[union-attr]
    assert scheduler.requests == {}
    nothing = CallbackBooker(CallbackGuard(POLICY))  # no scheduler
    assert (await nothing.book(NUMBER, "sales", {}, requested_by="x", call=call)).code == "callbacks_unavailable"
    off = CallbackBooker(CallbackGuard(CallbacksSettings(enabled=False, allowed_prefixes=["+31"])), scheduler)
    assert (await off.book(NUMBER, "sales", {}, requested_by="x", call=call)).code == "callbacks_disabled"
    busy = CallbackBooker(CallbackGuard(POLICY.model_copy(update={"max_pending": 0})), scheduler)
    assert (await busy.book(NUMBER, "sales", {}, requested_by="x", call=call)).code == "callbacks_busy"
    default = FlowRunner(call, None, None, None)  # type: ignore[arg-type]
    assert (await default.execute(CheckCallback(NUMBER, "sales"))).allowed is False  # type: ignore[union-attr]
    assert scheduler.requests == {}
    service.close()


def full_queue_overflowing_to_callbacks(number: str) -> tuple[Phones, AcdService, WebCallbacks, LiveCaller]:
    """A queue that holds nobody (max_length 0) and overflows to a callback, and a caller from ``number``."""
    phones = Phones()
    service = center(phones, overflow=Overflow(action="callback"), max_length=0)
    scheduler = WebCallbacks(service, quick())
    service.callback_booker = CallbackBooker(CallbackGuard(POLICY), scheduler)
    return phones, service, scheduler, LiveCaller(service.sink, number)


async def test_an_overflow_to_a_callback_books_it_keeping_the_callers_place_in_a_full_queue() -> None:
    phones, service, scheduler, call = full_queue_overflowing_to_callbacks(NUMBER)
    call.variables["account"] = "123"
    since = service.now() - 30.0
    entry = QueuedCaller(call, "sales", 7, since, {"language:nl": 1})  # type: ignore[arg-type]
    assert await service._serve(entry) == "overflow:callback"  # the queue is full (max_length 0)
    requested = events(service, IvrEventType.CALLBACK_REQUESTED)
    assert len(requested) == 1 and requested[0]["reason"] == "max_length" and requested[0]["number"] == NUMBER
    req = scheduler.requests[requested[0]["callback_id"]]
    assert req.entry.enqueued_at == since and req.context == {"account": "123"}  # its wait so far still counts
    assert (req.entry.priority, req.entry.skills) == (7, {"language:nl": 1})  # and its priority and language
    assert req.entry.whisper == []  # not announced to the agent as a web callback
    assert call.played[-1] == ["sound:callcore/callback-confirmed"] and call.hung_up
    call.end()
    await until(lambda: len(phones.dialled) == 1)
    service.close()


async def test_an_overflow_callback_for_a_number_that_may_not_be_called_tells_the_caller() -> None:
    phones, service, scheduler, call = full_queue_overflowing_to_callbacks(PREMIUM)
    assert await service._serve(QueuedCaller(call, "sales", 0, service.now(), {})) == "overflow:callback"  # type: ignore[arg-type]
    assert events(service, IvrEventType.CALLBACK_REQUESTED) == []
    refused = events(service, IvrEventType.CALLBACK_REFUSED)
    assert refused[0]["code"] == "destination_not_allowed" and refused[0]["queue"] == "sales"
    assert call.played[-1] == ["sound:callcore/callback-refused"] and call.hung_up
    assert scheduler.requests == {}
    call.end()
    await asyncio.sleep(0.2)
    assert phones.dialled == []
    service.close()


async def test_callback_requests_waiting_in_a_queue_hold_no_line_of_its_max_length() -> None:
    service = center(Phones(), max_length=1)
    service.pause("a1", "lunch")  # staffed, nobody free: both wait
    scheduler = WebCallbacks(service, quick())
    await scheduler.request(NUMBER, "sales", {}, None, None)  # "call me now": waits in sales' line
    call = LiveCaller(service.sink, "+31201234567")
    entry = QueuedCaller(call, "sales", 0, service.now(), {})  # type: ignore[arg-type]
    task = asyncio.ensure_future(service._serve(entry))
    await until(lambda: bool(events(service, "queued")) or task.done())
    # The live caller got in: the callback request waiting there holds no line.
    assert [q["queue"] for q in events(service, "queued")] == ["sales"] and events(service, "overflow") == []
    task.cancel()  # (the fake call cannot play hold music: the rest of its wait is not this test's)
    await asyncio.gather(task, return_exceptions=True)
    service.close()
