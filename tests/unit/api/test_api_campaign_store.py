"""Campaigns created and changed through the API (``POST /campaigns``, ``PUT /campaigns/{name}``) on the real
stack below the HTTP layer: ``campaigns.catalog.CampaignCatalog`` on PostgreSQL, the real ``DialerService`` and
ACD, a fake phone network. The config file's campaign here is ``yaml_c``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from callcore.acd.model import AcdConfig, AgentConfig, QueueConfig
from callcore.acd.service import AcdService
from callcore.api.config_routes import AppConfig
from callcore.api.outbound_services import PgLeadStore
from callcore.app import CallcoreApp
from callcore.calls.call import OriginateFailed
from callcore.campaigns.catalog import CampaignCatalog, load_api_campaigns
from callcore.campaigns.model import CampaignConfig
from callcore.config import ConfigError, load_config
from callcore.dialer import service as service_mod
from callcore.dialer.service import DialerService
from callcore.leads import store
from tests.fakes.sinks import RecordingSink
from tests.unit.api.outboundfakes import outbound, start_outbound
from tests.unit.api.test_api_config import BASE

UTC = timezone.utc
NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # a Wednesday, 12:00 in Amsterdam
WINDOWS = [{"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-20:30"}]
BODY: dict[str, Any] = {"name": "upsell", "description": "Upgrade offer", "queue": "retention",
                        "caller_id": "+31881234567", "default_region": "NL", "compliance_message": ["ident"],
                        "windows": WINDOWS, "script": "Goedemiddag!"}


def config(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "name"}


YAML_C = CampaignConfig.model_validate(config({**BODY, "caller_id": "+31881234999"}))


class Network:
    """``place_call``: every call rings until the test ends it; what it was placed with is kept."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def place_call(self, endpoint: str, handler: Any, **kw: Any) -> Any:
        ending: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.calls.append({"endpoint": endpoint, "end": ending, **kw})
        return await ending


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, datetime]:
    now = {"t": NOW}
    monkeypatch.setattr(service_mod, "_utcnow", lambda: now["t"])
    return now


async def wire(pool: Any) -> tuple[Any, DialerService, CampaignCatalog, AcdService, Network]:
    """What CallcoreApp.start does: the file's campaigns plus the stored ones, one dialer, the catalog, the API."""
    acd = AcdService(AcdConfig(agents={"agent01": AgentConfig(endpoint="PJSIP/agent01", queues=["retention"])},
                               queues={"retention": QueueConfig()}), RecordingSink())
    network = Network()
    acd.runtime = network  # type: ignore[assignment]
    stored = await load_api_campaigns(pool)
    dialer = DialerService({"yaml_c": YAML_C, **{n: s.config for n, s in stored.items()}}, acd,
                           network, pool)  # type: ignore[arg-type]
    catalog = CampaignCatalog(pool, dialer, config_campaigns=lambda: {"yaml_c": YAML_C}, acd=lambda: acd.config,
                              stored=stored)
    api = await start_outbound(outbound(campaigns=dialer, definitions=catalog, leads=PgLeadStore(pool)))
    return api, dialer, catalog, acd, network


@pytest.fixture
async def stack(pg_pool: Any, clock: Any) -> Any:
    api, dialer, catalog, acd, network = await wire(pg_pool)
    try:
        yield api, dialer, catalog, acd, network
    finally:
        await dialer.close()
        await api.client.close()


