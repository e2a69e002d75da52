"""Tokens and roles, the `api:` config section, the server's binding, and `callcore api token ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from pydantic import ValidationError

from callcore.api.auth import GRANTS, PgTokens, Principal, Role, StaticTokens, hash_token
from callcore.api.config import ApiSettings, ApiTokenConfig, token_issues
from callcore.api.server import ApiServer, create_app, is_loopback
from callcore.cli import main
from callcore.config import ConfigError, load_config
from tests.unit.api.apifakes import start_api, static_tokens, world

SHA = hash_token("cc_example")


def test_role_grants():
    assert GRANTS[Role.admin] == set(Role)
    assert GRANTS[Role.supervisor] == {Role.supervisor, Role.agent}
    assert GRANTS[Role.agent] == {Role.agent}
    assert GRANTS[Role.integrator] == {Role.integrator}
    assert Principal("a", Role.agent, "a1").may_act_on_agent("a1")
    assert not Principal("a", Role.agent, "a1").may_act_on_agent("a2")
    assert Principal("s", Role.supervisor).may_act_on_agent("a2")


async def test_static_tokens_match_by_hash_only():
    store = StaticTokens([("crm", Role.integrator, None, SHA.upper())])
    assert await store.lookup(SHA) == Principal("crm", Role.integrator, None, "config")
    assert await store.lookup(hash_token("cc_other")) is None


# -- tokens in PostgreSQL --------------------------------------------------------------------------------------


async def test_pg_tokens_create_lookup_list_revoke(pg_pool: Any):
    store = PgTokens(pg_pool, cache_seconds=0)
    token, row = await store.create("anna-desk", "agent", "a1")
    assert token.startswith("cc_") and len(token) > 40
    assert (row.name, row.role, row.agent_id, row.revoked_at) == ("anna-desk", "agent", "a1", None)
    stored = await pg_pool.fetchval("SELECT sha256 FROM api_tokens WHERE id = $1", row.id)
    assert stored == hash_token(token) and token not in stored
    assert await store.lookup(hash_token(token)) == Principal("anna-desk", Role.agent, "a1", "database")

    with pytest.raises(asyncpg.UniqueViolationError):
        await store.create("anna-desk", "supervisor")
    with pytest.raises(ValueError):
        await store.create("nobody", "agent")
    assert [t.name for t in await store.list_tokens()] == ["anna-desk"]

    assert [r.id for r in await store.revoke("anna-desk")] == [row.id]
    assert await store.lookup(hash_token(token)) is None
    assert await store.revoke("anna-desk") == []
    assert await store.list_tokens() == []
    assert len(await store.list_tokens(include_revoked=True)) == 1
    token2, row2 = await store.create("anna-desk", "agent", "a1")  # the name is free again
    assert (await store.revoke(str(row2.id)))[0].name == "anna-desk"


async def test_a_database_token_works_until_revoked(pg_pool: Any):
    tokens = PgTokens(pg_pool, cache_seconds=0)
    token, _ = await tokens.create("wallboard", "integrator")
    api = await start_api(stores=[static_tokens(), tokens])
    try:
        async with api.client.get("/queues", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200
        async with api.client.get("/agents/a1", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200
        async with api.client.put("/agents/a1/skills", json={"skills": {}},
                                  headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 403
        await tokens.revoke("wallboard")
        async with api.client.get("/queues", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 401
    finally:
        await api.client.close()


async def test_lookups_are_cached_briefly(pg_pool: Any):
    tokens = PgTokens(pg_pool, cache_seconds=60)
    token, _ = await tokens.create("x", "admin")
    assert await tokens.lookup(hash_token(token)) is not None
    await pg_pool.execute("UPDATE api_tokens SET revoked_at = now()")
    assert await tokens.lookup(hash_token(token)) is not None  # within the cache time
    tokens.invalidate()
    assert await tokens.lookup(hash_token(token)) is None


# -- config --------------------------------------------------------------------------------------------------------


def test_api_settings_defaults_to_loopback():
    s = ApiSettings()
    assert (s.host, s.port, s.tokens) == ("127.0.0.1", 8080, [])


@pytest.mark.parametrize("entry,message", [
    ({"name": "x", "role": "admin", "sha256": "abc"}, "64 hex digits"),
    ({"name": "x", "role": "admin", "sha256": "cc_plaintext_token"}, "64 hex digits"),
    ({"name": "x", "role": "agent", "sha256": SHA}, "bound to an agent"),
    ({"name": "x", "role": "supervisor", "agent": "a1", "sha256": SHA}, "only agent tokens"),
    ({"name": "x", "role": "root", "sha256": SHA}, "role"),
    ({"name": "x", "role": "admin", "sha256": SHA, "token": "x"}, "Extra inputs"),
])
def test_bad_token_entries(entry: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=message):
        ApiTokenConfig.model_validate(entry)


def test_token_names_and_hashes_are_unique():
    t = {"name": "x", "role": "admin", "sha256": SHA}
    with pytest.raises(ValidationError, match="unique"):
        ApiSettings.model_validate({"tokens": [t, {**t, "sha256": hash_token("y")}]})
    with pytest.raises(ValidationError, match="same sha256"):
        ApiSettings.model_validate({"tokens": [t, {**t, "name": "y"}]})


def _write_config(tmp_path: Path, extra: str = "", dsn: str | None = None) -> Path:
    database = f"database: {{url: '{dsn}'}}\n" if dsn else ""
    path = tmp_path / "callcore.yaml"
    path.write_text(
        "ari: {password: secret}\n" + database
        + "skills: [sales]\nagents:\n  a1: {endpoint: PJSIP/a1, queues: [sales]}\nqueues:\n  sales: {}\n" + extra
    )
    return path


def test_the_api_section_in_the_yaml(tmp_path: Path):
    path = _write_config(tmp_path, f"api:\n  port: 9090\n  tokens:\n    - {{name: anna, role: agent, agent: a1, "
                                   f"sha256: {SHA}}}\n")
    config = load_config(path)
    assert (config.api.host, config.api.port) == ("127.0.0.1", 9090)
    assert config.api.tokens[0].agent == "a1"
    assert token_issues(config.api, config.agents) == []
    assert token_issues(config.api, []) == ["api.tokens[0].agent: unknown agent 'a1'"]


def test_a_typo_in_the_api_section_is_an_error_with_its_line(tmp_path: Path):
    path = _write_config(tmp_path, "api:\n  prot: 9090\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert any(i.path == "api.prot" and i.line == 8 for i in exc.value.issues), exc.value.issues


# -- the server ------------------------------------------------------------------------------------------------


async def test_the_server_listens_on_loopback_by_default():
    from callcore.api.auth import Authenticator
    from callcore.api.idempotency import MemoryIdempotencyStore

    app = create_app(world().services(), authenticator=Authenticator([static_tokens()]),
                     idempotency=MemoryIdempotencyStore())
    server = ApiServer(app, port=0)
    await server.start()
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/healthz") as resp:
                assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    finally:
        await server.stop()
    await server.stop()  # idempotent


def test_from_settings_uses_the_configured_address():
    server = ApiServer.from_settings(ApiSettings(port=0), world().services(), db=object())
    assert (server.host, server.port) == ("127.0.0.1", 0)


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


# -- callcore api token ... --------------------------------------------------------------------------------------


def test_cli_token_lifecycle(tmp_path: Path, pg_dsn: str, capsys):
    cfg = str(_write_config(tmp_path, f"api:\n  tokens:\n    - {{name: boss, role: admin, sha256: {SHA}}}\n",
                            dsn=pg_dsn))
    assert main(["api", "token", "create", "crm", "--role", "integrator", "-c", cfg]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("cc_") and "shown only now" in out.err

    assert main(["api", "token", "create", "anna", "--role", "agent", "--agent", "a1", "-c", cfg]) == 0
    capsys.readouterr()
    assert main(["api", "token", "create", "ghost", "--role", "agent", "--agent", "zz", "-c", cfg]) == 2
    assert "no agent 'zz'" in capsys.readouterr().err
    assert main(["api", "token", "create", "x", "--role", "agent", "-c", cfg]) == 2
    assert main(["api", "token", "create", "crm", "--role", "admin", "-c", cfg]) == 1
    assert "exists" in capsys.readouterr().err

    assert main(["api", "token", "list", "-c", cfg]) == 0
    listing = capsys.readouterr().out
    assert token not in listing
    assert [line.split()[1] for line in listing.splitlines()[1:]] == ["boss", "crm", "anna"]

    assert main(["api", "token", "revoke", "crm", "-c", cfg]) == 0
    assert main(["api", "token", "revoke", "crm", "-c", cfg]) == 1
    assert main(["api", "token", "revoke", "boss", "-c", cfg]) == 1
    capsys.readouterr()
    assert main(["api", "token", "list", "--all", "-c", cfg]) == 0
    assert "crm" in capsys.readouterr().out


def test_cli_token_generate_prints_a_token_and_its_yaml(capsys):
    assert main(["api", "token", "generate", "anna", "--role", "agent", "--agent", "a1"]) == 0
    token, yaml_line = capsys.readouterr().out.strip().splitlines()
    assert yaml_line.strip() == f"- {{name: anna, role: agent, agent: a1, sha256: {hash_token(token)}}}"
    entry = ApiTokenConfig.model_validate(__import__("yaml").safe_load(yaml_line.strip())[0])
    assert entry.sha256 == hash_token(token)
