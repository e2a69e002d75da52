"""Ordered dispatch: events with the same key run strictly in order; different keys never wait on each other.

One short-lived worker task per busy key drains that key's FIFO and exits when it is empty, so idle channels
cost nothing and nothing is left running after a channel is gone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

E = TypeVar("E")
log = structlog.get_logger("callcore.ari")


class OrderedDispatcher(Generic[E]):
    def __init__(self, handler: Callable[[E], Awaitable[None]]) -> None:
        self._handler = handler
        self._queues: dict[str, deque[E]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.handled = 0
        self.failed = 0

    def submit(self, key: str, event: E) -> None:
        """Queue ``event`` behind earlier events of ``key``. Never blocks."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(event)
        if key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(
                self._drain(key), name=f"dispatch:{key}"
            )

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                event = queue.popleft()
                try:
                    await self._handler(event)
                    self.handled += 1
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A bug in one handler must not stop the events of this key, nor of any other.
                    self.failed += 1
                    log.exception("event handler failed", key=key, event_type=type(event).__name__)
        finally:
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)
            elif not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                self._workers[key] = asyncio.get_running_loop().create_task(
                    self._drain(key), name=f"dispatch:{key}"
                )

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def join(self, timeout: float | None = None) -> None:
        """Wait until every queued event has been handled."""
        async def _wait() -> None:
            while self._workers:
                await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

        await asyncio.wait_for(_wait(), timeout)

    async def close(self) -> None:
        for task in list(self._workers.values()):
            task.cancel()
        await asyncio.gather(*list(self._workers.values()), return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
