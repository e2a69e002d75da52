"""Outbound campaigns as admins write them in YAML: the ``campaigns:`` section (pydantic, ``extra="forbid"``).

```yaml
campaigns:
  retention_q3:
    mode: progressive                     # preview | progressive | predictive
    queue: retention                      # agents of this ACD queue take the calls (and/or agents:, skills:)
    trunk: "PJSIP/{number}@trunk"         # {number}: +31612345678, {digits}: 31612345678
    caller_id: "+31881234567"
    default_region: NL                    # numbers without a country code are read as Dutch
    timezone: Europe/Amsterdam            # when a number's own zone is unknown or ambiguous
    windows:
      - {days: [mon, tue, wed, thu, fri], hours: "09:00-20:30"}
      - {days: [sat], hours: "10:00-16:00"}
    retry:
      busy: {delay: 900, max_attempts: 3}
    abandon: {preset: uk_ofcom}
```

What pydantic checks here is local to one value: types, ranges, the shape of a disposition, a trunk template
with ``{number}``, a valid caller ID for the campaign's region, AMD parameters in Asterisk's ranges.
Everything that needs the whole config — queues, agents and skills of the ACD, a fallback time zone, windows
inside the legal hours of the abandonment preset, the ring time the preset demands, known sounds — is checked by
``callcore.campaigns.validate.validate_campaigns`` so one pass reports it all with YAML paths and lines.

The abandonment policy is named by preset (``us_ftc``, ``uk_ofcom``) plus optional overrides;
:meth:`AbandonConfig.resolved` turns it into plain numbers (:class:`ResolvedAbandonPolicy`) that the dialer's
pacer and the compliance report use.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

import phonenumbers
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from callcore.ivr.model import WEEKDAYS, Minutes, TimeRange, TimeZoneName, parse_range

Mode = Literal["preview", "progressive", "predictive"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# How one dial attempt ended. "human": a person answered (connected to an agent, or abandoned when no agent
# came within the policy's agent_connect_seconds: then the dialer records "abandoned").
Outcome = Literal["human", "machine", "busy", "no_answer", "failed", "abandoned"]
RetryOutcome = Literal["busy", "no_answer", "machine", "failed", "abandoned"]
OUTCOMES: tuple[str, ...] = ("human", "machine", "busy", "no_answer", "failed", "abandoned")
RETRY_OUTCOMES: tuple[str, ...] = ("busy", "no_answer", "machine", "failed", "abandoned")
PRESETS = ("us_ftc", "uk_ofcom")
TRUNK_FIELDS = ("number", "digits")

DAY = 86_400.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---- abandonment policy ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedAbandonPolicy:
    """A preset with the campaign's overrides applied: plain numbers, no YAML.

    - ``limit``: the most abandoned calls allowed, as a fraction of live answers (0.03 = 3 %) per window;
    - ``window_seconds``: the window the rate is measured over (US: 30 days per campaign; UK: 24 hours);
    - ``count_machine_false_positives``: count an estimate of humans the AMD took for machines as abandoned
      (UK: yes);
    - ``agent_connect_seconds``: a live answer not connected to an agent within this time is abandoned (US:
      2 s after the greeting ends; UK: 2 s after the answer);
    - ``min_ring_seconds``: an unanswered call rings at least this long (both: 15 s);
    - ``redial_block_seconds``: no redial of a number whose call was abandoned within this time unless an agent
      is guaranteed (UK: 72 h; US: 0, no such rule);
    - ``legal_hours``: callee-local hours outside which nobody is called whatever the windows say (US: 08:00-21:00;
      UK: None).
    """

    preset: str
    limit: float
    window_seconds: float
    count_machine_false_positives: bool
    agent_connect_seconds: float
    min_ring_seconds: float
    redial_block_seconds: float
    legal_hours: Minutes | None


ABANDON_PRESETS: dict[str, ResolvedAbandonPolicy] = {
    # FTC Telemarketing Sales Rule 16 CFR 310.4(b)(4) and FCC 47 CFR 64.1200: at most 3 % of live answers per
    # campaign over 30 days; connect within 2 s of the completed greeting or play the identification message;
    # ring 15 s (or 4 rings); 310.4(c) / 64.1200(c)(1): calls only between 8 am and 9 pm callee-local time.
    "us_ftc": ResolvedAbandonPolicy(
        preset="us_ftc", limit=0.03, window_seconds=30 * DAY, count_machine_false_positives=False,
        agent_connect_seconds=2.0, min_ring_seconds=15.0, redial_block_seconds=0.0,
        legal_hours=Minutes(8 * 60, 21 * 60),
    ),
    # Ofcom's persistent misuse policy: at most 3 % per campaign per 24 hours, AMD false positives included; an
    # information message within 2 s; ring 15 s; no repeat call to an abandoned number within 72 hours unless a
    # live agent is guaranteed.
    "uk_ofcom": ResolvedAbandonPolicy(
        preset="uk_ofcom", limit=0.03, window_seconds=DAY, count_machine_false_positives=True,
        agent_connect_seconds=2.0, min_ring_seconds=15.0, redial_block_seconds=3 * DAY, legal_hours=None,
    ),
}


def _rate(v: object) -> object:
    """``0.03`` or ``"3%"`` → 0.03. A bare number above 1 is rejected (3 would be 300 %)."""
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(f"{v!r} is not a percentage such as '3%'") from None
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 1:
        raise ValueError(f"{v} is more than 100 %: write a fraction (0.03) or a percentage ('3%')")
    return v


Rate = Annotated[float, BeforeValidator(_rate), Field(ge=0, lt=1)]


class AbandonConfig(_Model):
    """``preset`` plus optional overrides; an override left out keeps the preset's value."""

    preset: Literal["us_ftc", "uk_ofcom"] = "uk_ofcom"
    limit: Rate | None = Field(None, description="fraction of live answers (0.03) or a percentage ('3%')")
    window_seconds: float | None = Field(None, gt=0, le=366 * DAY)
    count_machine_false_positives: bool | None = None
    agent_connect_seconds: float | None = Field(None, gt=0, le=60)

    def resolved(self) -> ResolvedAbandonPolicy:
        base = ABANDON_PRESETS[self.preset]
        return ResolvedAbandonPolicy(
            preset=base.preset,
            limit=base.limit if self.limit is None else self.limit,
            window_seconds=base.window_seconds if self.window_seconds is None else self.window_seconds,
            count_machine_false_positives=(
                base.count_machine_false_positives
                if self.count_machine_false_positives is None
                else self.count_machine_false_positives
            ),
            agent_connect_seconds=(
                base.agent_connect_seconds if self.agent_connect_seconds is None else self.agent_connect_seconds
            ),
            min_ring_seconds=base.min_ring_seconds,
            redial_block_seconds=base.redial_block_seconds,
            legal_hours=base.legal_hours,
        )


