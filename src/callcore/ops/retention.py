"""Data retention: delete recordings and call data older than their limits, anonymise personal data older than its
limit (``retention:`` in the YAML, :class:`~callcore.ops.config.RetentionSettings`). ``callcore retention run``
runs it (a systemd timer runs that daily: deploy/callcore-retention.timer).

What one run does, in this order (each step only when its limit is set):

1. **recordings** older than ``recordings_days``: found through the call events that name them
   (``recording_started``/``recording_stopped`` of the ACD, ``ivr_recording`` of IVR and overflow voicemail);
   deleted through a :class:`RecordingDeleter` (live: ARI ``DELETE /recordings/stored/{name}``, an Asterisk that no
   longer has the file counts as deleted). Each deletion is recorded as a ``recording_deleted`` event of its call
   (through the event writer), so the next run skips it and an auditor sees when and why it went. A deletion that
   fails is reported and retried by the next run.
2. **personal data** older than ``personal_data_days`` is anonymised once per call (``calls.anonymised_at``),
   keeping every KPI computable:
   ``calls.caller_number`` (inbound), the number in an outbound call's ``did`` (its dial string), caller/callee
   names, the numbers in the call's event payloads and the configured ``personal_variables`` become markers.
   A number becomes ``anon:`` + 16 hex digits of HMAC-SHA256(salt, number): the same number always gives the same
   marker, so repeat-caller and first-contact-resolution KPIs still work, and nobody without the salt can go back
   (the salt is a secret file, ``state_dir/retention.salt`` by default; deleting it makes the markers unlinkable
   for good). Finished leads (done, exhausted, dnc, cancelled) and finished scheduled callbacks lose their name,
   CSV fields and note; their number (an E.164 ``CHECK`` column) becomes a pseudo number in the unassigned
   country code +999 derived from the same HMAC; ``lead_attempts`` keep every count and outcome with a marker.
   Leads still pending are live business data: they are not touched (``callcore gdpr forget`` removes one).
   Do-not-call entries are never touched: see :mod:`callcore.ops.gdpr`. Finished "call me now" requests
   (``web_callbacks``: done, failed, cancelled, expired) whose ``finished_at`` is older than the limit are deleted
   (the row is scheduler state holding the visitor's number and context; their events are anonymised above).
3. **calls and their events** older than ``call_events_days`` are deleted, in batches (one transaction each),
   after their recordings (a recording never outlives the events that lead to it; a call whose recording could not
   be deleted is kept for the next run).
4. **agent events** older than ``agent_events_days`` are deleted, except each agent's latest one (a restart
   restores agents' states from it).

``dry_run`` (or ``--dry-run``): every step runs in a transaction that is rolled back and no recording is deleted,
so the report gives the exact counts of a real run.

``call_events`` is otherwise append-only and written only by the event writer; retention and GDPR erasure are the
two documented exceptions (a legal obligation wins over an audit convenience).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import structlog

from callcore.events import CallEvent
from callcore.ops.config import RetentionSettings

log = structlog.get_logger("callcore.ops")

RECORDING_TYPES = ("recording_started", "recording_stopped", "ivr_recording")
RECORDING_DELETED = "recording_deleted"  # data: name, reason (retention | gdpr)
ANON_PREFIX = "anon:"
REDACTED = "anon:redacted"
PSEUDO_PREFIX = "+999"  # ITU country code 999 is unassigned: never a real number, yet valid for the E.164 CHECKs
FINISHED_LEAD_STATUSES = ("done", "exhausted", "dnc", "cancelled")
FINISHED_CALLBACK_STATUSES = ("done", "failed", "cancelled")
FINISHED_WEB_CALLBACK_STATUSES = ("done", "failed", "cancelled", "expired")

# Payload keys whose string value is a phone number of a person (the caller, a callee, a transfer target).
NUMBER_KEYS = frozenset({"caller_number", "number", "callback_number", "connected_number", "callee_number",
                         "from_number", "to_number", "caller_id_number"})
# Payload keys whose value is a person's name.
NAME_KEYS = frozenset({"caller_name", "callee_name", "connected_name", "customer_name", "caller_id_name"})
# Keys whose value is a dial string that may hold a number (``PJSIP/31612345678@trunk``).
DIAL_KEYS = frozenset({"endpoint", "dial_string", "destination"})
_NUMBER_IN_TEXT = re.compile(r"\+?[0-9]{6,}")
_MARKER = re.compile(r"anon:[0-9a-z]+")
# A stored recording name callcore may ask Asterisk to delete: no '..', no leading '/', no odd characters.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]*(/[A-Za-z0-9_][A-Za-z0-9_.:@-]*)*$")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ---- recordings ---------------------------------------------------------------------------------------------


class RecordingDeleter(Protocol):
    """Deletes one stored recording. Returns True when it was deleted, False when it was not there (already gone);
    raises when it could not be deleted (Asterisk unreachable, refused...): the caller reports and retries later."""

    async def delete(self, name: str) -> bool: ...


class AriRecordingDeleter:
    """The live deleter: ARI ``DELETE /recordings/stored/{name}`` (404: already gone)."""

    def __init__(self, ari: Any) -> None:
        self.ari = ari

    async def delete(self, name: str) -> bool:
        from callcore.ari.errors import AriNotFound

        try:
            await self.ari.recordings.delete_stored(name)
        except AriNotFound:
            return False
        return True


def safe_recording_name(name: object) -> bool:
    return isinstance(name, str) and ".." not in name and bool(_SAFE_NAME.match(name))


@dataclass
class RecordingsOutcome:
    found: list[str] = field(default_factory=list)  # due (dry run: would be deleted)
    deleted: int = 0
    missing: int = 0  # Asterisk no longer had it
    failed: dict[str, str] = field(default_factory=dict)  # name -> why
    listed: list[str] = field(default_factory=list)  # shown for review, not deleted (gdpr: calls that only mention)
    # (call, name) -> deleted (True) or failed (False), for every recording this run handled
    handled: dict[tuple[uuid.UUID, str], bool] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"found": len(self.found), "deleted": self.deleted, "missing": self.missing, "failed": self.failed,
                "names": self.found, "listed": self.listed}


async def delete_recordings(
    items: Iterable[tuple[uuid.UUID, str]], deleter: RecordingDeleter | None, outcome: RecordingsOutcome, *,
    dry_run: bool, sink: Any, reason: str, now: datetime | None = None,
) -> set[uuid.UUID]:
    """Delete each (call id, name); record ``recording_deleted`` events. Returns the calls whose deletion failed."""
    failed_calls: set[uuid.UUID] = set()
    for call_id, name in items:
        if (call_id, name) in outcome.handled:  # an earlier step of this run had it: same outcome
            if not outcome.handled[(call_id, name)]:
                failed_calls.add(call_id)
            continue
        outcome.handled[(call_id, name)] = True
        outcome.found.append(name)
        if dry_run:
            continue
        problem: str | None = None
        existed = False
        if not safe_recording_name(name):
            problem = "unsafe recording name: not sent to Asterisk (delete it by hand)"
        elif deleter is None:
            problem = "no recording deleter (Asterisk not configured)"
        else:
            try:
                existed = await deleter.delete(name)
            except Exception as exc:  # noqa: BLE001 - reported, retried by the next run
                problem = f"{type(exc).__name__}: {exc}"[:300]
        if problem is not None:
            outcome.failed[name] = problem
            outcome.handled[(call_id, name)] = False
            failed_calls.add(call_id)
            continue
        if existed:
            outcome.deleted += 1
        else:
            outcome.missing += 1
        if sink is not None:
            sink.emit(CallEvent(call_id=call_id, type=RECORDING_DELETED, at=now or utcnow(),
                                data={"name": name, "reason": reason, "existed": existed}))
    return failed_calls


async def pending_recordings(conn: Any, call_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """Recordings of these calls that no ``recording_deleted`` event covers yet, per call."""
    if not call_ids:
        return {}
    rows = await conn.fetch(
        "SELECT call_id, type, payload->>'name' AS name FROM call_events"
        " WHERE call_id = ANY($1::uuid[]) AND type = ANY($2::text[]) AND payload ? 'name' ORDER BY id",
        call_ids, [*RECORDING_TYPES, RECORDING_DELETED])
    names: dict[uuid.UUID, list[str]] = {}
    deleted: set[tuple[uuid.UUID, str]] = set()
    for r in rows:
        if r["type"] == RECORDING_DELETED:
            deleted.add((r["call_id"], r["name"]))
        elif r["name"] not in names.setdefault(r["call_id"], []):
            names[r["call_id"]].append(r["name"])
    return {c: [n for n in ns if (c, n) not in deleted] for c, ns in names.items()
            if any((c, n) not in deleted for n in ns)}


# ---- markers ------------------------------------------------------------------------------------------------


def salt_path(settings: RetentionSettings, state_dir: Path, base: Path | None = None) -> Path:
    """``retention.salt_file`` (relative to ``base``, the config's directory) or ``state_dir/retention.salt``."""
    path = settings.salt_file or state_dir / "retention.salt"
    return path if path.is_absolute() or base is None else base / path


def load_salt(settings: RetentionSettings, state_dir: Path, *, create: bool = True,
              base: Path | None = None) -> bytes | None:
    """The anonymisation salt (:func:`salt_path`); created (32 random bytes, hex, mode 0600) when missing and
    ``create``, else None when missing. A salt file others may read is refused (:mod:`callcore.ops.secrets`)."""
    from callcore.ops.secrets import read_secret_file, write_secret_file

    path = salt_path(settings, state_dir, base)
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        write_secret_file(path, secrets.token_hex(32))
        log.info("retention salt created", path=str(path))
    return read_secret_file(path).encode("utf-8")


class Pseudonyms:
    """Markers for numbers: ``anon:<16 hex>`` (HMAC of the salt), or one ``fixed`` marker (GDPR erasure: random,
    never derivable from the number); pseudo E.164 numbers (+999…) for the columns that must hold one."""

    def __init__(self, salt: bytes | None = None, *, fixed: str | None = None) -> None:
        if salt is None and fixed is None:
            raise ValueError("a salt or a fixed marker is needed")
        self.salt = salt
        self.fixed = fixed

    def _digest(self, value: str, extra: str = "") -> bytes:
        assert self.salt is not None
        return hmac.new(self.salt, (value.strip() + extra).encode("utf-8"), hashlib.sha256).digest()

    def marker(self, value: str) -> str:
        if self.fixed is not None:
            return self.fixed
        return ANON_PREFIX + self._digest(value).hex()[:16]

    def pseudo_e164(self, value: str, attempt: int = 0) -> str:
        """``+999`` and 12 digits: from the HMAC (same number → same pseudo number), random with a fixed marker."""
        if self.fixed is not None or self.salt is None:
            digits = secrets.randbelow(10**12)
        else:
            digits = int.from_bytes(self._digest(value, f"#{attempt}" if attempt else "")[:8], "big") % 10**12
        return f"{PSEUDO_PREFIX}{digits:012d}"


def numbers_pattern(numbers: Iterable[str]) -> re.Pattern[str] | None:
    """A regex matching any of ``numbers`` not inside a longer digit run (longest first)."""
    alts = sorted({n for n in numbers if n}, key=len, reverse=True)
    if not alts:
        return None
    return re.compile(r"(?<![0-9])(?:" + "|".join(re.escape(a) for a in alts) + r")(?![0-9])")


def numbers_in(text: str) -> set[str]:
    """Number-looking runs (6+ digits, optional +) of a text, markers left out."""
    return set(_NUMBER_IN_TEXT.findall(_MARKER.sub("", text)))


@dataclass
class Scrubber:
    """Rewrites a JSON value: numbers matched by ``pattern`` → markers; the values of ``variables`` keys →
    ``anon:redacted``; with ``personal`` also NUMBER_KEYS values (→ marker) and NAME_KEYS values (→ null)."""

    pseudonyms: Pseudonyms
    pattern: re.Pattern[str] | None
    personal: bool = True
    variables: frozenset[str] = frozenset()

    def text(self, value: str) -> str:
        if self.pattern is None or not value:
            return value
        return self.pattern.sub(lambda m: self.pseudonyms.marker(m.group(0)), value)

    def value(self, value: Any, key: str | None = None) -> Any:
        if key is not None and value is not None:
            if key in self.variables:
                return value if isinstance(value, str) and value.startswith(ANON_PREFIX) else REDACTED
            if self.personal and key in NAME_KEYS:
                return None
            if (self.personal and key in NUMBER_KEYS and isinstance(value, str) and value
                    and not value.startswith(ANON_PREFIX)):
                return self.pseudonyms.marker(value)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def personal_numbers(payloads: Iterable[Mapping[str, Any]]) -> set[str]:
    """Numbers of people in event payloads: NUMBER_KEYS values and the numbers in dial strings (recursively)."""
    found: set[str] = set()

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, None)
        elif isinstance(value, str) and key is not None:
            if key in NUMBER_KEYS and value and not value.startswith(ANON_PREFIX):
                found.add(value)
                found.update(numbers_in(value))
            elif key in DIAL_KEYS:
                found.update(numbers_in(value))

    for p in payloads:
        walk(p, None)
    return found


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class _Rollback(Exception):
    """Raised inside a transaction to undo it (dry runs)."""


