"""The sipp runner's pure parts: scenario rendering, stat parsing, port checks,
result checks. No sipp, no Asterisk."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.sip.runner import (
    SCENARIOS,
    AgentPhone,
    Dtmf,
    SippResult,
    _udp_bound,
    allocate_media_port,
    caller_scenario,
    parse_stat_csv,
    render,
    uas_scenario,
)



def _elements(path: Path) -> list[ET.Element]:
    text = path.read_text()
    body = text[text.index("<scenario") :]
    return list(ET.fromstring(body))


def test_caller_waiting_for_bye(tmp_path: Path) -> None:
    path = caller_scenario(tmp_path, ["7", Dtmf("54321#", 800)], caller="+3120555")
    text = path.read_text()
    assert "{{" not in text
    els = _elements(path)
    tags = [e.tag for e in els]
    assert tags[0] == "send" and "INVITE sip:[service]@" in els[0].text
    plays = [e for e in els if e.tag == "nop"]
    assert [p.find("action/exec").get("play_pcap_audio") for p in plays] == [
        str(tmp_path / "dtmf00.pcap"),
        str(tmp_path / "dtmf01.pcap"),
    ]
    assert (tmp_path / "dtmf00.pcap").stat().st_size > 0
    assert els[-2].tag == "recv" and els[-2].get("request") == "BYE"
    assert "SIP/2.0 200 OK" in els[-1].text
    assert '"+3120555" <sip:+3120555@' in text
    # sipp rejects variables that are set but unused: none when waiting for BYE
    assert "assign_to" not in text
    pauses = [int(e.get("milliseconds")) for e in els if e.tag == "pause"]
    assert pauses[0] == 500 and pauses[2] == 800
    assert pauses[1] >= 200, "waits for the first pcap to finish playing"


def test_caller_hanging_up_itself(tmp_path: Path) -> None:
    path = caller_scenario(tmp_path, [], hangup_after_ms=1500)
    text = path.read_text()
    els = _elements(path)
    assert els[-3].tag == "pause" and els[-3].get("milliseconds") == "1500"
    assert "BYE [$remote_contact] SIP/2.0" in els[-2].text and "To: [$remote_party]" in els[-2].text
    assert els[-1].get("response") == "200"
    assert text.count('assign_to="remote_party"') == 1 and text.count('assign_to="remote_contact"') == 1


def test_uas_variants(tmp_path: Path) -> None:
    plain = uas_scenario(tmp_path, name="a")
    text = plain.read_text()
    assert 'request="CANCEL" timeout="1"' in text and "assign_to=\"local_party\"" not in text
    ringing = uas_scenario(tmp_path, ring_ms=2500, hangup_after_ms=900, media_pcap=Path("/x/y.pcap"), name="b")
    text = ringing.read_text()
    assert 'timeout="2500" ontimeout="answer"' in text
    assert 'play_pcap_audio="/x/y.pcap"' in text
    assert "From: [$local_party];tag=[pid]SIPpTag01[call_number]" in text
    _elements(ringing)  # well-formed


def test_all_templates_are_well_formed_after_render(tmp_path: Path) -> None:
    out = render("caller_cancel.xml", caller="+1", cancel_after_ms=1000)
    assert "{{" not in out
    ET.fromstring(out[out.index("<scenario") :])
    for tpl in SCENARIOS.glob("*.xml"):
        assert "${" not in tpl.read_text(), "placeholders are {{name}}; $ belongs to sipp"


def test_render_missing_value() -> None:
    with pytest.raises(KeyError):
        render("caller_cancel.xml", caller="+1")


STAT = """StartTime;LastResetTime;CurrentTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);CallRate(C);
2026-11-24 00:00:00;2026-11-24 00:00:00;2026-11-24 00:00:01;0;0;0;0;0.0;
2026-11-24 00:00:00;2026-11-24 00:00:01;2026-11-24 00:00:02;3;49;0;1;8.3;
"""


def test_parse_stat_csv_takes_last_row() -> None:
    stats = parse_stat_csv(STAT)
    assert stats["SuccessfulCall(C)"] == 49 and stats["FailedCall(C)"] == 1 and stats["CallRate(C)"] == "8.3"
    assert parse_stat_csv("") == {} and parse_stat_csv(STAT.splitlines()[0]) == {}


def test_result_check(tmp_path: Path) -> None:
    good = SippResult(0, 1, 0, {}, "", "", "", 1.0, False, tmp_path)
    assert good.ok and good.check() is good
    bad = SippResult(1, 0, 1, {}, "", "", "unexpected 603", 1.0, False, tmp_path, ["sipp"])
    with pytest.raises(AssertionError, match="unexpected 603"):
        bad.check()
    assert not SippResult(None, 1, 0, {}, "", "", "", 1.0, True, tmp_path).ok


def test_udp_port_helpers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert _udp_bound(port)
    port = allocate_media_port()
    assert 20000 <= port < 30000 and port % 4 == 0


def test_agent_phone_ports() -> None:
    assert AgentPhone(1).port == 6101 and AgentPhone(20).port == 6120
    assert AgentPhone(7).name == "agent07"
    with pytest.raises(ValueError):
        AgentPhone(21)
