"""Idempotency-Key: same key + same body → the stored response; another body → 409. In memory and in PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callcore.api.idempotency import MemoryIdempotencyStore, PgIdempotencyStore, fingerprint
from tests.unit.api.apifakes import CALL1, Api, start_api, world

DISPOSITION = {"call_id": str(CALL1), "disposition": "sale", "notes": "n"}


def key(k: str) -> dict[str, str]:
    return {"Idempotency-Key": k}


async def _same_key_same_body_replays(api: Api) -> None:
    before = len(api.world.sink.events)
    first = await api.call("POST", "/agents/a1/disposition", "agent", json=DISPOSITION, headers=key("k-1"))
    # the same JSON with other key order and spacing is the same request
    again = await api.call("POST", "/agents/a1/disposition", "agent",
                           data=b'{ "notes":"n", "disposition": "sale", "call_id": "%s" }' % str(CALL1).encode(),
                           headers={**key("k-1"), "Content-Type": "application/json"})
    assert first[0] == again[0] == 201
    assert first[1] == again[1]
    assert "Idempotent-Replayed" not in first[2]
    assert again[2]["Idempotent-Replayed"] == "true"
    assert len(api.world.sink.events) == before + 1


async def _same_key_other_body_is_409(api: Api) -> None:
    before = len(api.world.sink.events)
    await api.call("POST", "/agents/a1/disposition", "agent", json=DISPOSITION, headers=key("k-2"))
    status, body, _ = await api.call("POST", "/agents/a1/disposition", "agent",
                                     json={**DISPOSITION, "disposition": "no-sale"}, headers=key("k-2"))
    assert status == 409
    assert body["error"]["code"] == "idempotency_key_reused"
    status, body, _ = await api.call("POST", "/agents/a1/pause", "agent", json={}, headers=key("k-2"))
    assert (status, body["error"]["code"]) == (409, "idempotency_key_reused")  # same key, another route
    assert len(api.world.sink.events) == before + 1


async def test_memory_same_key_same_body_replays(api: Api):
    await _same_key_same_body_replays(api)


async def test_memory_same_key_other_body_is_409(api: Api):
    await _same_key_other_body_is_409(api)


async def test_keys_belong_to_one_token(api: Api):
    a = await api.call("POST", "/agents/a1/disposition", "agent", json=DISPOSITION, headers=key("shared"))
    b = await api.call("POST", "/agents/a1/disposition", "supervisor", json=DISPOSITION, headers=key("shared"))
    assert a[0] == b[0] == 201 and a[1]["event_id"] != b[1]["event_id"]
    assert len(api.world.sink.events) == 2


async def test_without_a_key_every_post_acts(api: Api):
    for _ in range(2):
        assert (await api.call("POST", "/agents/a1/disposition", json=DISPOSITION))[0] == 201
    assert len(api.world.sink.events) == 2


@pytest.mark.parametrize("bad", ["", "has space", "x" * 256, "tab\tkey", "ünïcode"])
async def test_a_malformed_key_is_400(api: Api, bad: str):
    status, body, _ = await api.call("POST", "/agents/a1/login", json={},
                                     headers={"Idempotency-Key": bad.encode().decode("latin-1")})
    assert status == 400
    assert body["error"]["code"] == "invalid_idempotency_key"
    assert api.world.acd.agents["a1"].state == "logged_out"


async def test_a_409_outcome_replays_as_409_even_after_the_state_changed(api: Api):
    api.world.acd.login("a1")
    first = await api.call("POST", "/agents/a1/login", json={}, headers=key("login-1"))
    api.world.acd.logout("a1")
    again = await api.call("POST", "/agents/a1/login", json={}, headers=key("login-1"))
    assert first[0] == again[0] == 409
    assert first[1] == again[1]
    assert api.world.acd.agents["a1"].state == "logged_out"


async def test_a_failure_forgets_the_key_so_the_retry_runs(api: Api):
    real = api.world.acd.login
    calls = 0

    def flaky(agent_id: str, *, paused: bool = False) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")
        real(agent_id, paused=paused)

    api.world.acd.login = flaky  # type: ignore[method-assign]
    assert (await api.call("POST", "/agents/a1/login", json={}, headers=key("retry")))[0] == 500
    status, body, headers = await api.call("POST", "/agents/a1/login", json={}, headers=key("retry"))
    assert (status, body["state"]) == (200, "ready")
    assert "Idempotent-Replayed" not in headers


async def test_a_request_still_running_with_the_key_is_409(api: Api):
    await api.idem.claim("agent", "busy", "POST /agents/a1/login", fingerprint("POST /agents/a1/login", {}))
    status, body, _ = await api.call("POST", "/agents/a1/login", "agent", json={}, headers=key("busy"))
    assert (status, body["error"]["code"]) == (409, "idempotency_in_progress")


async def test_memory_store_expiry_and_abandoned_claims():
    now = [0.0]
    store = MemoryIdempotencyStore(ttl=100, pending_timeout=10, clock=lambda: now[0])
    assert await store.claim("o", "k", "r", "h") is None
    now[0] = 5
    assert (await store.claim("o", "k", "r", "h")).status is None  # type: ignore[union-attr]  # still running
    now[0] = 11
    assert await store.claim("o", "k", "r", "h") is None  # abandoned: taken over
    await store.complete("o", "k", 201, {"ok": 1})
    now[0] = 50
    assert (await store.claim("o", "k", "r", "h")).response == {"ok": 1}  # type: ignore[union-attr]
    now[0] = 200
    assert await store.claim("o", "k", "r", "other") is None  # expired: a new request


# -- PostgreSQL ------------------------------------------------------------------------------------------------


async def test_pg_same_key_same_body_replays_and_other_body_conflicts(pg_pool: Any):
    api = await start_api(world(), idem=PgIdempotencyStore(pg_pool))
    try:
        await _same_key_same_body_replays(api)
        await _same_key_other_body_is_409(api)
    finally:
        await api.client.close()
    rows = await pg_pool.fetch("SELECT owner, key, status, response FROM idempotency_keys ORDER BY key")
    assert [(r["owner"], r["key"], r["status"]) for r in rows] == [("agent", "k-1", 201), ("agent", "k-2", 201)]
    assert rows[0]["response"]["disposition"] == "sale"


async def test_pg_store_claims_expiry_takeover_release_and_purge(pg_pool: Any):
    store = PgIdempotencyStore(pg_pool, ttl=3600, pending_timeout=60)
    assert await store.claim("o", "k", "POST /x", "h1") is None
    pending = await store.claim("o", "k", "POST /x", "h1")
    assert pending is not None and pending.status is None
    await store.complete("o", "k", 200, {"a": [1, 2]})
    done = await store.claim("o", "k", "POST /x", "h1")
    assert done is not None and (done.status, done.response, done.body_hash) == (200, {"a": [1, 2]}, "h1")

    # a claim abandoned by a crashed process is taken over after pending_timeout
    assert await store.claim("o", "crash", "POST /x", "h") is None
    await pg_pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '2 minutes' WHERE key = 'crash'")
    assert await store.claim("o", "crash", "POST /x", "h") is None

    # released claims can be claimed again at once; completed ones are never released
    await store.release("o", "crash")
    assert await store.claim("o", "crash", "POST /x", "h") is None
    await store.release("o", "k")
    assert (await store.claim("o", "k", "POST /x", "h1")).status == 200  # type: ignore[union-attr]

    # expired keys are free again, and purged
    await pg_pool.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'k'")
    assert await store.claim("o", "k", "POST /y", "h2") is None
    await pg_pool.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    assert await store.purge() == 2
    assert await pg_pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_pg_concurrent_requests_with_one_key_act_once(pg_pool: Any):
    store = PgIdempotencyStore(pg_pool)
    results = await asyncio.gather(*(store.claim("o", "same", "POST /x", "h") for _ in range(5)))
    assert sum(r is None for r in results) == 1
