"""Media items → Asterisk media URIs, and ${var} interpolation."""

from __future__ import annotations

import pytest

from callcore.ivr.media import interpolate, resolve_media, say_date, sound_name


def test_interpolate() -> None:
    v = {"account": "123", "name": "a b"}
    assert interpolate("acc=${account}&x=${missing}", v) == "acc=123&x="
    assert interpolate("${name}", v, url_quote=True) == "a%20b"
    assert interpolate("$account ${ not a var } ${", v) == "$account ${ not a var } ${"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("callcore/welcome", ("sound:callcore/welcome",)),
        ("sound:hello-world", ("sound:hello-world",)),
        ("recording:vm-1", ("recording:vm-1",)),
        ("tone:busy", ("tone:busy",)),
        ("digits:${account}", ("digits:123456",)),
        ("digits:${missing}", ()),
        ("digits:12-34", ("digits:1234",)),
        ("number:${balance}", ("number:42",)),
        ("number:${missing}", ()),
        ("number:12.50", ("number:12", "sound:letters/dot", "digits:50")),
        ("number:abc", ()),
        ("characters:${code}", ("characters:AB1",)),
        ("sound:${missing}", ()),
        ("${missing}", ()),
        ("${prompt}", ("sound:callcore/dynamic",)),
    ],
)
def test_resolve_items(item: str, expected: tuple[str, ...]) -> None:
    v = {"account": "123456", "balance": "42", "code": "AB1", "prompt": "callcore/dynamic"}
    assert resolve_media([item], v) == expected


def test_dates() -> None:
    # 2026-12-25 is a Friday: Asterisk day-5 (0 = Sunday), month 11 (0 = January).
    assert say_date("2026-12-25") == ["sound:digits/day-5", "sound:digits/mon-11", "number:25", "number:2026"]
    assert say_date("2026-12-25T10:00:00Z", "nl") == [
        "sound:digits/day-5", "number:25", "sound:digits/mon-11", "number:2026"
    ]
    assert say_date("2026-02-30") == [] and say_date("tomorrow") == []
    assert resolve_media(["date:${due}"], {"due": "2027-01-03"}) == (
        "sound:digits/day-0", "sound:digits/mon-0", "number:3", "number:2027"
    )


def test_sound_name() -> None:
    assert sound_name("callcore/welcome") == "callcore/welcome"
    assert sound_name("sound:hello-world") == "hello-world"
    assert sound_name("digits:12") is None
    assert sound_name("sound:${x}") is None
    assert sound_name("callcore/${lang}/welcome") is None
