"""The ``callbacks:`` section of the YAML: "call me now" requests from a web page (``POST /callbacks``).

```yaml
callbacks:
  enabled: true
  default_region: NL                # how "06 12345678" is read (numbers with +CC are read as they are)
  allowed_prefixes: ["+31"]         # E.164 prefixes that may be called back (a country, or narrower: "+3120")
  allowed_countries: []             # or ISO 3166 regions (NL, BE); a number matching either list is allowed
  allowed_types: [mobile, fixed_line, fixed_line_or_mobile]   # premium-rate, shared-cost: never
  queue: sales                      # the queue a request goes to when it names none
  allowed_queues: []                # queues a request may name; empty: only `queue`
  max_per_number_per_day: 3         # accepted requests per number in any 24 hours (also kept in PostgreSQL)
  max_per_client_per_hour: 600      # requests per API token in any hour
  max_per_requester_per_hour: 5     # requests per web visitor (the request's `requester`) in any hour
  max_pending: 100                  # callbacks not yet dialled, all clients together
  promise_margin: 120               # seconds added to the queue's estimated wait in the promised time
  max_days_ahead: 7                 # how far ahead a preferred window may start
```

Secure by default: with no ``allowed_prefixes`` and no ``allowed_countries`` a number is allowed only if it belongs
to ``default_region``; with no ``default_region`` either, every number is refused. A "call me now" endpoint must
never become a way to make callcore ring premium-rate lines (toll fraud) or someone else's phone over and over
(harassment): see docs/api.md, "Callbacks".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from callcore.campaigns.model import Region  # one definition of "a region phonenumbers knows"

# The line types a callback may go to (``callcore.leads.phone`` names). Premium-rate, shared-cost and personal
# numbers (UK 070: a classic fraud route) are not among them: they can never be allowed; nor pagers, voicemail.
LineType = Literal["mobile", "fixed_line", "fixed_line_or_mobile", "voip", "toll_free", "uan", "unknown"]
DEFAULT_TYPES: list[LineType] = ["mobile", "fixed_line", "fixed_line_or_mobile"]
_PREFIX_RE = re.compile(r"^\+[1-9][0-9]{0,14}$")


class CallbacksSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: POST /callbacks answers 503 callbacks_disabled")
    default_region: Region | None = Field(None, description="how numbers without a country code are read")
    allowed_prefixes: list[str] = Field(default_factory=list, max_length=1000,
                                        description="E.164 prefixes that may be called back, e.g. +31")
    allowed_countries: list[Region] = Field(default_factory=list, max_length=300,
                                            description="ISO 3166 regions that may be called back, e.g. NL")
    allowed_types: list[LineType] = Field(default_factory=lambda: list(DEFAULT_TYPES), min_length=1)
    queue: str | None = Field(None, min_length=1, max_length=100, description="default queue of a request")
    allowed_queues: list[str] = Field(default_factory=list, description="queues a request may name; empty: `queue`")
    max_per_number_per_day: int = Field(3, ge=1, le=1000)
    max_per_client_per_hour: int = Field(600, ge=1, le=1_000_000)
    max_per_requester_per_hour: int = Field(5, ge=1, le=10_000)
    max_pending: int = Field(100, ge=1, le=100_000, description="open callbacks (waiting or dialling) at most")
    promise_margin: float = Field(120.0, ge=0, le=3600, description="seconds added to the estimate we promise")
    max_days_ahead: float = Field(7.0, gt=0, le=90, description="latest start of a preferred window, in days")

    @field_validator("allowed_prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        out = []
        for p in v:
            p = str(p).replace(" ", "")
            if not _PREFIX_RE.match(p):
                raise ValueError(f"{p!r}: an E.164 prefix is '+' and 1-15 digits, such as +31 or +3120")
            out.append(p)
        return out

    def queues(self) -> list[str]:
        """The queues a request may name."""
        if self.allowed_queues:
            return list(self.allowed_queues)
        return [self.queue] if self.queue else []

    def allows(self, e164: str, region: str | None) -> bool:
        """May ``e164`` (of ``region``) be called back at all? (Line types are checked separately.)"""
        if self.allowed_prefixes or self.allowed_countries:
            return any(e164.startswith(p) for p in self.allowed_prefixes) or (
                region is not None and region in self.allowed_countries)
        return self.default_region is not None and region == self.default_region

    def allow_list_text(self) -> str:
        """The allow-list in words, for error messages."""
        parts = [*self.allowed_prefixes, *self.allowed_countries]
        if parts:
            return ", ".join(parts)
        return f"numbers of {self.default_region}" if self.default_region else "none (configure callbacks.allowed_prefixes)"


class DestinationRefused(ValueError):
    """A number callcore must not call back. ``code``: ``invalid_number`` (not a valid number) or
    ``destination_not_allowed`` (line type or allow-list); ``details`` for the API's error body."""

    def __init__(self, code: str, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


def check_destination(raw: str, settings: CallbacksSettings) -> str:
    """The one destination policy of every callback to a number someone gave us (``POST /callbacks``, virtual
    hold, the IVR's ``callback`` node): the E.164 form of an allowed number, else :class:`DestinationRefused`.
    Valid, an allowed line type (never premium-rate or shared-cost) and on the allow-list."""
    import phonenumbers

    from callcore.leads.phone import InvalidNumber, normalize

    try:
        number = normalize(raw, settings.default_region or "ZZ", strict=False)
    except InvalidNumber as exc:
        raise DestinationRefused("invalid_number", str(exc)) from None
    assert number.parsed is not None
    if not phonenumbers.is_valid_number(number.parsed):
        raise DestinationRefused("invalid_number", f"{number.e164} is not a valid phone number")
    if number.line_type not in settings.allowed_types:
        raise DestinationRefused(
            "destination_not_allowed",
            f"{number.e164} is a {number.line_type.replace('_', '-')} number: callbacks go to "
            f"{', '.join(t.replace('_', ' ') for t in settings.allowed_types)} numbers only",
            {"number": number.e164, "line_type": number.line_type, "allowed_types": list(settings.allowed_types)})
    if not settings.allows(number.e164, number.region):
        raise DestinationRefused(
            "destination_not_allowed",
            f"{number.e164} may not be called back: callbacks go to {settings.allow_list_text()}",
            {"number": number.e164, "region": number.region})
    return number.e164


def callback_issues(settings: CallbacksSettings, queues: Iterable[str]) -> list[str]:
    """Cross-checks against the rest of the config (for ``load_config``): the queues must exist in the ACD."""
    known = set(queues)
    out = []
    if settings.queue is not None and settings.queue not in known:
        out.append(f"callbacks.queue: unknown queue {settings.queue!r}")
    out += [f"callbacks.allowed_queues[{i}]: unknown queue {q!r}"
            for i, q in enumerate(settings.allowed_queues) if q not in known]
    if settings.queue is not None and settings.allowed_queues and settings.queue not in settings.allowed_queues:
        out.append(f"callbacks.queue: {settings.queue!r} is not among callbacks.allowed_queues")
    return out


__all__ = ["DEFAULT_TYPES", "CallbacksSettings", "DestinationRefused", "LineType", "callback_issues",
           "check_destination"]
