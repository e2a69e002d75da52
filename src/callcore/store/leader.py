"""Active/standby: the callcore holding a PostgreSQL advisory lock is the leader; only it talks to Asterisk.

Two (or more) instances share one PostgreSQL. Each, before it touches ARI, asks for a session-level advisory lock
on a connection of its own (``pg_try_advisory_lock``). PostgreSQL gives it to one; the others stay standby and ask
again every ``poll`` seconds. A session lock is released by PostgreSQL itself when the holder's connection ends —
a leader killed, crashed or cut off loses it without any help, and a standby takes over within about a poll
interval, connects to ARI and re-adopts the calls (``CallRuntime.resync``). No home-made consensus: PostgreSQL is
the arbiter. A leader that loses its lock connection fences itself: it stops at once (exit status 3), so two
instances never fight over the ARI application (``ApplicationReplaced``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger("callcore.leader")

LOCK_KEY = int.from_bytes(b"ccleader", "big")  # not the migrations lock ("callcore"): that one must stay free
FENCED_EXIT = 3


class Leadership:
    def __init__(self, dsn: str, *, key: int = LOCK_KEY, poll: float = 1.0, check: float = 1.0) -> None:
        self.dsn = dsn
        self.key = key
        self.poll = poll
        self.check = check
        self._conn: asyncpg.Connection | None = None
        self._watch: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()

    @property
    def leader(self) -> bool:
        return self._conn is not None and not self.lost.is_set()

    async def acquire(self, on_lost: Callable[[], None]) -> None:
        """Wait until this instance holds the lock (logs once that it is standby); ``on_lost`` is called if the
        lock's connection ever ends."""
        waiting_logged = False
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("leader election: database unreachable", error=str(exc))
                await asyncio.sleep(self.poll)
                continue
            try:
                got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key)
            except (OSError, asyncpg.PostgresError) as exc:
                got = False
                log.warning("leader election failed", error=str(exc))
            if got:
                self._conn = conn
                self._watch = asyncio.get_running_loop().create_task(self._keep(on_lost), name="leadership")
                log.info("leader: holding the lock; this instance talks to Asterisk")
                return
            await conn.close()
            if not waiting_logged:
                log.info("standby: another callcore is the leader; taking over when it goes")
                waiting_logged = True
            await asyncio.sleep(self.poll)

    async def _keep(self, on_lost: Callable[[], None]) -> None:
        assert self._conn is not None
        while True:
            await asyncio.sleep(self.check)
            try:
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), self.check * 3)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.critical("leader: lost the lock's connection; fencing (stopping at once)", error=str(exc))
                self.lost.set()
                on_lost()
                return

    async def release(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await asyncio.wait_for(conn.close(), 5)  # closing the session releases the lock
            except (OSError, asyncpg.PostgresError, TimeoutError):
                conn.terminate()