# ---- the parts of a campaign -------------------------------------------------------------------------------------


class Disposition(_Model):
    """What the agent records at the end of a conversation (the YAML key is its name).

    - ``is_success``: counts as a success (sale, retention) in reports; the lead is done;
    - ``adds_to_dnc``: the number goes on the do-not-call list (``dnc_scope``: the global list, or this campaign's);
    - ``schedules_callback``: the agent picks a callee-local time; the lead is called back then (by the agent
      who set it, or by any agent: ``callback_owner``);
    - ``retry_as``: the lead is dialled again under the retry rule of that outcome (e.g. "call later").
    Otherwise the lead is done.
    """

    label: str = ""
    is_success: bool = False
    adds_to_dnc: bool = False
    dnc_scope: Literal["global", "campaign"] = "global"
    schedules_callback: bool = False
    callback_owner: Literal["agent", "any"] = "agent"
    retry_as: RetryOutcome | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Disposition:
        if self.schedules_callback and self.retry_as is not None:
            raise ValueError("a disposition either schedules a callback or retries, not both")
        if self.adds_to_dnc and (self.schedules_callback or self.retry_as is not None or self.is_success):
            raise ValueError("a disposition that adds to do-not-call cannot also be a success, callback or retry")
        return self

    @property
    def final(self) -> bool:
        """The lead is closed by this disposition (no callback, no retry)."""
        return not self.schedules_callback and self.retry_as is None


def _default_dispositions() -> dict[str, Disposition]:
    return {
        "sale": Disposition(label="Sale", is_success=True),
        "callback": Disposition(label="Call back", schedules_callback=True),
        "not_interested": Disposition(label="Not interested"),
        "wrong_number": Disposition(label="Wrong number"),
        "do_not_call": Disposition(label="Do not call", adds_to_dnc=True),
    }


