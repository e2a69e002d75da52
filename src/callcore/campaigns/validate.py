"""Static checks of the ``campaigns:`` section that need the whole config (pydantic checks single values in
model.py).

``validate_campaigns`` returns ``(errors, warnings)``, each a list of ``ConfigIssue`` with the dotted YAML path
(``campaigns.retention.windows[0].hours``) and the line of the deepest part of that path found in the file.

Errors: campaign names that are not simple identifiers, unknown queues / agents / skills of the ACD, skill
levels outside 1-10, a campaign without agents (no ``queue`` and no ``agents``), no fallback time zone where the
region spans several zones, no calling window, windows outside the preset's legal hours (US: 08:00-21:00
callee-local), a ring timeout below the preset's minimum (15 s), no ``compliance_message`` in progressive or
predictive mode (both presets require an identification message when a call is abandoned), unknown sounds
(when the known sounds are given), no dispositions.
Warnings: no agent of the ACD meets the campaign's requirements, overrides looser than the preset's rule,
per-outcome ``max_attempts`` above the campaign's ``max_attempts`` (never reached), AMD with a preset counting
machine false positives but no ``false_positive_estimate``, no success disposition, no disposition adding to
do-not-call, ``preview_seconds`` outside preview mode.
"""

from __future__ import annotations

import re
from typing import Any

from callcore.acd.model import MAX_LEVEL, MIN_LEVEL
from callcore.campaigns.model import ABANDON_PRESETS, CampaignConfig
from callcore.config.loader import ConfigError, ConfigIssue, IssueCollector, unknown_name
from callcore.config.loader import validate as validate_model

Loc = tuple[str | int, ...]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def validate_campaigns(
    campaigns: dict[str, CampaignConfig],
    *,
    lines: dict[Any, int],
    file: str,
    acd: Any = None,
    known_sounds: set[str] | None = None,
    root: Loc = ("campaigns",),
) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """Cross-checks of validated campaigns → ``(errors, warnings)``, each sorted by line.

    ``acd`` (an ``AcdConfig``, optional) enables the checks of queue, agent and skill names; ``known_sounds``
    (None: not checked) the check of sound names. ``root``: the YAML path of the section."""
    out = IssueCollector(lines, file, root)
    for name, campaign in campaigns.items():
        _check_campaign(out, str(name), campaign, acd, known_sounds)
    key = lambda i: (i.line or 0, i.path)  # noqa: E731
    return sorted(out.errors, key=key), sorted(out.warnings, key=key)