# ---- the job ------------------------------------------------------------------------------------------------


@dataclass
class RetentionReport:
    dry_run: bool
    now: datetime
    cutoffs: dict[str, datetime | None]
    recordings: RecordingsOutcome = field(default_factory=RecordingsOutcome)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.recordings.failed

    def add(self, key: str, n: int) -> None:
        if n:
            self.counts[key] = self.counts.get(key, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "now": self.now.isoformat(),
                "cutoffs": {k: v.isoformat() if v else None for k, v in self.cutoffs.items()},
                "recordings": self.recordings.as_dict(), "counts": dict(self.counts), "ok": self.ok}

    def format(self) -> str:
        verb = "would" if self.dry_run else "did"
        lines = [f"retention run at {self.now:%Y-%m-%d %H:%M:%S}Z{' (dry run: nothing changed)' if self.dry_run else ''}"]
        for k, v in self.cutoffs.items():
            lines.append(f"  {k:<20} {'keep forever' if v is None else f'before {v:%Y-%m-%d %H:%M}Z'}")
        r = self.recordings
        lines.append(f"recordings: {len(r.found)} due" + ("" if self.dry_run else
                                                          f", {r.deleted} deleted, {r.missing} already gone, "
                                                          f"{len(r.failed)} failed"))
        for name in r.found[:20] if self.dry_run else []:
            lines.append(f"  {verb} delete {name}")
        if self.dry_run and len(r.found) > 20:
            lines.append(f"  … and {len(r.found) - 20} more (--json lists all)")
        for name, why in r.failed.items():
            lines.append(f"  FAILED {name}: {why}")
        for key, n in self.counts.items():
            lines.append(f"{key.replace('_', ' ')}: {n}")
        return "\n".join(lines)


