"""Phone numbers: normalize to E.164 (``phonenumbers``) and find the callee's time zone.

Numbers come from CSV files typed by people and exported by spreadsheets: ``06-12345678``, ``+31 6 1234 5678``,
``0031612345678``, ``31612345678``, ``tel:+31-6-12345678`` all become ``+31612345678``. A number without a
country code is read in the campaign's ``default_region``.

Time zone: the zones ``phonenumbers`` knows for the number. Zones that behave identically (same UTC offsets
and the same DST changes, such as Europe/London and Europe/Jersey) count as one. One zone: the callee's zone.
Several (a US toll-free number, an Australian mobile) or none: the number is *ambiguous* and the campaign's
fallback zone is used; the candidates are kept so that a campaign with ``ambiguous_timezone: all`` calls only
when every candidate zone is inside its windows.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as pn_timezone

TzSource = Literal["number", "column", "campaign"]

# Never dialled: calling them costs the caller money.
REJECTED_TYPES = {PhoneNumberType.PREMIUM_RATE: "a premium-rate number"}

_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}


class InvalidNumber(ValueError):
    """The text is not a callable phone number; the message says why, for the import report."""


@dataclass(frozen=True)
class PhoneNumber:
    e164: str
    region: str | None
    line_type: str
    parsed: phonenumbers.PhoneNumber | None = field(default=None, compare=False, repr=False)

    @property
    def digits(self) -> str:
        return self.e164.lstrip("+")


@dataclass(frozen=True)
class ZoneChoice:
    """The zone used for windows and callback times, every candidate zone, where it came from, and whether the
    number's own zone was ambiguous (several candidates) or unknown."""

    timezone: str
    timezones: tuple[str, ...]
    source: TzSource
    ambiguous: bool


def _parse(raw: str, region: str) -> phonenumbers.PhoneNumber:
    text = (raw or "").strip()
    if not text:
        raise InvalidNumber("no phone number")
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"not a phone number: {exc._msg}") from None


def normalize(raw: str, region: str, *, strict: bool = True) -> PhoneNumber:
    """``raw`` (any common notation) → E.164 with its region and line type.

    ``strict`` (leads): the number must be valid for its region (a real range, the right length) and not
    premium-rate. Not strict (do-not-call entries): a *possible* number is enough — a DNC list must block
    anything that might be dialled, even a number in a range phonenumbers does not know yet.
    Raises InvalidNumber with an admin-readable reason."""
    parsed = _parse(raw, region)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if strict:
        if not phonenumbers.is_valid_number(parsed):
            reason = phonenumbers.is_possible_number_with_reason(parsed)
            why = {
                phonenumbers.ValidationResult.TOO_SHORT: "too short",
                phonenumbers.ValidationResult.TOO_LONG: "too long",
                phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
                phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
            }.get(reason, "no such number range, or the wrong number of digits")
            where = phonenumbers.region_code_for_country_code(parsed.country_code)
            where = where if where != phonenumbers.UNKNOWN_REGION else f"+{parsed.country_code}"
            raise InvalidNumber(f"{e164} is not a valid number for {where} ({why})")
    elif not phonenumbers.is_possible_number(parsed):
        raise InvalidNumber(f"{e164} is not a possible phone number")
    kind = phonenumbers.number_type(parsed)
    if strict and kind in REJECTED_TYPES:
        raise InvalidNumber(f"{e164} is {REJECTED_TYPES[kind]} (never dialled)")
    return PhoneNumber(
        e164=e164,
        region=phonenumbers.region_code_for_number(parsed),
        line_type=_TYPE_NAMES.get(kind, "unknown"),
        parsed=parsed,
    )


def to_e164(raw: str, region: str, *, strict: bool = True) -> str:
    return normalize(raw, region, strict=strict).e164


