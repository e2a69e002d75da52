"""A real browser for tests: Debian's ``chromium`` in headless mode, driven over the Chrome DevTools Protocol (CDP)
with aiohttp's WebSocket client. No selenium or playwright: a few CDP commands are all the tests need.

    async with Browser.launch() as browser:           # pytest.skip()s only if no chromium is installed
        page = await browser.new_page()
        await page.goto(f"{url}/wallboard")
        await page.set_session_storage({"callcore.wallboard.token": token}, reload=True)
        await page.wait_for("document.body.dataset.state === 'ok'")
        shown = await page.kpis()                     # every [data-kpi] element: kpi, queue, agent, value, text

For the wallboard: :func:`open_wallboard` (a tab showing data) and :func:`wait_wallboard_matches` (every number
shown against the API's answers, retried until they agree when live traffic keeps changing them)::

    page = await open_wallboard(browser, api_url, token)
    await wait_wallboard_matches(page, get_json, timeout=20)   # get_json(path) -> the API's JSON, with a token

Every Chromium process is started in its own process group and ended by that group's id (also when a test fails);
its profile lives in a temporary directory that is removed. ``CALLCORE_CHROMIUM`` names another binary.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from callcore.kpi.periods import zone

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 15.0

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # tests run as root (the Asterisk sandbox needs it); Chromium's sandbox refuses root
    "--disable-gpu",
    "--remote-debugging-port=0",  # any free port: written to DevToolsActivePort in the profile directory
    "--remote-debugging-address=127.0.0.1",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",  # containers have a small /dev/shm
    "--disable-background-timer-throttling",  # pages keep their timers at full speed
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--metrics-recording-only",
    "--mute-audio",
    "--password-store=basic",
    "--window-size=1920,1080",
)


def find_chromium() -> str | None:
    """The Chromium (or Chrome) binary, or None when none is installed."""
    override = os.environ.get("CALLCORE_CHROMIUM")
    if override:
        return shutil.which(override) or (override if os.access(override, os.X_OK) else None)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium() -> str:
    """The binary, or skip the calling test (the only reason a browser test may skip)."""
    import pytest

    path = find_chromium()
    if path is None:
        pytest.skip("no chromium binary found (install the Debian package `chromium`: "
                    "`bash scripts/install-system-deps.sh`, which `make test` runs)")
    return path


class BrowserError(Exception):
    """Chromium did not start, a CDP command failed, or a page did not reach the awaited state."""


class Cdp:
    """One WebSocket to the browser; commands to pages go over it with their ``sessionId`` (flat sessions)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._listeners: dict[str | None, list[Any]] = {}
        self._reader = asyncio.ensure_future(self._read())

    async def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
                   timeout: float = COMMAND_TIMEOUT) -> Any:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        try:
            await self.ws.send_str(json.dumps(msg))
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise BrowserError(f"CDP {method}: no answer within {timeout:g} s") from None
        finally:
            self._pending.pop(msg_id, None)

    def listen(self, session: str | None, callback: Any) -> None:
        """``callback(method, params)`` for every event of ``session``."""
        self._listeners.setdefault(session, []).append(callback)

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    fut = self._pending.get(data["id"])
                    if fut is not None and not fut.done():
                        if "error" in data:
                            fut.set_exception(BrowserError(f"CDP error: {data['error']}"))
                        else:
                            fut.set_result(data.get("result", {}))
                else:
                    for cb in self._listeners.get(data.get("sessionId"), ()):
                        cb(data.get("method", ""), data.get("params", {}))
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(BrowserError("the browser closed the DevTools connection"))

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


@dataclass
class Shown:
    """One ``[data-kpi]`` element of a page."""

    kpi: str
    text: str
    value: str | None  # data-value ("" when the page shows no value); None: the element has none
    queue: str | None = None
    agent: str | None = None
    interval: str | None = None

    @property
    def number(self) -> float | None:
        """``data-value`` as a number (None when empty or absent)."""
        return float(self.value) if self.value not in (None, "") else None


_READ_KPIS = """[...document.querySelectorAll('[data-kpi]')].map(e => ({
    kpi: e.dataset.kpi, text: e.textContent.trim(), value: e.hasAttribute('data-value') ? e.dataset.value : null,
    queue: e.dataset.queue ?? null, agent: e.dataset.agent ?? null, interval: e.dataset.interval ?? null}))"""