def cutoffs(settings: RetentionSettings, now: datetime) -> dict[str, datetime | None]:
    def before(days: int | None) -> datetime | None:
        return None if days is None else now - timedelta(days=days)

    return {"recordings": before(settings.recordings_days), "personal_data": before(settings.personal_data_days),
            "call_events": before(settings.call_events_days), "agent_events": before(settings.agent_events_days)}


async def run_retention(
    db: Any, settings: RetentionSettings, *, salt: bytes | None, deleter: RecordingDeleter | None,
    sink: Any = None, now: datetime | None = None, dry_run: bool | None = None,
) -> RetentionReport:
    """One retention run (see the module docstring). ``db``: an asyncpg pool; ``sink``: where ``recording_deleted``
    events go (an EventWriter; None: one is created on ``db`` for the run)."""
    now = now or utcnow()
    dry = settings.dry_run if dry_run is None else dry_run
    report = RetentionReport(dry, now, cutoffs(settings, now))
    own_writer = None
    if sink is None and not dry:
        from callcore.store.writer import EventWriter

        own_writer = sink = EventWriter(db, batch_max=500, flush_interval=0.2)
        await own_writer.start()
    try:
        c = report.cutoffs
        if c["recordings"] is not None:
            await _recordings_step(db, c["recordings"], settings.batch_size, deleter, sink, report)
            if sink is not None and hasattr(sink, "flush"):
                await sink.flush()  # written before anything else reads the recording events
        if c["personal_data"] is not None:
            if salt is None:
                raise ValueError("anonymising needs the retention salt")
            pseudo = Pseudonyms(salt)
            await _anonymise_calls(db, c["personal_data"], settings, pseudo, report)
            await _anonymise_outbound_rows(db, c["personal_data"], settings.batch_size, pseudo, report)
            await _delete_web_callbacks(db, c["personal_data"], settings.batch_size, report)
        if c["call_events"] is not None:
            await _delete_calls(db, c["call_events"], settings.batch_size, deleter, sink, report)
        if c["agent_events"] is not None:
            await _delete_agent_events(db, c["agent_events"], settings.batch_size, report)
        if sink is not None and hasattr(sink, "flush"):
            await sink.flush()
    finally:
        if own_writer is not None:
            await own_writer.close()
    log.info("retention run done", dry_run=dry, counts=report.counts, recordings_deleted=report.recordings.deleted,
             recordings_failed=len(report.recordings.failed))
    return report