class RetryRule(_Model):
    """After an attempt with this outcome: wait ``delay`` seconds; after ``max_attempts`` attempts with this
    outcome the lead is closed (status ``exhausted``)."""

    delay: float = Field(ge=0, le=90 * DAY, description="seconds before the next attempt")
    max_attempts: int = Field(3, ge=1, le=100)


class RetryRules(_Model):
    busy: RetryRule = Field(default_factory=lambda: RetryRule(delay=900, max_attempts=3))
    no_answer: RetryRule = Field(default_factory=lambda: RetryRule(delay=3 * 3600, max_attempts=4))
    machine: RetryRule = Field(default_factory=lambda: RetryRule(delay=4 * 3600, max_attempts=2))
    failed: RetryRule = Field(default_factory=lambda: RetryRule(delay=1800, max_attempts=2))
    abandoned: RetryRule = Field(default_factory=lambda: RetryRule(delay=3 * DAY, max_attempts=2))

    def for_outcome(self, outcome: str) -> RetryRule:
        if outcome not in RETRY_OUTCOMES:
            raise KeyError(f"no retry rule for outcome {outcome!r}")
        return getattr(self, outcome)


class CallingWindow(_Model):
    """Callee-local hours on some weekdays: ``{days: [mon, tue], hours: "09:00-20:00"}``."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS))
    hours: TimeRange = "08:00-21:00"

    @property
    def range(self) -> Minutes:
        return parse_range(self.hours)


class AmdConfig(_Model):
    """Asterisk's AMD() (answering machine detection) and what to do with a machine. Times in milliseconds;
    defaults are Asterisk's (amd.conf)."""

    enabled: bool = False
    initial_silence: int = Field(2500, ge=0, le=60_000, description="longest silence before the greeting")
    greeting: int = Field(1500, ge=0, le=60_000, description="longest greeting of a human")
    after_greeting_silence: int = Field(800, ge=0, le=60_000, description="silence after the greeting: human")
    total_analysis_time: int = Field(5000, ge=500, le=60_000, description="decide within this")
    min_word_length: int = Field(100, ge=0, le=60_000, description="voice shorter than this is no word")
    between_words_silence: int = Field(50, ge=0, le=60_000, description="silence that ends a word")
    maximum_number_of_words: int = Field(2, ge=1, le=100, description="this many words: machine")
    silence_threshold: int = Field(256, ge=0, le=32767, description="average level below which it is silence")
    maximum_word_length: int = Field(5000, ge=0, le=60_000, description="one utterance longer than this: machine")
    machine_action: Literal["hangup", "message"] = "hangup"
    machine_message: list[str] = Field(default_factory=list, description="sounds left on the machine ('message')")
    beep_silence: int = Field(1500, ge=200, le=10_000,
                              description="'message': silence after the greeting and its beep before the message")
    beep_timeout: int = Field(30_000, ge=1000, le=120_000,
                              description="'message': leave the message after this long even without that silence")
    not_sure: Literal["human", "machine"] = Field(
        "human", description="AMD's NOTSURE: treat as a person (an agent takes it) or as a machine"
    )
    false_positive_estimate: float = Field(
        0.0, ge=0, le=1,
        description="share of 'machine' results that were people (from sampling); counted as abandoned when the "
        "policy counts machine false positives",
    )

    @model_validator(mode="after")
    def _message(self) -> AmdConfig:
        if self.machine_action == "message" and not self.machine_message:
            raise ValueError("machine_action 'message' needs 'machine_message' (the sounds to leave)")
        if self.machine_action == "hangup" and self.machine_message:
            raise ValueError("'machine_message' is only played with machine_action 'message'")
        return self

    def machine_wait_args(self) -> str:
        """``WaitForSilence()`` arguments for the dialplan when a message is left: a machine records only after
        its greeting and beep, so the message starts at the silence that follows them (empty: no wait)."""
        if self.machine_action != "message":
            return ""
        return f"{self.beep_silence},1,{self.beep_timeout / 1000:g}"

    def dialplan_args(self) -> str:
        """The arguments of Asterisk's ``AMD()`` application, in its order."""
        return ",".join(
            str(v)
            for v in (
                self.initial_silence, self.greeting, self.after_greeting_silence, self.total_analysis_time,
                self.min_word_length, self.between_words_silence, self.maximum_number_of_words,
                self.silence_threshold, self.maximum_word_length,
            )
        )