# ---- time zones -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def zone(name: str) -> ZoneInfo:
    """A cached ZoneInfo. Raises ValueError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Amsterdam)") from None


@functools.lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """The IANA zone names of this system (what the dialer checks windows against)."""
    return frozenset(available_timezones())


def is_zone(name: str) -> bool:
    return name in known_zones()


@functools.lru_cache(maxsize=2048)
def _signature(name: str) -> tuple[int, ...]:
    """UTC offsets of a zone every 6 hours over three years around 2026: zones with the same signature behave
    the same for calling windows (same offsets, DST changes on the same days)."""
    z = zone(name)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    out = []
    for i in range(0, 3 * 366 * 4):
        off = (start + timedelta(hours=6 * i)).astimezone(z).utcoffset()
        out.append(int(off.total_seconds()) if off is not None else 0)
    return tuple(out)


@functools.lru_cache(maxsize=512)
def _zone_weights(country_code: int) -> Counter[str]:
    """How often each zone appears among the number prefixes of a country code (Europe/London far more often
    than Europe/Jersey): picks the natural name when several equivalent zones are listed."""
    weights: Counter[str] = Counter()
    prefix = str(country_code)
    for key, zones in pn_timezone.TIMEZONE_DATA.items():
        if key.startswith(prefix):
            weights.update(zones)
    return weights


def distinct_zones(names: tuple[str, ...] | list[str], *, prefer: str | None = None, country_code: int | None = None
                   ) -> tuple[str, ...]:
    """``names`` with equivalent zones merged: one representative per behaviour (``prefer`` if it is one of them,
    else the most common name for the country), loadable names only."""
    weights = _zone_weights(country_code) if country_code is not None else Counter()
    groups: dict[tuple[int, ...], list[str]] = {}
    for n in names:
        if n == pn_timezone.UNKNOWN_TIMEZONE or not is_zone(n):
            continue
        groups.setdefault(_signature(n), []).append(n)
    out = []
    for members in groups.values():
        if prefer is not None and prefer in members:
            out.append(prefer)
        else:
            out.append(sorted(members, key=lambda m: (-weights[m], m))[0])
    return tuple(sorted(out))


def same_zone(a: str, b: str) -> bool:
    return a == b or _signature(a) == _signature(b)


def number_zones(number: str | PhoneNumber, *, prefer: str | None = None) -> tuple[str, ...]:
    """The distinct zones ``phonenumbers`` knows for a number (E.164 text or a normalized number; empty when
    unknown)."""
    parsed = number.parsed if isinstance(number, PhoneNumber) and number.parsed is not None else None
    if parsed is None:
        parsed = phonenumbers.parse(number.e164 if isinstance(number, PhoneNumber) else number, None)
    return _distinct_cached(pn_timezone.time_zones_for_number(parsed), prefer, parsed.country_code)


@functools.lru_cache(maxsize=4096)
def _distinct_cached(names: tuple[str, ...], prefer: str | None, country_code: int) -> tuple[str, ...]:
    return distinct_zones(names, prefer=prefer, country_code=country_code)


def choose_zone(e164: str | PhoneNumber, fallback: str, *, column: str | None = None) -> ZoneChoice:
    """The callee's zone: a CSV ``column`` value wins (it must be a valid IANA name, else ValueError); then the
    number's single zone; else ``fallback`` (the campaign's zone), marked ambiguous, with the candidates kept."""
    if column is not None and column.strip():
        name = column.strip()
        if not is_zone(name):
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Amsterdam)")
        return ZoneChoice(name, (name,), "column", False)
    candidates = number_zones(e164, prefer=fallback)
    if len(candidates) == 1:
        return ZoneChoice(candidates[0], candidates, "number", False)
    # Unknown (no candidates) or ambiguous: the campaign's zone; keep the candidates for ambiguous_timezone: all.
    return ZoneChoice(fallback, candidates or (fallback,), "campaign", len(candidates) > 1)


def region_zone(region: str) -> str | None:
    """The single zone of a region (NL → Europe/Amsterdam, GB → Europe/London), None if it spans several (US)."""
    code = phonenumbers.country_code_for_region(region)
    if not code:
        return None
    names = pn_timezone.TIMEZONE_DATA.get(str(code), ())
    zones = distinct_zones(names, country_code=code)
    return zones[0] if len(zones) == 1 else None


__all__ = [
    "InvalidNumber",
    "PhoneNumber",
    "ZoneChoice",
    "choose_zone",
    "distinct_zones",
    "is_zone",
    "known_zones",
    "normalize",
    "number_zones",
    "region_zone",
    "same_zone",
    "to_e164",
    "zone",
]