def _check_campaign(out: IssueCollector, name: str, c: CampaignConfig, acd: Any, known_sounds: set[str] | None) -> None:
    at: Loc = (name,)
    if not _NAME.match(name):
        out.error(at, f"campaign name {name!r}: letters, digits, '_', '.', '-' only (it is used on the command line "
                      f"and in the database)")
    policy = c.policy()
    preset = ABANDON_PRESETS[policy.preset]

    # Who takes the calls.
    # An answered call waits in the campaign's ACD queue for an agent (that is how the ACD routes it), so the queue
    # is required and a named agent must serve it.
    if c.queue is None:
        out.error(at, "a campaign needs a 'queue': its answered calls wait there for an agent ('agents' and "
                      "'skills' narrow down who takes them)")
    if acd is not None:
        if c.queue is not None and c.queue not in acd.queues:
            out.error(at + ("queue",), unknown_name("queue", c.queue, acd.queues))
        for i, agent in enumerate(c.agents):
            if agent not in acd.agents:
                out.error(at + ("agents", i), unknown_name("agent", agent, acd.agents))
            elif c.queue in acd.queues and c.queue not in acd.agents[agent].queues:
                out.error(at + ("agents", i), f"agent {agent!r} does not serve queue {c.queue!r}, where this "
                                              f"campaign's calls wait: add it to agents.{agent}.queues")
        declared = set(acd.skills)
        for skill, level in c.skills.items():
            if skill not in declared:
                out.error(at + ("skills", skill), unknown_name("skill", skill, declared) + " (declare it under 'skills')")
            if not MIN_LEVEL <= level <= MAX_LEVEL:
                out.error(at + ("skills", skill), f"level {level} is outside {MIN_LEVEL}-{MAX_LEVEL}")
        pool = eligible_agents(c, acd)
        if (c.queue in acd.queues or any(a in acd.agents for a in c.agents)) and not pool:
            out.warn(at, "no agent of the ACD meets this campaign's queue/agents/skills: it never dials")
    else:
        for skill, level in c.skills.items():
            if not MIN_LEVEL <= level <= MAX_LEVEL:
                out.error(at + ("skills", skill), f"level {level} is outside {MIN_LEVEL}-{MAX_LEVEL}")

    # Time zones and windows.
    if c.fallback_timezone() is None:
        out.error(at + ("default_region",), f"region {c.default_region} spans several time zones: set 'timezone' "
                                            f"(used for numbers whose own zone is unknown or ambiguous)")
    if not c.windows:
        out.error(at + ("windows",), "no calling window: the campaign would never dial")
    for i, w in enumerate(c.windows):
        if not w.days:
            out.error(at + ("windows", i, "days"), "a window needs at least one day")
        legal = policy.legal_hours
        r = w.range
        if legal is not None and (r.start < legal.start or r.end > legal.end):
            out.error(
                at + ("windows", i, "hours"),
                f"{w.hours} is outside {_hhmm(legal.start)}-{_hhmm(legal.end)} callee-local time, the legal calling "
                f"hours of {policy.preset}",
            )

    # The preset's rules.
    if c.ring_timeout < policy.min_ring_seconds:
        out.error(at + ("ring_timeout",), f"{c.ring_timeout:g} s is below the {policy.min_ring_seconds:g} s an "
                                          f"unanswered call must ring under {policy.preset}")
    if c.mode in ("progressive", "predictive") and not c.compliance_message:
        out.error(at + ("compliance_message",), f"{c.mode} mode needs a compliance_message: {policy.preset} requires "
                                                f"a recorded identification message when no agent takes an answered "
                                                f"call")
    ab = c.abandon
    if ab.limit is not None and ab.limit > preset.limit:
        out.warn(at + ("abandon", "limit"), f"{ab.limit:.1%} is looser than {policy.preset} ({preset.limit:.0%})")
    if ab.window_seconds is not None and policy.preset == "uk_ofcom" and ab.window_seconds > preset.window_seconds:
        out.warn(at + ("abandon", "window_seconds"),
                 f"a window longer than {preset.window_seconds:g} s is looser than uk_ofcom (per 24 hours)")
    if ab.agent_connect_seconds is not None and ab.agent_connect_seconds > preset.agent_connect_seconds:
        out.warn(at + ("abandon", "agent_connect_seconds"),
                 f"{ab.agent_connect_seconds:g} s is looser than {policy.preset} ({preset.agent_connect_seconds:g} s)")
    if ab.count_machine_false_positives is False and preset.count_machine_false_positives:
        out.warn(at + ("abandon", "count_machine_false_positives"),
                 f"{policy.preset} counts an estimate of AMD false positives as abandoned calls")
    if c.amd.enabled and policy.count_machine_false_positives and c.amd.false_positive_estimate == 0:
        out.warn(at + ("amd", "false_positive_estimate"),
                 "AMD is on and the policy counts machine false positives, but the estimate is 0: measure it (listen "
                 "to a sample of 'machine' calls) and set it")

    # Retries and dispositions.
    for outcome in ("busy", "no_answer", "machine", "failed", "abandoned"):
        rule = c.retry.for_outcome(outcome)
        if rule.max_attempts > c.max_attempts:
            out.warn(at + ("retry", outcome, "max_attempts"),
                     f"{rule.max_attempts} is never reached: the campaign stops at max_attempts {c.max_attempts}")
    if not c.dispositions:
        out.error(at + ("dispositions",), "a campaign needs dispositions (what agents record after a call)")
    else:
        if not any(d.is_success for d in c.dispositions.values()):
            out.warn(at + ("dispositions",), "no disposition has is_success: reports show no successes")
        if not any(d.adds_to_dnc for d in c.dispositions.values()):
            out.warn(at + ("dispositions",), "no disposition adds to do-not-call: agents cannot honour a "
                                             "'do not call me again' during the call")
    for dname in c.dispositions:
        if not _NAME.match(str(dname)):
            out.error(at + ("dispositions", dname), f"disposition name {dname!r}: letters, digits, '_', '.', '-' only")
    if c.preview_seconds is not None and c.mode != "preview":
        out.warn(at + ("preview_seconds",), f"only used in preview mode (this campaign is {c.mode})")

    # Sounds.
    if known_sounds is not None:
        for field, sounds in (("compliance_message", c.compliance_message), ("amd.machine_message", c.amd.machine_message)):
            loc = tuple(field.split("."))
            for i, sound in enumerate(sounds):
                if sound not in known_sounds:
                    out.error(at + loc + (i,), f"unknown sound {sound!r}")


def eligible_agents(campaign: CampaignConfig, acd: Any) -> list[str]:
    """Agent ids of the ACD that may take this campaign's calls — the ones the ACD will route them to: serving
    ``queue``, among ``agents`` when it names some, having every skill of ``skills`` at its level."""
    names: list[str] = []
    for aid, agent in acd.agents.items():
        if campaign.queue is not None and campaign.queue in agent.queues and (
                not campaign.agents or aid in campaign.agents):
            if all(agent.skills.get(s, 0) >= lvl for s, lvl in campaign.skills.items()):
                names.append(aid)
    return names


def check_campaigns(
    data: Any, *, lines: dict[Any, int], file: str, acd: Any = None, known_sounds: set[str] | None = None
) -> tuple[dict[str, CampaignConfig] | None, list[ConfigIssue], list[ConfigIssue]]:
    """Raw YAML data holding ``campaigns`` at the top level (other keys are ignored) → the models (None if
    invalid), errors, warnings. Pydantic errors come first; the cross-checks run only on valid models."""
    from pydantic import BaseModel, ConfigDict, Field

    class _Section(BaseModel):
        model_config = ConfigDict(extra="ignore")
        campaigns: dict[str, CampaignConfig] = Field(default_factory=dict)

    section = {"campaigns": data.get("campaigns") or {}} if isinstance(data, dict) else {}
    try:
        parsed = validate_model(_Section, section, lines, file)
    except ConfigError as exc:
        return None, list(exc.issues), []
    errors, warnings = validate_campaigns(parsed.campaigns, lines=lines, file=file, acd=acd, known_sounds=known_sounds)
    return parsed.campaigns, errors, warnings


__all__ = ["check_campaigns", "eligible_agents", "validate_campaigns"]