class Blending(_Model):
    """Agents who take both inbound calls and this campaign's calls.

    ``priority``: who gets an agent who becomes free while inbound callers wait: ``inbound`` (they do, the
    usual choice), ``outbound`` (the campaign does) or ``equal`` (the longest-waiting work). ``reserve_agents``:
    the campaign dials only while more than this many eligible agents would stay free for inbound calls."""

    priority: Literal["inbound", "outbound", "equal"] = "inbound"
    reserve_agents: int = Field(0, ge=0, le=10_000)


class ScheduledCallbacks(_Model):
    """How the dialer serves callbacks agents scheduled (disposition ``callback``).

    A callback owned by an agent is dialled only when that agent is ready, with the agent reserved for it (in
    preview mode it is offered to that agent first). If the owner cannot take it within ``owner_grace_seconds``
    of its due time (logged out, on a long call), ``after_grace`` decides: ``any`` (default) — any agent of the
    campaign takes it, since a customer who was promised a call at a time is better served a little late by a
    colleague than not at all; ``owner`` — it keeps waiting for its owner."""

    owner_grace_seconds: float = Field(900.0, ge=0, le=7 * DAY,
                                       description="seconds after the due time an owned callback waits for its owner")
    after_grace: Literal["any", "owner"] = "any"


class Pacing(_Model):
    """The predictive pacer's settings for this campaign (docs/dialer.md, "Configuration"; predictive mode only).

    ``dispersion``: how much heavier than a binomial count the pacer takes the live answers to come — the upper
    tail is a burst of answers with no agent free. The default (1.5) is the benchmarked balance; 3.0 keeps every
    15-minute stretch of a small campaign (≈ 50 live answers per 15 minutes) under the cap in the benchmark's
    drift scenario, at about 1.5 % of agent utilization (docs/benchmarks.md). ``max_lines_per_agent``: calls
    ringing at once, at most, per agent who can take a call soon."""

    dispersion: float = Field(1.5, ge=1.0, le=10.0, description="variance of the live answers to come, x binomial")
    max_lines_per_agent: float = Field(3.0, ge=1.0, le=10.0, description="calls ringing at once per agent, at most")


def _region(v: object) -> object:
    if isinstance(v, str):
        v = v.strip().upper()
        if v not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{v!r} is not a region phone numbers know (ISO 3166 codes such as NL, BE, US, GB)")
    return v


Region = Annotated[str, BeforeValidator(_region)]


