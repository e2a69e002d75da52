"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client import REGISTRY

from callcore.api.health import run_check
from callcore.api.metrics import Metrics
from tests.unit.api.apifakes import Api, FakeAcd, start_api


async def test_healthz(api: Api):
    assert (await api.call("GET", "/healthz", None))[:2] == (200, {"status": "ok"})


async def test_readyz_when_every_check_passes():
    async def database() -> bool:
        return True

    api = await start_api(ready_checks={"ari": lambda: True, "database": database, "config": lambda: True})
    try:
        status, body, _ = await api.call("GET", "/readyz", None)
    finally:
        await api.client.close()
    assert status == 200
    assert body == {"status": "ready", "checks": {n: {"ok": True, "error": None} for n in ("ari", "database",
                                                                                        "config")}}


async def test_readyz_names_what_is_not_ready():
    def broken() -> bool:
        raise ConnectionRefusedError("no route")

    api = await start_api(ready_checks={"ari": lambda: False, "database": broken, "config": lambda: True})
    try:
        status, body, _ = await api.call("GET", "/readyz", None)
    finally:
        await api.client.close()
    assert status == 503
    assert body["error"]["code"] == "not_ready"
    assert body["error"]["message"] == "not ready: ari, database"
    checks = body["error"]["details"]["checks"]
    assert checks["ari"] == {"ok": False, "error": "not ready"}
    assert checks["database"] == {"ok": False, "error": "ConnectionRefusedError: no route"}
    assert checks["config"]["ok"] is True


async def test_a_check_that_hangs_times_out():
    async def slow() -> bool:
        await asyncio.sleep(10)
        return True

    result = await run_check(slow, timeout=0.01)
    assert (result.ok, result.error) == (False, "no answer within 0.01 s")


async def test_metrics_are_exposed_from_the_apps_own_registry(api: Api):
    m = api.metrics
    m.set_calls_in_progress(3)
    m.observe_routing_latency(0.004)
    m.ari_reconnected()
    m.set_event_writer_backlog(17)
    acd = api.world.acd
    acd.login("a1")
    acd.enqueue(uuid.UUID(int=1), "sales", waited=42)
    m.on_collect(lambda metrics: metrics.update_from_acd(acd))
    await api.call("GET", "/agents")
    status, text, headers = await api.call("GET", "/metrics", None)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    for line in [
        "callcore_calls_in_progress 3.0",
        'callcore_queue_waiting{queue="sales"} 1.0',
        'callcore_queue_waiting{queue="billing"} 0.0',
        'callcore_queue_longest_wait_seconds{queue="sales"} 42.0',
        'callcore_agents{state="ready"} 1.0',
        'callcore_agents{state="logged_out"} 2.0',
        "callcore_routing_latency_seconds_count 1.0",
        'callcore_routing_latency_seconds_bucket{le="0.005"} 1.0',
        "callcore_ari_reconnects_total 1.0",
        "callcore_event_writer_backlog 17.0",
        'callcore_api_requests_total{method="GET",route="/agents",status="200"} 1.0',
    ]:
        assert line in text.splitlines(), line
    assert REGISTRY.get_sample_value("callcore_calls_in_progress") is None  # never the global registry


def test_two_apps_have_independent_metrics_and_queues_that_go_are_dropped():
    a, b = Metrics(), Metrics()
    a.set_calls_in_progress(1)
    assert b.registry.get_sample_value("callcore_calls_in_progress") == 0
    acd = FakeAcd()
    a.update_from_acd(acd)
    assert a.registry.get_sample_value("callcore_queue_waiting", {"queue": "sales"}) == 0
    del acd.config.queues["sales"]
    a.update_from_acd(acd)
    assert a.registry.get_sample_value("callcore_queue_waiting", {"queue": "sales"}) is None


def test_a_failing_hook_does_not_break_the_scrape():
    m = Metrics()
    m.on_collect(lambda _: 1 / 0)
    assert b"callcore_agents" in m.render()


async def test_unmatched_requests_are_counted_without_a_label_per_path(api: Api):
    for n in range(3):
        await api.call("GET", f"/nothing/{n}")
    assert api.metrics.registry.get_sample_value(
        "callcore_api_requests_total", {"method": "GET", "route": "unmatched", "status": "404"}) == 3