async def _in_tx(db: Any, dry: bool, work: Callable[[Any], Any]) -> Any:
    """Run ``work(conn)`` in a transaction; roll it back when ``dry``. Returns what ``work`` returned."""
    result: Any = None
    async with db.acquire() as conn:
        try:
            async with conn.transaction():
                result = await work(conn)
                if dry:
                    raise _Rollback
        except _Rollback:
            pass
    return result


async def _recordings_step(db: Any, cutoff: datetime, batch: int, deleter: RecordingDeleter | None, sink: Any,
                           report: RetentionReport) -> None:
    """Recordings whose every event is older than ``cutoff``, not deleted yet: delete them, oldest first."""
    key: tuple[datetime, int] = (datetime.min.replace(tzinfo=timezone.utc), 0)
    seen: set[tuple[uuid.UUID, str]] = set()
    while True:
        async with db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, call_id, occurred_at, payload->>'name' AS name FROM call_events"
                " WHERE type = ANY($1::text[]) AND occurred_at < $2 AND (occurred_at, id) > ($3, $4)"
                " AND payload ? 'name' ORDER BY occurred_at, id LIMIT $5",
                list(RECORDING_TYPES), cutoff, key[0], key[1], batch)
            if not rows:
                return
            key = (rows[-1]["occurred_at"], rows[-1]["id"])
            calls = list({r["call_id"] for r in rows})
            related = await conn.fetch(
                "SELECT call_id, type, occurred_at, payload->>'name' AS name FROM call_events"
                " WHERE call_id = ANY($1::uuid[]) AND type = ANY($2::text[]) AND payload ? 'name'",
                calls, [*RECORDING_TYPES, RECORDING_DELETED])
        done = {(r["call_id"], r["name"]) for r in related if r["type"] == RECORDING_DELETED}
        recent = {(r["call_id"], r["name"]) for r in related
                  if r["type"] != RECORDING_DELETED and r["occurred_at"] >= cutoff}
        due: list[tuple[uuid.UUID, str]] = []
        for r in rows:
            item = (r["call_id"], r["name"])
            if item in seen or item in done or item in recent:
                continue
            seen.add(item)
            due.append(item)
        await delete_recordings(due, deleter, report.recordings, dry_run=report.dry_run, sink=sink,
                                reason="retention", now=report.now)


