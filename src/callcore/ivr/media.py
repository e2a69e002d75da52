"""``${var}`` interpolation and media items → Asterisk media URIs. Pure functions.

Media items as admins write them in ``sounds`` / ``prompt`` lists:

- a bare name is an Asterisk sound: ``callcore/welcome`` → ``sound:callcore/welcome``
- explicit prefixes pass through: ``sound:``, ``recording:``, ``tone:``, ``digits:``, ``number:``,
  ``characters:``
- ``date:<ISO date>`` is spelled out with Asterisk's own date sounds (see ``say_date``)

``${name}`` is replaced by the call variable (or built-in ``caller_number``, ``did``, ``flow``); a missing
variable becomes "". An item whose value is empty after interpolation is dropped (``digits:${account}`` with
no account plays nothing rather than failing the whole playback). ``digits:`` keeps only 0-9 * #;
``number:`` says an integer (a decimal ``12.50`` is said as ``number:12``, ``sound:letters/dot``,
``digits:50``; anything else is dropped).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from urllib.parse import quote

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PASS = ("sound:", "recording:", "tone:")
_NUMBER = re.compile(r"^(-?)(\d+)(?:[.,](\d+))?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
PREFIXES = ("sound:", "recording:", "tone:", "digits:", "number:", "characters:", "date:")

# Languages that say "Monday 25 December 2026" (day before month). Others, like English, say the month first.
DAY_FIRST_LANGUAGES = frozenset({"nl", "de", "fr", "es", "it", "pt", "da", "sv", "no", "nb", "fi", "pl", "cs", "ru"})


def variables_in(text: str) -> list[str]:
    """Names referenced as ``${name}`` in ``text``."""
    return _VAR.findall(text)


def interpolate(text: str, variables: Mapping[str, str], *, url_quote: bool = False) -> str:
    """Replace every ``${name}`` with its value ("" when unknown). ``url_quote`` percent-encodes the values
    (for values placed into a URL)."""

    def sub(m: re.Match[str]) -> str:
        value = variables.get(m.group(1), "")
        return quote(value, safe="") if url_quote else value

    return _VAR.sub(sub, text)


def say_date(value: str, language: str = "en") -> list[str]:
    """``2026-12-25`` → weekday, month and day, year, with the sounds Asterisk's own SayDate uses:
    ``sound:digits/day-5`` (0 = Sunday), ``sound:digits/mon-11`` (0 = January), ``number:25``,
    ``number:2026``. English order is weekday, month, day, year; for the languages in
    ``DAY_FIRST_LANGUAGES`` it is weekday, day, month, year. A time part after the date (ISO datetime) is
    ignored. Not a valid date → [] (nothing is said)."""
    m = _ISO_DATE.match(value.strip())
    if not m:
        return []
    try:
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return []
    weekday = f"sound:digits/day-{(d.weekday() + 1) % 7}"
    month = f"sound:digits/mon-{d.month - 1}"
    day, year = f"number:{d.day}", f"number:{d.year}"
    if language.split("_")[0].lower() in DAY_FIRST_LANGUAGES:
        return [weekday, day, month, year]
    return [weekday, month, day, year]


def resolve_item(item: str, variables: Mapping[str, str], language: str = "en") -> list[str]:
    """One media item → zero or more Asterisk media URIs."""
    text = interpolate(item, variables).strip()
    if not text:
        return []
    for prefix in _PASS:
        if text.startswith(prefix):
            return [text] if text[len(prefix) :].strip() else []
    if text.startswith("digits:"):
        digits = "".join(c for c in text[7:] if c in "0123456789*#")
        return [f"digits:{digits}"] if digits else []
    if text.startswith("characters:"):
        value = text[11:].strip()
        return [f"characters:{value}"] if value else []
    if text.startswith("number:"):
        m = _NUMBER.match(text[7:].strip())
        if not m:
            return []
        sign, whole, frac = m.groups()
        out = [f"number:{sign}{int(whole)}"]
        if frac:
            out += ["sound:letters/dot", f"digits:{frac}"]
        return out
    if text.startswith("date:"):
        return say_date(text[5:], language)
    return [f"sound:{text}"]


def resolve_media(items: Iterable[str], variables: Mapping[str, str], language: str = "en") -> tuple[str, ...]:
    """Media items (as written in YAML) → the Asterisk media URIs to play, in order."""
    out: list[str] = []
    for item in items:
        out.extend(resolve_item(item, variables, language))
    return tuple(out)


def sound_name(item: str) -> str | None:
    """The Asterisk sound an item names statically (bare or ``sound:``), for existence checks. None for other
    kinds and for items with a ``${...}`` interpolation (unknown until the call)."""
    text = item.strip()
    if "${" in text:
        return None
    if text.startswith("sound:"):
        return text[6:].strip() or None
    if any(text.startswith(p) for p in PREFIXES):
        return None
    return text or None