class Page:
    """A tab: navigate, run JavaScript, wait for a state, read the numbers shown."""

    def __init__(self, cdp: Cdp, target_id: str, session: str) -> None:
        self.cdp = cdp
        self.target_id = target_id
        self.session = session
        self.console: list[str] = []  # console messages and uncaught exceptions, for failure messages
        self.errors: list[str] = []  # uncaught exceptions and console.error only
        self._loaded = asyncio.Event()
        cdp.listen(session, self._on_event)

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"{params.get('type')}: {text}")
            if params.get("type") == "error":
                self.errors.append(text)
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "exception")
            self.console.append(f"exception: {text}")
            self.errors.append(text)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.cdp.send(method, params, session=self.session)

    async def goto(self, url: str, timeout: float = 15.0) -> None:
        """Open ``url`` and wait for its load event."""
        self._loaded.clear()
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        await self._wait_loaded(url, timeout)

    async def reload(self, timeout: float = 15.0) -> None:
        self._loaded.clear()
        await self.send("Page.reload", {"ignoreCache": True})
        await self._wait_loaded("(reload)", timeout)

    async def _wait_loaded(self, what: str, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._loaded.wait(), timeout)
        except TimeoutError:
            raise BrowserError(f"{what}: not loaded within {timeout:g} s") from None

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises are awaited); a thrown error raises BrowserError."""
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                      "awaitPromise": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error in {expression[:80]!r}: {text}")
        return result.get("result", {}).get("value")

    async def set_session_storage(self, items: dict[str, str], *, reload: bool = True) -> None:
        """Put ``items`` in the page origin's sessionStorage (then reload, so the page starts with them)."""
        await self.evaluate(f"Object.entries({json.dumps(items)}).forEach(([k, v]) => sessionStorage.setItem(k, v))")
        if reload:
            await self.reload()

    async def set_extra_headers(self, headers: dict[str, str]) -> None:
        """Send ``headers`` with every request of this page from now on, WebSocket handshakes included (what a
        reverse proxy adding ``Authorization`` does for a kiosk screen)."""
        await self.send("Network.enable")
        await self.send("Network.setExtraHTTPHeaders", {"headers": headers})

    async def wait_for(self, expression: str, timeout: float = 10.0, what: str | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy; its value. Fails with the page's console."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = await self.evaluate(expression)
            except BrowserError as exc:
                last = exc
            if last and not isinstance(last, BrowserError):
                return last
            if time.monotonic() > deadline:
                console = "\n  ".join(self.console[-20:]) or "(nothing)"
                raise BrowserError(f"timed out after {timeout:g} s waiting for {what or expression}; last value "
                                   f"{last!r}; console:\n  {console}")
            await asyncio.sleep(0.1)

    async def wait_for_value(self, selector: str, timeout: float = 10.0) -> str:
        """Wait until the element ``selector`` shows a value (a non-empty ``data-value``, else non-empty text)."""
        sel = json.dumps(selector)
        return await self.wait_for(
            f"(() => {{ const e = document.querySelector({sel}); if (!e) return null;"
            " const v = e.hasAttribute('data-value') ? e.dataset.value : e.textContent.trim();"
            " return v === '' ? null : v; })()", timeout, what=f"a value in {selector}")

    async def text(self, selector: str) -> str | None:
        return await self.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent.trim() ?? null")

    async def kpis(self) -> list[Shown]:
        """Every element carrying ``data-kpi``, in document order."""
        return [Shown(**item) for item in await self.evaluate(_READ_KPIS)]

    async def screenshot(self, path: str | Path) -> Path:
        """A PNG of the page (for a failing test's artefacts)."""
        result = await self.send("Page.captureScreenshot", {"format": "png"})
        out = Path(path)
        out.write_bytes(base64.b64decode(result["data"]))
        return out

    async def close(self) -> None:
        with contextlib.suppress(BrowserError):
            await self.cdp.send("Target.closeTarget", {"targetId": self.target_id}, timeout=5)


def value_of(shown: list[Shown], kpi: str, *, queue: str | None = None, agent: str | None = None,
             interval: str | None = None) -> Shown:
    """The one element for ``kpi`` (and queue / agent / interval, or none of them): AssertionError otherwise."""
    found = [s for s in shown if s.kpi == kpi and s.queue == queue and s.agent == agent
             and (interval is None or s.interval == interval)]
    if len(found) != 1:
        raise AssertionError(f"expected one element data-kpi={kpi!r} queue={queue!r} agent={agent!r} "
                             f"interval={interval!r}, found {len(found)}")
    return found[0]


class Browser:
    """A headless Chromium process and its DevTools connection."""

    def __init__(self, process: asyncio.subprocess.Process, profile: Path, session: aiohttp.ClientSession,
                 cdp: Cdp) -> None:
        self.process = process
        self.profile = profile
        self.session = session
        self.cdp = cdp
        self.pages: list[Page] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, binary: str | None = None, *, extra_flags: tuple[str, ...] = ()) -> AsyncIterator[Browser]:
        """Start Chromium (``binary``, else :func:`require_chromium`), yield it, always stop it."""
        browser = await cls.start(binary or require_chromium(), extra_flags=extra_flags)
        try:
            yield browser
        finally:
            await browser.stop()

    @classmethod
    async def start(cls, binary: str, *, extra_flags: tuple[str, ...] = ()) -> Browser:
        profile = Path(tempfile.mkdtemp(prefix="callcore-chromium-"))
        log = open(profile / "chromium.log", "wb")  # noqa: SIM115 - closed below, the process writes to it
        try:
            process = await asyncio.create_subprocess_exec(
                binary, *FLAGS, *extra_flags, f"--user-data-dir={profile}", "about:blank",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        except OSError as exc:
            log.close()
            shutil.rmtree(profile, ignore_errors=True)
            raise BrowserError(f"cannot run {binary}: {exc}") from None
        finally:
            log.close()
        session = aiohttp.ClientSession()
        try:
            ws_url = await _devtools_url(process, profile)
            ws = await session.ws_connect(ws_url, max_msg_size=0, autoping=True)
            return cls(process, profile, session, Cdp(ws))
        except BaseException:
            await session.close()
            await _end(process)
            shutil.rmtree(profile, ignore_errors=True)
            raise

    async def new_page(self) -> Page:
        target = await self.cdp.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.cdp.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self.cdp, target["targetId"], attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        self.pages.append(page)
        return page

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.cdp.send("Browser.close", timeout=3), 4)
        with contextlib.suppress(Exception):
            await self.cdp.close()
        await self.session.close()
        await _end(self.process)
        shutil.rmtree(self.profile, ignore_errors=True)


