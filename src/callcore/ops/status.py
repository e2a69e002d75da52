"""What ``callcore status`` shows: connected Asterisk nodes, live calls, agents by state, the event writer's
backlog, the config version.

Three pieces:

* :func:`build_status`: a **pure** function from the running app (duck-typed: ``app.config.version``,
  ``app.stream.stats``, ``app.runtime.live_calls``, ``app.acd.agents``, ``app.writer.stats``, ``app.api.url``;
  every part optional, so a half-started app still has a status) to a JSON-ready dict;
* :class:`StatusReporter`: run by the app, rewrites ``state_dir/status.json`` every few seconds (atomically) and
  tells systemd (:mod:`callcore.ops.sdnotify`) that it is ready, its status line, the watchdog ping, stopping;
* :func:`format_status`: the human table of the CLI (``--json`` prints the dict itself).

The status holds no secret: URLs are printed without their user-info, error texts are cut short.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from callcore import __version__
from callcore.ops import sdnotify

log = structlog.get_logger("callcore.ops")

STATUS_FILE = "status.json"
AGENT_STATES = ("logged_out", "ready", "reserved", "on_call", "wrap_up", "paused")
STALE_AFTER = 30.0  # seconds: a status file older than this is not trusted to describe a live process
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def redact_url(url: str | None) -> str | None:
    """``http://user:pass@host/`` → ``http://host/`` (a URL in a status or a log never carries credentials)."""
    return None if url is None else _USERINFO.sub("", str(url))


def _short(text: Any, limit: int = 300) -> str | None:
    if text is None:
        return None
    text = redact_url(str(text)) or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _host_port(url: str | None) -> str:
    if not url:
        return "asterisk"
    m = re.match(r"^[a-z]+://(?:[^/@]*@)?([^/]+)", url)
    return m.group(1) if m else url


def _node(name: str, url: str | None, stream: Any) -> dict[str, Any]:
    stats = getattr(stream, "stats", None)
    return {
        "node": name,
        "url": redact_url(url),
        "connected": None if stats is None else bool(getattr(stats, "connected", False)),
        "reconnects": getattr(stats, "reconnects", None),
        "events": getattr(stats, "events", None),
    }


def _nodes(app: Any) -> list[dict[str, Any]]:
    """One entry per Asterisk node: ``app.streams`` (name → stream) when the app has several, else ``app.stream``."""
    config = getattr(app, "config", None)
    default_url = getattr(getattr(config, "ari", None), "url", None)
    streams = getattr(app, "streams", None)
    if isinstance(streams, Mapping) and streams:
        out = []
        for name, stream in streams.items():
            client = getattr(stream, "client", None) or getattr(stream, "_client", None)
            url = getattr(client, "base_url", None) or getattr(client, "url", None)
            out.append(_node(str(name), url if isinstance(url, str) else None, stream))
        return out
    stream = getattr(app, "stream", None)
    if stream is None:
        return []
    return [_node(_host_port(default_url), default_url, stream)]


def _live_calls(runtime: Any) -> int | None:
    if runtime is None:
        return None
    value = getattr(runtime, "live_calls", None)
    if callable(value):
        value = value()
    if isinstance(value, int):
        return value
    calls = getattr(runtime, "calls", None)
    return len(calls()) if callable(calls) else None


def agents_by_state(agents: Mapping[str, Any] | None) -> dict[str, int]:
    """Every known state listed (zeros included), plus any state the ACD may add later."""
    counts = dict.fromkeys(AGENT_STATES, 0)
    for status in (agents or {}).values():
        state = str(getattr(status, "state", status))
        counts[state] = counts.get(state, 0) + 1
    return counts


def _writer(writer: Any) -> dict[str, Any] | None:
    stats = getattr(writer, "stats", None)
    if stats is None:
        return None
    return {
        "backlog": getattr(stats, "buffered", None),
        "written": getattr(stats, "written", None),
        "dropped": getattr(stats, "dropped", None),
        "rejected": getattr(stats, "rejected", None),
        "retries": getattr(stats, "retries", None),
        "last_commit_lag_seconds": getattr(stats, "last_commit_lag", None),
        "last_error": _short(getattr(stats, "last_error", None)),
    }


