"""Parsing real ARI frames recorded from Asterisk 22 (scripts/record-ari-events.py)."""

import json
from pathlib import Path

import pytest

from callcore.ari import events as ev

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "ari_events.jsonl"
FRAMES = [json.loads(line) for line in SAMPLES.read_text().splitlines()]


def test_given_recorded_frames_then_every_one_parses_to_its_typed_model():
    parsed = [ev.parse_event(f) for f in FRAMES]
    assert not [p for p in parsed if isinstance(p, ev.UnknownEvent)]
    assert [p.type for p in parsed] == [f["type"] for f in FRAMES]
    assert {type(p).__name__ for p in parsed} >= {
        "StasisStart", "StasisEnd", "ChannelStateChange", "ChannelDtmfReceived", "PlaybackStarted",
        "PlaybackFinished", "Dial", "ChannelEnteredBridge", "ChannelLeftBridge", "ChannelHangupRequest",
        "ChannelDestroyed", "BridgeDestroyed", "ChannelVarset",
    }


def test_given_a_recorded_call_then_fields_callcore_uses_are_read():
    parsed = [ev.parse_event(f) for f in FRAMES]
    start = next(p for p in parsed if isinstance(p, ev.StasisStart))
    assert start.args == ["inbound", "1000"]
    assert start.channel.caller.number == "+31201234567"
    assert start.channel.dialplan.app_name == "Stasis"
    dtmf = next(p for p in parsed if isinstance(p, ev.ChannelDtmfReceived))
    assert dtmf.digit == "7" and dtmf.duration_ms > 0
    dials = [p.dialstatus for p in parsed if isinstance(p, ev.Dial)]
    assert dials[-1] == "ANSWER"


def test_given_recorded_frames_then_routing_keys_order_playback_with_its_channel():
    parsed = [ev.parse_event(f) for f in FRAMES]
    caller = next(p for p in parsed if isinstance(p, ev.StasisStart)).channel.id
    playback = next(p for p in parsed if isinstance(p, ev.PlaybackStarted))
    assert playback.routing_key == caller
    dial = next(p for p in parsed if isinstance(p, ev.Dial))
    assert dial.routing_key == dial.peer.id
    bridge = next(p for p in parsed if isinstance(p, ev.BridgeDestroyed))
    assert bridge.routing_key == f"bridge:{bridge.bridge.id}"


@pytest.mark.parametrize("frame", [
    {"type": "StasisStart"},  # no channel
    {"type": "ChannelDtmfReceived", "channel": {"id": "1"}},  # no digit
    {"no": "type"},
    ["a", "list"],
])
def test_given_a_broken_frame_then_parsing_raises_malformed(frame):
    with pytest.raises(ev.MalformedEvent):
        ev.parse_event(frame)


def test_given_an_event_type_callcore_does_not_model_then_it_is_an_unknown_event_with_its_body():
    e = ev.parse_event({"type": "ChannelToneDetected", "channel": {"id": "1"}, "application": "callcore"})
    assert isinstance(e, ev.UnknownEvent) and e.body["channel"] == {"id": "1"}
    assert e.routing_key == ""


def test_given_recorded_frames_as_text_then_the_one_pass_parser_gives_the_same_events_as_parse_event():
    for line in SAMPLES.read_text().splitlines():
        assert ev.parse_event_json(line) == ev.parse_event(json.loads(line))


@pytest.mark.parametrize("text", [
    '{"type": "StasisStart"}',  # a known type without its channel
    '{"type": "ChannelDtmfReceived", "channel": {"id": "1"}}',
    '{"no": "type"}',
    '["a", "list"]',
])
def test_given_a_broken_frame_as_text_then_it_is_malformed_as_before(text):
    with pytest.raises(ev.MalformedEvent) as fast:
        ev.parse_event_json(text)
    with pytest.raises(ev.MalformedEvent) as before:
        ev.parse_event(json.loads(text))
    assert str(fast.value) == str(before.value)


def test_given_text_that_is_not_json_then_the_one_pass_parser_raises_the_json_error():
    with pytest.raises(json.JSONDecodeError):
        ev.parse_event_json('{"type": "StasisStart",')


def test_given_an_unknown_event_type_as_text_then_it_is_an_unknown_event_with_its_body():
    e = ev.parse_event_json('{"type": "ChannelToneDetected", "channel": {"id": "1"}, "application": "callcore"}')
    assert isinstance(e, ev.UnknownEvent) and e.body["channel"] == {"id": "1"} and e.application == "callcore"
