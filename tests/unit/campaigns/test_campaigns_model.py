"""The campaigns: section — pydantic model, presets, cross-checks against the ACD, with real YAML line numbers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from callcore.acd.validate import check_acd
from callcore.campaigns.model import ABANDON_PRESETS, AbandonConfig, AmdConfig, CampaignConfig, Disposition
from callcore.campaigns.validate import check_campaigns, eligible_agents
from callcore.config import ConfigError, load_config
from callcore.config.loader import ConfigIssue, load_yaml
from callcore.ivr.model import Minutes

REPO = Path(__file__).resolve().parents[3]

ACD = """
skills: [language:nl, language:en, retention, sales]
agents:
  agent01: {endpoint: PJSIP/agent01, skills: {language:nl: 9, retention: 8}, queues: [retention]}
  agent02: {endpoint: PJSIP/agent02, skills: {language:nl: 6, sales: 7}, queues: [sales]}
queues:
  retention: {}
  sales: {}
"""


def load(tmp_path: Path, text: str, *, sounds: set[str] | None = None):
    path = tmp_path / "callcore.yaml"
    path.write_text(textwrap.dedent(ACD).lstrip("\n") + textwrap.dedent(text))
    data, lines = load_yaml(path)
    acd, errors, _ = check_acd(data, lines=lines, file="callcore.yaml")
    assert errors == []
    return check_campaigns(data, lines=lines, file="callcore.yaml", acd=acd, known_sounds=sounds)


def where(issues: list[ConfigIssue]) -> list[tuple[int | None, str]]:
    return [(i.line, i.path) for i in issues]


MINIMAL = dict(caller_id="+31881234567", default_region="NL", queue="retention")


def test_defaults_are_what_a_contact_center_expects() -> None:
    c = CampaignConfig(**MINIMAL)
    assert c.mode == "progressive" and c.enabled and c.ring_timeout == 25 and not c.recording
    assert [w.hours for w in c.windows] == ["08:00-21:00"] and len(c.windows[0].days) == 7
    assert c.fallback_timezone() == "Europe/Amsterdam"  # NL has one zone
    assert set(c.dispositions) == {"sale", "callback", "not_interested", "wrong_number", "do_not_call"}
    assert c.dispositions["do_not_call"].adds_to_dnc and c.dispositions["sale"].is_success
    assert c.dispositions["callback"].schedules_callback and not c.dispositions["callback"].final
    assert c.retry.abandoned.delay == 72 * 3600 and c.retry.busy.max_attempts == 3
    assert c.policy() == ABANDON_PRESETS["uk_ofcom"] and c.blending.priority == "inbound"
    assert c.dial_string("+31612345678") == "PJSIP/+31612345678@trunk"
    assert not c.amd.enabled and c.amd.dialplan_args() == "2500,1500,800,5000,100,50,2,256,5000"
    assert c.caller_id_e164() == "+31881234567"


def test_presets_and_overrides_resolve_to_plain_fields() -> None:
    us = AbandonConfig(preset="us_ftc").resolved()
    assert (us.limit, us.window_seconds, us.count_machine_false_positives, us.agent_connect_seconds) == (
        0.03, 30 * 86400, False, 2.0)
    assert us.legal_hours == Minutes(480, 1260) and us.redial_block_seconds == 0 and us.min_ring_seconds == 15
    uk = AbandonConfig(preset="uk_ofcom", limit="1.5%", window_seconds=3600, agent_connect_seconds=1).resolved()
    assert (uk.limit, uk.window_seconds, uk.agent_connect_seconds) == (0.015, 3600, 1)
    assert uk.count_machine_false_positives and uk.redial_block_seconds == 72 * 3600 and uk.legal_hours is None
    assert AbandonConfig(limit=0.02).resolved().limit == 0.02
    with pytest.raises(ValidationError, match="more than 100 %"):
        AbandonConfig(limit=3)
    with pytest.raises(ValidationError):
        AbandonConfig(preset="nl_acm")


def test_local_model_errors() -> None:
    with pytest.raises(ValidationError, match="must contain"):
        CampaignConfig(**MINIMAL, trunk="PJSIP/trunk")
    with pytest.raises(ValidationError, match="unknown field"):
        CampaignConfig(**MINIMAL, trunk="PJSIP/{phone}@trunk")
    assert CampaignConfig(**MINIMAL, trunk="SIP/trunk/00{digits}").dial_string("+3220001111") == "SIP/trunk/003220001111"
    with pytest.raises(ValidationError, match="not a valid number"):
        CampaignConfig(**{**MINIMAL, "caller_id": "0881"})
    with pytest.raises(ValidationError, match="not a region"):
        CampaignConfig(**{**MINIMAL, "default_region": "XX"})
    assert CampaignConfig(**{**MINIMAL, "default_region": "be", "caller_id": "02 555 12 34"}).default_region == "BE"
    with pytest.raises(ValidationError, match="machine_message"):
        AmdConfig(enabled=True, machine_action="message")
    with pytest.raises(ValidationError, match="either schedules a callback or retries"):
        Disposition(schedules_callback=True, retry_as="busy")
    with pytest.raises(ValidationError, match="do-not-call"):
        Disposition(adds_to_dnc=True, is_success=True)
    with pytest.raises(ValidationError, match="Extra inputs"):
        CampaignConfig(**MINIMAL, dial_mode="progressive")


def test_a_good_campaign(tmp_path: Path) -> None:
    campaigns, errors, warnings = load(tmp_path, """
    campaigns:
      winback:
        mode: predictive
        queue: retention
        skills: {language:nl: 5}
        caller_id: "088 123 4567"
        default_region: NL
        compliance_message: [callcore/sorry]
        amd: {enabled: true, false_positive_estimate: 0.05, machine_action: message, machine_message: [callcore/goodbye]}
        windows:
          - {days: [mon, tue, wed, thu, fri], hours: "09:00-20:30"}
          - {days: [sat], hours: "10:00-16:00"}
        retry: {busy: {delay: 300, max_attempts: 5}}
    """, sounds={"callcore/sorry", "callcore/goodbye"})
    assert errors == [] and warnings == []
    c = campaigns["winback"]
    assert c.retry.busy.delay == 300 and c.retry.no_answer.delay == 3 * 3600
    assert c.amd.false_positive_estimate == 0.05


def test_cross_reference_errors_point_at_their_lines(tmp_path: Path) -> None:
    campaigns, errors, warnings = load(tmp_path, """
    campaigns:
      us outbound:
        mode: predictive
        queue: retension
        agents: [agent01, agent99]
        skills: {retention: 12, spanish: 3}
        caller_id: "+1 212 555 0100"
        default_region: US
        abandon: {preset: us_ftc, limit: "5%"}
        windows:
          - {days: [mon], hours: "07:30-20:00"}
          - {days: [], hours: "09:00-21:30"}
        ring_timeout: 12
        compliance_message: [callcore/nope]
        dispositions: {}
    """, sounds={"callcore/sorry"})
    assert campaigns is not None
    # The ACD section takes 8 lines; `campaigns:` is line 9, the campaign line 10.
    assert where(errors) == [
        (10, "campaigns.us outbound"),
        (12, "campaigns.us outbound.queue"),
        (13, "campaigns.us outbound.agents[1]"),
        (14, "campaigns.us outbound.skills.retention"),
        (14, "campaigns.us outbound.skills.spanish"),
        (16, "campaigns.us outbound.default_region"),
        (19, "campaigns.us outbound.windows[0].hours"),
        (20, "campaigns.us outbound.windows[1].days"),
        (20, "campaigns.us outbound.windows[1].hours"),
        (21, "campaigns.us outbound.ring_timeout"),
        (22, "campaigns.us outbound.compliance_message[0]"),
        (23, "campaigns.us outbound.dispositions"),
    ]
    messages = {i.path: i.message for i in errors}
    assert "did you mean 'retention'" in messages["campaigns.us outbound.queue"]
    assert "spans several time zones" in messages["campaigns.us outbound.default_region"]
    assert "08:00-21:00" in messages["campaigns.us outbound.windows[0].hours"]
    assert "15 s" in messages["campaigns.us outbound.ring_timeout"]
    assert where(warnings) == [
        (10, "campaigns.us outbound"),  # agent01 is the only known agent, and lacks retention 12
        (17, "campaigns.us outbound.abandon.limit"),
    ]


def test_missing_agents_and_compliance_message_and_warnings(tmp_path: Path) -> None:
    _, errors, warnings = load(tmp_path, """
    campaigns:
      lonely:
        mode: progressive
        caller_id: "+31881234567"
        default_region: NL
        amd: {enabled: true}
        max_attempts: 2
        preview_seconds: 30
        dispositions:
          meh: {}
      picky:
        mode: preview
        queue: sales
        skills: {retention: 9}
        caller_id: "+31881234567"
        default_region: NL
        abandon: {count_machine_false_positives: false, agent_connect_seconds: 5}
    """)
    assert where(errors) == [(10, "campaigns.lonely"), (10, "campaigns.lonely.compliance_message")]
    assert where(warnings) == [
        # Default retry rules (not in the file) are reported at the campaign's line.
        (10, "campaigns.lonely.retry.busy.max_attempts"),
        (10, "campaigns.lonely.retry.no_answer.max_attempts"),
        (14, "campaigns.lonely.amd.false_positive_estimate"),
        (16, "campaigns.lonely.preview_seconds"),
        (17, "campaigns.lonely.dispositions"),
        (17, "campaigns.lonely.dispositions"),
        (19, "campaigns.picky"),
        (25, "campaigns.picky.abandon.agent_connect_seconds"),
        (25, "campaigns.picky.abandon.count_machine_false_positives"),
    ]


def test_pydantic_errors_carry_lines(tmp_path: Path) -> None:
    campaigns, errors, _ = load(tmp_path, """
    campaigns:
      x:
        mode: robocall
        caller_id: "+31881234567"
        default_region: NL
        windows:
          - {days: [maandag], hours: "9-17"}
        amd: {silence_threshold: 40000}
    """)
    assert campaigns is None
    assert where(errors) == [
        (11, "campaigns.x.mode"),
        (15, "campaigns.x.windows[0].days[0]"),
        (15, "campaigns.x.windows[0].hours"),
        (16, "campaigns.x.amd.silence_threshold"),
    ]


def test_eligible_agents_are_the_queues_narrowed_by_named_agents_and_skills(tmp_path: Path) -> None:
    # The ACD routes an answered call to agents of the campaign's queue: only they can count for pacing.
    path = tmp_path / "acd.yaml"
    path.write_text(textwrap.dedent(ACD).replace(
        "queues:\n", "  agent03: {endpoint: PJSIP/agent03, skills: {language:nl: 5}, queues: [retention]}\nqueues:\n", 1))
    data, lines = load_yaml(path)
    acd, errors, _ = check_acd(data, lines=lines, file="acd.yaml")
    assert errors == []
    c = CampaignConfig(**MINIMAL)
    assert eligible_agents(c, acd) == ["agent01", "agent03"]
    assert eligible_agents(c.model_copy(update={"agents": ["agent03"]}), acd) == ["agent03"]
    assert eligible_agents(c.model_copy(update={"skills": {"retention": 5}}), acd) == ["agent01"]


def test_a_campaign_needs_a_queue_and_its_named_agents_must_serve_it(tmp_path: Path) -> None:
    _, errors, _ = load(tmp_path, """
    campaigns:
      no_queue: {caller_id: "+31881234567", default_region: NL, agents: [agent01]}
      outsider: {caller_id: "+31881234567", default_region: NL, queue: retention, agents: [agent02]}
    """)
    messages = [f"{i.path}: {i.message}" for i in errors]
    assert any("no_queue" in m and "needs a 'queue'" in m for m in messages), messages
    assert any("outsider.agents[0]" in m or ("outsider" in m and "does not serve queue 'retention'" in m)
               for m in messages), messages


def test_load_config_runs_the_campaign_checks(tmp_path: Path) -> None:
    path = tmp_path / "callcore.yaml"
    path.write_text("ari: {password: x}\n" + textwrap.dedent(ACD) + textwrap.dedent("""
    campaigns:
      c1:
        queue: nope
        caller_id: "+31881234567"
        default_region: NL
        compliance_message: [callcore/sorry]
    """))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (issue,) = err.value.issues
    assert issue.path == "campaigns.c1.queue" and issue.line == 13 and "unknown queue" in issue.message


def test_the_shipped_example_campaign() -> None:
    from callcore import prompts

    config = load_config(REPO / "config" / "callcore.yaml", known_sounds=prompts.prompt_names())
    assert config.warnings == []
    c = config.campaigns["retention_2026"]
    assert c.mode == "progressive" and c.default_region == "NL" and c.queue == "retention"
    assert c.policy().preset == "uk_ofcom" and c.fallback_timezone() == "Europe/Amsterdam"
    assert any(d.adds_to_dnc for d in c.dispositions.values())


def test_policy_fields_for_the_dialer() -> None:
    c = CampaignConfig(**MINIMAL, abandon={"preset": "uk_ofcom", "limit": "2%"},
                       amd={"enabled": True, "false_positive_estimate": 0.04})
    assert c.abandon_policy_fields() == {
        "name": "uk_ofcom", "limit": 0.02, "window_seconds": 86400.0, "connect_limit_seconds": 2.0,
        "count_amd_false_positives": True, "amd_false_positive_rate": 0.04,
        "no_redial_after_abandon_seconds": 259200.0, "min_ring_seconds": 15.0,
    }
    # The fields match the dialer's AbandonPolicy (built here only to check the names; config does not import it).
    from callcore.dialer.compliance import AbandonPolicy

    assert AbandonPolicy(**c.abandon_policy_fields()).connect_limit_seconds == 2.0


def test_a_message_for_machines_waits_for_the_silence_after_the_beep_and_hangup_does_not_wait():
    from callcore.campaigns.model import AmdConfig

    assert AmdConfig(enabled=True).machine_wait_args() == ""
    message = AmdConfig(enabled=True, machine_action="message", machine_message=["callcore/goodbye"])
    assert message.machine_wait_args() == "1500,1,30"
    tuned = message.model_copy(update={"beep_silence": 1200, "beep_timeout": 12_500})
    assert tuned.machine_wait_args() == "1200,1,12.5"


def test_a_campaigns_pacing_settings_reach_its_own_pacer() -> None:
    from callcore.dialer.service import DialerService

    class _Acd:
        def on_agent_change(self, _fn) -> None:
            pass

    careful = CampaignConfig(**MINIMAL, mode="predictive", pacing={"dispersion": 3.0, "max_lines_per_agent": 2})
    plain = CampaignConfig(**MINIMAL, mode="predictive")
    dialer = DialerService({"careful": careful, "plain": plain}, _Acd(), None, None)  # type: ignore[arg-type]
    assert dialer.pacer_of(dialer.runs["careful"]).config.dispersion == 3.0
    assert dialer.pacer_of(dialer.runs["careful"]).config.max_lines_per_agent == 2.0
    assert dialer.pacer_of(dialer.runs["plain"]).config.dispersion == 1.5  # the benchmarked default
    dialer.runs["plain"].config = careful  # a config change (reload, PUT) takes effect at the next decision
    assert dialer.pacer_of(dialer.runs["plain"]).config.dispersion == 3.0
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        CampaignConfig(**MINIMAL, pacing={"dispersion": 0.5})
