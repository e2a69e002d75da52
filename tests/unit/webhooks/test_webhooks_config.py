"""The webhooks: section, event names and patterns, bodies, and signatures (no database, no network)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from callcore.acd.service import AcdEventType
from callcore.acd.agent_state import AgentState
from callcore.config import ConfigError, load_config
from callcore.config.models import CallcoreConfig
from callcore.events import AgentEvent, CallEvent
from callcore.webhooks.config import WebhookConfig
from callcore.webhooks.payload import ACD_TYPES, AGENT_STATES, Matcher, check_pattern, encode, event_body, public_type
from callcore.webhooks.signing import signature, verify
from tests.unit.webhooks.receiver import SECRET, SECRET_ENV

AT = datetime(2026, 3, 1, 10, 30, 0, 123456, tzinfo=timezone(timedelta(hours=1)))


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def cfg(**kw: Any) -> dict[str, Any]:
    return {"name": "crm", "url": "https://crm.example.org/hooks", "events": ["call.*"], "secret_env": SECRET_ENV,
            **kw}


def error_of(**kw: Any) -> str:
    with pytest.raises(ValidationError) as err:
        WebhookConfig.model_validate(cfg(**kw))
    return str(err.value)


# -- config ----------------------------------------------------------------------------------------------------------


def test_defaults_and_the_secret_from_the_environment():
    w = WebhookConfig.model_validate(cfg(events=["call.*", "acd.connected", "call.*"]))
    assert (w.enabled, w.timeout, w.max_attempts, w.concurrency) == (True, 10.0, 12, 4)
    assert w.events == ["call.*", "acd.connected"]  # duplicates dropped, order kept
    assert w.secret() == SECRET.encode()
    assert "secret" not in w.model_dump_json() or SECRET not in w.model_dump_json()


@pytest.mark.parametrize("url,fragment", [
    ("ftp://crm.example.org/x", "got scheme 'ftp'"), ("file:///etc/passwd", "got scheme 'file'"),
    ("javascript:alert(1)", "got scheme 'javascript'"), ("/relative/path", "got no scheme"),
    ("https:///nohost", "no host"), ("https://user:pw@crm.example.org/", "no credentials"),
    ("http://crm.example.org:99999/", "port"), ("https://crm.example.org/#x", "fragment"),
])
def test_only_http_urls_without_credentials(url: str, fragment: str):
    assert fragment in error_of(url=url)


def test_http_and_https_urls_are_accepted():
    for url in ("http://127.0.0.1:8000/hook", "https://crm.example.org/a?b=c", "HTTPS://[::1]:8443/x"):
        assert WebhookConfig.model_validate(cfg(url=url)).url == url


def test_the_secret_never_comes_from_the_yaml(monkeypatch: pytest.MonkeyPatch):
    assert "never goes into the YAML" in error_of(secret="hunter2hunter2hunter2")
    assert "is not set" in error_of(secret_env="CALLCORE_WEBHOOK_UNSET_FOR_TEST")
    monkeypatch.setenv("CALLCORE_WEBHOOK_SHORT", "short")
    assert "too short" in error_of(secret_env="CALLCORE_WEBHOOK_SHORT")
    assert "environment variable name" in error_of(secret_env="lower-case")
    # a disabled webhook needs no secret yet
    WebhookConfig.model_validate(cfg(secret_env="CALLCORE_WEBHOOK_UNSET_FOR_TEST", enabled=False))


def test_other_field_checks():
    assert "backoff_max" in error_of(backoff_initial=10, backoff_max=5)
    assert "at least 1" in error_of(events=[])
    assert "letters, digits" in error_of(name="has space")
    assert "Extra inputs" in error_of(retries=3)


def test_names_are_unique_and_the_section_is_in_the_config():
    one = cfg()
    with pytest.raises(ValidationError, match="unique: crm"):
        CallcoreConfig.model_validate({"webhooks": [one, one]})
    assert CallcoreConfig.model_validate({"webhooks": [one]}).webhooks[0].name == "crm"
    assert CallcoreConfig().webhooks == []


def test_errors_in_the_yaml_name_their_line(tmp_path: Path):
    path = tmp_path / "callcore.yaml"
    path.write_text(f"""\
