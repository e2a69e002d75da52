"""Import leads from a CSV file into PostgreSQL, streaming, with a report of every row that was not imported.

The file needs a header row. The phone column is named with ``phone_column`` or found among
:data:`PHONE_COLUMNS` (``phone``, ``number``, ``phone_number``, ...; case, spaces and dashes do not matter).
Optional columns: a time zone (:data:`TIMEZONE_COLUMNS`, an IANA name that wins over the number's own zone),
the callee's name (:data:`NAME_COLUMNS`) and a country (:data:`REGION_COLUMNS`, ISO 3166, for numbers written
without a country code when they are not from the campaign's ``default_region``). Every other non-empty column
goes into the lead's ``fields`` (jsonb), under its header name. The delimiter (``,`` ``;`` tab ``|``) is taken
from the header line unless given; the encoding is UTF-8 (a byte-order mark from Excel is fine) unless given.

Nothing is dropped silently: the :class:`ImportReport` lists, with their line numbers, invalid rows (no number,
not a valid number, premium-rate, a wrong field count, an unknown time zone), duplicates within the file (with
the line of the first occurrence) and numbers already in the campaign (with the existing lead). Numbers on a
do-not-call list are imported (the list is checked again at dial time, and an entry may be removed) and
reported. Blank lines are counted.

The import is one transaction (all or nothing: a file that cannot be read to the end leaves no leads behind),
inserted in batches of ``batch_size`` rows (one ``INSERT ... SELECT FROM unnest(...)`` each), with a
``progress`` callback after every batch.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

import asyncpg
import phonenumbers

from callcore.ids import uuid7
from callcore.leads.phone import InvalidNumber, choose_zone, normalize

Queryable = asyncpg.Pool | asyncpg.Connection

PHONE_COLUMNS = ("phone", "number", "phone_number", "phonenumber", "telephone", "tel", "mobile", "msisdn",
                 "telefoon", "telefoonnummer")
TIMEZONE_COLUMNS = ("timezone", "time_zone", "tz")
NAME_COLUMNS = ("name", "full_name", "naam")
REGION_COLUMNS = ("country", "region", "country_code", "land")
DELIMITERS = (",", ";", "\t", "|")

ProblemKind = Literal["invalid", "duplicate_in_file", "already_in_campaign", "on_dnc"]


class LeadFileError(Exception):
    """The file as a whole cannot be imported (unreadable, not text in the encoding, no header, no phone
    column). Nothing was imported."""


@dataclass(frozen=True)
class RowProblem:
    line: int
    kind: ProblemKind
    value: str
    reason: str


@dataclass(frozen=True)
class ImportProgress:
    bytes_read: int
    bytes_total: int | None
    rows: int
    imported: int


@dataclass
class ImportReport:
    campaign: str
    source: str
    import_id: uuid.UUID
    phone_column: str = ""
    delimiter: str = ","
    rows: int = 0
    imported: int = 0
    blank_lines: int = 0
    tz_from_number: int = 0
    tz_from_column: int = 0
    tz_from_campaign: int = 0
    tz_ambiguous: int = 0
    seconds: float = 0.0
    problems: list[RowProblem] = field(default_factory=list)

    def of(self, kind: ProblemKind) -> list[RowProblem]:
        return [p for p in self.problems if p.kind == kind]

    @property
    def invalid(self) -> int:
        return sum(1 for p in self.problems if p.kind == "invalid")

    @property
    def duplicates_in_file(self) -> int:
        return sum(1 for p in self.problems if p.kind == "duplicate_in_file")

    @property
    def already_in_campaign(self) -> int:
        return sum(1 for p in self.problems if p.kind == "already_in_campaign")

    @property
    def on_dnc(self) -> int:
        return sum(1 for p in self.problems if p.kind == "on_dnc")

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows, "imported": self.imported, "invalid": self.invalid,
            "duplicates_in_file": self.duplicates_in_file, "already_in_campaign": self.already_in_campaign,
            "on_dnc": self.on_dnc, "blank_lines": self.blank_lines, "tz_from_number": self.tz_from_number,
            "tz_from_column": self.tz_from_column, "tz_from_campaign": self.tz_from_campaign,
            "tz_ambiguous": self.tz_ambiguous,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign, "source": self.source, "import_id": str(self.import_id),
            "phone_column": self.phone_column, "delimiter": self.delimiter, **self.counts(),
            "seconds": round(self.seconds, 3), "problems": [asdict(p) for p in self.problems],
        }

    def format(self, *, limit: int | None = 100) -> str:
        """The report as text: the counts, then every problem row (at most ``limit`` per kind; None: all)."""
        n = lambda v: f"{v:,}"  # noqa: E731
        lines = [
            f"leads import into campaign {self.campaign} from {self.source} (import {self.import_id})",
            f"  phone column:         {self.phone_column!r}, delimiter {self.delimiter!r}",
            f"  rows read:            {n(self.rows)}" + (f" (+{n(self.blank_lines)} blank line{'s' if self.blank_lines != 1 else ''})"
                                                        if self.blank_lines else ""),
            f"  imported:             {n(self.imported)}",
            f"  invalid:              {n(self.invalid)}",
            f"  duplicates in file:   {n(self.duplicates_in_file)}",
            f"  already in campaign:  {n(self.already_in_campaign)}",
            f"  on do-not-call now:   {n(self.on_dnc)} (imported; never dialled while listed)",
            f"  time zones:           {n(self.tz_from_number)} from the number, {n(self.tz_from_column)} from the "
            f"file, {n(self.tz_from_campaign)} campaign fallback ({n(self.tz_ambiguous)} ambiguous numbers)",
            f"  took {self.seconds:.2f} s ({self.rows_per_second:,.0f} rows/s)",
        ]
        titles = {
            "invalid": "invalid rows (not imported)",
            "duplicate_in_file": "duplicate rows in this file (not imported)",
            "already_in_campaign": "numbers already in the campaign (not imported)",
            "on_dnc": "numbers on a do-not-call list (imported, not dialled while listed)",
        }
        for kind, title in titles.items():
            items = self.of(kind)  # type: ignore[arg-type]
            if not items:
                continue
            lines += ["", f"{title}:"]
            shown = items if limit is None else items[:limit]
            lines += [f"  line {p.line}: {p.value!r}: {p.reason}" for p in shown]
            if len(items) > len(shown):
                lines.append(f"  ... and {len(items) - len(shown):,} more (write them all with --report-file)")
        return "\n".join(lines)

    def write_csv(self, path: Path | str) -> None:
        """Every problem row as CSV: line, kind, value, reason."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["line", "kind", "value", "reason"])
            for p in sorted(self.problems, key=lambda p: (p.line, p.kind)):
                w.writerow([p.line, p.kind, p.value, p.reason])


