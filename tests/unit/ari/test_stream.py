import asyncio
import random

import pytest

from callcore.ari.client import AriClient
from callcore.ari.errors import ApplicationReplaced
from callcore.ari.events import AriEvent, StasisStart, UnknownEvent
from callcore.ari.stream import AriEventStream, Backoff
from tests.fakes.fake_ari import APP, FakeAri
from tests.waiting import wait_until


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    b = Backoff(initial=0.5, maximum=4.0)
    rng = random.Random(1)
    delays = [b.next_delay(rng) for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 4, 4, 4, 4]
    for d, c in zip(delays, ceilings):
        assert c / 2 <= d <= c
    b.reset()
    assert b.next_delay(rng) <= 0.5




async def test_given_a_dropped_websocket_when_asterisk_comes_back_then_stream_reconnects_and_resyncs(
    fake_ari: FakeAri, ari: AriClient
):
    events: list[AriEvent] = []
    resyncs = 0

    async def on_connected():
        nonlocal resyncs
        resyncs += 1

    stream = AriEventStream(ari, on_event=events.append, on_connected=on_connected,
                            backoff=Backoff(initial=0.05, maximum=0.2))
    task = asyncio.create_task(stream.run())
    await wait_until(lambda: stream.stats.connected)
    await fake_ari.new_call()
    await wait_until(lambda: len(events) == 1)
    assert isinstance(events[0], StasisStart)

    fake_ari.refuse_connections = True
    await fake_ari.drop_connections()
    await wait_until(lambda: not stream.stats.connected)
    await asyncio.sleep(0.3)  # a few refused attempts with backoff
    fake_ari.refuse_connections = False
    await wait_until(lambda: stream.stats.connected)
    assert resyncs == 2 and stream.stats.reconnects == 1
    await fake_ari.new_call()
    await wait_until(lambda: len(events) == 2)
    await stream.close()
    await asyncio.wait_for(task, 2)


async def test_given_application_replaced_when_received_then_stream_stops_with_fatal_error(
    fake_ari: FakeAri, ari: AriClient
):
    stream = AriEventStream(ari, on_event=lambda e: None, backoff=Backoff(initial=0.05))
    task = asyncio.create_task(stream.run())
    await wait_until(lambda: stream.stats.connected)
    await fake_ari.send({"type": "ApplicationReplaced"})
    with pytest.raises(ApplicationReplaced):
        await asyncio.wait_for(task, 2)
    assert fake_ari.connects == 1  # it did not reconnect to fight for the app


async def test_given_unknown_and_malformed_frames_when_received_then_they_are_counted_and_stream_continues(
    fake_ari: FakeAri, ari: AriClient
):
    events: list[AriEvent] = []
    stream = AriEventStream(ari, on_event=events.append, backoff=Backoff(initial=0.05))
    task = asyncio.create_task(stream.run())
    await wait_until(lambda: stream.stats.connected)
    await fake_ari.send({"type": "SomethingNew", "x": 1})
    await fake_ari.send_raw("not json")
    await fake_ari.send({"type": "StasisStart", "channel": {"no_id": True}})
    await fake_ari.new_call()
    await wait_until(lambda: len(events) == 2)
    assert isinstance(events[0], UnknownEvent) and events[0].body["x"] == 1
    assert isinstance(events[1], StasisStart)
    assert stream.stats.malformed == 2 and stream.stats.unknown == 1
    await stream.close()
    await asyncio.wait_for(task, 2)


async def test_given_wrong_credentials_when_connecting_then_it_keeps_retrying_without_crashing(fake_ari: FakeAri):
    bad = AriClient(fake_ari.base_url, "callcore", "wrong", APP)
    stream = AriEventStream(bad, on_event=lambda e: None, backoff=Backoff(initial=0.01, maximum=0.02))
    task = asyncio.create_task(stream.run())
    await asyncio.sleep(0.2)
    assert not stream.stats.connected and not task.done()
    await stream.close()
    await asyncio.wait_for(task, 2)
    await bad.close()
