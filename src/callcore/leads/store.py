"""Lead, attempt and callback queries for the dialer, and the abandonment ledger for compliance audits.

Every function takes the database (a pool or a connection) and, where rules apply, the campaign's name and its
``CampaignConfig``; ``now`` is always passed in (tests and replays control time).

At dial time (:func:`claim_due_leads`, :func:`claim_due_callbacks`, :func:`may_dial`) a lead is called only if:

- it is due (``status = 'pending'`` and ``next_attempt_at <= now``);
- its callee-local time is inside the campaign's calling windows (``callcore.leads.windows``; with
  ``ambiguous_timezone: all`` in every candidate zone);
- its number is on no active do-not-call entry, global or the campaign's — checked now, not at import;
- under a policy with a redial block (uk_ofcom: 72 h) no call to the number was abandoned within that time,
  by any campaign, unless the caller guarantees an agent (``agent_guaranteed``: preview, or an agent reserved).

Claiming marks the leads ``dialing`` in the same statement (``FOR UPDATE SKIP LOCKED``), so two dialers never
dial the same lead. :func:`record_attempt` stores the attempt and moves the lead on by the retry rules;
:func:`set_disposition` applies the agent's disposition (done, do-not-call, callback, retry).

The **abandonment ledger** (:func:`abandonment_ledger`) counts per campaign and window: live answers (a person
answered: outcomes ``human`` and ``abandoned``), abandoned calls (``lead_attempts.abandoned``: outcome
``abandoned``, or a person who waited longer than ``agent_connect_seconds`` for an agent), machine answers, the
estimated AMD false positives when the policy counts them, and the rate
``(abandoned + false positives) / (live answers + false positives)`` against the policy's limit.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg

from callcore.campaigns.model import OUTCOMES, RETRY_OUTCOMES, CampaignConfig, ResolvedAbandonPolicy
from callcore.ids import uuid7
from callcore.leads import dnc
from callcore.leads.csv_import import _connection
from callcore.leads.phone import InvalidNumber, choose_zone, known_zones, normalize
from callcore.leads.windows import Windows, callable_zones, is_callable, local_to_utc, next_callable

Queryable = asyncpg.Pool | asyncpg.Connection

LEAD_STATUSES = ("pending", "dialing", "connected", "callback", "done", "exhausted", "dnc", "cancelled")
CLOSED_STATUSES = ("done", "exhausted", "dnc", "cancelled")


# ---- rows ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lead:
    id: int
    campaign: str
    number: str
    timezone: str
    timezones: tuple[str, ...]
    tz_source: str
    name: str | None
    fields: dict[str, Any]
    status: str
    priority: int
    attempts: int
    last_outcome: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime
    disposition: str | None
    source_line: int | None

    def zones(self, campaign: CampaignConfig) -> tuple[str, ...]:
        """The zones whose clocks decide when this lead may be called."""
        if campaign.ambiguous_timezone == "all":
            return self.timezones
        return (self.timezone,)


def _lead(r: asyncpg.Record) -> Lead:
    return Lead(
        id=r["id"], campaign=r["campaign"], number=r["number"], timezone=r["timezone"],
        timezones=tuple(r["timezones"]), tz_source=r["tz_source"], name=r["name"], fields=r["fields"] or {},
        status=r["status"], priority=r["priority"], attempts=r["attempts"], last_outcome=r["last_outcome"],
        last_attempt_at=r["last_attempt_at"], next_attempt_at=r["next_attempt_at"], disposition=r["disposition"],
        source_line=r["source_line"],
    )


@dataclass(frozen=True)
class Callback:
    id: int
    campaign: str
    lead_id: int | None
    number: str
    due_at: datetime
    due_local: str
    timezone: str
    owner_agent: str | None
    status: str
    note: str


def _callback(r: asyncpg.Record) -> Callback:
    return Callback(r["id"], r["campaign"], r["lead_id"], r["number"], r["due_at"], r["due_local"], r["timezone"],
                    r["owner_agent"], r["status"], r["note"])


@dataclass
class Attempt:
    """One dial attempt as the dialer saw it. ``outcome``: human | machine | busy | no_answer | failed |
    abandoned. ``connect_delay_seconds``: from the answer (US: the end of the greeting) to the agent joining."""

    number: str
    started_at: datetime
    outcome: str
    lead_id: int | None = None
    attempt_id: uuid.UUID | None = None
    call_id: uuid.UUID | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ring_seconds: float | None = None
    agent_id: str | None = None
    connect_delay_seconds: float | None = None
    talk_seconds: float | None = None
    disposition: str | None = None
    amd_status: str | None = None
    amd_cause: str | None = None
    hangup_cause: int | None = None
    agent_guaranteed: bool = False

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r} (one of {', '.join(OUTCOMES)})")
        if self.started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")


@dataclass(frozen=True)
class LeadUpdate:
    """What an attempt or a disposition did to its lead."""

    attempt_id: uuid.UUID
    lead_id: int | None
    status: str | None
    next_attempt_at: datetime | None
    abandoned: bool = False
    callback_id: int | None = None
    duplicate: bool = False


# ---- claiming leads ------------------------------------------------------------------------------------------


def _callable_zone_list(campaign: CampaignConfig, now: datetime) -> list[str]:
    """Every IANA zone whose local time is inside the campaign's windows at ``now`` (about 600 checks: cheap)."""
    return callable_zones(Windows.from_campaign(campaign), _all_zones(), now)