ari: {{password: x}}
webhooks:
  - name: crm
    url: ftp://crm.example.org/x
    events: ["call.*", "agent.sleeping"]
    secret_env: {SECRET_ENV}
""")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    found = {(i.path, i.line) for i in err.value.issues}
    assert ("webhooks[0].url", 4) in found and ("webhooks[0].events", 5) in found


# -- names and patterns ----------------------------------------------------------------------------------------------


def test_the_names_follow_the_services():
    assert ACD_TYPES == {v for k, v in vars(AcdEventType).items() if k.isupper()}
    assert AGENT_STATES == set(AgentState.__args__)  # type: ignore[attr-defined]


def test_each_event_has_one_public_name():
    call = uuid.uuid4()
    assert public_type(CallEvent(call, "answered", AT)) == "call.answered"
    assert public_type(CallEvent(call, "connected", AT)) == "acd.connected"
    assert public_type(CallEvent(call, "ivr_input", AT)) == "call.ivr_input"
    assert public_type(AgentEvent("a1", "wrap_up", AT)) == "agent.wrap_up"


@pytest.mark.parametrize("pattern", ["*", "call.*", "acd.*", "agent.*", "call.answered", "call.ivr_*",
                                     "acd.connected", "agent.on_call", "call.something_new"])
def test_valid_patterns(pattern: str):
    assert check_pattern(pattern) is None


@pytest.mark.parametrize("pattern,why", [
    ("calls.*", "not an event pattern"), ("call.", "after the dot"), ("Call.answered", "not an event pattern"),
    ("agent.sleeping", "unknown agent state"), ("acd.teleported", "unknown ACD event"),
    ("call.connected", "write 'acd.connected'"), ("call.**", "not an event pattern"), ("", "not an event pattern"),
])
def test_invalid_patterns_say_why(pattern: str, why: str):
    assert why in (check_pattern(pattern) or "")


def test_matching():
    m = Matcher(["call.ivr_*", "acd.connected", "agent.*"])
    assert [m(n) for n in ("call.ivr_input", "call.answered", "acd.connected", "acd.queued", "agent.ready")] == [
        True, False, True, False, True]
    assert Matcher(["*"])("anything.at_all") and not Matcher([])("call.answered")


# -- bodies and signatures -------------------------------------------------------------------------------------------


def test_bodies():
    call, eid = uuid.uuid4(), uuid.uuid4()
    body = event_body(CallEvent(call, "connected", AT, "ch-9", {"agent": "a1", "wait_seconds": 2.5}, eid))
    assert body == {"event_id": str(eid), "type": "acd.connected", "at": "2026-03-01T09:30:00.123456Z",
                    "call_id": str(call), "channel_id": "ch-9", "data": {"agent": "a1", "wait_seconds": 2.5}}
    agent = event_body(AgentEvent("a1", "paused", AT, previous="ready", reason="lunch", event_id=eid))
    assert agent == {"event_id": str(eid), "type": "agent.paused", "at": "2026-03-01T09:30:00.123456Z",
                     "agent_id": "a1", "call_id": None,
                     "data": {"state": "paused", "previous": "ready", "reason": "lunch", "queue": None}}
    assert json.loads(encode(body)) == body and " " not in encode(body)
    with pytest.raises(ValueError):
        encode({"x": float("nan")})


def test_signature_is_hmac_sha256_of_timestamp_dot_body_and_verify_checks_it():
    body, key = b'{"event_id":"x"}', SECRET.encode()
    expected = "sha256=" + hmac.new(key, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(key, 1700000000, body) == expected
    assert verify(key, "1700000000", body, expected, now=1700000100)
    assert not verify(key, "1700000000", body + b" ", expected, now=1700000100)  # body changed
    assert not verify(key, "1700000001", body, expected, now=1700000100)  # timestamp changed
    assert not verify(b"another-secret", "1700000000", body, expected, now=1700000100)
    assert not verify(key, "1700000000", body, expected, now=1700000000 + 301)  # too old: a replay
    assert not verify(key, None, body, expected) and not verify(key, "12a", body, expected)
    assert not verify(key, "1700000000", body, None, now=1700000000)