class CampaignConfig(_Model):
    description: str = ""
    enabled: bool = True
    mode: Mode = "progressive"
    # Who takes the calls: agents of ``queue`` (required), narrowed to the ``agents`` named and those with ``skills``.
    queue: str | None = None
    agents: list[str] = Field(default_factory=list)
    skills: dict[str, int] = Field(default_factory=dict, description="skill → minimum level (1-10)")
    trunk: str = Field("PJSIP/{number}@trunk", description="Asterisk dial string; {number} = E.164 with +")
    caller_id: str = Field(description="the number shown to the callee (a real, returnable number)")
    caller_name: str = ""
    default_region: Region = Field(description="how numbers without a country code are read (NL, US, GB, ...)")
    timezone: TimeZoneName | None = Field(
        None, description="for numbers whose zone is unknown or ambiguous; default: the region's only zone"
    )
    ambiguous_timezone: Literal["fallback", "all"] = Field(
        "fallback",
        description="a number in several zones: use the campaign's zone, or call only when every zone is inside "
        "the windows (safest; a number spanning many zones may get only a narrow daily slot)",
    )
    script: str = Field("", description="what the agent sees and says (shown with the lead)")
    dispositions: dict[str, Disposition] = Field(default_factory=_default_dispositions)
    retry: RetryRules = Field(default_factory=RetryRules)
    max_attempts: int = Field(8, ge=1, le=100, description="attempts per lead over all outcomes")
    windows: list[CallingWindow] = Field(default_factory=lambda: [CallingWindow()])
    exclude_dates: list[date] = Field(default_factory=list, description="callee-local dates nobody is called")
    abandon: AbandonConfig = Field(default_factory=AbandonConfig)
    amd: AmdConfig = Field(default_factory=AmdConfig)
    ring_timeout: float = Field(25.0, gt=0, le=120, description="seconds an unanswered call rings")
    compliance_message: list[str] = Field(
        default_factory=list, description="sounds played to a person answered when no agent is free (identification)"
    )
    recording: bool = False
    priority: int = Field(0, description="between campaigns sharing agents: higher dials first")
    blending: Blending = Field(default_factory=Blending)
    pacing: Pacing = Field(default_factory=Pacing)
    preview_seconds: float | None = Field(
        None, gt=0, le=3600, description="preview mode: how long a lead stays reserved for the agent who got it "
        "(then it goes back to the list); None: 120 s"
    )
    max_lines: int | None = Field(None, ge=1, le=10_000, description="most simultaneous calls of this campaign")
    callbacks: ScheduledCallbacks = Field(default_factory=ScheduledCallbacks)

    @field_validator("trunk")
    @classmethod
    def _trunk(cls, v: str) -> str:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as exc:
            raise ValueError(f"trunk template {v!r}: {exc}") from None
        unknown = [f for f in fields if f not in TRUNK_FIELDS]
        if unknown:
            raise ValueError(f"trunk template {v!r}: unknown field {{{unknown[0]}}} (use {{number}} or {{digits}})")
        if not fields:
            raise ValueError(f"trunk template {v!r} must contain {{number}} (E.164, +31...) or {{digits}} (31...)")
        if "/" not in v:
            raise ValueError(f"trunk template {v!r} must be an Asterisk dial string such as PJSIP/{{number}}@trunk")
        return v

    @model_validator(mode="after")
    def _caller_id(self) -> CampaignConfig:
        try:
            parsed = phonenumbers.parse(self.caller_id, self.default_region)
        except phonenumbers.NumberParseException as exc:
            raise ValueError(f"caller_id {self.caller_id!r}: {exc._msg}") from None
        if not phonenumbers.is_valid_number(parsed):
            raise ValueError(
                f"caller_id {self.caller_id!r} is not a valid number (regulators require a real number the callee "
                f"can call back)"
            )
        return self

    # ---- derived values -----------------------------------------------------------------------------------

    def caller_id_e164(self) -> str:
        parsed = phonenumbers.parse(self.caller_id, self.default_region)
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    def dial_string(self, number: str) -> str:
        """The trunk template filled in for an E.164 ``number``: ``PJSIP/+31612345678@trunk``."""
        return self.trunk.format(number=number, digits=number.lstrip("+"))

    def fallback_timezone(self) -> str | None:
        """``timezone``, else the only zone of ``default_region`` (NL → Europe/Amsterdam); None when the region
        spans several zones (US) and no ``timezone`` is set."""
        if self.timezone:
            return self.timezone
        return region_timezone(self.default_region)

    def policy(self) -> ResolvedAbandonPolicy:
        return self.abandon.resolved()

    def abandon_policy_fields(self) -> dict[str, object]:
        """The resolved policy under the field names of ``callcore.dialer.compliance.AbandonPolicy``
        (``AbandonPolicy(**campaign.abandon_policy_fields())``), with the AMD false-positive estimate."""
        p = self.policy()
        return {
            "name": p.preset,
            "limit": p.limit,
            "window_seconds": p.window_seconds,
            "connect_limit_seconds": p.agent_connect_seconds,
            "count_amd_false_positives": p.count_machine_false_positives,
            "amd_false_positive_rate": self.amd.false_positive_estimate if self.amd.enabled else 0.0,
            "no_redial_after_abandon_seconds": p.redial_block_seconds,
            "min_ring_seconds": p.min_ring_seconds,
        }


def region_timezone(region: str) -> str | None:
    """The single time zone of a region (NL → Europe/Amsterdam), None if it has several (US) or none is known."""
    from callcore.leads.phone import region_zone

    return region_zone(region)


__all__ = [
    "ABANDON_PRESETS",
    "OUTCOMES",
    "PRESETS",
    "RETRY_OUTCOMES",
    "AbandonConfig",
    "AmdConfig",
    "Blending",
    "CallingWindow",
    "CampaignConfig",
    "Disposition",
    "Mode",
    "Outcome",
    "ResolvedAbandonPolicy",
    "RetryOutcome",
    "RetryRule",
    "RetryRules",
    "ScheduledCallbacks",
    "region_timezone",
]