def _all_zones() -> frozenset[str]:
    return known_zones()


def _zone_clause(campaign: CampaignConfig, param: str) -> str:
    return f"l.timezones <@ {param}::text[]" if campaign.ambiguous_timezone == "all" else f"l.timezone = ANY({param}::text[])"


_DNC_FREE = """NOT EXISTS (
    SELECT 1 FROM dnc_entries d
    WHERE d.number = l.number AND d.removed_at IS NULL AND (d.campaign IS NULL OR d.campaign = l.campaign)
      AND (d.expires_at IS NULL OR d.expires_at > $2))"""

_NOT_RECENTLY_ABANDONED = """NOT EXISTS (
    SELECT 1 FROM lead_attempts a
    WHERE a.abandoned AND a.number = l.number AND a.started_at > $2::timestamptz - make_interval(secs => {block}))"""


def _redial_block(campaign: CampaignConfig, agent_guaranteed: bool) -> float:
    return 0.0 if agent_guaranteed else campaign.policy().redial_block_seconds


async def claim_due_leads(
    db: Queryable,
    campaign_name: str,
    campaign: CampaignConfig,
    *,
    now: datetime,
    limit: int,
    agent_guaranteed: bool = False,
) -> list[Lead]:
    """Up to ``limit`` leads that may be dialled now (see the module doc), best first (``priority``, then the
    longest due), marked ``dialing``. Give back the ones not dialled with :func:`release_leads`."""
    if limit <= 0:
        return []
    zones = _callable_zone_list(campaign, now)
    if not zones:
        return []
    block = _redial_block(campaign, agent_guaranteed)
    extra = f"AND {_NOT_RECENTLY_ABANDONED.format(block='$5')}" if block > 0 else ""
    sql = f"""
    WITH picked AS (
        SELECT l.id FROM leads l
        WHERE l.campaign = $1 AND l.status = 'pending' AND l.next_attempt_at <= $2
          AND {_zone_clause(campaign, '$3')}
          AND {_DNC_FREE}
          {extra}
        ORDER BY l.priority DESC, l.next_attempt_at, l.id
        LIMIT $4
        FOR UPDATE OF l SKIP LOCKED
    )
    UPDATE leads SET status = 'dialing', updated_at = $2 FROM picked WHERE leads.id = picked.id
    RETURNING leads.*
    """
    args: list[Any] = [campaign_name, now, zones, limit]
    if block > 0:
        args.append(block)
    rows = await db.fetch(sql, *args)
    leads = [_lead(r) for r in rows]
    leads.sort(key=lambda x: (-x.priority, x.next_attempt_at, x.id))
    return leads


async def due_leads(
    db: Queryable, campaign_name: str, campaign: CampaignConfig, *, now: datetime, limit: int = 100,
    agent_guaranteed: bool = False,
) -> list[Lead]:
    """What :func:`claim_due_leads` would claim, without claiming (supervisor views, tests)."""
    zones = _callable_zone_list(campaign, now)
    if not zones or limit <= 0:
        return []
    block = _redial_block(campaign, agent_guaranteed)
    extra = f"AND {_NOT_RECENTLY_ABANDONED.format(block='$5')}" if block > 0 else ""
    args: list[Any] = [campaign_name, now, zones, limit] + ([block] if block > 0 else [])
    rows = await db.fetch(
        f"""SELECT l.* FROM leads l
        WHERE l.campaign = $1 AND l.status = 'pending' AND l.next_attempt_at <= $2
          AND {_zone_clause(campaign, '$3')} AND {_DNC_FREE} {extra}
        ORDER BY l.priority DESC, l.next_attempt_at, l.id LIMIT $4""",
        *args,
    )
    return [_lead(r) for r in rows]


async def release_leads(db: Queryable, lead_ids: list[int], *, now: datetime) -> int:
    """Give claimed leads that were not dialled back (``dialing`` → ``pending``, still due)."""
    status = await db.execute(
        "UPDATE leads SET status = 'pending', updated_at = $2 WHERE id = ANY($1::bigint[]) AND status = 'dialing'",
        lead_ids, now)
    return int(status.split()[-1])