async def _devtools_url(process: asyncio.subprocess.Process, profile: Path) -> str:
    """The browser's DevTools WebSocket URL, from the DevToolsActivePort file Chromium writes at start."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise BrowserError(f"chromium exited with {process.returncode} at start:\n{_tail(profile)}")
        try:
            lines = port_file.read_text().split()
        except OSError:
            lines = []
        if len(lines) >= 2:
            return f"ws://127.0.0.1:{int(lines[0])}{lines[1]}"
        await asyncio.sleep(0.05)
    raise BrowserError(f"chromium did not open its DevTools port within {START_TIMEOUT:g} s:\n{_tail(profile)}")


def _tail(profile: Path, lines: int = 30) -> str:
    try:
        return "\n".join((profile / "chromium.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def _end(process: asyncio.subprocess.Process, timeout: float = 5.0) -> None:
    """Stop Chromium and its helpers: SIGTERM to its process group (it leads one), then SIGKILL."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    # helpers (zygote, renderers) that outlived the browser process: the group is still addressable by its id
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# ---- the wallboard (GET /wallboard, docs/wallboard.md) ------------------------------------------------------------

WALLBOARD_TOKEN_KEY = "callcore.wallboard.token"
AGENT_STATES = ("ready", "reserved", "on_call", "wrap_up", "paused", "logged_out")
ApiGet = Callable[[str], Awaitable[Any]]  # path -> the API's JSON answer (with a supervisor or integrator token)


