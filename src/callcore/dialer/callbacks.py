"""Scheduled callbacks: which are due and who may take them. **Pure**: time is passed in, nothing does I/O.

A callback is due at ``due_at`` (an instant: the store turned the callee-local time the agent agreed — "tomorrow
10:00" for a callee in Amsterdam — into UTC when it was scheduled, so "due" needs no time zone here; whether the
callee may be called *now* is the calling windows' question, asked by the store's claim). Who may take it:

- a callback for any agent (``owner`` None): any agent of the campaign, as soon as it is due, before fresh leads;
- an agent-owned callback: only its owner, until ``owner_grace_seconds`` after it is due; then, with
  ``after_grace = "any"`` (the default), any agent — still its owner first when the owner is free.

The dialer services give :func:`assign` the due callbacks and the agents free now (longest idle first) and reserve
the agent of each pair before dialling; preview asks :func:`pick_for_agent` for the one agent asking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from callcore.campaigns.model import CampaignConfig


@dataclass(frozen=True)
class DueCallback:
    id: int
    due_at: datetime
    owner: str | None = None


@dataclass(frozen=True)
class FreeAgent:
    id: str
    idle_since: float = 0.0  # the ACD's clock: the longest idle takes an "any agent" callback first


@dataclass(frozen=True)
class CallbackPolicy:
    owner_grace_seconds: float = 900.0
    after_grace: Literal["any", "owner"] = "any"

    @classmethod
    def of(cls, campaign: CampaignConfig) -> CallbackPolicy:
        return cls(campaign.callbacks.owner_grace_seconds, campaign.callbacks.after_grace)


def is_due(cb: DueCallback, now: datetime) -> bool:
    return cb.due_at <= now


def anyone_from(cb: DueCallback, policy: CallbackPolicy) -> datetime | None:
    """From when any agent may take ``cb`` (None: only ever its owner)."""
    if cb.owner is None:
        return cb.due_at
    if policy.after_grace == "owner":
        return None
    return cb.due_at + timedelta(seconds=policy.owner_grace_seconds)


def may_take(cb: DueCallback, agent_id: str, now: datetime, policy: CallbackPolicy) -> bool:
    """May ``agent_id`` take ``cb`` at ``now``?"""
    if not is_due(cb, now):
        return False
    if cb.owner is None or cb.owner == agent_id:
        return True
    since = anyone_from(cb, policy)
    return since is not None and now >= since


def _order(callbacks: Iterable[DueCallback]) -> list[DueCallback]:
    return sorted(callbacks, key=lambda c: (c.due_at, c.id))


def assign(callbacks: Iterable[DueCallback], free: Sequence[FreeAgent], now: datetime, policy: CallbackPolicy,
           *, max_any: int | None = None, max_total: int | None = None) -> list[tuple[DueCallback, str]]:
    """Which due callback each free agent should take now, earliest due first.

    Owners first: a callback goes to its owner whenever the owner is free (also after the grace period: the owner
    knows the customer). Then callbacks any agent may take go to the remaining free agents, longest idle first;
    ``max_any`` caps those (the agents the campaign may use without taking them from inbound callers), and
    ``max_total`` caps all (the campaign's line cap). An agent gets at most one callback."""
    due = [c for c in _order(callbacks) if is_due(c, now)]
    pool = sorted(free, key=lambda a: (a.idle_since, a.id))
    taken: set[str] = set()
    out: list[tuple[DueCallback, str]] = []
    free_ids = {a.id for a in pool}
    for cb in due:
        if cb.owner is not None and cb.owner in free_ids and cb.owner not in taken:
            out.append((cb, cb.owner))
            taken.add(cb.owner)
    done = {cb.id for cb, _ in out}
    used_any = 0
    for cb in due:
        if cb.id in done:
            continue
        if max_any is not None and used_any >= max_any:
            break
        agent = next((a.id for a in pool if a.id not in taken and may_take(cb, a.id, now, policy)), None)
        if agent is None:
            continue
        out.append((cb, agent))
        taken.add(agent)
        used_any += 1
    out.sort(key=lambda pair: (pair[0].due_at, pair[0].id))
    if max_total is not None:
        out = out[: max(0, max_total)]
    return out


def pick_for_agent(callbacks: Iterable[DueCallback], agent_id: str, now: datetime,
                   policy: CallbackPolicy) -> DueCallback | None:
    """Preview: the callback to offer ``agent_id`` now — its own first (earliest due), else the earliest one any
    agent may take; None if there is none (then a fresh lead)."""
    due = [c for c in _order(callbacks) if may_take(c, agent_id, now, policy)]
    own = [c for c in due if c.owner == agent_id]
    return (own or due or [None])[0]


def waiting_for_owner(callbacks: Iterable[DueCallback], now: datetime, policy: CallbackPolicy) -> set[str]:
    """Owners whose due callback only they may take now (for status and logs: who is awaited)."""
    return {c.owner for c in callbacks
            if c.owner is not None and is_due(c, now) and not may_take(c, "\x00nobody", now, policy)}


__all__ = ["CallbackPolicy", "DueCallback", "FreeAgent", "anyone_from", "assign", "is_due", "may_take",
           "pick_for_agent", "waiting_for_owner"]