# ---- reading the file ------------------------------------------------------------------------------------------


class _Counting(io.RawIOBase):
    """A binary file that counts the bytes read (for a progress bar over a text stream)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.count += n
        return n


def header_key(name: str) -> str:
    """How a header cell is compared: ``" Phone Number "`` → ``phone_number``."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def find_column(header: list[str], wanted: str | None, aliases: tuple[str, ...]) -> int | None:
    keys = [header_key(h) for h in header]
    if wanted is not None:
        k = header_key(wanted)
        return keys.index(k) if k in keys else None
    for alias in aliases:
        if alias in keys:
            return keys.index(alias)
    return None


def sniff_delimiter(header_line: str) -> str:
    """The candidate delimiter occurring most often in the header line (``,`` when none does)."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


class Table:
    """A CSV stream: ``header`` and ``rows()`` of (line number where the record starts, cells).

    Bytes are decoded line by line, so a byte that is not valid in the encoding is reported with its line."""

    def __init__(self, binary: IO[bytes], counter: _Counting | None, total: int | None, delimiter: str | None,
                 encoding: str, has_header: bool = True) -> None:
        self._bin = binary
        self._counter = counter
        self.total = total
        self.encoding = encoding
        self._decoder = codecs.getincrementaldecoder(encoding)("strict")
        self._lines_out = 0
        gen = self._lines()
        first = next(gen, "")
        self.delimiter = delimiter or sniff_delimiter(first)
        self._reader = csv.reader(itertools.chain([first] if first else [], gen), delimiter=self.delimiter)
        self.header: list[str] = []
        self.header_line = 0
        if has_header:
            for line, cells in self.rows():
                if cells and any(c.strip() for c in cells):
                    self.header, self.header_line = [c.strip() for c in cells], line
                    break
            if not self.header:
                raise LeadFileError("the file is empty (a header row naming the columns is needed)")

    @property
    def bytes_read(self) -> int:
        return self._counter.count if self._counter is not None else 0

    def _lines(self) -> Iterator[str]:
        buf = ""
        while True:
            chunk = self._bin.readline()
            try:
                buf += self._decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise LeadFileError(
                    f"line {self._lines_out + 1}: not {self.encoding} text ({exc.reason}); nothing was imported: "
                    f"convert the file to UTF-8 or give its encoding (e.g. --encoding cp1252)"
                ) from None
            while (i := buf.find("\n")) >= 0:
                self._lines_out += 1
                yield buf[: i + 1]
                buf = buf[i + 1:]
            if not chunk:
                if buf:
                    self._lines_out += 1
                    yield buf
                return

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        while True:
            start = self._reader.line_num + 1
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise LeadFileError(f"line {start}: {exc}; nothing was imported") from None
            yield start, cells


@contextlib.contextmanager
def open_table(source: Path | str | IO[bytes], *, encoding: str = "utf-8-sig", delimiter: str | None = None,
               has_header: bool = True) -> Iterator[Table]:
    """Open a CSV file (a path or a binary stream such as an upload) as a :class:`Table`. Raises LeadFileError
    when it cannot be read."""
    close: IO[bytes] | None = None
    total: int | None = None
    if isinstance(source, (str, Path)):
        try:
            raw: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed below
            total = os.fstat(raw.fileno()).st_size
        except OSError as exc:
            raise LeadFileError(f"{source}: cannot read: {exc.strerror}") from None
        close = raw
    else:
        raw = source
        with contextlib.suppress(OSError, AttributeError, io.UnsupportedOperation):
            total = os.fstat(raw.fileno()).st_size
        if total is None and isinstance(raw, io.BytesIO):
            total = len(raw.getbuffer())
    try:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise LeadFileError(f"unknown encoding {encoding!r}") from None
        counter = _Counting(raw)
        yield Table(io.BufferedReader(counter, 1 << 16), counter, total, delimiter, encoding, has_header)
    finally:
        if close is not None:
            close.close()


# ---- importing -----------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _connection(db: Queryable) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


_INSERT = """
INSERT INTO leads (campaign, number, region, line_type, timezone, timezones, tz_source, name, fields, import_id,
                   source_file, source_line, next_attempt_at, created_at, updated_at)
