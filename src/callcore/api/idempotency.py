"""``Idempotency-Key`` on POST: a retried request gets the first one's response instead of acting twice.

* Same key, same route, same body → the stored status and body (header ``Idempotent-Replayed: true``).
* Same key with another body or route → 409 ``idempotency_key_reused``.
* Same key while the first request still runs → 409 ``idempotency_in_progress`` (retry later).
* Keys are scoped to the token's name (two clients cannot collide), kept ``ttl`` (24 h by default).
* Responses below 500 are stored (a 409 replays as a 409: the outcome of *that* request). A 5xx or a crash
  forgets the key, so the retry runs again. A claim left pending by a crashed process is taken over after
  ``pending_timeout``.

:class:`PgIdempotencyStore` keeps them in PostgreSQL (``idempotency_keys``, sql/0005_api.sql): what the app uses.
:class:`MemoryIdempotencyStore` is for unit tests only.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import structlog

from callcore.api.errors import ApiError, bad_request, conflict

log = structlog.get_logger("callcore.api")

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def check_key(key: str) -> None:
    if not _KEY_RE.match(key):
        raise bad_request("invalid_idempotency_key",
                          "Idempotency-Key must be 1-255 printable ASCII characters without spaces (a UUID is ideal)")


def fingerprint(route: str, body: Any) -> str:
    """What makes two requests "the same": the route and the JSON body (key order and spacing ignored)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{route}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    route: str
    body_hash: str
    status: int | None  # None: the first request is still running
    response: Any = None


class IdempotencyStore(Protocol):
    async def claim(self, owner: str, key: str, route: str, body_hash: str) -> Stored | None:
        """None: the key is ours now, run the request. Else what an earlier request with this key left."""
        ...

    async def complete(self, owner: str, key: str, status: int, response: Any) -> None: ...

    async def release(self, owner: str, key: str) -> None:
        """Forget a claim whose request failed unexpectedly (the client's retry must run)."""
        ...


Run = Callable[[], Awaitable[tuple[int, Any, dict[str, str]]]]


async def run_idempotent(
    store: IdempotencyStore, *, owner: str, key: str, route: str, body_hash: str, run: Run
) -> tuple[int, Any, dict[str, str], bool]:
    """(status, body, headers, replayed)."""
    try:
        prior = await store.claim(owner, key, route, body_hash)
    except ApiError:
        raise
    except Exception:  # noqa: BLE001 - the store (database) is away: the request must not run unprotected
        log.exception("idempotency store failed", key=key)
        raise ApiError(503, "service_unavailable", "Idempotency-Keys cannot be checked right now; retry") from None
    if prior is not None:
        if prior.route != route or prior.body_hash != body_hash:
            raise conflict("idempotency_key_reused",
                           "this Idempotency-Key was used for a different request; use a new key for a new request",
                           {"key": key})
        if prior.status is None:
            raise conflict("idempotency_in_progress", "a request with this Idempotency-Key is still running; retry",
                           {"key": key})
        return prior.status, prior.response, {}, True
    try:
        status, payload, headers = await run()
    except ApiError as exc:
        if exc.status >= 500:
            await store.release(owner, key)
            raise
        payload = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
        await store.complete(owner, key, exc.status, payload)
        return exc.status, payload, dict(exc.headers), False
    except BaseException:
        await store.release(owner, key)
        raise
    await store.complete(owner, key, status, payload)
    return status, payload, headers, False


class MemoryIdempotencyStore:
    """In-process store (unit tests only: it forgets everything at restart and is not shared)."""

    def __init__(self, *, ttl: float = 24 * 3600, pending_timeout: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.pending_timeout = pending_timeout
        self.clock = clock
        self._rows: dict[tuple[str, str], tuple[Stored, float, float]] = {}  # (stored, created, expires)

    async def claim(self, owner: str, key: str, route: str, body_hash: str) -> Stored | None:
        now = self.clock()
        row = self._rows.get((owner, key))
        if row is not None:
            stored, created, expires = row
            abandoned = stored.status is None and created + self.pending_timeout < now
            if expires > now and not abandoned:
                return stored
        self._rows[(owner, key)] = (Stored(route, body_hash, None), now, now + self.ttl)
        return None

    async def complete(self, owner: str, key: str, status: int, response: Any) -> None:
        row = self._rows.get((owner, key))
        if row is not None:
            stored, created, expires = row
            self._rows[(owner, key)] = (Stored(stored.route, stored.body_hash, status, response), created, expires)

    async def release(self, owner: str, key: str) -> None:
        row = self._rows.get((owner, key))
        if row is not None and row[0].status is None:
            del self._rows[(owner, key)]


class PgIdempotencyStore:
    """Keys in PostgreSQL: shared by every process on the database and kept across restarts."""

    def __init__(self, db: Any, *, ttl: float = 24 * 3600, pending_timeout: float = 60.0,
                 purge_every: float = 600.0) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl)
        self.pending_timeout = timedelta(seconds=pending_timeout)
        self.purge_every = purge_every
        self._last_purge = time.monotonic()

    async def claim(self, owner: str, key: str, route: str, body_hash: str) -> Stored | None:
        if time.monotonic() - self._last_purge > self.purge_every:
            self._last_purge = time.monotonic()
            await self.purge()
        for _ in range(3):
            # Insert, or take over a row that expired or whose first request was abandoned (pending too long).
            claimed = await self.db.fetchval(
                "INSERT INTO idempotency_keys (owner, key, route, body_hash, expires_at)"
                " VALUES ($1, $2, $3, $4, now() + $5::interval)"
                " ON CONFLICT (owner, key) DO UPDATE SET route = EXCLUDED.route, body_hash = EXCLUDED.body_hash,"
                "   status = NULL, response = NULL, created_at = now(), expires_at = EXCLUDED.expires_at"
                " WHERE idempotency_keys.expires_at < now()"
                "    OR (idempotency_keys.status IS NULL AND idempotency_keys.created_at < now() - $6::interval)"
                " RETURNING true",
                owner, key, route, body_hash, self.ttl, self.pending_timeout,
            )
            if claimed:
                return None
            row = await self.db.fetchrow(
                "SELECT route, body_hash, status, response FROM idempotency_keys WHERE owner = $1 AND key = $2",
                owner, key,
            )
            if row is not None:
                return Stored(row["route"], row["body_hash"], row["status"], row["response"])
            # released between the two statements: try again
        raise ApiError(503, "idempotency_unavailable", "could not claim the Idempotency-Key; retry")

    async def complete(self, owner: str, key: str, status: int, response: Any) -> None:
        await self.db.execute(
            "UPDATE idempotency_keys SET status = $3, response = $4 WHERE owner = $1 AND key = $2",
            owner, key, status, response,
        )

    async def release(self, owner: str, key: str) -> None:
        await self.db.execute(
            "DELETE FROM idempotency_keys WHERE owner = $1 AND key = $2 AND status IS NULL", owner, key
        )

    async def purge(self) -> int:
        """Delete expired keys; returns how many."""
        result = await self.db.execute("DELETE FROM idempotency_keys WHERE expires_at < now()")
        return int(result.split()[-1]) if result else 0


__all__ = [
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "PgIdempotencyStore",
    "Stored",
    "check_key",
    "fingerprint",
    "run_idempotent",
]