async def recover_claims(db: Queryable, campaign_name: str, *, now: datetime, older_than: float = 300.0) -> int:
    """After a crash: leads left ``dialing`` for longer than ``older_than`` seconds without an attempt go back
    to ``pending``."""
    status = await db.execute(
        "UPDATE leads SET status = 'pending', updated_at = $2 WHERE campaign = $1 AND status = 'dialing' "
        "AND updated_at < $2::timestamptz - make_interval(secs => $3)",
        campaign_name, now, older_than)
    return int(status.split()[-1])


async def may_dial(
    db: Queryable, campaign_name: str, campaign: CampaignConfig, lead: Lead, *, now: datetime,
    agent_guaranteed: bool = False,
) -> str | None:
    """The last check right before dialling one lead (after a preview, say): None if it may be dialled, else
    the reason it may not (on a do-not-call list, outside the calling windows, abandoned recently)."""
    windows = Windows.from_campaign(campaign)
    if not is_callable(windows, lead.zones(campaign), now):
        return "outside the calling windows in the callee's time zone"
    entries = await db.fetch(
        "SELECT campaign FROM dnc_entries WHERE number = $1 AND removed_at IS NULL "
        "AND (campaign IS NULL OR campaign = $3) AND (expires_at IS NULL OR expires_at > $2)",
        lead.number, now, campaign_name)
    if entries:
        scope = "the global" if any(e["campaign"] is None for e in entries) else "the campaign's"
        return f"on {scope} do-not-call list"
    block = _redial_block(campaign, agent_guaranteed)
    if block > 0 and await recently_abandoned(db, lead.number, now=now, seconds=block):
        return f"a call to this number was abandoned within the last {block / 3600:g} h (no agent guaranteed)"
    return None


async def recently_abandoned(db: Queryable, number: str, *, now: datetime, seconds: float) -> bool:
    """Was a call to ``number`` (any campaign) abandoned within ``seconds`` before ``now``?"""
    return bool(await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM lead_attempts WHERE abandoned AND number = $1 "
        "AND started_at > $2::timestamptz - make_interval(secs => $3))", number, now, seconds))


# ---- adding leads one by one ------------------------------------------------------------------------------------


async def add_lead(
    db: Queryable,
    campaign_name: str,
    campaign: CampaignConfig,
    number: str,
    *,
    name: str | None = None,
    fields: dict[str, Any] | None = None,
    timezone_name: str | None = None,
    priority: int = 0,
    now: datetime,
) -> Lead | None:
    """One lead (the API's "add lead"). Returns None if the number is already in the campaign. Raises
    InvalidNumber, or ValueError for an unknown time zone."""
    parsed = normalize(number, campaign.default_region)
    fallback = campaign.fallback_timezone()
    if fallback is None:
        raise ValueError(f"campaign {campaign_name} has no fallback time zone")
    zone = choose_zone(parsed.e164, fallback, column=timezone_name)
    row = await db.fetchrow(
        """
        INSERT INTO leads (campaign, number, region, line_type, timezone, timezones, tz_source, name, fields,
                           priority, next_attempt_at, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11, $11, $11)
        ON CONFLICT (campaign, number) DO NOTHING RETURNING *
        """,
        campaign_name, parsed.e164, parsed.region, parsed.line_type, zone.timezone, list(zone.timezones), zone.source,
        name, json.dumps(fields or {}, ensure_ascii=False), priority, now,
    )
    return _lead(row) if row is not None else None


async def get_lead(db: Queryable, lead_id: int) -> Lead | None:
    row = await db.fetchrow("SELECT * FROM leads WHERE id = $1", lead_id)
    return _lead(row) if row is not None else None


async def lead_by_number(db: Queryable, campaign_name: str, number: str) -> Lead | None:
    row = await db.fetchrow("SELECT * FROM leads WHERE campaign = $1 AND number = $2", campaign_name, number)
    return _lead(row) if row is not None else None


async def attempts_of(db: Queryable, lead_id: int) -> list[asyncpg.Record]:
    """A lead's attempt history, oldest first."""
    return await db.fetch("SELECT * FROM lead_attempts WHERE lead_id = $1 ORDER BY started_at, id", lead_id)


async def lead_counts(db: Queryable, campaign_name: str) -> dict[str, int]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM leads WHERE campaign = $1 GROUP BY status", campaign_name)
    return {r["status"]: r["n"] for r in rows}


# ---- attempts and retries ------------------------------------------------------------------------------------


