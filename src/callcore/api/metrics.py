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
| ``callcore_api_requests_total`` | counter | method, route, status | the API itself |
| ``callcore_api_request_duration_seconds`` | histogram | method, route | the API itself |

Gauges of live state are best set at scrape time: :meth:`Metrics.on_collect` registers a function run before
each scrape (e.g. ``metrics.on_collect(lambda m: m.update_from_acd(acd))``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import get_args

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
        self._queues: set[str] = set()
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
    return web.Response(body=req.request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


__all__ = ["METRICS", "Metrics", "routes"]