_CALLS_TO_ANONYMISE = """
SELECT call_id, started_at, direction, did, caller_number, caller_name, variables FROM calls
WHERE anonymised_at IS NULL AND started_at < $1 AND (started_at, call_id) > ($2, $3)
ORDER BY started_at, call_id
LIMIT $4
"""


async def _anonymise_calls(db: Any, cutoff: datetime, settings: RetentionSettings, pseudo: Pseudonyms,
                           report: RetentionReport) -> None:
    key: tuple[datetime, uuid.UUID] = (datetime.min.replace(tzinfo=timezone.utc), uuid.UUID(int=0))
    variables = frozenset(settings.personal_variables)
    while True:
        async def work(conn: Any) -> tuple[int, int, tuple[datetime, uuid.UUID] | None]:
            rows = await conn.fetch(_CALLS_TO_ANONYMISE, cutoff, key[0], key[1], settings.batch_size)
            if not rows:
                return 0, 0, None
            events = await conn.fetch("SELECT event_id, call_id, payload FROM call_events"
                                      " WHERE call_id = ANY($1::uuid[])", [r["call_id"] for r in rows])
            by_call: dict[uuid.UUID, list[Any]] = {}
            for e in events:
                by_call.setdefault(e["call_id"], []).append(e)
            call_updates: list[tuple[Any, ...]] = []
            event_updates: list[tuple[uuid.UUID, str]] = []
            for r in rows:
                mine = by_call.get(r["call_id"], [])
                payloads = [_json(e["payload"]) or {} for e in mine]
                numbers = personal_numbers(payloads)
                outbound = r["direction"] == "outbound"
                caller = r["caller_number"]
                personal_caller = (not outbound and bool(caller) and not caller.startswith(ANON_PREFIX)
                                   and any(ch.isdigit() for ch in caller))
                if personal_caller:
                    numbers.add(caller)
                if outbound and r["did"]:
                    numbers |= numbers_in(r["did"])
                scrub = Scrubber(pseudo, numbers_pattern(n for n in numbers if len(n) >= 6), True, variables)
                for e, payload in zip(mine, payloads):
                    new = scrub.value(payload)
                    if new != payload:
                        event_updates.append((e["event_id"], json.dumps(new)))
                new_caller = pseudo.marker(caller) if personal_caller else caller
                new_did = scrub.text(r["did"]) if outbound and r["did"] else r["did"]
                old_vars = _json(r["variables"]) or {}
                new_vars = scrub.value(old_vars)
                call_updates.append((r["call_id"], new_caller, new_did, json.dumps(new_vars)))
            await conn.executemany(
                "UPDATE calls SET caller_number = $2, caller_name = NULL, did = $3, variables = $4::text::jsonb,"
                " updated_at = now(), anonymised_at = now() WHERE call_id = $1", call_updates)
            if event_updates:
                await conn.executemany("UPDATE call_events SET payload = $2::text::jsonb WHERE event_id = $1",
                                       event_updates)
            return len(call_updates), len(event_updates), (rows[-1]["started_at"], rows[-1]["call_id"])

        n_calls, n_events, last = await _in_tx(db, report.dry_run, work)
        if last is None:
            return
        key = last
        report.add("calls_anonymised", n_calls)
        report.add("events_anonymised", n_events)


