"""Bearer tokens with roles.

Roles: ``admin`` > ``supervisor`` > ``agent`` (each includes the ones below it); ``integrator`` stands apart (a
system talking to callcore: a CRM, a wallboard); ``admin`` includes it too. A route lists the roles it accepts; a
token is allowed when its role *grants* any of them (:data:`GRANTS`). An ``agent`` token is bound to one agent id
and may act only on that agent.

Tokens are random strings (``cc_`` + 43 URL-safe characters, 256 bits) that callcore never stores: only their
SHA-256 is kept, in the YAML (``api.tokens[].sha256``) or in the ``api_tokens`` table (``callcore api token
create``). A presented token is hashed and compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import structlog
from aiohttp import web

from callcore.api.errors import ApiError, forbidden, unauthorized

log = structlog.get_logger("callcore.api")


class Role(StrEnum):
    admin = "admin"
    supervisor = "supervisor"
    agent = "agent"
    integrator = "integrator"


GRANTS: dict[Role, frozenset[Role]] = {
    Role.admin: frozenset(Role),
    Role.supervisor: frozenset({Role.supervisor, Role.agent}),
    Role.agent: frozenset({Role.agent}),
    Role.integrator: frozenset({Role.integrator}),
}

TOKEN_PREFIX = "cc_"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name, role and (agent tokens) the agent it is bound to."""

    name: str
    role: Role
    agent_id: str | None = None
    source: str = "config"  # "config" or "database"

    def grants(self, roles: Iterable[Role]) -> bool:
        return bool(GRANTS[self.role] & set(roles))

    def may_act_on_agent(self, agent_id: str) -> bool:
        """Any agent for supervisors, admins, integrators; only its own for an agent token."""
        return self.role is not Role.agent or self.agent_id == agent_id


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenStore(Protocol):
    async def lookup(self, token_hash: str) -> Principal | None: ...


class StaticTokens:
    """Tokens from the YAML (``api.tokens``): compared in constant time, every entry, every request."""

    def __init__(self, entries: Iterable[tuple[str, Role, str | None, str]]) -> None:
        # (name, role, agent_id, sha256 hex)
        self._entries = [(name, Role(role), agent, digest.lower()) for name, role, agent, digest in entries]

    @classmethod
    def from_settings(cls, tokens: Iterable[Any]) -> StaticTokens:
        return cls((t.name, t.role, t.agent, t.sha256) for t in tokens)

    async def lookup(self, token_hash: str) -> Principal | None:
        found: Principal | None = None
        presented = token_hash.encode()
        for name, role, agent, digest in self._entries:
            # No early exit: the time taken does not depend on which entry matched.
            if hmac.compare_digest(presented, digest.encode()) and found is None:
                found = Principal(name, role, agent, "config")
        return found


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    role: str
    agent_id: str | None
    created_at: datetime
    revoked_at: datetime | None


