"""Prometheus metrics at ``/metrics`` from a registry owned by the app (never the global one, so two apps in one
process, e.g. in tests, do not share or clash).

Metrics (all ``callcore_*``):

| name | type | labels | fed by |
|---|---|---|---|
| ``callcore_calls_in_progress`` | gauge | | :meth:`Metrics.set_calls_in_progress` |
| ``callcore_queue_waiting`` | gauge | queue | :meth:`Metrics.set_queue` / :meth:`Metrics.update_from_acd` |
| ``callcore_queue_longest_wait_seconds`` | gauge | queue | same |
| ``callcore_agents`` | gauge | state | :meth:`Metrics.set_agents_by_state` / :meth:`Metrics.update_from_acd` |
| ``callcore_routing_latency_seconds`` | histogram | | :meth:`Metrics.observe_routing_latency` |
| ``callcore_ari_reconnects_total`` | counter | | :meth:`Metrics.ari_reconnected` |
| ``callcore_event_writer_backlog`` | gauge | | :meth:`Metrics.set_event_writer_backlog` |
| ``callcore_dialer_campaign_running`` | gauge | campaign | :meth:`Metrics.update_from_dialer` (1 running, 0 not) |
| ``callcore_dialer_calls_in_flight`` | gauge | campaign | same: ringing or answered and waiting for an agent |
| ``callcore_dialer_calls_connected`` | gauge | campaign | same: talking to an agent |
| ``callcore_dialer_pacing_level`` | gauge | campaign | same: lines in flight per agent able to take a call |
| ``callcore_dialer_abandon_rate`` | gauge | campaign | same: abandons / live answers in the policy window |
| ``callcore_dialer_abandon_limit`` | gauge | campaign | same: the policy's limit (a ratio, like the rate) |
| ``callcore_dialer_window_live_answers`` | gauge | campaign | same: live answers in the policy window |
| ``callcore_dialer_window_abandons`` | gauge | campaign | same: abandons in the policy window |
| ``callcore_api_requests_total`` | counter | method, route, status | the API itself |
| ``callcore_api_request_duration_seconds`` | histogram | method, route | the API itself |

Gauges of live state are best set at scrape time: :meth:`Metrics.on_collect` registers a function run before
each scrape (e.g. ``metrics.on_collect(lambda m: m.update_from_acd(acd))``). The campaign gauges are set at each
scrape from the dialer the app's outbound services name (``OutboundServices.campaigns``), when it offers
``pacing(name)`` (``DialerService``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol, get_args

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from callcore.acd.agent_state import AgentState
from callcore.api.routing import ApiRequest, RouteTable
from callcore.api.services import AcdControl

log = structlog.get_logger("callcore.api")

AGENT_STATES: tuple[str, ...] = get_args(AgentState)
ROUTING_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.008, 0.013, 0.021, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

CAMPAIGN_GAUGES = ("campaign_running", "calls_in_flight", "calls_connected", "pacing_level", "abandon_rate",
                   "abandon_limit", "window_live_answers", "window_abandons")


class DialerView(Protocol):
    """What the campaign gauges read (``DialerService``): the campaigns and each one's pacing figures."""

    @property
    def runs(self) -> Mapping[str, Any]: ...

    def pacing(self, name: str) -> Mapping[str, Any]:
        """{state, in_flight, ringing, connected, able, abandon_live, abandon_abandons, abandon_limit, ...}"""
        ...


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.calls_in_progress = Gauge("callcore_calls_in_progress", "Calls live in the call runtime", registry=r)
        self.queue_waiting = Gauge("callcore_queue_waiting", "Callers waiting in a queue (ringing included)",
                                   ["queue"], registry=r)
        self.queue_longest_wait = Gauge("callcore_queue_longest_wait_seconds",
                                        "Wait of the longest-waiting caller of a queue", ["queue"], registry=r)
        self.agents = Gauge("callcore_agents", "Agents by state", ["state"], registry=r)
        self.routing_latency = Histogram("callcore_routing_latency_seconds",
                                         "Caller queued or agent freed until the agent's phone is rung",
                                         buckets=ROUTING_BUCKETS, registry=r)
        self.ari_reconnects = Counter("callcore_ari_reconnects", "ARI event stream reconnections", registry=r)
        self.event_writer_backlog = Gauge("callcore_event_writer_backlog",
                                          "Events buffered in the event writer, not yet in PostgreSQL", registry=r)
        self.api_requests = Counter("callcore_api_requests", "HTTP API requests",
                                    ["method", "route", "status"], registry=r)
        self.api_duration = Histogram("callcore_api_request_duration_seconds", "HTTP API request duration",
                                      ["method", "route"], buckets=API_BUCKETS, registry=r)
        campaign_help = {
            "campaign_running": "1 while the campaign dials (running), 0 when stopped or paused",
            "calls_in_flight": "Calls of the campaign ringing or answered and waiting for an agent",
            "calls_connected": "Calls of the campaign connected to an agent",
            "pacing_level": "Dial level: calls in flight per agent able to take a call (the pacer's line cap is "
                            "max_lines_per_agent of these); NaN with calls in flight and no such agent",
            "abandon_rate": "Abandoned / live answers in the abandonment policy's window (since the campaign "
                            "started in this process)",
            "abandon_limit": "The abandonment policy's limit on abandon_rate",
            "window_live_answers": "Live answers in the abandonment policy's window",
            "window_abandons": "Abandoned calls in the abandonment policy's window",
        }
        self.campaign_gauges = {key: Gauge(f"callcore_dialer_{key}", text, ["campaign"], registry=r)
                                for key, text in campaign_help.items()}
        self._queues: set[str] = set()
        self._campaigns: set[str] = set()
        self._hooks: list[Callable[[Metrics], None]] = []
        for state in AGENT_STATES:
            self.agents.labels(state).set(0)

    # -- feeding ------------------------------------------------------------------------------------------------
    def set_calls_in_progress(self, n: int) -> None:
        self.calls_in_progress.set(n)

    def set_queue(self, queue: str, *, waiting: int, longest_wait_seconds: float) -> None:
        self._queues.add(queue)
        self.queue_waiting.labels(queue).set(waiting)
        self.queue_longest_wait.labels(queue).set(longest_wait_seconds)

    def forget_queue(self, queue: str) -> None:
        """A queue removed from the config: drop its series."""
        if queue in self._queues:
            self._queues.discard(queue)
            self.queue_waiting.remove(queue)
            self.queue_longest_wait.remove(queue)

    def set_agents_by_state(self, counts: Mapping[str, int]) -> None:
        """Every state is set (0 when absent from ``counts``)."""
        for state in {*AGENT_STATES, *counts}:
            self.agents.labels(state).set(counts.get(state, 0))

    def observe_routing_latency(self, seconds: float) -> None:
        self.routing_latency.observe(seconds)

    def ari_reconnected(self) -> None:
        self.ari_reconnects.inc()

    def set_event_writer_backlog(self, n: int) -> None:
        self.event_writer_backlog.set(n)

    def update_from_acd(self, acd: AcdControl) -> None:
        """Queue and agent gauges from the ACD's live state."""
        now = acd.now()
        waiting: dict[str, list[float]] = {q: [] for q in acd.config.queues}
        for caller in acd.waiting.values():
            waiting.setdefault(caller.queue, []).append(max(0.0, now - caller.enqueued_at))
        for queue in self._queues - set(waiting):
            self.forget_queue(queue)
        for queue, waits in waiting.items():
            self.set_queue(queue, waiting=len(waits), longest_wait_seconds=max(waits, default=0.0))
        counts: dict[str, int] = {}
        for status in acd.agents.values():
            counts[status.state] = counts.get(status.state, 0) + 1
        self.set_agents_by_state(counts)

    def set_campaign(self, campaign: str, pacing: Mapping[str, Any]) -> None:
        """The campaign gauges from one ``DialerService.pacing(name)``."""
        self._campaigns.add(campaign)
        in_flight = int(pacing.get("in_flight", 0))
        able = int(pacing.get("able", 0))
        live = float(pacing.get("abandon_live", 0.0))
        abandons = float(pacing.get("abandon_abandons", 0.0))
        level = in_flight / able if able > 0 else (math.nan if in_flight else 0.0)
        limit = pacing.get("abandon_limit")
        values = {"campaign_running": 1.0 if pacing.get("state") == "running" else 0.0,
                  "calls_in_flight": in_flight, "calls_connected": int(pacing.get("connected", 0)),
                  "pacing_level": level, "abandon_rate": abandons / live if live > 0 else 0.0,
                  "abandon_limit": math.nan if limit is None else float(limit),
                  "window_live_answers": live, "window_abandons": abandons}
        for key, value in values.items():
            self.campaign_gauges[key].labels(campaign).set(value)

    def forget_campaign(self, campaign: str) -> None:
        """A campaign removed from the config: drop its series."""
        if campaign in self._campaigns:
            self._campaigns.discard(campaign)
            for gauge in self.campaign_gauges.values():
                gauge.remove(campaign)

    def update_from_dialer(self, dialer: DialerView) -> None:
        """Campaign gauges from the dialer's live state (every configured campaign, running or not)."""
        names = list(dialer.runs)
        for campaign in self._campaigns - set(names):
            self.forget_campaign(campaign)
        for name in names:
            try:
                self.set_campaign(name, dialer.pacing(name))
            except KeyError:  # removed by a reload between listing and reading
                self.forget_campaign(name)

    def on_collect(self, hook: Callable[[Metrics], None]) -> None:
        self._hooks.append(hook)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.api_requests.labels(method, route, str(status)).inc()
        self.api_duration.labels(method, route).observe(seconds)

    # -- exposition ---------------------------------------------------------------------------------------------
    def render(self) -> bytes:
        for hook in self._hooks:
            try:
                hook(self)
            except Exception:  # noqa: BLE001 - a broken feeder must not break the scrape
                log.exception("metrics hook failed")
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)

routes = RouteTable()


@routes.get("/metrics", summary="Prometheus metrics", tags=("health",), raw=CONTENT_TYPE_LATEST,
            description="Prometheus text format. No token: keep it on loopback or restrict it at the proxy.")
async def metrics(req: ApiRequest) -> web.Response:
    from callcore.api.outbound_services import OUTBOUND

    m = req.request.app[METRICS]
    out = req.request.app.get(OUTBOUND)
    dialer = out.campaigns if out is not None else None
    if dialer is not None and callable(getattr(dialer, "pacing", None)):
        try:
            m.update_from_dialer(dialer)
        except Exception:  # noqa: BLE001 - a broken feeder must not break the scrape
            log.exception("campaign metrics failed")
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


__all__ = ["CAMPAIGN_GAUGES", "METRICS", "DialerView", "Metrics", "routes"]
