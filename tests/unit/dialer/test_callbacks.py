"""Scheduled callbacks, the pure decisions: which are due (on the callee's clock), who may take them, and which
free agent takes which (owners first, then any agent, longest idle first), with the owner's grace period."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from callcore.dialer.callbacks import (
    CallbackPolicy,
    DueCallback,
    FreeAgent,
    anyone_from,
    assign,
    is_due,
    may_take,
    pick_for_agent,
    waiting_for_owner,
)
from callcore.leads.windows import local_to_utc

UTC = timezone.utc
NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
POLICY = CallbackPolicy(owner_grace_seconds=900, after_grace="any")


def cb(id: int, minutes_ago: float, owner: str | None = None) -> DueCallback:
    return DueCallback(id, NOW - timedelta(minutes=minutes_ago), owner)


def test_a_callback_tomorrow_at_ten_in_amsterdam_is_due_at_ten_amsterdam_time() -> None:
    # Agreed on 1 July: "tomorrow 10:00" on the callee's clock (CEST, UTC+2) is 08:00 UTC.
    due_at = local_to_utc(datetime(2026, 7, 2, 10, 0), "Europe/Amsterdam")
    assert due_at == datetime(2026, 7, 2, 8, 0, tzinfo=UTC)
    c = DueCallback(1, due_at)
    assert not is_due(c, datetime(2026, 7, 2, 7, 59, 59, tzinfo=UTC))
    assert is_due(c, datetime(2026, 7, 2, 8, 0, tzinfo=UTC))
    # The same wall time for a callee in New York is six hours later.
    assert local_to_utc(datetime(2026, 7, 2, 10, 0), "America/New_York") == datetime(2026, 7, 2, 14, 0, tzinfo=UTC)
    # In winter Amsterdam is UTC+1.
    assert local_to_utc(datetime(2026, 12, 2, 10, 0), "Europe/Amsterdam") == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_only_the_owner_until_the_grace_period_ends_then_anyone() -> None:
    owned = cb(1, minutes_ago=5, owner="agent01")
    assert may_take(owned, "agent01", NOW, POLICY)
    assert not may_take(owned, "agent02", NOW, POLICY)
    assert anyone_from(owned, POLICY) == owned.due_at + timedelta(minutes=15)
    assert may_take(owned, "agent02", owned.due_at + timedelta(minutes=15), POLICY)
    # "owner": it waits for its owner however long.
    patient = CallbackPolicy(owner_grace_seconds=900, after_grace="owner")
    assert anyone_from(owned, patient) is None
    assert not may_take(owned, "agent02", NOW + timedelta(days=2), patient)
    # For anyone: anyone, as soon as it is due, and nobody before.
    anyone = DueCallback(2, NOW + timedelta(minutes=1))
    assert not may_take(anyone, "agent02", NOW, POLICY)
    assert may_take(anyone, "agent02", NOW + timedelta(minutes=1), POLICY)


def test_owners_take_their_own_callbacks_and_the_longest_idle_agents_the_others() -> None:
    callbacks = [
        cb(1, 30, None),            # for anyone, due longest
        cb(2, 10, "agent02"),       # agent02's, within its grace
        cb(3, 5, "agent09"),        # its owner is not free: waits
        cb(4, 20, "agent08"),       # owner not free, grace over: anyone
        cb(5, -5, None),            # not due yet
    ]
    free = [FreeAgent("agent01", idle_since=50.0), FreeAgent("agent02", idle_since=10.0),
            FreeAgent("agent03", idle_since=20.0)]
    plan = assign(callbacks, free, NOW, POLICY)
    assert [(c.id, a) for c, a in plan] == [(1, "agent03"), (4, "agent01"), (2, "agent02")]  # earliest due first
    assert waiting_for_owner(callbacks, NOW, POLICY) == {"agent02", "agent09"}


def test_an_owner_gets_its_callback_even_after_the_grace_period_when_free() -> None:
    late = cb(1, 60, "agent02")
    plan = assign([late], [FreeAgent("agent01", 0.0), FreeAgent("agent02", 100.0)], NOW, POLICY)
    assert [(c.id, a) for c, a in plan] == [(1, "agent02")]


def test_caps_one_callback_per_agent_and_inbound_first() -> None:
    callbacks = [cb(i, 10 - i) for i in range(1, 5)] + [cb(9, 1, "agent02")]
    free = [FreeAgent("agent01", 1.0), FreeAgent("agent02", 2.0), FreeAgent("agent03", 3.0)]
    # Two agents must stay free for inbound callers: one "any" callback; the owner still gets its own.
    plan = assign(callbacks, free, NOW, POLICY, max_any=1)
    assert sorted((c.id, a) for c, a in plan) == [(1, "agent01"), (9, "agent02")]
    # The campaign's line cap.
    assert len(assign(callbacks, free, NOW, POLICY, max_total=2)) == 2
    assert assign(callbacks, free, NOW, POLICY, max_total=0) == []
    assert assign(callbacks, [], NOW, POLICY) == []
    plan = assign(callbacks, free, NOW, POLICY)
    assert len({a for _, a in plan}) == len(plan) == 3


def test_preview_offers_an_agent_its_own_callback_first() -> None:
    callbacks = [cb(1, 30, None), cb(2, 5, "agent01"), cb(3, 10, "agent02"), cb(4, 60, "agent03")]
    assert pick_for_agent(callbacks, "agent01", NOW, POLICY).id == 2  # its own, though another is older
    assert pick_for_agent(callbacks, "agent05", NOW, POLICY).id == 4  # agent03's grace is over: due longest
    assert pick_for_agent([cb(3, 10, "agent02")], "agent05", NOW, POLICY) is None  # agent02's, in grace
    assert pick_for_agent([cb(5, -1, "agent05")], "agent05", NOW, POLICY) is None  # not due yet
