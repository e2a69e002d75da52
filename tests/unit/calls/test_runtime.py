import asyncio

from callcore.ari.client import AriClient
from callcore.ari.dispatch import OrderedDispatcher
from callcore.ari.stream import AriEventStream, Backoff
from callcore.calls.call import ALL_DIGITS, Call, CallHungUp
from callcore.calls.runtime import CALL_ID_VARIABLE, CallRuntime
from callcore.ids import call_id_for_channel
from callcore.events import EventType
from tests.fakes.fake_ari import FakeAri
from tests.fakes.sinks import RecordingSink
from tests.waiting import wait_until




class Harness:
    """The runtime wired to the fake ARI the same way app.py wires it to Asterisk."""

    def __init__(self, ari: AriClient, sink: RecordingSink, flow, **kw):
        self.runtime = CallRuntime(ari, sink, lambda call: flow, **kw)
        self.dispatcher = OrderedDispatcher(self.runtime.handle_event)
        self.stream = AriEventStream(
            ari,
            on_event=lambda e: self.dispatcher.submit(e.routing_key, e),
            on_connected=self.runtime.resync,
            backoff=Backoff(initial=0.02, maximum=0.05),
        )

    async def __aenter__(self):
        self.task = asyncio.create_task(self.stream.run())
        await wait_until(lambda: self.stream.stats.connected)
        return self

    async def __aexit__(self, *exc):
        await self.runtime.drain(1)
        await self.stream.close()
        await asyncio.wait_for(self.task, 2)
        await self.dispatcher.close()