def _retry_time(campaign: CampaignConfig, zones: tuple[str, ...], base: datetime, delay: float) -> datetime:
    """``base + delay``, moved to the next moment the lead is callable (so the due order is the dial order)."""
    earliest = base + timedelta(seconds=delay)
    nxt = next_callable(Windows.from_campaign(campaign), zones, earliest)
    return nxt if nxt is not None else earliest


async def record_attempt(
    db: Queryable, campaign_name: str, campaign: CampaignConfig, attempt: Attempt, *, now: datetime | None = None,
) -> LeadUpdate:
    """Store one attempt and move its lead on (one transaction). Idempotent on ``attempt_id``: recording the same
    attempt twice changes nothing the second time (``duplicate``).

    - ``human``: the lead is ``connected`` until the agent's disposition (or the attempt's ``disposition``);
    - ``busy`` / ``no_answer`` / ``machine`` / ``failed`` / ``abandoned``: after ``max_attempts`` attempts with
      that outcome, or the campaign's ``max_attempts`` in all, the lead is ``exhausted``; otherwise it is
      ``pending`` again, due after the rule's ``delay`` at the next callable moment.
    """
    policy = campaign.policy()
    attempt_id = attempt.attempt_id or uuid7()
    abandoned = attempt.outcome == "abandoned" or (
        attempt.outcome == "human" and attempt.connect_delay_seconds is not None
        and attempt.connect_delay_seconds > policy.agent_connect_seconds
    )
    now = now or datetime.now(timezone.utc)
    async with _connection(db) as conn:
        async with conn.transaction():
            inserted = await conn.fetchval(
                """
                INSERT INTO lead_attempts (attempt_id, campaign, lead_id, number, call_id, mode, started_at,
                    answered_at, ended_at, ring_seconds, outcome, abandoned, agent_guaranteed, agent_id,
                    connect_delay_seconds, talk_seconds, disposition, amd_status, amd_cause, hangup_cause, recorded_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
                ON CONFLICT (attempt_id) DO NOTHING RETURNING id
                """,
                attempt_id, campaign_name, attempt.lead_id, attempt.number, attempt.call_id, campaign.mode,
                attempt.started_at, attempt.answered_at, attempt.ended_at, attempt.ring_seconds, attempt.outcome,
                abandoned, attempt.agent_guaranteed, attempt.agent_id, attempt.connect_delay_seconds,
                attempt.talk_seconds, attempt.disposition, attempt.amd_status, attempt.amd_cause,
                attempt.hangup_cause, now,
            )
            if inserted is None:
                return LeadUpdate(attempt_id, attempt.lead_id, None, None, abandoned, duplicate=True)
            if attempt.lead_id is None:
                return LeadUpdate(attempt_id, None, None, None, abandoned)
            row = await conn.fetchrow("SELECT * FROM leads WHERE id = $1 FOR UPDATE", attempt.lead_id)
            if row is None:
                return LeadUpdate(attempt_id, attempt.lead_id, None, None, abandoned)
            lead = _lead(row)
            attempts = lead.attempts + 1
            base = attempt.ended_at or attempt.started_at
            status, next_at = "connected", lead.next_attempt_at
            if lead.status in CLOSED_STATUSES:
                status = lead.status  # closed meanwhile (an operator, a disposition): counted, not reopened
            elif attempt.outcome in RETRY_OUTCOMES:
                rule = campaign.retry.for_outcome(attempt.outcome)
                same = await conn.fetchval(
                    "SELECT count(*) FROM lead_attempts WHERE lead_id = $1 AND outcome = $2", lead.id, attempt.outcome)
                if same >= rule.max_attempts or attempts >= campaign.max_attempts:
                    status = "exhausted"
                else:
                    status, next_at = "pending", _retry_time(campaign, lead.zones(campaign), base, rule.delay)
            await conn.execute(
                "UPDATE leads SET attempts = $2, last_outcome = $3, last_attempt_at = $4, status = $5, "
                "next_attempt_at = $6, updated_at = $7 WHERE id = $1",
                lead.id, attempts, attempt.outcome, attempt.started_at, status, next_at, now,
            )
            update = LeadUpdate(attempt_id, lead.id, status, next_at if status == "pending" else None, abandoned)
    if attempt.outcome == "human" and attempt.disposition is not None:
        return await set_disposition(db, campaign_name, campaign, attempt_id, attempt.disposition,
                                     agent_id=attempt.agent_id, now=now)
    return update


