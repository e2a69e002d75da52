"""``callcore gdpr forget NUMBER``: erase a caller's data on request (GDPR art. 17), keeping the statistics.

What happens to each trace of the number (in every spelling: E.164, without ``+``, ``00…``, the national form, and
the retention markers it may already have become):

* **recordings** of the person's calls (as caller, as callee of an outbound call or a dial attempt) are deleted
  through the recording deleter *first*; if one cannot be deleted nothing else is changed (the number is what finds
  the calls: anonymising first would lose the way to their recordings). Recordings of calls that merely mention
  the number (e.g. a transfer to it) are listed for review, not deleted.
* **calls and call events**: the number becomes one random marker (``anon:`` + 16 hex digits, generated for this
  erasure and never derivable from the number, so nobody can find the person again, while the person's calls
  still count together in KPIs), names of the caller and the configured personal variables of their calls are
  removed; every other field (times, queues, agents, outcomes) stays, so reports stay right.
* **leads** of the number lose it (a pseudo number in the unassigned country code +999), their name and CSV
  fields; pending ones are cancelled. **lead_attempts** keep their counts, outcomes and compliance flags with the
  marker instead of the number. **scheduled callbacks** are cancelled and lose number and note.
* **"call me now" requests** (``web_callbacks``) lose the number (a +999 pseudo number) and the visitor's context;
  one still waiting or ringing is cancelled, so it is never dialled later. Their per-number request counts go.
* **webhook deliveries** still queued or kept (``webhook_outbox``) and stored API replies (``idempotency_keys``)
  that contain the number are anonymised or deleted.
* **do-not-call entries are kept**: a do-not-call wish is itself a request about the number, and honouring it
  needs the number. Deleting it would make the next imported list call the person again, the opposite of what
  they asked; the GDPR lets a controller keep what it needs to comply with an objection (art. 17(3)(b), art. 21(3)).
  The entry holds the number, a reason and a date: nothing else.

Everything in the database happens in one transaction (a dry run rolls it back, so its counts are exact). The
report names the number (the operator typed it); the log never does.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from callcore.ops.retention import (
    ANON_PREFIX,
    NAME_KEYS,
    PSEUDO_PREFIX,
    RECORDING_TYPES,
    Pseudonyms,
    RecordingDeleter,
    RecordingsOutcome,
    Scrubber,
    _json,
    _Rollback,
    delete_recordings,
    numbers_pattern,
    pending_recordings,
    update_pseudo_numbers,
    utcnow,
)

log = structlog.get_logger("callcore.ops")

_SEPARATORS = re.compile(r"[\s\-().]")
MIN_DIGITS = 6


class ForgetError(ValueError):
    """The number cannot be searched safely (the message says why)."""


def number_variants(number: str, region: str | None = None) -> tuple[str | None, list[str]]:
    """(E.164 or None, every spelling to look for, longest first). Raises :class:`ForgetError`."""
    import phonenumbers

    raw = _SEPARATORS.sub("", number.strip())
    if raw.lower().startswith("tel:"):
        raw = raw[4:]
    if not re.fullmatch(r"\+?[0-9]+", raw):
        raise ForgetError(f"{number!r} is not a phone number (digits, an optional leading +)")
    if len(raw.lstrip("+")) < MIN_DIGITS:
        raise ForgetError(f"{number!r} is too short to search for safely (at least {MIN_DIGITS} digits)")
    variants = {raw}
    e164: str | None = None
    try:
        parsed = phonenumbers.parse(raw, None if raw.startswith("+") else region)
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        if not raw.startswith("+") and region is None:
            raise ForgetError(f"{number!r} has no country code: write it as +<country><number> or pass --region "
                              "(e.g. --region NL)") from None
        if raw.startswith("+"):
            e164 = raw
    if e164 is not None:
        digits = e164[1:]
        variants |= {e164, digits, "00" + digits}
        try:
            national = phonenumbers.format_number(phonenumbers.parse(e164, None),
                                                  phonenumbers.PhoneNumberFormat.NATIONAL)
            national = re.sub(r"[^0-9]", "", national)
            if len(national) >= MIN_DIGITS:
                variants.add(national)
        except phonenumbers.NumberParseException:
            pass
    return e164, sorted(variants, key=lambda v: (-len(v), v))


@dataclass
class ForgetReport:
    number: str
    dry_run: bool
    variants: list[str]
    recordings: RecordingsOutcome = field(default_factory=RecordingsOutcome)
    counts: dict[str, int] = field(default_factory=dict)
    dnc_kept: int = 0
    aborted: str | None = None

    @property
    def ok(self) -> bool:
        return self.aborted is None and not self.recordings.failed

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "dry_run": self.dry_run, "variants": self.variants, "ok": self.ok,
                "aborted": self.aborted, "recordings": self.recordings.as_dict(), "counts": dict(self.counts),
                "dnc_entries_kept": self.dnc_kept}

    def format(self) -> str:
        head = f"GDPR erasure of {self.number}"
        if self.dry_run:
            head += " (dry run: nothing changed)"
        lines = [head, f"  searched as: {', '.join(self.variants)}"]
        if self.aborted:
            lines.append(f"ABORTED: {self.aborted}")
        r = self.recordings
        verb = "to delete" if self.dry_run else "deleted"
        lines.append(f"recordings {verb}: {len(r.found) if self.dry_run else r.deleted}"
                     + ("" if self.dry_run else f" ({r.missing} already gone, {len(r.failed)} failed)"))
        for name in r.found:
            lines.append(f"  {name}")
        for name, why in r.failed.items():
            lines.append(f"  FAILED {name}: {why}")
        if r.listed:
            lines.append("recordings of calls that only mention the number (review; not deleted):")
            lines.extend(f"  {name}" for name in r.listed)
        labels = {
            "calls": "calls anonymised", "events": "call events anonymised", "leads": "leads anonymised",
            "leads_cancelled": "  of which still active, now cancelled", "attempts": "dial attempts anonymised",
            "callbacks": "scheduled callbacks anonymised/cancelled", "webhook_deliveries": "webhook deliveries anonymised",
            "api_replies": "stored API replies deleted",
            "web_callbacks": "web callback requests anonymised",
            "web_callbacks_cancelled": "  of which still waiting, now cancelled",
            "callback_quota": "callback request counts deleted",
        }
        for key, label in labels.items():
            if key in self.counts:
                lines.append(f"{label}: {self.counts[key]}")
        lines.append(f"do-not-call entries kept: {self.dnc_kept} (a do-not-call wish must survive the erasure)")
        return "\n".join(lines)


def _likes(values: Iterable[str]) -> list[str]:
    return [f"%{v}%" for v in values]


async def forget_number(
    db: Any, number: str, *, region: str | None = None, salt: bytes | None = None,
    deleter: RecordingDeleter | None = None, sink: Any = None, dry_run: bool = False,
    skip_recordings: bool = False, personal_variables: Iterable[str] = (),
) -> ForgetReport:
    """Erase ``number`` (see the module docstring). ``salt``: the retention salt, to find data the retention job
    already pseudonymised (None: not searched). ``skip_recordings``: anonymise even though recordings could not be
    deleted (they are listed in the report for deletion by hand)."""
    e164, variants = number_variants(number, region)
    report = ForgetReport(number, dry_run, variants)
    retention = Pseudonyms(salt) if salt is not None else None
    markers = sorted({retention.marker(v) for v in variants}) if retention else []
    e164s = [e164] if e164 else []
    pseudos = sorted({retention.pseudo_e164(e) for e in e164s}) if retention else []
    numbers = [*variants, *markers]
    marker = ANON_PREFIX + secrets.token_hex(8)
    erase = Pseudonyms(fixed=marker)
    scrub_mine = Scrubber(erase, numbers_pattern(numbers), personal=False)
    variables = frozenset(personal_variables)

    async with db.acquire() as conn:
        theirs = {r["call_id"] for r in await conn.fetch(
            "SELECT call_id FROM calls WHERE caller_number = ANY($1::text[]) OR did LIKE ANY($2::text[])",
            numbers, _likes(numbers))}
        theirs |= {r["call_id"] for r in await conn.fetch(
            "SELECT DISTINCT call_id FROM lead_attempts WHERE number = ANY($1::text[]) AND call_id IS NOT NULL",
            numbers)}
        # Every other trace: a full scan of the event payloads (an erasure is rare; this is its price).
        mentioned = {r["call_id"] for r in await conn.fetch(
            "SELECT DISTINCT call_id FROM call_events WHERE payload::text LIKE ANY($1::text[])", _likes(numbers))}
        mentioned -= theirs
        callers = {r["call_id"] for r in await conn.fetch(
            "SELECT call_id FROM calls WHERE call_id = ANY($1::uuid[]) AND caller_number = ANY($2::text[])",
            list(theirs), numbers)}
        recs = await pending_recordings(conn, sorted(theirs))
        other_recs = await pending_recordings(conn, sorted(mentioned))
    report.recordings.listed = [n for names in other_recs.values() for n in names]

    items = [(c, n) for c, names in recs.items() for n in names]
    if skip_recordings:
        report.recordings.found = [n for _, n in items]
    elif items:
        own_writer = None
        if sink is None and not dry_run:
            from callcore.store.writer import EventWriter

            own_writer = sink = EventWriter(db, batch_max=500, flush_interval=0.2)
            await own_writer.start()
        try:
            failed = await delete_recordings(items, deleter, report.recordings, dry_run=dry_run, sink=sink,
                                             reason="gdpr", now=utcnow())
            if sink is not None and hasattr(sink, "flush") and not dry_run:
                await sink.flush()  # the recording_deleted events are written before their calls are rewritten
        finally:
            if own_writer is not None:
                await own_writer.close()
        if failed:
            report.aborted = ("some recordings could not be deleted, so nothing was anonymised (the number is what "
                              "finds them): fix the cause and run again, or pass --skip-recordings and delete the "
                              "listed recordings by hand")
            log.error("gdpr erasure aborted: recordings could not be deleted", failed=len(failed))
            return report

    async with db.acquire() as conn:
        try:
            async with conn.transaction():
                await _erase(conn, report, theirs | mentioned, theirs, callers, numbers, e164s + pseudos,
                             scrub_mine, erase, variables)
                if dry_run:
                    raise _Rollback
        except _Rollback:
            pass
    log.info("gdpr erasure done", dry_run=dry_run, counts=report.counts, recordings=report.recordings.deleted,
             dnc_kept=report.dnc_kept)
    return report


async def _erase(conn: Any, report: ForgetReport, calls: set[uuid.UUID], theirs: set[uuid.UUID],
                 callers: set[uuid.UUID], numbers: list[str], lead_numbers: list[str], scrub_mine: Scrubber,
                 erase: Pseudonyms, variables: frozenset[str]) -> None:
    counts = report.counts
    # -- call events: the number everywhere; in the person's own calls also names and personal variables.
    scrub_theirs = Scrubber(erase, scrub_mine.pattern, personal=False, variables=variables)
    n_events = 0
    ids = sorted(calls)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = await conn.fetch("SELECT event_id, call_id, payload FROM call_events WHERE call_id = ANY($1::uuid[])",
                                chunk)
        updates = []
        for r in rows:
            payload = _json(r["payload"]) or {}
            new = _scrub_call_payload(payload, r["call_id"] in theirs, scrub_mine, scrub_theirs)
            if new != payload:
                updates.append((r["event_id"], json.dumps(new)))
        if updates:
            await conn.executemany("UPDATE call_events SET payload = $2::text::jsonb WHERE event_id = $1", updates)
        n_events += len(updates)
    counts["events"] = n_events
    # -- calls rows
    rows = await conn.fetch("SELECT call_id, caller_number, caller_name, did, variables FROM calls"
                            " WHERE call_id = ANY($1::uuid[])", ids)
    updates = []
    for r in rows:
        mine = r["call_id"] in theirs
        caller = erase.marker("") if r["call_id"] in callers else (
            scrub_mine.text(r["caller_number"]) if r["caller_number"] else r["caller_number"])
        name = None if r["call_id"] in callers else r["caller_name"]
        did = scrub_mine.text(r["did"]) if r["did"] else r["did"]
        old_vars = _json(r["variables"]) or {}
        new_vars = (scrub_theirs if mine else scrub_mine).value(old_vars)
        updates.append((r["call_id"], caller, name, did, json.dumps(new_vars), mine))
    await conn.executemany("UPDATE calls SET caller_number = $2, caller_name = $3, did = $4, variables = $5::text::jsonb,"
                           " updated_at = now(), anonymised_at = CASE WHEN $6 THEN now() ELSE anonymised_at END"
                           " WHERE call_id = $1", updates)
    counts["calls"] = len(updates)
    # -- leads: pseudo number, no name or fields; active ones cancelled
    leads = await conn.fetch("SELECT id, number, status FROM leads WHERE number = ANY($1::text[])", lead_numbers)
    if leads:
        active = [r["id"] for r in leads if r["status"] in ("pending", "callback")]
        await conn.execute("UPDATE leads SET name = NULL, fields = '{}'::jsonb, updated_at = now(),"
                           " status = CASE WHEN status IN ('pending', 'callback') THEN 'cancelled' ELSE status END"
                           " WHERE id = ANY($1::bigint[])", [r["id"] for r in leads])
        await update_pseudo_numbers(conn, "leads", [(r["id"], r["number"], erase.pseudo_e164(r["number"]))
                                                    for r in leads])
        counts["leads_cancelled"] = len(active)
    counts["leads"] = len(leads)
    status = await conn.execute("UPDATE lead_attempts SET number = $2 WHERE number = ANY($1::text[])", numbers,
                                erase.marker(""))
    counts["attempts"] = int(status.split()[-1])
    cbs = await conn.fetch("SELECT id FROM scheduled_callbacks WHERE number = ANY($1::text[])", lead_numbers)
    await conn.executemany(
        "UPDATE scheduled_callbacks SET number = $2, note = '', updated_at = now(),"
        " status = CASE WHEN status IN ('pending', 'dialing') THEN 'cancelled' ELSE status END WHERE id = $1",
        [(r["id"], erase.pseudo_e164("")) for r in cbs])
    counts["callbacks"] = len(cbs)
    # -- tables of other features, when this database has them
    likes = _likes(numbers)
    if await conn.fetchval("SELECT to_regclass('web_callbacks') IS NOT NULL"):
        await _erase_web_callbacks(conn, counts, lead_numbers, erase)
    if await conn.fetchval("SELECT to_regclass('webhook_outbox') IS NOT NULL"):
        rows = await conn.fetch("SELECT id, payload FROM webhook_outbox WHERE payload::text LIKE ANY($1::text[])",
                                likes)
        await conn.executemany("UPDATE webhook_outbox SET payload = $2::text::jsonb WHERE id = $1",
                               [(r["id"], json.dumps(scrub_mine.value(_json(r["payload"])))) for r in rows])
        counts["webhook_deliveries"] = len(rows)
    if await conn.fetchval("SELECT to_regclass('idempotency_keys') IS NOT NULL"):
        status = await conn.execute("DELETE FROM idempotency_keys WHERE response::text LIKE ANY($1::text[])", likes)
        counts["api_replies"] = int(status.split()[-1])
    report.dnc_kept = int(await conn.fetchval(
        "SELECT count(*) FROM dnc_entries WHERE number = ANY($1::text[]) AND removed_at IS NULL", lead_numbers) or 0)


async def _erase_web_callbacks(conn: Any, counts: dict[str, int], e164s: list[str], erase: Pseudonyms) -> None:
    """"Call me now" requests: the row stays (a running callcore rewrites its request's row by id: a deleted row
    would come back with the number), but loses the number and the visitor's context; one still waiting or ringing
    is cancelled (a running scheduler reads the row again before it dials, see ``acd.web_callbacks``). The per-number
    request quota (keyed by a hash of the number) goes too."""
    from callcore.api.outbound_services import PgCallbackQuota

    rows = await conn.fetch("SELECT id, status FROM web_callbacks WHERE number = ANY($1::text[])", e164s)
    await conn.executemany(
        "UPDATE web_callbacks SET number = $2, context = '{}'::jsonb, retry_at = NULL, dialing_since = NULL,"
        " updated_at = now(), finished_at = COALESCE(finished_at, now()),"
        " status = CASE status WHEN 'connected' THEN 'done' WHEN 'waiting' THEN 'cancelled'"
        " WHEN 'dialing' THEN 'cancelled' ELSE status END WHERE id = $1",
        [(r["id"], erase.pseudo_e164("")) for r in rows])
    counts["web_callbacks"] = len(rows)
    counts["web_callbacks_cancelled"] = sum(1 for r in rows if r["status"] in ("waiting", "dialing"))
    if await conn.fetchval("SELECT to_regclass('idempotency_keys') IS NOT NULL"):
        status = await conn.execute("DELETE FROM idempotency_keys WHERE owner = ANY($1::text[])",
                                    [PgCallbackQuota.owner(n) for n in e164s])
        counts["callback_quota"] = int(status.split()[-1])


def _scrub_call_payload(payload: Any, theirs: bool, scrub_mine: Scrubber, scrub_theirs: Scrubber) -> Any:
    """The number → the marker everywhere; in the person's own calls their name fields and personal variables go."""
    if not theirs:
        return scrub_mine.value(payload)
    out = scrub_theirs.value(payload)
    if isinstance(out, dict):
        out = {k: (None if k in NAME_KEYS and v is not None else v) for k, v in out.items()}
    return out


__all__ = ["ForgetError", "ForgetReport", "MIN_DIGITS", "PSEUDO_PREFIX", "RECORDING_TYPES", "forget_number",
           "number_variants"]
