"""The bridge pool: idle bridges are reused, and after an Asterisk restart the ones it lost are never lent."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

from callcore.calls.bridges import BridgePool


class Bridges:
    def __init__(self) -> None:
        self.ids = (f"b{n}" for n in itertools.count(1))
        self.destroyed: list[str] = []

    async def create(self, bridge_id: str, type: str):  # noqa: A002 - ARI's parameter name
        return SimpleNamespace(id=next(self.ids))

    async def destroy(self, bridge_id: str) -> None:
        self.destroyed.append(bridge_id)


class Ari:
    def __init__(self) -> None:
        self.bridges = Bridges()


async def test_after_a_restart_only_bridges_asterisk_still_has_are_lent_again():
    pool = BridgePool(Ari())  # type: ignore[arg-type]
    first, second = await pool.take(), await pool.take()
    pool.give_back(first, clean=True)
    pool.give_back(second, clean=True)
    assert sorted(pool.idle) == ["b1", "b2"]
    pool.keep_only({"b2"})  # Asterisk restarted; b1 went with it (no BridgeDestroyed ever came)
    assert pool.idle == ["b2"]
    assert await pool.take() == "b2"
    assert await pool.take(fresh=True) == "b3"  # an idle one turned out gone: a new bridge, not another idle one