async def set_disposition(
    db: Queryable,
    campaign_name: str,
    campaign: CampaignConfig,
    attempt_id: uuid.UUID,
    disposition: str,
    *,
    agent_id: str | None = None,
    now: datetime,
    callback_at: datetime | None = None,
    callback_owner: str | None = None,
    note: str = "",
) -> LeadUpdate:
    """The agent's disposition of an attempt, applied to the attempt and its lead.

    ``callback_at`` (dispositions with ``schedules_callback``): an aware instant, or a naive wall time on the
    callee's clock. ``callback_owner``: ``agent`` (this agent calls back) or ``any``; default: the
    disposition's. Raises KeyError for a disposition the campaign does not have, ValueError for a missing or
    uncallable callback time."""
    if disposition not in campaign.dispositions:
        raise KeyError(f"campaign {campaign_name} has no disposition {disposition!r} "
                       f"(it has: {', '.join(campaign.dispositions)})")
    d = campaign.dispositions[disposition]
    if d.schedules_callback and callback_at is None:
        raise ValueError(f"disposition {disposition!r} schedules a callback: give the time (callback_at)")
    async with _connection(db) as conn:
        async with conn.transaction():
            att = await conn.fetchrow(
                "UPDATE lead_attempts SET disposition = $2, agent_id = coalesce(agent_id, $3) WHERE attempt_id = $1 "
                "RETURNING lead_id, number, ended_at, started_at", attempt_id, disposition, agent_id)
            if att is None:
                raise KeyError(f"no attempt {attempt_id}")
            lead_id = att["lead_id"]
            row = await conn.fetchrow("SELECT * FROM leads WHERE id = $1 FOR UPDATE", lead_id) if lead_id else None
            lead = _lead(row) if row is not None else None
            status: str | None = "done"
            next_at: datetime | None = None
            callback_id: int | None = None
            if d.adds_to_dnc:
                await dnc.add(conn, att["number"], region=campaign.default_region,
                              campaign=campaign_name if d.dnc_scope == "campaign" else None,
                              reason=f"disposition {disposition}", source=f"disposition:{agent_id or '-'}", now=now)
                status = "dnc"
            elif d.schedules_callback:
                assert callback_at is not None
                owner = callback_owner or d.callback_owner
                cb = await _schedule(
                    conn, campaign_name, campaign, lead, att["number"], callback_at,
                    owner_agent=agent_id if owner == "agent" else None, created_by=agent_id, note=note,
                    attempt_id=attempt_id, now=now,
                )
                status, callback_id, next_at = "callback", cb.id, cb.due_at
            elif d.retry_as is not None and lead is not None:
                rule = campaign.retry.for_outcome(d.retry_as)
                if lead.attempts >= campaign.max_attempts:
                    status = "exhausted"
                else:
                    status = "pending"
                    next_at = _retry_time(campaign, lead.zones(campaign), att["ended_at"] or now, rule.delay)
            if lead is not None:
                await conn.execute(
                    "UPDATE leads SET status = $2, disposition = $3, next_attempt_at = coalesce($4, next_attempt_at), "
                    "updated_at = $5 WHERE id = $1", lead.id, status, disposition,
                    next_at if status == "pending" else None, now)
            else:
                status = None
    return LeadUpdate(attempt_id, lead_id, status, next_at, callback_id=callback_id)


# ---- callbacks ---------------------------------------------------------------------------------------------------


def _local_text(due_at: datetime, zone_name: str) -> str:
    local = due_at.astimezone(_zone(zone_name))
    return f"{local:%Y-%m-%d %H:%M} {zone_name}"


def _zone(name: str) -> Any:
    from callcore.leads.phone import zone

    return zone(name)


async def _schedule(
    conn: asyncpg.Connection, campaign_name: str, campaign: CampaignConfig, lead: Lead | None, number: str,
    when: datetime, *, owner_agent: str | None, created_by: str | None, note: str, attempt_id: uuid.UUID | None,
    now: datetime,
) -> Callback:
    if lead is not None:
        zone_name, zones = lead.timezone, lead.zones(campaign)
    else:
        zone_name = choose_zone(number, campaign.fallback_timezone() or "UTC").timezone
        zones = (zone_name,)
    due_at = local_to_utc(when, zone_name) if when.tzinfo is None else when.astimezone(timezone.utc)
    if due_at < now - timedelta(minutes=1):
        raise ValueError(f"the callback time {_local_text(due_at, zone_name)} is in the past")
    windows = Windows.from_campaign(campaign)
    if not is_callable(windows, zones, due_at):
        nxt = next_callable(windows, zones, due_at)
        hint = f"; the next allowed time is {_local_text(nxt, zone_name)}" if nxt else ""
        raise ValueError(f"{_local_text(due_at, zone_name)} is outside the campaign's calling windows{hint}")
    if lead is not None:
        await conn.execute(
            "UPDATE scheduled_callbacks SET status = 'cancelled', updated_at = $2 "
            "WHERE lead_id = $1 AND status IN ('pending', 'dialing')", lead.id, now)
    row = await conn.fetchrow(
        """
        INSERT INTO scheduled_callbacks (campaign, lead_id, number, due_at, due_local, timezone, owner_agent, note,
                                         created_by, attempt_id, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING *
        """,
        campaign_name, lead.id if lead is not None else None, number, due_at, _local_text(due_at, zone_name),
        zone_name, owner_agent, note, created_by, attempt_id, now,
    )
    return _callback(row)