class PgTokens:
    """Tokens in the ``api_tokens`` table (sql/0005_api.sql).

    Lookups are cached for ``cache_seconds`` (found and not found alike, so a client hammering with a wrong token
    costs one query per interval): a revoked token stops working within that time."""

    def __init__(self, db: Any, *, cache_seconds: float = 5.0, cache_max: int = 10_000) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self.cache_max = cache_max
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def lookup(self, token_hash: str) -> Principal | None:
        now = time.monotonic()
        hit = self._cache.get(token_hash)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await self.db.fetchrow(
            "SELECT name, role, agent_id, sha256 FROM api_tokens WHERE sha256 = $1 AND revoked_at IS NULL",
            token_hash,
        )
        principal = None
        if row is not None and hmac.compare_digest(row["sha256"].encode(), token_hash.encode()):
            principal = Principal(row["name"], Role(row["role"]), row["agent_id"], "database")
        if len(self._cache) >= self.cache_max:
            self._cache.clear()
        self._cache[token_hash] = (now + self.cache_seconds, principal)
        return principal

    def invalidate(self) -> None:
        self._cache.clear()

    async def create(self, name: str, role: Role | str, agent_id: str | None = None) -> tuple[str, TokenRow]:
        """A new token: returns the token itself (shown once, never stored) and its row."""
        role = Role(role)
        check_binding(role, agent_id)
        token = generate_token()
        row = await self.db.fetchrow(
            "INSERT INTO api_tokens (name, role, agent_id, sha256) VALUES ($1, $2, $3, $4)"
            " RETURNING id, name, role, agent_id, created_at, revoked_at",
            name, role.value, agent_id, hash_token(token),
        )
        return token, TokenRow(**dict(row))

    async def list_tokens(self, *, include_revoked: bool = False) -> list[TokenRow]:
        rows = await self.db.fetch(
            "SELECT id, name, role, agent_id, created_at, revoked_at FROM api_tokens"
            + ("" if include_revoked else " WHERE revoked_at IS NULL")
            + " ORDER BY id"
        )
        return [TokenRow(**dict(r)) for r in rows]

    async def revoke(self, name_or_id: str) -> list[TokenRow]:
        """Revoke the live token with this name (or id). Returns the rows revoked (none: nothing matched)."""
        ident = int(name_or_id) if name_or_id.isdigit() else None
        rows = await self.db.fetch(
            "UPDATE api_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND (name = $1 OR id = $2)"
            " RETURNING id, name, role, agent_id, created_at, revoked_at",
            name_or_id, ident,
        )
        self.invalidate()
        return [TokenRow(**dict(r)) for r in rows]


def check_binding(role: Role | str, agent_id: str | None) -> None:
    """An agent token names its agent; no other role does. Raises ValueError."""
    role = Role(role)
    if role is Role.agent and not agent_id:
        raise ValueError("an agent token must be bound to an agent (--agent ID)")
    if role is not Role.agent and agent_id:
        raise ValueError(f"only agent tokens are bound to an agent, not {role.value} tokens")


class Authenticator:
    """Finds the principal of a request in the token stores, first match wins."""

    def __init__(self, stores: Sequence[TokenStore]) -> None:
        self.stores = list(stores)

    async def authenticate(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        if not header and request.query.get("token") and request.headers.get("Upgrade", "").lower() == "websocket":
            # Browsers cannot set headers on a WebSocket handshake (GET /events): there the token may be ?token=.
            header = f"Bearer {request.query['token']}"
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if not header:
            raise unauthorized("missing bearer token (Authorization: Bearer <token>)")
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("the Authorization header must be 'Bearer <token>'")
        if len(token) > MAX_TOKEN_LENGTH:
            raise unauthorized("invalid or revoked token")
        digest = hash_token(token)
        failed = False
        for store in self.stores:
            try:
                principal = await store.lookup(digest)
            except Exception:  # noqa: BLE001 - e.g. the database is away: other stores may still know the token
                log.exception("token store failed", store=type(store).__name__)
                failed = True
                continue
            if principal is not None:
                return principal
        if failed:
            raise ApiError(503, "service_unavailable", "tokens cannot be checked right now; retry")
        raise unauthorized("invalid or revoked token")


def authorize(principal: Principal, roles: Iterable[Role], *, agent_id: str | None = None) -> None:
    """Raise 403 unless the principal's role grants one of ``roles`` and, for an agent token, ``agent_id`` (if
    the request acts on an agent) is its own."""
    roles = list(roles)
    if not principal.grants(roles):
        raise forbidden(
            f"role {principal.role.value} may not do this (needs {' or '.join(r.value for r in roles)})",
            {"role": principal.role.value, "required": [r.value for r in roles]},
        )
    if agent_id is not None and not principal.may_act_on_agent(agent_id):
        raise forbidden(
            f"this token acts for agent {principal.agent_id!r} only, not {agent_id!r}",
            {"role": principal.role.value, "agent": principal.agent_id, "requested_agent": agent_id},
        )


__all__ = [
    "GRANTS",
    "Authenticator",
    "PgTokens",
    "Principal",
    "Role",
    "SHA256_RE",
    "StaticTokens",
    "TokenRow",
    "TokenStore",
    "authorize",
    "check_binding",
    "generate_token",
    "hash_token",
]
