from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcore.app import CallcoreApp
from callcore.calls.runtime import Handler
from callcore.config import CallcoreConfig
from callcore.api.config import ApiSettings
from callcore.config.models import AriSettings, DatabaseSettings, InboundSettings

pytestmark = pytest.mark.integration
ACD_CONFIG = Path(__file__).resolve().parents[1] / "data" / "acd_test.yaml"


def make_config(dsn: str, state_dir: Path, dids: dict[str, str] | None = None) -> CallcoreConfig:
    return CallcoreConfig(
        state_dir=state_dir,
        ari=AriSettings(password="callcore-sandbox", reconnect_initial=0.2, reconnect_max=1.0, heartbeat=2.0),
        database=DatabaseSettings(url=dsn),
        api=ApiSettings(port=0),  # any free port: tests never collide with a running callcore
        inbound=InboundSettings(dids=dids or {"1000": "say_digit"}),
        version="test",
    )


async def start_app(config: CallcoreConfig, flows: dict[str, Handler] | None = None) -> CallcoreApp:
    app = CallcoreApp(config, flows=flows)
    await app.start()
    await app.wait_connected(timeout=15)
    return app


@pytest.fixture(autouse=True)
def _api_on_a_free_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every callcore an integration test starts (in process or `callcore run`) serves its API on a free port.
    Set per test, so the unit tests of the same run see the environment untouched."""
    monkeypatch.setenv("CALLCORE_API_PORT", "0")


@pytest.fixture
async def callcore(asterisk, pg_dsn: str, tmp_path: Path) -> AsyncIterator[CallcoreApp]:
    """callcore running in this test's event loop against the real sandbox and a fresh database."""
    app = await start_app(make_config(pg_dsn, tmp_path))
    try:
        yield app
    finally:
        await asyncio.wait_for(app.stop(drain_seconds=2), 30)


@contextlib.asynccontextmanager
async def app_from_yaml(text: str, pg_dsn: str, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CallcoreApp]:
    """callcore loaded from a YAML config text (as `callcore run` loads its file), on the test's database."""
    from callcore.config import load_config
    from callcore.ivr.registry import CODE_FLOWS

    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    path = tmp_path / "callcore.yaml"
    path.write_text(text)
    app = await start_app(load_config(path, known_flows=set(CODE_FLOWS)))
    try:
        yield app
    finally:
        await asyncio.wait_for(app.stop(drain_seconds=2), 30)


@pytest.fixture
async def acd_app(asterisk, pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CallcoreApp]:
    """callcore with the ACD test config (tests/data/acd_test.yaml): agents 01-03, queues, DIDs 7001-7005."""
    async with app_from_yaml(ACD_CONFIG.read_text(), pg_dsn, tmp_path, monkeypatch) as app:
        yield app


async def assert_no_bridge_in_use(app: CallcoreApp) -> None:
    """Every bridge left in Asterisk is empty and idle in callcore's pool (reused by the next call)."""
    for link in app.links:  # every Asterisk node
        bridges = await link.ari.bridges.list()
        assert all(not b.channels for b in bridges), [(b.id, b.channels) for b in bridges]
        assert {b.id for b in bridges} <= set(link.runtime.bridge_pool.idle)