async def schedule_callback(
    db: Queryable,
    campaign_name: str,
    campaign: CampaignConfig,
    *,
    lead_id: int | None = None,
    number: str | None = None,
    when: datetime,
    owner_agent: str | None = None,
    created_by: str | None = None,
    note: str = "",
    now: datetime,
) -> Callback:
    """Schedule a callback of a lead (or of a bare ``number``: a web "call me" request). ``when``: aware, or a
    naive wall time on the callee's clock (a time in a DST gap moves to the end of the gap). It must be inside
    the calling windows (ValueError says the next allowed time). A lead's earlier open callback is cancelled;
    the lead's status becomes ``callback``."""
    async with _connection(db) as conn:
        async with conn.transaction():
            lead = None
            if lead_id is not None:
                row = await conn.fetchrow("SELECT * FROM leads WHERE id = $1 FOR UPDATE", lead_id)
                if row is None:
                    raise KeyError(f"no lead {lead_id}")
                lead = _lead(row)
                number = lead.number
            elif number is not None:
                number = normalize(number, campaign.default_region).e164
            else:
                raise ValueError("give a lead_id or a number")
            cb = await _schedule(conn, campaign_name, campaign, lead, number, when, owner_agent=owner_agent,
                                 created_by=created_by, note=note, attempt_id=None, now=now)
            if lead is not None:
                await conn.execute("UPDATE leads SET status = 'callback', updated_at = $2 WHERE id = $1", lead.id, now)
    return cb


def _callbacks_where(campaign: CampaignConfig) -> str:
    """Due callbacks that may be dialled at $2: callable now in the callee's zone(s) ($3), on no active do-not-call
    entry, owned by one of the agents $5 (NULL: anyone) or by nobody, among the ids $6 (NULL: all)."""
    zone_clause = "(l.id IS NULL AND c.timezone = ANY($3::text[]) OR " + _zone_clause(campaign, "$3") + ")"
    return f"""
        c.campaign = $1 AND c.status = 'pending' AND c.due_at <= $2
          AND {zone_clause}
          AND ($5::text[] IS NULL OR c.owner_agent IS NULL OR c.owner_agent = ANY($5::text[]))
          AND ($6::bigint[] IS NULL OR c.id = ANY($6::bigint[]))
          AND NOT EXISTS (
            SELECT 1 FROM dnc_entries d
            WHERE d.number = c.number AND d.removed_at IS NULL AND (d.campaign IS NULL OR d.campaign = $1)
              AND (d.expires_at IS NULL OR d.expires_at > $2))"""


async def claim_due_callbacks(
    db: Queryable,
    campaign_name: str,
    campaign: CampaignConfig,
    *,
    now: datetime,
    limit: int,
    agents: list[str] | None = None,
    ids: list[int] | None = None,
) -> list[Callback]:
    """Due callbacks that may be dialled now (calling windows and do-not-call checked; the 72 h rule is not:
    the callee asked for the call, and an agent is reserved for it), earliest first, marked ``dialing``.
    ``agents``: the agents available now; a callback owned by another agent waits for its owner (None: any).
    ``ids``: only these callbacks (the dialer decided which, see ``callcore.dialer.callbacks``); a callback that
    is no longer callable (listed meanwhile, claimed by another dialer) is left out."""
    if limit <= 0:
        return []
    zones = _callable_zone_list(campaign, now)
    if not zones:
        return []
    rows = await db.fetch(
        f"""
        WITH picked AS (
            SELECT c.id FROM scheduled_callbacks c LEFT JOIN leads l ON l.id = c.lead_id
            WHERE {_callbacks_where(campaign)}
            ORDER BY c.due_at, c.id
            LIMIT $4
            FOR UPDATE OF c SKIP LOCKED
        )
        UPDATE scheduled_callbacks SET status = 'dialing', updated_at = $2 FROM picked
        WHERE scheduled_callbacks.id = picked.id RETURNING scheduled_callbacks.*
        """,
        campaign_name, now, zones, limit, agents, ids,
    )
    return sorted((_callback(r) for r in rows), key=lambda c: (c.due_at, c.id))