SELECT $1, r.number, r.region, r.line_type, r.timezone, string_to_array(r.timezones, ','), r.tz_source, r.name,
       r.fields::jsonb, $2, $3, r.line, $4, $4, $4
FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
            $13::int[]) AS r(number, region, line_type, timezone, timezones, tz_source, name, fields, line)
ON CONFLICT (campaign, number) DO NOTHING
RETURNING number
"""

_EXISTING = """
SELECT number, id, source_file, source_line FROM leads WHERE campaign = $1 AND number = ANY($2::text[])
"""

_ON_DNC = """
SELECT DISTINCT number FROM dnc_entries
WHERE removed_at IS NULL AND number = ANY($1::text[]) AND (campaign IS NULL OR campaign = $2)
  AND (expires_at IS NULL OR expires_at > $3)
"""


@dataclass
class _Row:
    line: int
    number: str
    region: str | None
    line_type: str
    timezone: str
    timezones: str
    tz_source: str
    name: str | None
    fields: str


async def import_leads(
    db: Queryable,
    campaign_name: str,
    campaign: Any,
    source: Path | str | IO[bytes],
    *,
    source_name: str | None = None,
    phone_column: str | None = None,
    encoding: str = "utf-8-sig",
    delimiter: str | None = None,
    batch_size: int = 1000,
    progress: Callable[[ImportProgress], None] | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Import the CSV ``source`` into campaign ``campaign_name`` (its ``CampaignConfig`` is ``campaign``).

    Returns the report; raises LeadFileError when the file cannot be imported at all (then nothing is)."""
    fallback = campaign.fallback_timezone()
    if fallback is None:
        raise ValueError(f"campaign {campaign_name} has no fallback time zone (set 'timezone')")
    region = campaign.default_region
    now = now or datetime.now(timezone.utc)
    name = source_name or (str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "upload"))
    report = ImportReport(campaign=campaign_name, source=str(name), import_id=uuid7())
    t0 = time.perf_counter()
    with open_table(source, encoding=encoding, delimiter=delimiter) as table:
        header = table.header
        report.delimiter = table.delimiter
        phone_idx = find_column(header, phone_column, PHONE_COLUMNS)
        if phone_idx is None:
            what = f"no column {phone_column!r}" if phone_column else (
                f"no phone column (looked for {', '.join(PHONE_COLUMNS[:3])}, ...)")
            raise LeadFileError(f"{name}: {what}; the header has: {', '.join(header)}. Name it with --phone-column")
        report.phone_column = header[phone_idx]
        tz_idx = find_column(header, None, TIMEZONE_COLUMNS)
        name_idx = find_column(header, None, NAME_COLUMNS)
        region_idx = find_column(header, None, REGION_COLUMNS)
        consumed = {i for i in (phone_idx, tz_idx, name_idx, region_idx) if i is not None}
        extra = [(i, h) for i, h in enumerate(header) if i not in consumed and h]
        ncols = len(header)
        seen: dict[str, int] = {}
        batch: list[_Row] = []

        async with _connection(db) as conn:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO lead_imports (import_id, campaign, source, started_at) VALUES ($1, $2, $3, $4)",
                    report.import_id, campaign_name, report.source, now,
                )

                async def flush() -> None:
                    if not batch:
                        return
                    cols = list(zip(*[(r.number, r.region, r.line_type, r.timezone, r.timezones, r.tz_source, r.name,
                                       r.fields, r.line) for r in batch]))
                    inserted = {r["number"] for r in await conn.fetch(
                        _INSERT, campaign_name, report.import_id, report.source, now, *[list(c) for c in cols])}
                    report.imported += len(inserted)
                    missing = [r for r in batch if r.number not in inserted]
                    if missing:
                        existing = {r["number"]: r for r in await conn.fetch(
                            _EXISTING, campaign_name, [m.number for m in missing])}
                        for m in missing:
                            ex = existing.get(m.number)
                            where = ""
                            if ex is not None:
                                where = f"lead {ex['id']}"
                                if ex["source_file"]:
                                    where += f" from {ex['source_file']}"
                                    if ex["source_line"]:
                                        where += f" line {ex['source_line']}"
                            report.problems.append(RowProblem(
                                m.line, "already_in_campaign", m.number,
                                f"already in campaign {campaign_name}" + (f" ({where})" if where else "")))
                    if inserted:
                        listed = {r["number"] for r in await conn.fetch(_ON_DNC, list(inserted), campaign_name, now)}
                        for r in batch:
                            if r.number in listed:
                                report.problems.append(RowProblem(r.line, "on_dnc", r.number,
                                                                  "on a do-not-call list"))
                    for r in batch:
                        if r.number in inserted:
                            if r.tz_source == "number":
                                report.tz_from_number += 1
                            elif r.tz_source == "column":
                                report.tz_from_column += 1
                            else:
                                report.tz_from_campaign += 1
                                if "," in r.timezones:
                                    report.tz_ambiguous += 1
                    batch.clear()
                    if progress is not None:
                        progress(ImportProgress(table.bytes_read, table.total, report.rows, report.imported))

                for line, cells in table.rows():
                    if not cells or not any(c.strip() for c in cells):
                        report.blank_lines += 1
                        continue
                    report.rows += 1
                    if len(cells) > ncols and not any(c.strip() for c in cells[ncols:]):
                        cells = cells[:ncols]  # trailing empty fields (a delimiter at the end of the line)
                    raw = cells[phone_idx].strip() if phone_idx < len(cells) else ""
                    if len(cells) != ncols:
                        report.problems.append(RowProblem(
                            line, "invalid", raw or table.delimiter.join(cells)[:60],
                            f"{len(cells)} fields where the header has {ncols} (a stray or missing "
                            f"{table.delimiter!r}, or an unquoted value containing it?)"))
                        continue
                    row_region = region
                    if region_idx is not None and cells[region_idx].strip():
                        row_region = cells[region_idx].strip().upper()
                        if row_region not in phonenumbers.SUPPORTED_REGIONS:
                            report.problems.append(RowProblem(
                                line, "invalid", raw, f"unknown country {cells[region_idx].strip()!r} "
                                                      f"(ISO 3166 codes such as NL, BE, DE)"))
                            continue
                    try:
                        number = normalize(raw, row_region)
                    except InvalidNumber as exc:
                        report.problems.append(RowProblem(line, "invalid", raw, str(exc)))
                        continue
                    first = seen.get(number.e164)
                    if first is not None:
                        report.problems.append(RowProblem(
                            line, "duplicate_in_file", raw, f"{number.e164} is also on line {first}"))
                        continue
                    tz_cell = cells[tz_idx] if tz_idx is not None else None
                    try:
                        zone = choose_zone(number, fallback, column=tz_cell)
                    except ValueError as exc:
                        report.problems.append(RowProblem(line, "invalid", raw, str(exc)))
                        continue
                    seen[number.e164] = line
                    fields = {h: cells[i].strip() for i, h in extra if cells[i].strip()}
                    batch.append(_Row(
                        line=line, number=number.e164, region=number.region, line_type=number.line_type,
                        timezone=zone.timezone, timezones=",".join(zone.timezones), tz_source=zone.source,
                        name=(cells[name_idx].strip() or None) if name_idx is not None else None,
                        fields=json.dumps(fields, ensure_ascii=False),
                    ))
                    if len(batch) >= batch_size:
                        await flush()
                await flush()
                report.seconds = time.perf_counter() - t0
                await conn.execute(
                    "UPDATE lead_imports SET finished_at = $2, counts = $3::text::jsonb WHERE import_id = $1",
                    report.import_id, datetime.now(timezone.utc), json.dumps(report.counts()),
                )
    report.problems.sort(key=lambda p: (p.line, p.kind))
    return report


__all__ = [
    "NAME_COLUMNS",
    "PHONE_COLUMNS",
    "REGION_COLUMNS",
    "TIMEZONE_COLUMNS",
    "ImportProgress",
    "ImportReport",
    "LeadFileError",
    "RowProblem",
    "Table",
    "find_column",
    "header_key",
    "import_leads",
    "open_table",
    "sniff_delimiter",
]
