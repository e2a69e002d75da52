"""Do-not-call lists: the global list (``campaign`` None: nobody calls the number) and per-campaign lists.

Entries come from the command line (``callcore dnc add``), the API, file imports and agent dispositions with
``adds_to_dnc``. The dialer checks them when it picks leads (:func:`callcore.leads.store.claim_due_leads`) and
once more right before it dials (:func:`callcore.leads.store.may_dial`) — an entry added after a lead was
imported always counts. Numbers are normalized to E.164 leniently (a *possible* number is enough: a DNC list
must block anything that might be dialled). Removal keeps the row (``removed_at``) for audits; an entry may
expire (``expires_at``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import asyncpg

from callcore.leads.csv_import import (
    PHONE_COLUMNS,
    ImportProgress,
    _connection,
    find_column,
    header_key,
    open_table,
)
from callcore.leads.phone import InvalidNumber, to_e164

Queryable = asyncpg.Pool | asyncpg.Connection
REASON_COLUMNS = ("reason", "note", "comment", "reden", "opmerking")

_ACTIVE = "removed_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"


@dataclass(frozen=True)
class DncEntry:
    id: int
    campaign: str | None
    number: str
    reason: str
    source: str
    added_at: datetime
    expires_at: datetime | None

    @property
    def scope(self) -> str:
        return "the global list" if self.campaign is None else f"campaign {self.campaign}'s list"


def _entry(r: asyncpg.Record) -> DncEntry:
    return DncEntry(r["id"], r["campaign"], r["number"], r["reason"], r["source"], r["added_at"], r["expires_at"])


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


async def add(
    db: Queryable,
    number: str,
    *,
    region: str,
    campaign: str | None = None,
    reason: str = "",
    source: str = "api",
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[DncEntry, bool]:
    """Put ``number`` on the global list (``campaign`` None) or a campaign's. Returns (entry, created); adding a
    number already listed keeps the entry and extends its expiry (no expiry wins). Raises InvalidNumber."""
    e164 = to_e164(number, region, strict=False)
    now = _now(now)
    conflict = "(number) WHERE campaign IS NULL AND removed_at IS NULL" if campaign is None else \
        "(campaign, number) WHERE campaign IS NOT NULL AND removed_at IS NULL"
    row = await db.fetchrow(
        f"""
        INSERT INTO dnc_entries (campaign, number, reason, source, added_at, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT {conflict} DO UPDATE SET expires_at = CASE
            WHEN dnc_entries.expires_at IS NULL OR EXCLUDED.expires_at IS NULL THEN NULL
            ELSE greatest(dnc_entries.expires_at, EXCLUDED.expires_at) END
        RETURNING *, (xmax = 0) AS created
        """,
        campaign, e164, reason, source, now, expires_at,
    )
    return _entry(row), bool(row["created"])


async def remove(
    db: Queryable, number: str, *, region: str, campaign: str | None = None, reason: str = "",
    now: datetime | None = None,
) -> int:
    """Take ``number`` off the global list (``campaign`` None) or a campaign's list. Returns how many entries
    were removed (0 or 1). The row stays, marked removed."""
    e164 = to_e164(number, region, strict=False)
    status = await db.execute(
        "UPDATE dnc_entries SET removed_at = $3, removed_reason = $4 "
        "WHERE number = $1 AND campaign IS NOT DISTINCT FROM $2 AND removed_at IS NULL",
        e164, campaign, _now(now), reason,
    )
    return int(status.split()[-1])


async def check(
    db: Queryable, number: str, *, region: str, campaign: str | None = None, all_campaigns: bool = False,
    now: datetime | None = None,
) -> list[DncEntry]:
    """The active entries blocking ``number``: the global list's and ``campaign``'s (or every campaign's with
    ``all_campaigns``). Empty: the number may be called."""
    e164 = to_e164(number, region, strict=False)
    if all_campaigns:
        rows = await db.fetch(
            f"SELECT * FROM dnc_entries WHERE number = $1 AND {_ACTIVE} ORDER BY campaign NULLS FIRST", e164,
            _now(now))
    else:
        rows = await db.fetch(
            f"SELECT * FROM dnc_entries WHERE number = $1 AND {_ACTIVE} AND (campaign IS NULL OR campaign = $3) "
            "ORDER BY campaign NULLS FIRST", e164, _now(now), campaign)
    return [_entry(r) for r in rows]


async def blocked(db: Queryable, numbers: Iterable[str], *, campaign: str | None, now: datetime | None = None
                  ) -> set[str]:
    """Which of these E.164 ``numbers`` are on the global list or ``campaign``'s (one query)."""
    rows = await db.fetch(
        f"SELECT DISTINCT number FROM dnc_entries WHERE number = ANY($1::text[]) AND {_ACTIVE} "
        "AND (campaign IS NULL OR campaign = $3)", list(numbers), _now(now), campaign)
    return {r["number"] for r in rows}


@dataclass
class DncImportReport:
    source: str
    campaign: str | None
    rows: int = 0
    added: int = 0
    already_listed: int = 0
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (line, value, reason)

    def format(self, *, limit: int | None = 100) -> str:
        scope = "the global list" if self.campaign is None else f"campaign {self.campaign}'s list"
        lines = [
            f"do-not-call import into {scope} from {self.source}",
            f"  rows read:       {self.rows:,}",
            f"  added:           {self.added:,}",
            f"  already listed:  {self.already_listed:,}",
            f"  invalid:         {len(self.problems):,}",
        ]
        if self.problems:
            lines += ["", "invalid rows (not added):"]
            shown = self.problems if limit is None else self.problems[:limit]
            lines += [f"  line {line}: {value!r}: {reason}" for line, value, reason in shown]
            if len(self.problems) > len(shown):
                lines.append(f"  ... and {len(self.problems) - len(shown):,} more")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "campaign": self.campaign, "rows": self.rows, "added": self.added,
                "already_listed": self.already_listed,
                "problems": [{"line": a, "value": b, "reason": c} for a, b, c in self.problems]}