async def due_callbacks(
    db: Queryable, campaign_name: str, campaign: CampaignConfig, *, now: datetime, limit: int = 100,
) -> list[Callback]:
    """What :func:`claim_due_callbacks` could claim now, without claiming: the dialer decides who takes which
    (``callcore.dialer.callbacks``) before it claims them by id."""
    zones = _callable_zone_list(campaign, now)
    if not zones or limit <= 0:
        return []
    rows = await db.fetch(
        f"""SELECT c.* FROM scheduled_callbacks c LEFT JOIN leads l ON l.id = c.lead_id
        WHERE {_callbacks_where(campaign)} ORDER BY c.due_at, c.id LIMIT $4""",
        campaign_name, now, zones, limit, None, None,
    )
    return [_callback(r) for r in rows]


async def release_callbacks(db: Queryable, callback_ids: list[int], *, now: datetime) -> int:
    """Give claimed callbacks that were not dialled back (``dialing`` → ``pending``, still due, same owner)."""
    status = await db.execute(
        "UPDATE scheduled_callbacks SET status = 'pending', updated_at = $2 "
        "WHERE id = ANY($1::bigint[]) AND status = 'dialing'", callback_ids, now)
    return int(status.split()[-1])


async def recover_callback_claims(db: Queryable, campaign_name: str, *, now: datetime,
                                  keep: list[int] | None = None) -> int:
    """After a crash: callbacks left ``dialing`` by a process that is gone go back to ``pending``. ``keep``: the
    ones this process is dialling now (only one process dials a campaign: the HA leader)."""
    status = await db.execute(
        "UPDATE scheduled_callbacks SET status = 'pending', updated_at = $2 WHERE campaign = $1 "
        "AND status = 'dialing' AND NOT (id = ANY($3::bigint[]))", campaign_name, now, keep or [])
    return int(status.split()[-1])


async def lead_for_callback(db: Queryable, callback: Callback) -> Lead:
    """The lead a callback calls back; a callback of a bare number gets a stand-in lead (id 0: no lead row, so
    its attempts are stored without a lead)."""
    if callback.lead_id is not None:
        lead = await get_lead(db, callback.lead_id)
        if lead is not None:
            return lead
    return Lead(id=0, campaign=callback.campaign, number=callback.number, timezone=callback.timezone,
                timezones=(callback.timezone,), tz_source="campaign", name=None, fields={}, status="callback",
                priority=0, attempts=0, last_outcome=None, last_attempt_at=None, next_attempt_at=callback.due_at,
                disposition=None, source_line=None)


async def finish_callback(db: Queryable, callback_id: int, status: str, *, now: datetime,
                          from_status: str | None = None) -> bool:
    """``done`` (the call happened), ``failed`` (gave up), ``cancelled``, or ``pending`` (try again later).
    ``from_status``: only if the callback is in that status (the dialer finishes the ``dialing`` one it dialled,
    not one an agent's new disposition replaced meanwhile). Returns whether it changed."""
    if status not in ("pending", "done", "failed", "cancelled"):
        raise ValueError(f"bad callback status {status!r}")
    result = await db.execute(
        "UPDATE scheduled_callbacks SET status = $2, updated_at = $3 WHERE id = $1 "
        "AND ($4::text IS NULL OR status = $4)", callback_id, status, now, from_status)
    return result.split()[-1] != "0"


async def callbacks_of(db: Queryable, campaign_name: str, *, status: str = "pending") -> list[Callback]:
    rows = await db.fetch("SELECT * FROM scheduled_callbacks WHERE campaign = $1 AND status = $2 ORDER BY due_at, id",
                          campaign_name, status)
    return [_callback(r) for r in rows]


# ---- the abandonment ledger ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerWindow:
    start: datetime
    end: datetime
    attempts: int
    live_answers: int
    abandoned: int
    machine: int
    false_positives: float
    limit: float

    @property
    def rate(self) -> float:
        denominator = self.live_answers + self.false_positives
        return (self.abandoned + self.false_positives) / denominator if denominator > 0 else 0.0

    @property
    def passed(self) -> bool:
        return self.rate <= self.limit + 1e-12

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "attempts": self.attempts,
                "live_answers": self.live_answers, "abandoned": self.abandoned, "machine": self.machine,
                "false_positives": round(self.false_positives, 2), "rate": round(self.rate, 5), "limit": self.limit,
                "passed": self.passed}


def _fp_rate(policy: ResolvedAbandonPolicy, campaign: CampaignConfig | None) -> float:
    if not policy.count_machine_false_positives or campaign is None or not campaign.amd.enabled:
        return 0.0
    return campaign.amd.false_positive_estimate