async def update_pseudo_numbers(conn: Any, table: str, rows: list[tuple[int, str, str]],
                                extra_set: str = "") -> int:
    """Set ``number`` of each (id, number, pseudo) row (a savepoint per row: a pseudo number already taken in the
    same campaign is retried with another one)."""
    import asyncpg

    n = 0
    for row_id, number, pseudo in rows:
        for attempt in range(5):
            try:
                async with conn.transaction():
                    await conn.execute(f"UPDATE {table} SET number = $2{extra_set} WHERE id = $1", row_id, pseudo)
                n += 1
                break
            except asyncpg.UniqueViolationError:
                pseudo = f"{PSEUDO_PREFIX}{secrets.randbelow(10**12):012d}"
        else:
            raise RuntimeError(f"{table} {row_id}: no free pseudo number after 5 attempts")
    return n


async def _anonymise_outbound_rows(db: Any, cutoff: datetime, batch: int, pseudo: Pseudonyms,
                                   report: RetentionReport) -> None:
    """Finished leads and callbacks, and dial attempts, older than ``cutoff``."""
    async def paged(select: str, apply: Callable[[Any, list[Any]], Any], counter: str) -> None:
        last_id = 0
        while True:
            async def work(conn: Any) -> tuple[int, int | None]:
                rows = await conn.fetch(select, cutoff, last_id, batch)
                if not rows:
                    return 0, None
                return await apply(conn, rows), rows[-1]["id"]

            n, last = await _in_tx(db, report.dry_run, work)
            if last is None:
                return
            last_id = last
            report.add(counter, n)

    async def leads(conn: Any, rows: list[Any]) -> int:
        await conn.execute("UPDATE leads SET name = NULL, fields = '{}'::jsonb, updated_at = now()"
                           " WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        return await update_pseudo_numbers(conn, "leads", [(r["id"], r["number"], pseudo.pseudo_e164(r["number"]))
                                                           for r in rows])

    async def attempts(conn: Any, rows: list[Any]) -> int:
        await conn.executemany("UPDATE lead_attempts SET number = $2 WHERE id = $1",
                               [(r["id"], pseudo.marker(r["number"])) for r in rows])
        return len(rows)

    async def callbacks(conn: Any, rows: list[Any]) -> int:
        await conn.executemany("UPDATE scheduled_callbacks SET number = $2, note = '', updated_at = now()"
                               " WHERE id = $1", [(r["id"], pseudo.pseudo_e164(r["number"])) for r in rows])
        return len(rows)

    statuses = ", ".join(f"'{s}'" for s in FINISHED_LEAD_STATUSES)
    await paged(f"SELECT id, number FROM leads WHERE status IN ({statuses}) AND updated_at < $1 AND id > $2"
                f" AND number NOT LIKE '{PSEUDO_PREFIX}%' ORDER BY id LIMIT $3", leads, "leads_anonymised")
    await paged("SELECT id, number FROM lead_attempts WHERE started_at < $1 AND id > $2"
                " AND number NOT LIKE 'anon:%' ORDER BY id LIMIT $3", attempts, "attempts_anonymised")
    cb_statuses = ", ".join(f"'{s}'" for s in FINISHED_CALLBACK_STATUSES)
    await paged(f"SELECT id, number FROM scheduled_callbacks WHERE status IN ({cb_statuses}) AND updated_at < $1"
                f" AND id > $2 AND number NOT LIKE '{PSEUDO_PREFIX}%' ORDER BY id LIMIT $3", callbacks,
                "callbacks_anonymised")