async def open_wallboard(browser: Browser, base_url: str, token: str | None = None, *, query: str = "",
                         timeout: float = 15.0) -> Page:
    """A new tab on ``{base_url}/wallboard{query}`` with ``token`` in its sessionStorage, once it has shown data
    (KPIs included). ``token=None``: the tab must get in without one (e.g. after :meth:`Page.set_extra_headers`)."""
    page = await browser.new_page()
    await page.goto(f"{base_url}/wallboard{query}")
    if token is not None:
        await page.set_session_storage({WALLBOARD_TOKEN_KEY: token})
    await page.wait_for("document.body.dataset.state === 'ok' && document.body.dataset.kpis === 'ok'",
                        timeout, what="the wallboard's first refresh")
    return page


@dataclass
class WallboardApi:
    """What the API says, read just before the page (the wallboard's sources)."""

    queues: list[dict[str, Any]]
    agents: list[dict[str, Any]]
    today: dict[str, Any]
    intervals: dict[str, Any]

    @classmethod
    async def read(cls, get: ApiGet) -> WallboardApi:
        return cls((await _all(get, "/queues?limit=500")), (await _all(get, "/agents?limit=500")),
                   await get("/kpis/queues"), await get("/kpis/queues?interval=15m"))


async def _all(get: ApiGet, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    next_path: str | None = path
    while next_path:
        page = await get(next_path)
        items += page["items"]
        next_path = page["next"]
    return items


def duration_text(seconds: float) -> str:
    """The page's m:ss / h:mm:ss."""
    s = int(seconds)
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return f"{h}:{m:02}:{sec:02}" if h else f"{m}:{sec:02}"


def kpi_totals(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Today's totals over queue rows, as the page computes them (docs/wallboard.md)."""
    offered = sum(r["offered"] for r in rows)
    answered = sum(r["answered"] for r in rows)
    handled = sum(r["handled"] for r in rows)
    short = sum(r["short_abandoned"] for r in rows)
    asa = sum(r["asa_seconds"] * r["answered"] for r in rows if r["asa_seconds"] is not None)
    aht = sum(r["aht_seconds"] * r["handled"] for r in rows if r["aht_seconds"] is not None)
    return {
        "offered": offered, "answered": answered, "abandoned": sum(r["abandoned"] for r in rows),
        "abandon_rate": round(100 * sum(r["abandoned_counted"] for r in rows) / (offered - short), 1)
        if offered - short else None,
        "asa": round(asa / answered, 2) if answered else None,
        "aht": round(aht / handled, 2) if handled else None,
    }


def wallboard_mismatches(shown: list[Shown], api: WallboardApi, *, tick_slack: float = 6.0) -> list[str]:
    """Every difference between the numbers shown and the API's (empty: the page shows exactly the API).

    Durations tick on the page between refreshes: a shown duration may be up to ``tick_slack`` seconds more than
    the API's (and one second less, for the time the answer travelled)."""
    out: list[str] = []

    def one(kpi: str, **where: str | None) -> Shown | None:
        found = [s for s in shown if s.kpi == kpi and s.queue == where.get("queue") and s.agent == where.get("agent")]
        if len(found) != 1:
            out.append(f"{kpi} {where}: {len(found)} elements on the page")
            return None
        return found[0]

    def equal(kpi: str, expected: Any, text: str | None = None, **where: str | None) -> None:
        s = one(kpi, **where)
        if s is None:
            return
        if expected is None:
            if (s.value, s.text) != ("", "\u2014"):
                out.append(f"{kpi} {where}: shows {s.text!r} (value {s.value!r}), the API has nothing")
        elif s.number != expected or (text is not None and s.text != text):
            out.append(f"{kpi} {where}: shows {s.text!r} (value {s.value!r}), the API says {expected!r}"
                       + (f" ({text!r})" if text is not None else ""))

    def ticking(kpi: str, api_seconds: float, **where: str | None) -> None:
        s = one(kpi, **where)
        if s is None:
            return
        if s.number is None or not int(api_seconds) - 1 <= s.number <= api_seconds + tick_slack \
                or s.text != duration_text(s.number):
            out.append(f"{kpi} {where}: shows {s.text!r} (value {s.value!r}), the API says {api_seconds:g} s")

    rows = {r["queue"]: r for r in api.today["rows"]}
    for q in api.queues:
        name = q["name"]
        equal("waiting", q["waiting"], str(q["waiting"]), queue=name)
        ticking("longest_wait", q["longest_wait_seconds"], queue=name)
        sl = q["service_level_today"]
        equal("service_level", sl, None if sl is None else f"{sl:g}%", queue=name)
        equal("service_level_target", q["service_level_target"]["percent"], queue=name)
        equal("service_level_target_seconds", q["service_level_target"]["seconds"], queue=name)
        equal("agents_ready", q["agents"]["ready"], queue=name)
        equal("agents_on_call", q["agents"]["on_call"], queue=name)
        equal("agents_logged_in", q["agents_logged_in"], queue=name)
        for k in ("offered", "answered", "abandoned"):
            equal(k, rows[name][k] if name in rows else 0, queue=name)
    equal("waiting", sum(q["waiting"] for q in api.queues))
    ticking("longest_wait", max((q["longest_wait_seconds"] for q in api.queues), default=0.0))

    for state in AGENT_STATES:
        equal(f"agents_{state}", sum(a["state"] == state for a in api.agents))
    listed = {s.agent for s in shown if s.kpi == "agent_state"}
    logged_in = {a["id"] for a in api.agents if a["state"] != "logged_out"}
    if listed != logged_in:
        out.append(f"agents listed {sorted(listed)}, logged in according to the API {sorted(logged_in)}")
    for a in api.agents:
        if a["id"] in listed & logged_in:
            s = one("agent_state", agent=a["id"])
            if s is not None and s.value != a["state"]:
                out.append(f"agent {a['id']}: shows {s.value!r}, the API says {a['state']!r}")
            ticking("agent_seconds_in_state", a["seconds_in_state"], agent=a["id"])

    totals = kpi_totals(api.today["rows"])
    for k in ("offered", "answered", "abandoned"):
        equal(k, totals[k], str(totals[k]))
    rate = totals["abandon_rate"]
    equal("abandon_rate", rate, None if rate is None else f"{rate:g}%")
    for k in ("asa", "aht"):
        v = totals[k]
        equal(k, v, None if v is None else duration_text(round(v)))

    tz = zone(api.intervals["timezone"])
    per_interval: dict[str, int] = {}
    for r in api.intervals["rows"]:
        label = datetime.fromisoformat(r["start"]).astimezone(tz).strftime("%H:%M")
        per_interval[label] = per_interval.get(label, 0) + r["offered"]
    bars = {s.interval: s.number for s in shown if s.kpi == "interval_offered"}
    for label, offered in sorted(per_interval.items()):
        if label not in bars and not offered:
            continue  # the chart draws the hours around now, not a whole empty day
        if bars.get(label) != offered:
            out.append(f"interval {label}: the chart shows {bars.get(label)!r} offered, the API says {offered}")
    if sum(v or 0 for v in bars.values()) != sum(per_interval.values()):
        out.append(f"the chart shows {sum(v or 0 for v in bars.values())} calls, the API "
                   f"{sum(per_interval.values())}")
    return out


async def wait_wallboard_matches(page: Page, get: ApiGet, timeout: float = 0.0, *,
                                 tick_slack: float = 6.0) -> list[Shown]:
    """Assert the page shows the API's numbers; with ``timeout``, retry until it does (live traffic changes the
    numbers between the API's answer and the page's). The numbers shown, for more checks."""
    deadline = time.monotonic() + timeout
    while True:
        api = await WallboardApi.read(get)
        shown = await page.kpis()
        problems = wallboard_mismatches(shown, api, tick_slack=tick_slack)
        if not problems:
            return shown
        if time.monotonic() >= deadline:
            raise AssertionError("the wallboard does not show the API's numbers:\n  " + "\n  ".join(problems))
        await asyncio.sleep(0.5)


__all__ = [
    "AGENT_STATES",
    "WALLBOARD_TOKEN_KEY",
    "Browser",
    "BrowserError",
    "Page",
    "Shown",
    "WallboardApi",
    "duration_text",
    "find_chromium",
    "kpi_totals",
    "open_wallboard",
    "require_chromium",
    "value_of",
    "wait_wallboard_matches",
    "wallboard_mismatches",
]