async def abandonment_ledger(
    db: Queryable,
    campaign_name: str,
    campaign: CampaignConfig,
    *,
    since: datetime,
    until: datetime,
) -> list[LedgerWindow]:
    """Consecutive windows of the policy's ``window_seconds`` from ``since`` (the last one ends at ``until``,
    possibly shorter), each with its counts, rate and limit. Windows without attempts are included (an audit
    shows every period)."""
    policy = campaign.policy()
    fp = _fp_rate(policy, campaign)
    width = policy.window_seconds
    if until <= since:
        return []
    n = math.ceil((until - since).total_seconds() / width)
    rows = await db.fetch(
        """
        SELECT floor(extract(epoch FROM started_at - $2)::float8 / $4::float8)::int AS bucket,
               count(*) AS attempts,
               count(*) FILTER (WHERE outcome IN ('human', 'abandoned')) AS live,
               count(*) FILTER (WHERE abandoned) AS abandoned,
               count(*) FILTER (WHERE outcome = 'machine') AS machine
        FROM lead_attempts
        WHERE campaign = $1 AND started_at >= $2 AND started_at < $3
        GROUP BY 1
        """,
        campaign_name, since, until, width,
    )
    by_bucket = {r["bucket"]: r for r in rows}
    out = []
    for i in range(n):
        start = since + timedelta(seconds=i * width)
        end = min(since + timedelta(seconds=(i + 1) * width), until)
        r = by_bucket.get(i)
        machine = r["machine"] if r else 0
        out.append(LedgerWindow(
            start=start, end=end, attempts=r["attempts"] if r else 0, live_answers=r["live"] if r else 0,
            abandoned=r["abandoned"] if r else 0, machine=machine, false_positives=machine * fp, limit=policy.limit,
        ))
    return out


async def current_abandon_rate(
    db: Queryable, campaign_name: str, campaign: CampaignConfig, *, now: datetime
) -> LedgerWindow:
    """The rolling window ending ``now`` (what the pacer must keep under the limit)."""
    policy = campaign.policy()
    since = now - timedelta(seconds=policy.window_seconds)
    return (await _window(db, campaign_name, campaign, since, now))


async def _window(db: Queryable, campaign_name: str, campaign: CampaignConfig, since: datetime, until: datetime
                  ) -> LedgerWindow:
    policy = campaign.policy()
    r = await db.fetchrow(
        """
        SELECT count(*) AS attempts,
               count(*) FILTER (WHERE outcome IN ('human', 'abandoned')) AS live,
               count(*) FILTER (WHERE abandoned) AS abandoned,
               count(*) FILTER (WHERE outcome = 'machine') AS machine
        FROM lead_attempts WHERE campaign = $1 AND started_at >= $2 AND started_at < $3
        """,
        campaign_name, since, until,
    )
    return LedgerWindow(since, until, r["attempts"], r["live"], r["abandoned"], r["machine"],
                        r["machine"] * _fp_rate(policy, campaign), policy.limit)


async def first_attempt_at(db: Queryable, campaign_name: str) -> datetime | None:
    return await db.fetchval("SELECT min(started_at) FROM lead_attempts WHERE campaign = $1", campaign_name)


__all__ = [
    "LEAD_STATUSES",
    "Attempt",
    "Callback",
    "InvalidNumber",
    "Lead",
    "LeadUpdate",
    "LedgerWindow",
    "abandonment_ledger",
    "add_lead",
    "attempts_of",
    "callbacks_of",
    "claim_due_callbacks",
    "claim_due_leads",
    "current_abandon_rate",
    "due_callbacks",
    "due_leads",
    "finish_callback",
    "first_attempt_at",
    "get_lead",
    "lead_by_number",
    "lead_for_callback",
    "lead_counts",
    "may_dial",
    "record_attempt",
    "recently_abandoned",
    "recover_callback_claims",
    "recover_claims",
    "release_callbacks",
    "release_leads",
    "schedule_callback",
    "set_disposition",
]


@dataclass(frozen=True)
class LedgerEntry:
    """One attempt as the dialer's abandonment ledger counts it (see ``ledger_entries``)."""

    at: datetime
    outcome: str
    abandoned: bool
    number: str


async def ledger_entries(db: Queryable, campaign_name: str, *, since: datetime) -> list[LedgerEntry]:
    """The live answers, abandons and machine verdicts of a campaign recorded since ``since``, oldest first: what
    a (re)started dialer replays into its ledger, so the abandons already spent in the window still count."""
    rows = await db.fetch(
        """
        SELECT coalesce(ended_at, recorded_at) AS at, outcome, abandoned, number FROM lead_attempts
        WHERE campaign = $1 AND coalesce(ended_at, recorded_at) >= $2
          AND outcome IN ('human', 'abandoned', 'machine')
        ORDER BY 1, id
        """,
        campaign_name, since,
    )
    return [LedgerEntry(r["at"], r["outcome"], r["abandoned"], r["number"]) for r in rows]