async def _delete_web_callbacks(db: Any, cutoff: datetime, batch: int, report: RetentionReport) -> None:
    """Finished "call me now" requests (done, failed, cancelled, expired) older than ``cutoff`` are deleted: the row
    is only the scheduler's state (number, the visitor's context); the request's call events stay, anonymised
    with the calls. Open requests are live promises to a customer and are kept."""
    key: tuple[datetime, uuid.UUID] = (datetime.min.replace(tzinfo=timezone.utc), uuid.UUID(int=0))
    while True:
        async def work(conn: Any) -> tuple[int, tuple[datetime, uuid.UUID] | None]:
            if not await conn.fetchval("SELECT to_regclass('web_callbacks') IS NOT NULL"):
                return 0, None
            rows = await conn.fetch(
                "SELECT id, finished_at FROM web_callbacks WHERE finished_at < $1 AND status = ANY($2::text[])"
                " AND (finished_at, id) > ($3, $4) ORDER BY finished_at, id LIMIT $5",
                cutoff, list(FINISHED_WEB_CALLBACK_STATUSES), key[0], key[1], batch)
            if not rows:
                return 0, None
            status = await conn.execute("DELETE FROM web_callbacks WHERE id = ANY($1::uuid[])",
                                        [r["id"] for r in rows])
            return int(status.split()[-1]), (rows[-1]["finished_at"], rows[-1]["id"])

        n, last = await _in_tx(db, report.dry_run, work)
        if last is None:
            return
        key = last
        report.add("web_callbacks_deleted", n)


