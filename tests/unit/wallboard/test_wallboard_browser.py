"""The wallboard in a real browser: headless Chromium loads ``/wallboard`` from the API (on fakes holding known
numbers), and every number shown is checked against what the API answers; then the fakes change and the page must
follow, by polling and by the ``/events`` WebSocket.

Skips only when no chromium binary exists (``scripts/install-system-deps.sh`` installs it for ``make test``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from callcore.acd.model import AcdConfig, AgentConfig, QueueConfig, ServiceLevel
from callcore.api.auth import Authenticator
from callcore.api.idempotency import MemoryIdempotencyStore
from callcore.api.live_events import EVENT_HUB, EventHub
from callcore.api.routing import SERVICES
from callcore.api.server import ApiServer, create_app
from callcore.api.services import ApiServices
from callcore.events import AgentEvent, utcnow
from callcore.kpi.definitions import KpiSettings
from callcore.kpi.report import QueueKpiRow
from callcore.wallboard.page import page_source
from tests.browser import (
    WALLBOARD_TOKEN_KEY,
    Browser,
    Page,
    Shown,
    WallboardApi,
    open_wallboard,
    require_chromium,
    value_of,
    wait_wallboard_matches,
    wallboard_mismatches,
)
from tests.unit.api.apifakes import TOKENS, FakeAcd, Sink, static_tokens

TOKEN_KEY = WALLBOARD_TOKEN_KEY
SUPERVISOR = TOKENS["supervisor"][0]
INTEGRATOR = TOKENS["integrator"][0]
TICK_SLACK = 6.0  # seconds a ticking duration may run ahead of the API's value (2 s poll, a slow machine)
pytestmark = pytest.mark.timeout(60)


# -- the world the page shows ------------------------------------------------------------------------------------


def acd_config() -> AcdConfig:
    names = ["Anna", "Bob", "Cem", "Dewi", "Eva"]
    agents = {f"a{i}": AgentConfig(name=n, endpoint=f"PJSIP/a{i}", skills={"sales": 5},
                                   queues=["sales", "support"] if i <= 3 else ["sales"])
              for i, n in enumerate(names, start=1)}
    queues = {"sales": QueueConfig(service_level=ServiceLevel(percent=80, seconds=20)),
              "support": QueueConfig(service_level=ServiceLevel(percent=90, seconds=30))}
    return AcdConfig(skills=["sales"], agents=agents, queues=queues)


def qrow(queue: str, start: datetime, end: datetime, **values: Any) -> QueueKpiRow:
    """A queue KPI row: every count 0 unless given."""
    base: dict[str, Any] = {}
    for name, f in QueueKpiRow.model_fields.items():
        if f.is_required() and name not in ("queue", "start", "end"):
            base[name] = 0
    return QueueKpiRow(queue=queue, start=start, end=end, **{**base, **values})


@dataclass
class FakeKpis:
    """The KPI reports (callcore.api.kpis.KpiReports) and QueueKpis.service_level_today, with set numbers."""

    settings: KpiSettings = field(default_factory=lambda: KpiSettings(timezone="UTC", queues=("sales", "support")))
    sl: dict[str, float | None] = field(default_factory=lambda: {"sales": 80.0, "support": None})
    today: dict[str, dict[str, Any]] = field(default_factory=dict)
    intervals: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # (queue, intervals ago)

    def clock(self) -> datetime:
        return utcnow()

    def _today(self) -> tuple[datetime, datetime]:
        now = self.clock()
        start = datetime(now.year, now.month, now.day, tzinfo=timezone.utc)
        return start, start + timedelta(days=1)

    def period(self, start: datetime | None, end: datetime | None, tz: str | None = None
               ) -> tuple[datetime, datetime]:
        day = self._today()
        return (start or day[0], end or day[1])

    async def queues(self, start: datetime, end: datetime, interval: str | None = None, tz: str | None = None,
                     queue: str | None = None) -> list[QueueKpiRow]:
        if interval is None:
            return [qrow(q, start, end, **v) for q, v in self.today.items() if queue in (None, q)]
        assert interval == "15m"
        current = interval_start(self.clock())
        rows = []
        for (q, ago), v in sorted(self.intervals.items()):
            s = current - timedelta(minutes=15 * ago)
            if s >= start and queue in (None, q):
                rows.append(qrow(q, s, s + timedelta(minutes=15), **v))
        return rows

    async def service_level_today(self, queue: str) -> float | None:
        return self.sl.get(queue)


def interval_start(at: datetime) -> datetime:
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


@dataclass
class World:
    acd: FakeAcd
    kpis: FakeKpis
    hub: EventHub
    server: ApiServer

    @property
    def url(self) -> str:
        return self.server.url

    async def get(self, path: str, token: str = SUPERVISOR) -> Any:
        async with aiohttp.ClientSession() as s, s.get(self.url + path,
                                                       headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200, (path, r.status, await r.text())
            return await r.json()


def populate(acd: FakeAcd, kpis: FakeKpis) -> None:
    """2 callers waiting in sales (longest 42 s); agents 3 ready, 1 on call, 1 paused; today's KPIs."""
    acd.clock = 1000.0
    acd.login("a5", paused=True)
    acd.clock = 1030.0
    acd.login("a1")
    acd.login("a2")
    acd.on_call("a4", uuid.uuid4())
    acd.clock = 1090.0
    acd.login("a3")
    acd.clock = 1100.0
    acd.enqueue(uuid.uuid4(), "sales", waited=42.0)
    acd.enqueue(uuid.uuid4(), "sales", waited=10.0, priority=1)
    kpis.today.update({
        "sales": {"offered": 40, "answered": 34, "abandoned": 6, "short_abandoned": 1, "abandoned_counted": 5,
                  "handled": 30, "asa_seconds": 18.5, "aht_seconds": 245.0, "target_seconds": 20.0},
        "support": {"offered": 10, "answered": 9, "abandoned": 1, "short_abandoned": 0, "abandoned_counted": 1,
                    "handled": 9, "asa_seconds": 12.0, "aht_seconds": 180.0, "target_seconds": 30.0},
    })
    kpis.intervals.update({
        ("sales", 2): {"offered": 5, "answered": 4, "abandoned": 1},
        ("sales", 1): {"offered": 7, "answered": 6, "abandoned": 1},
        ("support", 1): {"offered": 3, "answered": 3, "abandoned": 0},
        ("sales", 0): {"offered": 2, "answered": 1, "abandoned": 0},
    })