async def import_file(
    db: Queryable,
    source: Path | str | IO[bytes],
    *,
    region: str,
    campaign: str | None = None,
    reason: str = "",
    source_name: str | None = None,
    encoding: str = "utf-8-sig",
    batch_size: int = 1000,
    progress: Callable[[ImportProgress], None] | None = None,
    now: datetime | None = None,
) -> DncImportReport:
    """Add every number of a file to a list. The file is either a CSV with a header naming a phone column (and
    optionally a ``reason`` column), or a plain list: one number per line (``#`` starts a comment). Invalid
    rows are reported with their line numbers; one transaction."""
    name = source_name or (str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "upload"))
    report = DncImportReport(source=str(name), campaign=campaign)
    now = _now(now)
    with open_table(source, encoding=encoding, has_header=False) as table:
        rows = table.rows()
        phone_idx, reason_idx = 0, None
        first: tuple[int, list[str]] | None = None
        for line, cells in rows:
            if cells and any(c.strip() for c in cells) and not cells[0].lstrip().startswith("#"):
                first = (line, cells)
                break
        if first is not None:
            idx = find_column(first[1], None, PHONE_COLUMNS)
            if idx is not None or any(header_key(c) in REASON_COLUMNS for c in first[1]):
                phone_idx = idx if idx is not None else 0
                reason_idx = find_column(first[1], None, REASON_COLUMNS)
                first = None  # it was the header

        batch: list[tuple[str, str, str]] = []
        seen: set[str] = set()

        async with _connection(db) as conn:
            async with conn.transaction():
                async def flush() -> None:
                    if not batch:
                        return
                    conflict = ("(number) WHERE campaign IS NULL AND removed_at IS NULL" if campaign is None else
                                "(campaign, number) WHERE campaign IS NOT NULL AND removed_at IS NULL")
                    res = await conn.fetch(
                        f"""
                        INSERT INTO dnc_entries (campaign, number, reason, source, added_at)
                        SELECT $1, r.number, r.reason, r.source, $2
                        FROM unnest($3::text[], $4::text[], $5::text[]) AS r(number, reason, source)
                        ON CONFLICT {conflict} DO NOTHING RETURNING number
                        """,
                        campaign, now, [b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch],
                    )
                    report.added += len(res)
                    report.already_listed += len(batch) - len(res)
                    batch.clear()
                    if progress is not None:
                        progress(ImportProgress(table.bytes_read, table.total, report.rows, report.added))

                def records() -> Any:
                    if first is not None:
                        yield first
                    yield from rows

                for line, cells in records():
                    if not cells or not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                        continue
                    report.rows += 1
                    raw = cells[phone_idx].strip() if phone_idx < len(cells) else ""
                    try:
                        e164 = to_e164(raw, region, strict=False)
                    except InvalidNumber as exc:
                        report.problems.append((line, raw, str(exc)))
                        continue
                    if e164 in seen:
                        report.already_listed += 1
                        continue
                    seen.add(e164)
                    why = cells[reason_idx].strip() if reason_idx is not None and reason_idx < len(cells) else ""
                    batch.append((e164, why or reason, f"import:{name}:{line}"))
                    if len(batch) >= batch_size:
                        await flush()
                await flush()
    return report


__all__ = ["DncEntry", "DncImportReport", "add", "blocked", "check", "import_file", "remove"]