async def _delete_calls(db: Any, cutoff: datetime, batch: int, deleter: RecordingDeleter | None, sink: Any,
                        report: RetentionReport) -> None:
    key: tuple[datetime, uuid.UUID] = (datetime.min.replace(tzinfo=timezone.utc), uuid.UUID(int=0))
    while True:
        async with db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT call_id, started_at FROM calls WHERE started_at < $1 AND (ended_at IS NULL OR ended_at < $1)"
                " AND (started_at, call_id) > ($2, $3) ORDER BY started_at, call_id LIMIT $4",
                cutoff, key[0], key[1], batch)
            if not rows:
                return
            key = (rows[-1]["started_at"], rows[-1]["call_id"])
            ids = [r["call_id"] for r in rows]
            pending = await pending_recordings(conn, ids)
        # A recording never outlives its call's events: delete it first; keep the call if that fails.
        kept = await delete_recordings([(c, n) for c, names in pending.items() for n in names], deleter,
                                       report.recordings, dry_run=report.dry_run, sink=sink, reason="retention",
                                       now=report.now)
        if sink is not None and hasattr(sink, "flush") and not report.dry_run:
            await sink.flush()  # the recording_deleted events are written before their call goes
        doomed = [c for c in ids if c not in kept]

        async def work(conn: Any) -> tuple[int, int]:
            events = await conn.execute("DELETE FROM call_events WHERE call_id = ANY($1::uuid[])", doomed)
            calls = await conn.execute("DELETE FROM calls WHERE call_id = ANY($1::uuid[])", doomed)
            return int(events.split()[-1]), int(calls.split()[-1])

        n_events, n_calls = await _in_tx(db, report.dry_run, work)
        report.add("calls_deleted", n_calls)
        report.add("events_deleted", n_events)
        if kept:
            report.add("calls_kept_for_their_recordings", len(kept))


async def _delete_agent_events(db: Any, cutoff: datetime, batch: int, report: RetentionReport) -> None:
    last_id = 0
    while True:
        async def work(conn: Any) -> tuple[int, int | None]:
            rows = await conn.fetch(
                "SELECT id FROM agent_events a WHERE occurred_at < $1 AND id > $2"
                " AND id <> (SELECT max(b.id) FROM agent_events b WHERE b.agent_id = a.agent_id)"
                " ORDER BY id LIMIT $3", cutoff, last_id, batch)
            if not rows:
                return 0, None
            status = await conn.execute("DELETE FROM agent_events WHERE id = ANY($1::bigint[])",
                                        [r["id"] for r in rows])
            return int(status.split()[-1]), rows[-1]["id"]

        n, last = await _in_tx(db, report.dry_run, work)
        if last is None:
            return
        last_id = last
        report.add("agent_events_deleted", n)



__all__ = [
    "ANON_PREFIX", "AriRecordingDeleter", "NAME_KEYS", "NUMBER_KEYS", "PSEUDO_PREFIX", "Pseudonyms", "RECORDING_DELETED",
    "RECORDING_TYPES", "RecordingDeleter", "RecordingsOutcome", "RetentionReport", "Scrubber", "cutoffs",
    "delete_recordings", "load_salt", "numbers_in", "numbers_pattern", "pending_recordings", "personal_numbers",
    "run_retention", "safe_recording_name", "salt_path", "utcnow",
]
