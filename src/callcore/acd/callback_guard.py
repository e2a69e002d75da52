"""Toll-fraud guard for callbacks to a number the caller *presented* (virtual hold, the IVR's ``callback`` node).

A presented caller number is whatever the caller's network says (docs/security.md, "Caller-ID spoofing"): a
fraudster can present a premium-rate number and make callcore call it. So every callback destination goes through
the same policy as ``POST /callbacks`` (``callbacks:`` in the config, :func:`~callcore.api.callbacks_config.
check_destination`: valid, allowed line type — never premium-rate —, allow-listed prefixes/countries) and the
global do-not-call list. One policy, one place: this module only adds the DNC lookup around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from callcore.api.callbacks_config import CallbacksSettings, DestinationRefused, check_destination

log = structlog.get_logger("callcore.acd")

DNC_UNAVAILABLE = "dnc_unavailable"


@dataclass(frozen=True)
class CallbackVerdict:
    allowed: bool
    number: str  # E.164 when allowed; the number as given when refused
    code: str | None = None  # invalid_number | destination_not_allowed | number_on_dnc | dnc_unavailable
    reason: str | None = None

    def event_data(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.reason}


class DncLookup(Protocol):
    async def check(self, number: str, *, region: str, campaign: str | None) -> Sequence[Any]: ...


class CallbackGuard:
    """``destination``: the number policy alone (pure, for deciding whether to offer a callback at all);
    ``check``: the policy plus the global do-not-call list (before accepting and before dialling)."""

    def __init__(self, settings: CallbacksSettings, dnc: DncLookup | None = None) -> None:
        self.settings = settings
        self.dnc = dnc

    def destination(self, raw: str) -> CallbackVerdict:
        try:
            return CallbackVerdict(True, check_destination(raw, self.settings))
        except DestinationRefused as exc:
            return CallbackVerdict(False, raw, exc.code, exc.message)

    async def check(self, raw: str) -> CallbackVerdict:
        verdict = self.destination(raw)
        if not verdict.allowed or self.dnc is None:
            return verdict
        try:
            entries = await self.dnc.check(verdict.number, region="ZZ", campaign=None)
        except Exception:  # noqa: BLE001 - never call a number we could not check
            log.exception("do-not-call list cannot be read; callback not allowed now")
            return CallbackVerdict(False, raw, DNC_UNAVAILABLE, "the do-not-call list cannot be checked right now")
        if entries:
            return CallbackVerdict(False, raw, "number_on_dnc", f"{verdict.number} is on the do-not-call list")
        return verdict


__all__ = ["DNC_UNAVAILABLE", "CallbackGuard", "CallbackVerdict", "DncLookup"]