async def wait_for(predicate: Any, seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_create_lists_it_as_api_starts_it_and_a_restart_keeps_it(pg_pool, stack):
    api, dialer, _, _, _ = stack
    status, body, _ = await api.call("POST", "/campaigns", "supervisor", json=BODY)
    assert status == 201, body
    assert (body["name"], body["source"], body["version"], body["state"]) == ("upsell", "api", 1, "stopped")
    row = await pg_pool.fetchrow("SELECT * FROM campaigns")
    assert row["name"] == "upsell" and row["created_by"] == "supervisor" and row["version"] == 1
    assert row["definition"] == config(BODY)  # as received: defaults stay unset
    status, body, _ = await api.call("GET", "/campaigns", "integrator")
    assert {c["name"]: c["source"] for c in body["items"]} == {"upsell": "api", "yaml_c": "config"}
    status, body, _ = await api.call("GET", "/campaigns/upsell", "integrator")
    assert status == 200 and body["source"] == "api" and body["script"] == "Goedemiddag!"
    status, body, _ = await api.call("POST", "/campaigns/upsell/start", "supervisor")
    assert status == 200 and body["state"] == "running", body
    await dialer.close()

    # A restart: new dialer, catalog and API from the same database.
    api2, dialer2, catalog2, _, _ = await wire(pg_pool)
    try:
        assert dialer2.run_of("upsell").config == dialer.run_of("upsell").config
        assert catalog2.source("upsell") == "api" and catalog2.version("upsell") == 1
        status, body, _ = await api2.call("GET", "/campaigns/upsell", "supervisor")
        assert status == 200 and body["source"] == "api" and body["state"] == "stopped"
    finally:
        await dialer2.close()
        await api2.client.close()


async def test_an_invalid_campaign_is_422_with_its_issues_and_nothing_is_stored(pg_pool, stack):
    api, dialer, _, _, _ = stack
    bad = {**BODY, "queue": "retentoin", "compliance_message": []}
    status, body, _ = await api.call("POST", "/campaigns", "supervisor", json=bad)
    assert status == 422 and body["error"]["code"] == "invalid", body
    issues = {i["path"]: i["message"] for i in body["error"]["details"]["issues"]}
    assert "retention" in issues["queue"]  # "did you mean"
    assert "compliance_message" in issues
    status, body, _ = await api.call("POST", "/campaigns", "supervisor", json={**BODY, "caller_id": "12"})
    assert status == 422
    status, body, _ = await api.call("POST", "/campaigns", "supervisor", json={**BODY, "name": "bad name"})
    assert status == 422
    assert await pg_pool.fetchval("SELECT count(*) FROM campaigns") == 0
    assert set(dialer.runs) == {"yaml_c"}
    # An invalid change leaves the stored one as it was.
    assert (await api.call("POST", "/campaigns", "supervisor", json=BODY))[0] == 201
    status, body, _ = await api.call("PUT", "/campaigns/upsell", "supervisor", json={**config(bad)})
    assert status == 422
    assert await pg_pool.fetchval("SELECT version FROM campaigns") == 1
    assert dialer.run_of("upsell").config.queue == "retention"


async def test_the_config_files_campaigns_belong_to_the_file(pg_pool, stack):
    api, dialer, _, _, _ = stack
    status, body, _ = await api.call("PUT", "/campaigns/yaml_c", "supervisor", json=config(BODY))
    assert status == 409
    assert "defined in the config file; change it there and reload" in body["error"]["message"]
    status, body, _ = await api.call("POST", "/campaigns", "admin", json={**BODY, "name": "yaml_c"})
    assert status == 409 and "config file" in body["error"]["message"]
    assert dialer.run_of("yaml_c").config == YAML_C
    assert await pg_pool.fetchval("SELECT count(*) FROM campaigns") == 0


async def test_mode_or_queue_of_a_running_campaign_cannot_change(pg_pool, stack):
    api, dialer, _, _, _ = stack
    assert (await api.call("POST", "/campaigns", "supervisor", json=BODY))[0] == 201
    assert (await api.call("POST", "/campaigns/upsell/start", "supervisor"))[0] == 200
    status, body, _ = await api.call("PUT", "/campaigns/upsell", "supervisor",
                                     json={**config(BODY), "mode": "predictive"})
    assert status == 409 and "pause or stop it first" in body["error"]["message"], body
    assert await pg_pool.fetchval("SELECT version FROM campaigns") == 1
    assert dialer.run_of("upsell").config.mode == "progressive"
    # Paused: it may.
    assert (await api.call("POST", "/campaigns/upsell/pause", "supervisor"))[0] == 200
    status, body, _ = await api.call("PUT", "/campaigns/upsell", "supervisor",
                                     json={**config(BODY), "mode": "predictive"})
    assert status == 200 and body["version"] == 2 and body["mode"] == "predictive"


async def test_a_new_caller_id_is_used_from_the_next_attempt_of_a_running_campaign(pg_pool, stack):
    api, dialer, _, acd, network = stack
    assert (await api.call("POST", "/campaigns", "supervisor", json=BODY))[0] == 201
    cfg = dialer.run_of("upsell").config
    for number in ("0612345671", "0612345672"):
        assert await store.add_lead(pg_pool, "upsell", cfg, number, now=NOW - timedelta(days=1)) is not None
    acd.login("agent01")
    assert (await api.call("POST", "/campaigns/upsell/start", "supervisor"))[0] == 200
    await wait_for(lambda: len(network.calls) == 1)
    assert network.calls[0]["caller_id"] == "+31881234567"

    status, body, _ = await api.call("PUT", "/campaigns/upsell", "supervisor",
                                     json={**config(BODY), "caller_id": "+31881234568"},
                                     headers={"If-Match": '"1"'})
    assert status == 200 and body["version"] == 2 and body["state"] == "running", body
    (attempt,) = dialer.run_of("upsell").attempts.values()
    assert attempt.config is not None and attempt.config.caller_id == "+31881234567"  # in progress: its own
    network.calls[0]["end"].set_exception(OriginateFailed(network.calls[0]["endpoint"], 19, "no answer"))
    await wait_for(lambda: len(network.calls) == 2)
    assert network.calls[1]["caller_id"] == "+31881234568"
    stale = await api.call("PUT", "/campaigns/upsell?version=1", "supervisor", json=config(BODY))
    assert stale[0] == 409 and stale[1]["error"]["details"]["version"] == 2


async def test_a_reload_that_takes_an_api_campaigns_name_is_refused(tmp_path: Path):
    path = tmp_path / "callcore.yaml"
    path.write_text(BASE)
    app = CallcoreApp.__new__(CallcoreApp)
    app.config = load_config(path)
    app._flows = None
    app.stream = SimpleNamespace(stats=SimpleNamespace(connected=False))
    app.campaign_catalog = SimpleNamespace(stored={"upsell": object()})  # type: ignore[assignment]
    campaign = ("campaigns:\n  upsell:\n    queue: sales\n    caller_id: '+31881234567'\n    default_region: NL\n"
                "    compliance_message: [ident]\n")
    path.write_text(BASE + campaign)
    result = await app.reload()
    assert not result.ok and "managed through the API" in result.errors[0] and "upsell" in result.errors[0]
    assert app.config.campaigns == {}
    with pytest.raises(ConfigError, match="managed through the API"):  # validate and dry-run say it too
        AppConfig(app).load(path)
    path.write_text(BASE + campaign.replace("upsell", "winback"))
    assert "winback" in AppConfig(app).load(path).campaigns


class CommitFails:
    """The pool, but every transaction's commit fails (the database went away at that moment): its work is rolled
    back and the caller gets the error."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def acquire(self) -> Any:
        import contextlib

        pool = self.pool

        @contextlib.asynccontextmanager
        async def conn_cm():
            async with pool.acquire() as conn:
                yield _FailingCommit(conn)

        return conn_cm()


class _FailingCommit:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def transaction(self) -> Any:
        import contextlib

        import asyncpg

        conn = self.conn

        @contextlib.asynccontextmanager
        async def tx():
            t = conn.transaction()
            await t.start()
            try:
                yield
            finally:
                await t.rollback()
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")

        return tx()


async def test_a_change_or_creation_whose_commit_fails_leaves_the_dialer_as_stored(pg_pool, stack):
    import asyncpg

    _, dialer, catalog, _, _ = stack
    stored, _ = await catalog.create("upsell", CampaignConfig.model_validate(config(BODY)), by="supervisor")
    catalog.db = CommitFails(pg_pool)
    changed = CampaignConfig.model_validate(config({**BODY, "caller_id": "+31881230000"}))
    with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
        await catalog.update("upsell", changed, by="supervisor", expected_version=stored.version)
    assert dialer.runs["upsell"].config.caller_id == "+31881234567"  # what the database still holds
    assert catalog.stored["upsell"].version == stored.version
    assert (await pg_pool.fetchrow("SELECT version FROM campaigns WHERE name = 'upsell'"))["version"] == 1
    with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
        await catalog.create("second", changed, by="supervisor")
    assert "second" not in dialer.runs and "second" not in catalog.stored  # not stored, so not known either
    assert await pg_pool.fetchval("SELECT count(*) FROM campaigns WHERE name = 'second'") == 0