def build_status(app: Any, *, started_at: datetime | None = None, state: str = "running",
                 now: datetime | None = None, pid: int | None = None) -> dict[str, Any]:
    """The status of a running callcore as a JSON-ready dict (see the module docstring for what ``app`` needs)."""
    config = getattr(app, "config", None)
    runtime = getattr(app, "runtime", None)
    acd = getattr(app, "acd", None)
    api = getattr(app, "api", None)
    started = started_at or getattr(app, "started_at", None)
    accepting = getattr(runtime, "accepting", None)
    return {
        "pid": os.getpid() if pid is None else pid,
        "version": __version__,
        "state": "draining" if state == "running" and accepting is False else state,
        "started_at": started.isoformat() if isinstance(started, datetime) else None,
        "updated_at": (now or _now()).isoformat(),
        "config_version": getattr(config, "version", None) or None,
        "asterisk": _nodes(app),
        "live_calls": _live_calls(runtime),
        "agents": agents_by_state(getattr(acd, "agents", None)),
        "event_writer": _writer(getattr(app, "writer", None)),
        "api_url": redact_url(getattr(api, "url", None)) if api is not None else None,
    }


def status_from_services(services: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """A partial status from the API's services alone (when the app registered no status source)."""
    acd = getattr(services, "acd", None)
    calls = getattr(services, "calls", None)
    live = len(calls.calls()) if calls is not None and callable(getattr(calls, "calls", None)) else None
    return {
        "pid": os.getpid(), "version": __version__, "state": "running", "started_at": None,
        "updated_at": (now or _now()).isoformat(), "config_version": None, "asterisk": [], "live_calls": live,
        "agents": agents_by_state(getattr(acd, "agents", None)), "event_writer": None, "api_url": None,
    }


def summary_line(status: Mapping[str, Any]) -> str:
    """One line for ``systemctl status`` (sd_notify STATUS=)."""
    nodes = status.get("asterisk") or []
    up = sum(1 for n in nodes if n.get("connected"))
    agents = status.get("agents") or {}
    logged_in = sum(v for k, v in agents.items() if k != "logged_out")
    backlog = (status.get("event_writer") or {}).get("backlog")
    return (f"{status.get('state', 'running')}; Asterisk {up}/{len(nodes)} connected; "
            f"{status.get('live_calls') or 0} live calls; {logged_in} agents logged in; "
            f"event backlog {backlog if backlog is not None else '?'}; config {status.get('config_version') or '?'}")


def write_status_file(path: Path, status: Mapping[str, Any]) -> None:
    """Atomically replace ``path`` (write a temporary file next to it, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(status, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


class StatusReporter:
    """Keeps ``state_dir/status.json`` current and talks to systemd. The wiring in ``callcore.app.serve``::

        reporter = StatusReporter(app, config.state_dir / STATUS_FILE)
        await reporter.start()        # after app.start(): first write, READY=1 (Type=notify)
        reporter.reloading()          # SIGHUP received (RELOADING=1) ... reporter.reloaded() when app.reload() ends
        reporter.stopping()           # SIGTERM received: STOPPING=1, state "stopping" while calls drain
        await app.stop()
        await reporter.close()        # last write: state "stopped"

    With ``WatchdogSec=`` in the unit it also pings systemd's watchdog (every half period) from the event loop, so a
    blocked loop gets the service restarted.
    """

    def __init__(self, app: Any, path: Path, *, interval: float = 5.0,
                 build: Callable[..., dict[str, Any]] = build_status) -> None:
        self.app = app
        self.path = path
        self.interval = interval
        started = getattr(app, "started_at", None)
        self.started_at = started if isinstance(started, datetime) else _now()
        self.state = "running"
        self._build = build
        self._task: asyncio.Task[None] | None = None

    def snapshot(self) -> dict[str, Any]:
        return self._build(self.app, started_at=self.started_at, state=self.state)

    def write(self) -> dict[str, Any] | None:
        try:
            status = self.snapshot()
            write_status_file(self.path, status)
            return status
        except Exception as exc:  # noqa: BLE001 - a status file must never take the service down
            log.warning("could not write the status file", path=str(self.path), error=f"{type(exc).__name__}: {exc}")
            return None

    async def start(self) -> None:
        status = self.write() or self.snapshot()
        sdnotify.ready(summary_line(status))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="callcore-status")

    async def _run(self) -> None:
        watchdog = sdnotify.watchdog_interval()
        period = min(self.interval, watchdog) if watchdog else self.interval
        next_write = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            if watchdog:
                sdnotify.watchdog()
            if loop.time() >= next_write:
                status = self.write()
                if status is not None:
                    sdnotify.status(summary_line(status))
                next_write = loop.time() + self.interval - period / 2

    def reloading(self) -> None:
        sdnotify.reloading()

    def reloaded(self) -> None:
        status = self.write()
        sdnotify.ready(summary_line(status) if status else None)

    def stopping(self) -> None:
        self.state = "stopping"
        status = self.write()
        sdnotify.stopping(summary_line(status) if status else None)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.state = "stopped"
        self.write()


# ---- reading it back (the CLI) ----------------------------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user (the service's)
    return True


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def file_problem(status: Mapping[str, Any], *, now: datetime | None = None,
                 alive: Callable[[int], bool] = pid_alive) -> str | None:
    """Why a status read from the file does not describe a running callcore (None: it does)."""
    pid = status.get("pid")
    if status.get("state") == "stopped":
        return "callcore stopped (its last status is shown)"
    if not isinstance(pid, int) or not alive(pid):
        return f"callcore is not running (process {pid} is gone; its last status is shown)"
    updated = _parse_time(status.get("updated_at"))
    age = ((now or _now()) - updated).total_seconds() if updated else None
    if age is None or age > STALE_AFTER:
        return (f"the status file is {'of unknown age' if age is None else f'{age:.0f} s old'}: process {pid} "
                "runs but does not update it (hung, or an older callcore)")
    return None


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d{h:02d}h{m:02d}m"
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s"


def format_status(status: Mapping[str, Any], *, source: str = "", now: datetime | None = None) -> str:
    """The human table of ``callcore status``."""
    now = now or _now()
    started = _parse_time(status.get("started_at"))
    up = f"up {_duration((now - started).total_seconds())} (since {started:%Y-%m-%d %H:%M:%S}Z)" if started else ""
    rows: list[tuple[str, str]] = []
    head = f"callcore {status.get('version', '?')}  pid {status.get('pid', '?')}  {status.get('state', '?')}  {up}"
    rows.append(("config version", str(status.get("config_version") or "?")))
    rows.append(("API", str(status.get("api_url") or "off")))
    nodes = status.get("asterisk") or []
    if not nodes:
        rows.append(("Asterisk", "unknown"))
    for i, n in enumerate(nodes):
        state = {True: "connected", False: "DISCONNECTED", None: "unknown"}[n.get("connected")]
        extra = f"  (reconnects {n['reconnects']})" if n.get("reconnects") is not None else ""
        rows.append(("Asterisk" if i == 0 else "", f"{n.get('node')}  {state}{extra}"))
    live = status.get("live_calls")
    rows.append(("live calls", "?" if live is None else str(live)))
    agents = status.get("agents") or {}
    rows.append(("agents", "  ".join(f"{k} {v}" for k, v in agents.items()) or "none"))
    w = status.get("event_writer")
    if w:
        text = (f"backlog {w.get('backlog')}  written {w.get('written')}  dropped {w.get('dropped')}  "
                f"rejected {w.get('rejected')}")
        if w.get("last_error"):
            text += f"\n{'':16}last error: {w['last_error']}"
        rows.append(("event writer", text))
    else:
        rows.append(("event writer", "unknown"))
    rows.append(("updated", f"{status.get('updated_at', '?')}{f'  (from {source})' if source else ''}"))
    return "\n".join([head.rstrip(), *(f"{k:<16}{v}" for k, v in rows)])


def degraded(status: Mapping[str, Any]) -> list[str]:
    """Problems worth a non-zero exit code for monitoring scripts."""
    problems = [f"Asterisk node {n.get('node')} is not connected" for n in status.get("asterisk") or []
                if n.get("connected") is False]
    if status.get("state") in ("draining", "stopping"):
        problems.append(f"callcore is {status['state']}")
    return problems


__all__ = [
    "AGENT_STATES", "STALE_AFTER", "STATUS_FILE", "StatusReporter", "agents_by_state", "build_status", "degraded",
    "file_problem", "format_status", "pid_alive", "redact_url", "status_from_services", "summary_line",
    "write_status_file",
]