@pytest.fixture
async def world() -> AsyncIterator[World]:
    acd, kpis = FakeAcd(acd_config(), Sink()), FakeKpis()
    populate(acd, kpis)
    app = create_app(ApiServices(acd=acd, kpis=kpis, sink=acd.sink),  # type: ignore[arg-type]
                     authenticator=Authenticator([static_tokens()]), idempotency=MemoryIdempotencyStore())
    hub = EventHub(heartbeat=0)
    app[EVENT_HUB] = hub
    server = ApiServer(app, host="127.0.0.1", port=0, shutdown_timeout=1.0)
    await server.start()
    try:
        yield World(acd, kpis, hub, server)
    finally:
        await hub.close()
        await server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with Browser.launch(require_chromium()) as b:
        yield b


# -- what the API says, as the page should show it ---------------------------------------------------------------


async def assert_matches_api(page: Page, w: World) -> list[Shown]:
    """Every number shown equals the API's (durations: the API's value plus the time since it was fetched)."""
    shown = await wait_wallboard_matches(page, w.get, tick_slack=TICK_SLACK)
    intervals = await w.get("/kpis/queues?interval=15m")
    since_midnight = datetime.fromisoformat(intervals["as_of"]) - datetime.fromisoformat(intervals["start"])
    bars = [s for s in shown if s.kpi == "interval_offered"]
    assert len(bars) >= min(16, since_midnight // timedelta(minutes=15) + 1), bars  # 4 h, unless today is younger
    return shown


async def open_board(browser: Browser, w: World, token: str, query: str = "") -> Page:
    return await open_wallboard(browser, w.url, token, query=query)


# -- tests -------------------------------------------------------------------------------------------------------


async def test_the_page_needs_no_token_and_runs_only_its_own_code(world: World):
    async with aiohttp.ClientSession() as s, s.get(world.url + "/wallboard") as r:
        assert r.status == 200 and r.content_type == "text/html"
        html = await r.text()
        csp = dict(d.strip().split(" ", 1) for d in r.headers["Content-Security-Policy"].split(";"))
    assert html == page_source()
    blocks = re.findall(r"<(script|style)>(.*?)</\1>", html, re.S)
    assert [t for t, _ in blocks] == ["style", "script"] and html.count("<script") == 1 and html.count("<style") == 1

    def sha(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert csp["default-src"] == "'none'"
    assert csp["style-src"] == sha(blocks[0][1]) and csp["script-src"] == sha(blocks[1][1])
    assert csp["connect-src"].split()[0] == "'self'" and "frame-ancestors" in csp
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html), "nothing may be loaded from elsewhere"
    assert "@import" not in html and "url(" not in html
    assert not re.search(r"\sstyle=", html), "inline style attributes would be blocked by the CSP"


async def test_numbers_shown_match_the_api_and_follow_it(world: World, browser: Browser):
    page = await browser.new_page()
    await page.goto(f"{world.url}/wallboard")
    # No token yet: the page asks for one (and its probe without a token was refused).
    await page.wait_for("document.body.dataset.state === 'login' && !document.getElementById('login').hidden",
                        what="the token form")
    await page.evaluate(f"document.getElementById('token').value = {SUPERVISOR!r};"
                        "document.getElementById('login-form').requestSubmit()")
    await page.wait_for("document.body.dataset.state === 'ok' && document.body.dataset.kpis === 'ok'",
                        what="the first refresh")
    assert await page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") == SUPERVISOR
    assert TOKENS["supervisor"][0] not in await page.evaluate("location.href")

    # The known numbers, as the API gives them...
    queues = {q["name"]: q for q in (await world.get("/queues"))["items"]}
    assert queues["sales"]["waiting"] == 2 and queues["sales"]["longest_wait_seconds"] == 42.0
    assert queues["sales"]["service_level_today"] == 80.0
    # ...are what the page shows.
    shown = await assert_matches_api(page, world)
    api = await WallboardApi.read(world.get)  # and the check bites when they differ
    api.queues[0]["waiting"] += 1
    api.agents[0]["state"] = "wrap_up"
    api.today["rows"][0]["offered"] += 1
    problems = wallboard_mismatches(shown, api)
    assert any("waiting {'queue': 'sales'}" in p for p in problems) and any("a1" in p for p in problems) \
        and any(p.startswith("offered {}") for p in problems), problems
    assert value_of(shown, "waiting", queue="sales").text == "2"
    assert value_of(shown, "service_level", queue="sales").text == "80%"
    assert [value_of(shown, f"agents_{s}").number for s in ("ready", "on_call", "paused")] == [3, 1, 1]
    assert (value_of(shown, "asa").number, value_of(shown, "aht").number) == (17.14, 230.0)
    assert await page.text('[data-queue-card="sales"] .verdict') == "\u2713 on target"

    # The world changes: the page follows by polling (every 2 s).
    world.acd.enqueue(uuid.uuid4(), "support", waited=7.0)
    world.acd.pause("a1", "lunch")
    world.acd.logout("a3")
    world.kpis.sl["sales"] = 62.5
    world.kpis.today["sales"]["offered"] += 1
    await page.wait_for(
        "document.querySelector('[data-queue=\"support\"][data-kpi=\"waiting\"]').dataset.value === '1'"
        " && document.querySelector('#state-counts [data-kpi=\"agents_paused\"]').dataset.value === '2'"
        " && document.querySelector('[data-queue=\"sales\"][data-kpi=\"service_level\"]').dataset.value === '62.5'"
        " && document.querySelector('#kpis [data-kpi=\"offered\"]').dataset.value === '51'",
        timeout=5, what="the page to show the new state")
    await assert_matches_api(page, world)
    assert await page.text('[data-queue-card="sales"] .verdict') == "\u25bc below target"
    assert page.errors == [], page.console


async def test_without_the_kpi_service_the_live_numbers_still_show(world: World, browser: Browser):
    page = await open_board(browser, world, SUPERVISOR)
    world.server.app[SERVICES].kpis = None  # the KPI endpoints refuse (501/503), service_level_today is null
    world.acd.enqueue(uuid.uuid4(), "support", waited=3.0)
    await page.wait_for("document.body.dataset.kpis === 'unavailable' && document.querySelector("
                        "'[data-queue=\"support\"][data-kpi=\"waiting\"]').dataset.value === '1'",
                        timeout=5, what="the board without KPIs")
    shown = await page.kpis()
    for k in ("offered", "answered", "abandoned", "abandon_rate", "asa", "aht"):
        assert (value_of(shown, k).value, value_of(shown, k).text) == ("", "\u2014"), k
    assert value_of(shown, "service_level", queue="sales").text == "\u2014"
    assert "not available" in (await page.text("#kpi-note") or "")  # 501 or 503
    assert value_of(shown, "waiting").number == 3
    assert page.errors == [], page.console


async def test_a_refused_token_is_forgotten_and_asked_again(world: World, browser: Browser):
    page = await browser.new_page()
    await page.goto(f"{world.url}/wallboard")
    await page.set_session_storage({TOKEN_KEY: "cc_not-a-token"})
    await page.wait_for("document.body.dataset.state === 'login'", what="the token form after a 401")
    assert "401" in (await page.text("#login-error") or "")
    assert await page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") is None

    await page.set_session_storage({TOKEN_KEY: TOKENS["agent"][0]})  # agents may not read every agent
    await page.wait_for("document.body.dataset.state === 'login'", what="the token form after a 403")
    assert "403" in (await page.text("#login-error") or "")
    assert await page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") is None
    assert page.errors == [], page.console


async def test_events_refresh_the_page_at_once(world: World, browser: Browser):
    """A kiosk behind a proxy that adds the Authorization header: the page finds it needs no token, and the
    /events WebSocket (the header reaches its handshake too) refreshes it as soon as an agent event comes."""
    page = await browser.new_page()
    await page.set_extra_headers({"Authorization": f"Bearer {INTEGRATOR}"})
    await page.goto(f"{world.url}/wallboard?poll=60")  # polling every 60 s: only an event can be quicker
    await page.wait_for("document.body.dataset.state === 'ok' && document.body.dataset.events === 'open'",
                        what="the wallboard with live events")
    assert await page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") is None
    assert world.hub.subscribers == 1
    # The "subscribed" message triggers one refresh too: let it pass before counting.
    await page.wait_for("Number(document.body.dataset.refreshes) >= 2", what="the refresh after subscribing")
    await asyncio.sleep(0.7)
    refreshes = int(await page.evaluate("document.body.dataset.refreshes"))
    await assert_matches_api(page, world)

    world.acd.pause("a2", "coaching")
    world.hub.emit(AgentEvent("a2", "paused", utcnow(), previous="ready", reason="coaching"))
    await page.wait_for("document.querySelector('[data-agent=\"a2\"][data-kpi=\"agent_state\"]')"
                        "?.dataset.value === 'paused'", timeout=2.5, what="the event-driven refresh")
    assert int(await page.evaluate("document.body.dataset.refreshes")) == refreshes + 1
    await assert_matches_api(page, world)
    assert await page.text('[data-agent-row="a2"] .reason') == "coaching"
    assert page.errors == [], page.console


async def test_a_token_from_the_form_reaches_events(world: World, browser: Browser):
    """Browsers cannot set headers on a WebSocket: the page passes its token as ?token= on /events."""
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{world.url}/events?topics=agent&token={SUPERVISOR}") as ws:
            assert (await ws.receive_json(timeout=2))["type"] == "subscribed"
    page = await open_board(browser, world, SUPERVISOR, "?poll=60")
    await page.wait_for("document.body.dataset.events === 'open'", timeout=5, what="the events WebSocket")
    world.acd.pause("a3", "coaching")
    world.hub.emit(AgentEvent("a3", "paused", utcnow(), previous="ready", reason="coaching"))
    await page.wait_for("document.querySelector('[data-agent=\"a3\"][data-kpi=\"agent_state\"]')"
                        "?.dataset.value === 'paused'", timeout=2.5, what="the event-driven refresh")
