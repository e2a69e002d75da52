from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.api.apifakes import Api, start_api


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    """The API app on fakes of every service, in-memory idempotency, the test tokens of apifakes.TOKENS."""
    a = await start_api()
    try:
        yield a
    finally:
        await a.client.close()
