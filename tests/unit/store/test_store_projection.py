"""The calls projection fold (pure Python) and the migration file loader."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from callcore.events import CallEvent, EventType
from callcore.store.migrations import MigrationError, default_migrations_dir, load_migrations
from callcore.store.projection import VARIABLES_SET, dumps, event_columns, fold, patch_columns

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CALL = uuid.uuid4()


def e(type_: str, sec: float, data: dict | None = None, channel: str | None = "chan-1", call: uuid.UUID = CALL) -> CallEvent:
    return CallEvent(call_id=call, type=type_, at=T0 + timedelta(seconds=sec), channel_id=channel, data=data or {})


def test_full_call_folds_into_one_patch() -> None:
    (p,) = fold([
        e(EventType.CALL_STARTED, 0, {"direction": "inbound", "did": "100", "caller_number": "555", "caller_name": "Bob", "config_version": "v1"}),
        e(EventType.ANSWERED, 1),
        e(EventType.ANSWERED, 2),
        e(VARIABLES_SET, 3, {"lang": "fr", "vip": True}),
        e(VARIABLES_SET, 4, {"lang": "en"}),
        e(EventType.HANGUP, 5, {"cause": 16, "cause_text": "Normal Clearing"}),
        e(EventType.HANGUP, 6, {"cause": 17, "cause_text": "User busy"}),
        e(EventType.CALL_ENDED, 7, {"disposition": "answered"}),
        e(EventType.CALL_ENDED, 8),
    ])
    assert (p.direction, p.did, p.caller_number, p.caller_name, p.config_version) == ("inbound", "100", "555", "Bob", "v1")
    assert p.started_at == T0 and p.start_channel == "chan-1"
    assert p.answered_at == T0 + timedelta(seconds=1)
    assert (p.has_hangup, p.hangup_cause, p.hangup_cause_text) == (True, 16, "Normal Clearing")
    assert p.ended_at == T0 + timedelta(seconds=7) and p.disposition == "answered"
    assert p.variables == {"lang": "en", "vip": True}


def test_events_before_call_started_and_several_calls() -> None:
    other = uuid.uuid4()
    patches = fold([
        e(EventType.DTMF, 5, channel="agent-leg"),
        e(EventType.DTMF, 1, call=other, channel=None),
        e(EventType.CALL_STARTED, 3, {"did": 42}),
    ])
    assert [p.call_id for p in patches] == [CALL, other]
    p = patches[0]
    assert p.first_at == T0 + timedelta(seconds=3) and p.first_channel == "agent-leg"
    assert p.started_at == T0 + timedelta(seconds=3) and p.start_channel == "chan-1" and p.did == "42"
    assert patches[1].started_at is None and patches[1].first_channel is None


def test_hangup_cause_coercion_and_missing_data() -> None:
    (p,) = fold([e(EventType.HANGUP, 0, {}), e(EventType.HANGUP, 1, {"cause": "17"})])
    assert (p.has_hangup, p.hangup_cause, p.hangup_cause_text) == (True, 17, None)
    (p,) = fold([e(EventType.HANGUP, 0, {"cause": "abc", "cause_text": "weird"})])
    assert (p.hangup_cause, p.hangup_cause_text) == (None, "weird")


def test_columns_have_matching_lengths() -> None:
    events = [e(EventType.CALL_STARTED, 0), e(EventType.ANSWERED, 1, call=uuid.uuid4())]
    cols = event_columns(events)
    assert len(cols) == 9 and all(len(c) == 2 for c in cols[:6]) and all(len(c) == 2 for c in cols[6:])
    pcols = patch_columns(fold(events))
    assert len(pcols) == 15 and all(len(c) == 2 for c in pcols)


def test_dumps_handles_common_types_and_refuses_nan() -> None:
    u = uuid.uuid4()
    assert dumps({"at": T0, "id": u, "s": {1}}) == f'{{"at":"{T0.isoformat()}","id":"{u}","s":[1]}}'
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


def test_repository_migrations_are_numbered_and_loadable() -> None:
    migs = load_migrations(default_migrations_dir())
    assert [m.version for m in migs][:2] == [1, 2]
    assert all(len(m.checksum) == 64 for m in migs)


def test_duplicate_version_and_missing_dir(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 2;")
    (tmp_path / "README").write_text("ignored")
    with pytest.raises(MigrationError, match="two migrations have version 1"):
        load_migrations(tmp_path)
    with pytest.raises(MigrationError, match="does not exist"):
        load_migrations(tmp_path / "nope")
