import asyncio

from callcore.ari.dispatch import OrderedDispatcher


async def test_given_events_of_one_channel_when_handler_is_slow_then_they_are_handled_in_order():
    seen: list[tuple[str, int]] = []

    async def handler(event: tuple[str, int]) -> None:
        key, n = event
        await asyncio.sleep(0.001 * (5 - n % 5))  # later events finish faster if run concurrently
        seen.append(event)

    d = OrderedDispatcher(handler)
    for n in range(20):
        d.submit("chan-a", ("chan-a", n))
    await d.join(timeout=5)
    assert seen == [("chan-a", n) for n in range(20)]
    assert d.pending == 0


async def test_given_a_blocked_channel_when_another_channel_has_events_then_it_is_not_blocked():
    release = asyncio.Event()
    seen: list[str] = []

    async def handler(event: str) -> None:
        if event == "slow-1":
            await release.wait()
        seen.append(event)

    d = OrderedDispatcher(handler)
    d.submit("slow", "slow-1")
    d.submit("slow", "slow-2")
    d.submit("fast", "fast-1")
    await asyncio.sleep(0.05)
    assert seen == ["fast-1"]
    release.set()
    await d.join(timeout=5)
    assert seen == ["fast-1", "slow-1", "slow-2"]


async def test_given_a_failing_handler_when_events_follow_then_they_are_still_handled():
    seen: list[int] = []

    async def handler(event: int) -> None:
        if event == 1:
            raise RuntimeError("bug")
        seen.append(event)

    d = OrderedDispatcher(handler)
    for n in range(3):
        d.submit("k", n)
    await d.join(timeout=5)
    assert seen == [0, 2]
    assert d.failed == 1 and d.handled == 2


async def test_given_idle_keys_when_drained_then_no_worker_or_queue_is_left():
    async def handler(event: int) -> None:
        return None

    d = OrderedDispatcher(handler)
    for n in range(100):
        d.submit(f"k{n}", n)
    await d.join(timeout=5)
    assert d._workers == {} and d._queues == {}
