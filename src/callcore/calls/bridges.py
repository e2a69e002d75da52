"""Mixing bridges kept for reuse: a connected call takes an idle bridge instead of creating one.

Creating and destroying a bridge are two ARI requests (and their events) per call, on the path between the
agent answering and the two hearing each other; an idle bridge costs Asterisk nothing. A bridge comes back
to the pool only once every channel callcore put in it is known to be destroyed (the call's record ended
normally), so a reused bridge never holds a stranger; otherwise, and beyond ``max_idle``, it is destroyed.
After a restart, empty bridges nobody tracks are destroyed by the runtime's resync.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog

from callcore.ari.client import AriClient
from callcore.ari.errors import AriError

log = structlog.get_logger("callcore.calls")


class BridgePool:
    def __init__(self, ari: AriClient, *, max_idle: int = 50) -> None:
        self.ari = ari
        self.max_idle = max_idle
        self.idle: list[str] = []
        self.lent: set[str] = set()  # taken from this pool and not back yet
        self.created = 0
        self.reused = 0
        self._pending: set[asyncio.Task[None]] = set()

    async def take(self, *, fresh: bool = False) -> str:
        """An idle bridge, or a new one (``fresh``: always a new one, e.g. after an idle one turned out gone)."""
        if self.idle and not fresh:
            self.reused += 1
            bridge_id = self.idle.pop()
        else:
            bridge_id = (await self.ari.bridges.create(str(uuid.uuid4()), type="mixing")).id
            self.created += 1
        self.lent.add(bridge_id)
        return bridge_id

    def give_back(self, bridge_id: str, *, clean: bool) -> None:
        """Return a bridge after its call: kept when ``clean`` (all its channels destroyed), else destroyed."""
        ours = bridge_id in self.lent
        self.lent.discard(bridge_id)
        if ours and clean and len(self.idle) < self.max_idle and bridge_id not in self.idle:
            self.idle.append(bridge_id)
            return
        self._later(self._destroy(bridge_id))

    def forget(self, bridge_id: str) -> None:
        """The bridge is gone (BridgeDestroyed, or destroyed by someone else): never hand it out again."""
        if bridge_id in self.idle:
            self.idle.remove(bridge_id)
        self.lent.discard(bridge_id)

    def keep_only(self, existing: set[str]) -> None:
        """After a reconnect: idle bridges Asterisk no longer has (it restarted) are never handed out."""
        gone = [b for b in self.idle if b not in existing]
        for bridge_id in gone:
            self.idle.remove(bridge_id)
        if gone:
            log.info("idle bridges gone from Asterisk dropped from the pool", count=len(gone))

    def known(self) -> set[str]:
        return set(self.idle) | self.lent

    async def _destroy(self, bridge_id: str) -> None:
        try:
            await self.ari.bridges.destroy(bridge_id)
        except AriError as exc:
            log.info("bridge already gone", bridge=bridge_id, error=str(exc))

    def _later(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        """Destroy the idle bridges (shutdown): nothing of ours stays behind in Asterisk."""
        idle, self.idle = self.idle, []
        await asyncio.gather(*(self._destroy(b) for b in idle), *self._pending, return_exceptions=True)
