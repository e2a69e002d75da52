"""GET /kpis/...: roles, periods and their defaults (today = the real-time view), validation, the numbers of the
scripted morning (tests/unit/kpi/scenario.py) through HTTP, and real time = history on PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from callcore.api import kpis as kpi_api
from callcore.api.openapi import build_openapi
from callcore.api.server import api_routes
from callcore.kpi.definitions import KpiSettings
from callcore.kpi.report import KpiData
from callcore.kpi.store import PgKpis
from tests.unit.api.apifakes import PRINCIPALS, Api, start_api, world
from tests.unit.kpi import scenario as sc

ALLOWED = {"admin", "supervisor", "integrator"}
Q = "from=2026-03-02T09:00:00Z&to=2026-03-02T11:00:00Z"

# (method, route template, a concrete path): every KPI route. Allowed: admin, supervisor, integrator.
KPI_CASES = [
    ("GET", "/kpis/queues", f"/kpis/queues?{Q}&interval=1h"),
    ("GET", "/kpis/queues/{name}", f"/kpis/queues/sales?{Q}"),
    ("GET", "/kpis/agents", f"/kpis/agents?{Q}&interval=1h"),
    ("GET", "/kpis/campaigns/{name}", f"/kpis/campaigns/retention?{Q}&interval=1h"),
    ("GET", "/kpis/ivr", f"/kpis/ivr?{Q}"),
    ("GET", "/kpis/staffing", f"/kpis/staffing?queue=sales&{Q}&interval=1h"),
]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class ScenarioStore:
    """KpiStore.load over the scripted morning, selecting as the SQL does."""

    async def load(self, start: datetime, end: datetime, as_of: datetime, **_: Any) -> KpiData:
        return KpiData(start, end, as_of, [e for e in sc.events() if e.at <= as_of],
                       [w for w in sc.wraps() if w.start <= as_of], sc.agent_rows(start, min(end, as_of)),
                       sc.call_starts(), [a for a in sc.attempts() if start <= a.started_at < end])


def scenario_kpis(settings: KpiSettings = sc.SETTINGS) -> PgKpis:
    kpis = PgKpis(None, settings, clock=Clock(sc.AS_OF), cache_seconds=0)
    kpis.store = ScenarioStore()  # type: ignore[assignment]
    return kpis


async def kpi_api_started(kpis: Any = None) -> Api:
    w = world()
    services = dataclasses.replace(w.services(), kpis=scenario_kpis() if kpis is None else kpis)
    return await start_api(w, services=services)


@pytest.fixture
async def api():
    a = await kpi_api_started()
    try:
        yield a
    finally:
        await a.client.close()


# -- roles ---------------------------------------------------------------------------------------------------------


def test_the_cases_cover_every_kpi_route():
    declared = {(r.method, r.path) for r in kpi_api.routes}
    assert {(m, t) for m, t, _ in KPI_CASES} == declared
    assert declared <= {(r.method, r.path) for r in api_routes()}
    assert all(set(r.roles) == {"supervisor", "integrator"} for r in kpi_api.routes)


@pytest.mark.parametrize("method,template,path", KPI_CASES, ids=[c[1] for c in KPI_CASES])
async def test_each_role_is_allowed_or_forbidden(api: Api, method: str, template: str, path: str):
    for who in PRINCIPALS:
        status, body, _ = await api.call(method, path, who)
        if who in ALLOWED:
            assert status == 200, (who, body)
        else:
            assert status == 403 and body["error"]["code"] == "forbidden", (who, body)
    status, body, headers = await api.call(method, path, None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")


async def test_bodies_carry_exactly_the_documented_fields(api: Api):
    spec = build_openapi(api_routes().routes)
    schemas = spec["components"]["schemas"]
    for _, template, path in KPI_CASES:
        status, body, _ = await api.call("GET", path, "supervisor")
        ref = spec["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        schema = schemas[ref.rsplit("/", 1)[-1]]
        assert set(schema["required"]) <= set(body) <= set(schema["properties"]), path
        row_schema = schemas[schema["properties"]["rows"]["items"]["$ref"].rsplit("/", 1)[-1]]
        assert body["rows"], path
        for row in body["rows"]:
            assert set(row) == set(row_schema["properties"]) == set(row_schema["required"]), path


# -- the numbers ----------------------------------------------------------------------------------------------------


async def test_queue_kpis_of_the_scripted_morning(api: Api):
    status, body, _ = await api.call("GET", f"/kpis/queues?{Q}&interval=1h", "integrator")
    assert status == 200, body
    assert (body["start"], body["end"], body["interval"], body["timezone"]) == (
        "2026-03-02T09:00:00Z", "2026-03-02T11:00:00Z", "1h", "UTC")
    assert (body["short_abandon_seconds"], body["fcr_days"], body["as_of"]) == (5.0, 7.0, "2026-03-02T11:00:00Z")
    rows = {(r["queue"], r["start"]): r for r in body["rows"]}
    sales9 = rows[("sales", "2026-03-02T09:00:00Z")]
    # hand-computed in tests/unit/kpi/test_kpi_definitions.py
    assert (sales9["offered"], sales9["answered"], sales9["short_abandoned"], sales9["service_level_pct"],
            sales9["abandon_rate_pct"], sales9["asa_seconds"], sales9["aht_seconds"]) == (5, 2, 1, 33.33, 50.0, 27.5,
                                                                                          345.0)
    assert rows[("support", "2026-03-02T10:00:00Z")]["occupancy_pct"] == 13.48


async def test_one_queue_agents_campaign_ivr_staffing(api: Api):
    _, body, _ = await api.call("GET", f"/kpis/queues/support?{Q}")
    assert [(r["queue"], r["offered"], r["service_level_pct"]) for r in body["rows"]] == [("support", 3, 100.0)]
    _, body, _ = await api.call("GET", f"/kpis/agents?{Q}&interval=1h&agent=a1")
    assert [(r["agent"], r["answered"], r["occupancy_pct"]) for r in body["rows"]] == [("a1", 2, 19.17),
                                                                                       ("a1", 1, 8.75)]
    _, body, _ = await api.call("GET", f"/kpis/campaigns/retention?{Q}")
    (row,) = body["rows"]
    assert (row["attempts"], row["contact_rate_pct"], row["conversion_pct"], row["abandon_rate_pct"]) == (
        8, 50.0, 33.33, 50.0)
    _, body, _ = await api.call("GET", f"/kpis/ivr?{Q}")
    # C1 (to a queue), C6 (contained), C8 (abandoned in the flow): 1 / 3
    assert [(r["flow"], r["calls"], r["containment_pct"]) for r in body["rows"]] == [("main", 3, 33.33)]
    status, body, _ = await api.call("GET", f"/kpis/staffing?queue=sales&{Q}&interval=1h&target_sl=90"
                                            "&target_seconds=15&max_abandon=5")
    assert status == 200, body
    assert [r["calls"] for r in body["rows"]] == [4, 3]
    assert body["rows"][0]["target_sl_pct"] == 90.0 and body["rows"][0]["max_abandon_pct"] == 5.0
    assert body["rows"][0]["erlang_c_agents"] >= body["rows"][0]["erlang_a_agents"] >= 1


async def test_no_period_is_today_so_far(api: Api):
    status, body, _ = await api.call("GET", "/kpis/queues/sales")
    assert status == 200
    assert (body["start"], body["end"], body["as_of"]) == (
        "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", "2026-03-02T11:00:00Z")
    # 1 within 20 s / (3 answered + 1 abandoned after 20 s), as GET /queues shows it
    assert body["rows"][0]["service_level_pct"] == 25.0
    _, queues, _ = await api.call("GET", "/queues/sales")
    assert queues["service_level_today"] == 25.0
    # only `to`: from the start of that day; only `from`: until now
    _, body, _ = await api.call("GET", "/kpis/ivr?to=2026-03-02T10:00:00Z")
    assert body["start"] == "2026-03-02T00:00:00Z"
    _, body, _ = await api.call("GET", "/kpis/ivr?to=2026-03-02T00:00:00Z")  # the whole day before
    assert body["start"] == "2026-03-01T00:00:00Z"
    _, body, _ = await api.call("GET", "/kpis/ivr?from=2026-03-02T10:00:00Z")
    assert body["end"] == "2026-03-02T11:00:00Z"


async def test_times_without_offset_are_in_tz_and_rows_show_local_time(api: Api):
    status, body, _ = await api.call("GET", "/kpis/queues/sales?from=2026-03-02T10:00&to=2026-03-02T12:00"
                                            "&interval=1h&tz=Europe/Amsterdam")
    assert status == 200, body
    assert body["start"] == "2026-03-02T10:00:00+01:00" and body["timezone"] == "Europe/Amsterdam"
    assert [r["start"] for r in body["rows"]] == ["2026-03-02T10:00:00+01:00", "2026-03-02T11:00:00+01:00"]
    assert body["rows"][0]["offered"] == 5


@pytest.mark.parametrize("path", [
    "/kpis/queues?interval=5m",
    "/kpis/queues?tz=Mars/Olympus",
    "/kpis/queues?from=2026-03-02T10:00:00Z&to=2026-03-02T09:00:00Z",
    "/kpis/queues?from=yesterday",
    "/kpis/queues?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    "/kpis/queues?from=2025-03-01T00:00:00Z&to=2026-03-01T00:00:00Z&interval=15m",
    "/kpis/queues?bogus=1",
    "/kpis/staffing",
    "/kpis/staffing?queue=sales&target_sl=100",
    "/kpis/staffing?queue=sales&max_occupancy=0",
    "/kpis/agents?agent=",
])
async def test_bad_queries_are_422(api: Api, path: str):
    status, body, _ = await api.call("GET", path)
    assert status == 422, body
    assert body["error"]["code"] == "validation_error"


@pytest.mark.parametrize("path", ["/kpis/queues/nope", "/kpis/campaigns/nope", "/kpis/staffing?queue=nope"])
async def test_unknown_queue_or_campaign_is_404(api: Api, path: str):
    status, body, _ = await api.call("GET", path)
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_not_wired_or_without_reports_is_501():
    api = await start_api()
    try:
        status, body, _ = await api.call("GET", "/kpis/queues")
        assert status == 501 and body["error"]["code"] == "not_implemented"
    finally:
        await api.client.close()

    class OnlyServiceLevel:
        async def service_level_today(self, queue: str) -> float | None:
            return 99.0

    api = await kpi_api_started(OnlyServiceLevel())
    try:
        status, body, _ = await api.call("GET", "/kpis/queues")
        assert status == 501 and body["error"]["code"] == "not_implemented"
    finally:
        await api.client.close()


# -- real time = history, on PostgreSQL -----------------------------------------------------------------------------


async def test_real_time_view_equals_the_history_of_the_same_data(pg_pool: Any):
    await sc.write_scenario(pg_pool)
    clock = Clock(sc.AS_OF)
    kpis = PgKpis(pg_pool, sc.SETTINGS, clock=clock, cache_seconds=0)
    api = await kpi_api_started(kpis)
    try:
        live: dict[str, Any] = {}
        for kind in ("queues", "agents", "ivr"):
            status, live[kind], _ = await api.call("GET", f"/kpis/{kind}?interval=1h")  # today so far
            assert status == 200
        _, live_sl, _ = await api.call("GET", "/queues/sales")
        clock.now = sc.AS_OF + timedelta(days=3)
        for kind in ("queues", "agents", "ivr"):
            _, later, _ = await api.call("GET", f"/kpis/{kind}?interval=1h&from=2026-03-02T00:00:00Z"
                                                f"&to=2026-03-02T11:00:00Z")
            assert [r for r in live[kind]["rows"] if r["start"] < "2026-03-02T11"] == later["rows"], kind
        assert live_sl["service_level_today"] == 25.0
    finally:
        await api.client.close()