async def test_given_a_caller_when_flow_answers_plays_and_collects_then_events_tell_the_story(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    got: list[str] = []

    async def flow(call: Call) -> None:
        await call.answer()
        await call.play("sound:hello-world")
        got.append(await call.collect(3, terminator="#", first_timeout=2, inter_timeout=1))
        await call.hangup()

    async with Harness(ari, sink, flow) as h:
        ch = await fake_ari.new_call()
        await wait_until(lambda: EventType.PLAYBACK_FINISHED in sink.types())
        for d in "42#":
            await fake_ari.press(ch.id, d)
        await wait_until(lambda: EventType.CALL_ENDED in sink.types())
        assert got == ["42"]
        assert h.runtime.live_calls == 0
    assert sink.types() == [
        "call_started", "answered", "playback_started", "playback_finished",
        "dtmf", "dtmf", "dtmf", "digits_collected", "hangup", "call_ended",
    ]
    assert len({e.call_id for e in sink.events}) == 1
    hangup = next(e for e in sink.events if e.type == "hangup")
    assert hangup.data["by"] == "callcore" and hangup.data["cause"] == 16
    # The call id derives from the channel (a restarted callcore finds it again): nothing is stored on it.
    assert CALL_ID_VARIABLE not in ch.variables
    assert sink.events[0].call_id == call_id_for_channel(ch.id, ch.as_json()["creationtime"])


async def test_given_a_digit_during_a_prompt_when_barge_in_allowed_then_prompt_stops_and_digit_is_input(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    fake_ari.auto_finish_playback = False
    result: dict[str, object] = {}

    async def flow(call: Call) -> None:
        await call.answer()
        result["interrupted_by"] = await call.play("sound:long-menu", interrupt=ALL_DIGITS)
        result["digit"] = await call.collect(1)

    async with Harness(ari, sink, flow):
        ch = await fake_ari.new_call()
        await wait_until(lambda: EventType.PLAYBACK_STARTED in sink.types())
        await fake_ari.press(ch.id, "5")
        await wait_until(lambda: EventType.CALL_ENDED in sink.types())
    assert result == {"interrupted_by": "5", "digit": "5"}
    assert fake_ari.calls_to("DELETE", "/playbacks/" + next(
        e.data["playback_id"] for e in sink.events if e.type == "playback_started"))


async def test_given_caller_hangs_up_mid_prompt_then_flow_unwinds_and_nothing_is_left(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    fake_ari.auto_finish_playback = False
    unwound = asyncio.Event()

    async def flow(call: Call) -> None:
        try:
            await call.answer()
            await call.play("sound:never-ends")
        except CallHungUp:
            unwound.set()
            raise

    async with Harness(ari, sink, flow) as h:
        ch = await fake_ari.new_call()
        await wait_until(lambda: EventType.PLAYBACK_STARTED in sink.types())
        await fake_ari.caller_hangs_up(ch.id)
        await asyncio.wait_for(unwound.wait(), 2)
        await wait_until(lambda: h.runtime.live_calls == 0)
        assert h.runtime._by_channel == {}
    hangup = next(e for e in sink.events if e.type == "hangup")
    # Asterisk's HangupRequest for a BYE has no cause; ChannelDestroyed (we subscribed) brings it.
    assert hangup.data == {"cause": 16, "cause_text": "Normal Clearing", "by": "remote"}
    assert sink.types()[-1] == "call_ended"
    assert not fake_ari.calls_to("DELETE", f"/channels/{ch.id}")  # no hangup of a gone channel


async def test_given_a_bug_in_a_flow_when_it_raises_then_the_caller_goes_to_the_fallback_dialplan(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    async def flow(call: Call) -> None:
        await call.answer()
        raise ValueError("oops")

    async with Harness(ari, sink, flow) as h:
        await fake_ari.new_call()
        await wait_until(lambda: EventType.CALL_ENDED in sink.types())
        assert h.runtime.counters["handler_errors"] == 1
    (cont,) = fake_ari.calls_to("POST", "/continue")
    assert cont[2] == {"context": "callcore-fallback", "extension": "s", "priority": "1"}
    err = next(e for e in sink.events if e.type == "handler_error")
    assert "ValueError: oops" in err.data["error"]
    assert next(e for e in sink.events if e.type == "call_ended").data["reason"] == "released_to_dialplan"
    # The record ends when the fallback dialplan hangs up, with its cause.
    hangup = next(e for e in sink.events if e.type == "hangup")
    assert hangup.data == {"cause": 34, "cause_text": "Circuit/channel congestion", "by": "dialplan"}


async def test_given_hangup_policy_when_flow_fails_then_call_is_hung_up(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    async def flow(call: Call) -> None:
        raise RuntimeError("boom")

    async with Harness(ari, sink, flow, on_handler_error="hangup"):
        ch = await fake_ari.new_call()
        await wait_until(lambda: EventType.CALL_ENDED in sink.types())
    assert fake_ari.calls_to("DELETE", f"/channels/{ch.id}")


async def test_given_a_flow_that_returns_without_hanging_up_then_runtime_hangs_up(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    async def flow(call: Call) -> None:
        await call.answer()

    async with Harness(ari, sink, flow):
        ch = await fake_ari.new_call()
        await wait_until(lambda: EventType.CALL_ENDED in sink.types())
    assert fake_ari.calls_to("DELETE", f"/channels/{ch.id}")


async def test_given_asterisk_restarts_when_reconnected_then_lost_calls_are_closed_and_live_ones_adopted(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    fake_ari.auto_finish_playback = False
    starts: list[Call] = []

    async def flow(call: Call) -> None:
        starts.append(call)
        await call.play("sound:hold-music")

    async with Harness(ari, sink, flow) as h:
        lost = await fake_ari.new_call()
        kept = await fake_ari.new_call()
        await wait_until(lambda: len(starts) == 2 and sink.types().count("playback_started") == 2)
        kept_call_id = h.runtime.call_for_channel(kept.id).call_id
        # The WebSocket drops; meanwhile one channel dies (its events are never sent) and one lives on.
        fake_ari.refuse_connections = True
        await fake_ari.drop_connections()
        fake_ari.channels.pop(lost.id)
        fake_ari.refuse_connections = False
        await wait_until(lambda: h.stream.stats.reconnects == 1 and h.stream.stats.connected)
        await wait_until(lambda: h.runtime.counters["vanished"] == 1)
        assert h.runtime.call_for_channel(lost.id) is None
        assert h.runtime.call_for_channel(kept.id).call_id == kept_call_id
        await wait_until(lambda: h.runtime.live_calls == 1)  # the vanished call's task unwinds
        # Asterisk itself restarts: every channel is gone.
        await fake_ari.restart()
        await wait_until(lambda: h.runtime.counters["vanished"] == 2)
        await wait_until(lambda: h.runtime.live_calls == 0)  # the call's task unwinds right after
    ended = [e for e in sink.events if e.type == "call_ended"]
    assert [e.data["reason"] for e in ended] == ["vanished", "vanished"]


async def test_given_an_unknown_channel_in_stasis_after_restart_of_callcore_then_it_is_adopted_with_its_call_id(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    fake_ari.auto_finish_playback = False
    # A channel that an earlier callcore process owned (it tagged it with its call id).
    ch = await fake_ari.new_call()  # nobody connected: the StasisStart is lost
    ch.variables[CALL_ID_VARIABLE] = "6f1f0c2e-8d0e-4a6f-9a53-6a1b3c3f2e11"
    adopted: list[Call] = []

    async def flow(call: Call) -> None:
        adopted.append(call)
        await call.play("sound:welcome-back")

    async with Harness(ari, sink, flow) as h:
        await wait_until(lambda: len(adopted) == 1)
        assert adopted[0].adopted and str(adopted[0].call_id) == "6f1f0c2e-8d0e-4a6f-9a53-6a1b3c3f2e11"
        assert adopted[0].did == "1000" and h.runtime.counters["adopted"] == 1
    assert sink.types()[0] == "call_adopted"


async def test_given_draining_when_a_new_call_arrives_then_it_goes_back_to_the_dialplan(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    async def flow(call: Call) -> None:
        raise AssertionError("must not run")

    async with Harness(ari, sink, flow) as h:
        h.runtime.stop_accepting()
        ch = await fake_ari.new_call()
        await wait_until(lambda: fake_ari.calls_to("POST", f"/channels/{ch.id}/continue"))
        assert h.runtime.counters["refused"] == 1


async def test_given_live_calls_when_drain_times_out_then_they_are_handed_back_to_the_dialplan(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    fake_ari.auto_finish_playback = False

    async def flow(call: Call) -> None:
        await call.play("sound:endless")

    h = Harness(ari, sink, flow)
    async with h:
        ch = await fake_ari.new_call()
        await wait_until(lambda: "playback_started" in sink.types())
        handed_back = await h.runtime.drain(0.1)
        assert handed_back == 1 and h.runtime.live_calls == 0
        assert fake_ari.calls_to("POST", f"/channels/{ch.id}/continue")
        assert not fake_ari.calls_to("DELETE", f"/channels/{ch.id}")


async def test_given_a_connection_then_runtime_asks_asterisk_only_for_events_it_handles(
    fake_ari: FakeAri, ari: AriClient, sink: RecordingSink
):
    async def flow(call: Call) -> None:
        return None

    async with Harness(ari, sink, flow):
        assert fake_ari.event_filter is not None
        assert "StasisStart" in fake_ari.event_filter and "ApplicationReplaced" in fake_ari.event_filter
        assert "ChannelVarset" not in fake_ari.event_filter
