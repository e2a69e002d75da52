"""callcore.prompts (texts → 8 kHz WAV via espeak-ng + sox) and the sandbox's prompt install."""

from __future__ import annotations

import json
import os
import shutil
import wave
from pathlib import Path

import pytest

from callcore import prompts
from callcore.prompts import PromptError, load_texts, prompt_names, render_prompts
from callcore.sandbox.asterisk import install_sounds, resolve_in_root

REPO_TEXTS = Path(__file__).resolve().parents[2] / "sounds" / "prompts.yaml"

# espeak-ng and sox come from scripts/install-system-deps.sh (run by `make test` and CI).
# Outside CI a machine without them skips the rendering tests instead of failing.
needs_tools = pytest.mark.skipif(
    not prompts.tools_available() and not os.environ.get("CI"),
    reason="espeak-ng/sox not installed (scripts/install-system-deps.sh)",
)

#: Every prompt the example IVR (Dutch telecom contact center) relies on.
REQUIRED_PROMPTS = {
    "welcome", "main-menu", "support-menu", "billing-menu", "enter-account", "you-entered",
    "confirm-1-2", "invalid-option", "no-input", "closed", "holiday", "lunch", "please-hold",
    "connecting", "all-agents-busy", "busy-call-later", "gold-welcome", "retention-intro", "leave-message",
    "message-saved", "callback-offer", "callback-confirmed", "transfer-operator", "goodbye",
    "error", "sorry", "your-balance-is", "account-not-found",
}  # fmt: skip

#: The files Asterisk's main/say.c plays for language nl: ast_say_number_full_nl (0-19,
#: tens, nl-en, hundred, thousand, million, minus) and say_digit_str (star, pound).
SAY_C_NL_DIGITS = (
    {str(n) for n in range(20)}
    | {str(n) for n in range(20, 100, 10)}
    | {"nl-en", "hundred", "thousand", "million", "minus", "star", "pound"}
)


def small_texts(tmp_path: Path, **overrides: str) -> Path:
    texts = {
        "prompts": {
            "welcome": {"nl": overrides.get("welcome_nl", "Welkom."), "en": "Welcome."},
            "goodbye": {"nl": "Tot ziens.", "en": "Goodbye."},
        },
        "digits": {"nl": {"7": "zeven", "star": "sterretje"}},
    }
    for name in overrides.get("drop", "").split():
        del texts["prompts"][name]
    path = tmp_path / "prompts.yaml"
    path.write_text(json.dumps(texts, ensure_ascii=False))  # JSON is YAML
    return path


def wav_format(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / w.getframerate()


# ---------------------------------------------------------------- the repo's texts


def test_repo_texts_cover_the_example_ivr_in_both_languages() -> None:
    items = load_texts(REPO_TEXTS, ("nl", "en"))
    by_lang = {lang: {t.name for t in items if t.kind == "callcore" and t.lang == lang} for lang in ("nl", "en")}
    assert REQUIRED_PROMPTS <= by_lang["nl"]
    assert by_lang["nl"] == by_lang["en"]  # load_texts also refuses a missing translation


def test_repo_dutch_digits_are_the_ones_say_c_plays() -> None:
    names = prompt_names(REPO_TEXTS, "nl")
    assert {f"digits/{n}" for n in SAY_C_NL_DIGITS} <= names
    texts = {t.name: t.text for t in load_texts(REPO_TEXTS, ("nl",)) if t.kind == "digits"}
    assert texts["7"] == "zeven" and texts["nl-en"] == "en" and texts["hundred"] == "honderd"
    assert texts["1"] == "één"  # not "een", which espeak-ng may read as the article


def test_prompt_names_as_asterisk_sees_them() -> None:
    names = prompt_names(REPO_TEXTS)
    assert {"callcore/welcome", "callcore/main-menu", "digits/7", "digits/pound"} <= names
    en = prompt_names(REPO_TEXTS, "en")
    assert "callcore/welcome" in en
    assert not any(n.startswith("digits/") for n in en)  # English digits are Asterisk's core sounds


def test_missing_translation_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("prompts:\n  welcome: {nl: Welkom.}\n")
    with pytest.raises(PromptError, match=r"welcome \(en\)"):
        load_texts(path, ("nl", "en"))
    assert prompt_names(path) == {"callcore/welcome"}  # no language asked: only nl exists


@pytest.mark.parametrize(
    "text",
    [
        "prompts:\n  Welcome: {nl: x, en: y}\n",
        "prompts:\n  ../evil: {nl: x, en: y}\n",
        "prompts:\n  welcome: {nl: '', en: y}\n",
        "prompts: [1, 2]\n",
        "prompts: {}\nextra: 1\n",
        "prompts: {}\ndigits: {nl: {'a/b': x}}\n",
        "prompts: [unclosed\n",
    ],
)
def test_bad_texts_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PromptError):
        load_texts(path, ("nl", "en"))


def test_missing_tools_say_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(prompts.shutil, "which", lambda name: None if name == "sox" else real_which(name))
    with pytest.raises(PromptError, match=r"sox not installed: run scripts/install-system-deps.sh"):
        render_prompts(small_texts(tmp_path), tmp_path / "out")


# ---------------------------------------------------------------- rendering


@needs_tools
def test_render_layout_and_asterisk_native_format(tmp_path: Path) -> None:
    out = tmp_path / "sounds"
    written = render_prompts(small_texts(tmp_path), out)
    rel = sorted(p.relative_to(out).as_posix() for p in written)
    assert rel == [
        "en/callcore/goodbye.wav",
        "en/callcore/welcome.wav",
        "nl/callcore/goodbye.wav",
        "nl/callcore/welcome.wav",
        "nl/digits/7.wav",
        "nl/digits/star.wav",
    ]
    for path in written:
        rate, channels, width, seconds = wav_format(path)
        assert (rate, channels, width) == (8000, 1, 2), path  # 8 kHz mono 16-bit: format_wav, no transcoding
        assert 0.2 < seconds < 5, (path, seconds)
        assert path.stat().st_mode & 0o777 == 0o644
    manifest = json.loads((out / ".manifest.json").read_text())
    assert set(manifest["files"]) == set(rel)


@needs_tools
def test_render_is_incremental(tmp_path: Path) -> None:
    out = tmp_path / "sounds"
    render_prompts(small_texts(tmp_path), out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}

    assert render_prompts(small_texts(tmp_path), out) == []  # nothing changed
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == mtimes

    # One text changed: only that file.
    changed = render_prompts(small_texts(tmp_path, welcome_nl="Welkom bij Telco Nederland."), out)
    assert changed == [out / "nl/callcore/welcome.wav"]

    # A deleted file is rendered again, even though its text did not change.
    (out / "en/callcore/goodbye.wav").unlink()
    texts = small_texts(tmp_path, welcome_nl="Welkom bij Telco Nederland.")
    assert render_prompts(texts, out) == [out / "en/callcore/goodbye.wav"]

    # force renders everything.
    assert len(render_prompts(texts, out, force=True)) == 6

    # Another voice or speed is a change too.
    assert len(render_prompts(texts, out, speed=140)) == 6


@needs_tools
def test_removed_prompts_are_deleted_but_foreign_files_kept(tmp_path: Path) -> None:
    out = tmp_path / "sounds"
    render_prompts(small_texts(tmp_path), out)
    own_recording = out / "nl/callcore/studio-welcome.wav"
    own_recording.write_bytes(b"RIFF....")  # an admin's file: not in the manifest
    render_prompts(small_texts(tmp_path, drop="goodbye"), out)
    assert not (out / "nl/callcore/goodbye.wav").exists()
    assert not (out / "en/callcore/goodbye.wav").exists()
    assert own_recording.exists()
    assert "nl/callcore/goodbye.wav" not in json.loads((out / ".manifest.json").read_text())["files"]


@needs_tools
def test_rendering_one_language_keeps_the_other(tmp_path: Path) -> None:
    out = tmp_path / "sounds"
    texts = small_texts(tmp_path)
    render_prompts(texts, out)
    assert len(render_prompts(texts, out, languages=("nl",), force=True)) == 4
    assert (out / "en/callcore/welcome.wav").exists()
    assert "en/callcore/welcome.wav" in json.loads((out / ".manifest.json").read_text())["files"]
    assert render_prompts(texts, out) == []


# ---------------------------------------------------------------- installing into the chroot


def fake_chroot(tmp_path: Path) -> Path:
    """Debian's layout: sounds/en → /etc/alternatives/asterisk-prompt-en → sounds/en_US_f_Allison."""
    root = tmp_path / "root"
    sounds = root / "usr/share/asterisk/sounds"
    (sounds / "en_US_f_Allison/digits").mkdir(parents=True)
    (root / "etc/alternatives").mkdir(parents=True)
    (root / "etc/alternatives/asterisk-prompt-en").symlink_to("/usr/share/asterisk/sounds/en_US_f_Allison")
    (sounds / "en").symlink_to("/etc/alternatives/asterisk-prompt-en")
    return root


def test_resolve_in_root_follows_symlinks_inside_the_chroot(tmp_path: Path) -> None:
    root = fake_chroot(tmp_path)
    allison = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    assert resolve_in_root(root, "/usr/share/asterisk/sounds/en/callcore") == allison / "callcore"
    assert resolve_in_root(root, "/usr/share/asterisk/sounds/nl/digits") == root / "usr/share/asterisk/sounds/nl/digits"
    assert resolve_in_root(root, "/../../etc/alternatives") == root / "etc/alternatives"  # never above root


def test_install_sounds_into_chroot(tmp_path: Path) -> None:
    root = fake_chroot(tmp_path)
    src = tmp_path / "rendered"
    for rel in ("nl/callcore/welcome.wav", "nl/digits/7.wav", "en/callcore/welcome.wav"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(rel.encode())
    (src / ".manifest.json").write_text("{}")
    sounds = root / "usr/share/asterisk/sounds"
    (sounds / "en_US_f_Allison/callcore").mkdir()
    (sounds / "en_US_f_Allison/callcore/old.wav").write_bytes(b"stale")

    changed = install_sounds(src, root)
    assert sorted(changed) == sorted(
        ["nl/callcore/welcome.wav", "nl/digits/7.wav", "en/callcore/welcome.wav", "en/callcore/old.wav (removed)"]
    )
    assert (sounds / "nl/callcore/welcome.wav").read_bytes() == b"nl/callcore/welcome.wav"
    assert (sounds / "nl/digits/7.wav").stat().st_mode & 0o777 == 0o644
    assert (sounds / "nl").stat().st_mode & 0o777 == 0o755
    # en went through the chroot's symlinks, not the host's /etc/alternatives.
    assert (sounds / "en_US_f_Allison/callcore/welcome.wav").read_bytes() == b"en/callcore/welcome.wav"
    assert not (sounds / "en_US_f_Allison/callcore/old.wav").exists()
    assert not (sounds / ".manifest.json").exists() and not (sounds / "nl/.manifest.json").exists()

    assert install_sounds(src, root) == []  # unchanged: nothing rewritten
    (src / "nl/digits/7.wav").write_bytes(b"zeven")
    assert install_sounds(src, root) == ["nl/digits/7.wav"]


@needs_tools
def test_render_then_install_end_to_end(tmp_path: Path) -> None:
    root = fake_chroot(tmp_path)
    out = tmp_path / "sounds"
    render_prompts(small_texts(tmp_path), out)
    install_sounds(out, root)
    installed = root / "usr/share/asterisk/sounds/nl/callcore/welcome.wav"
    assert wav_format(installed)[:3] == (8000, 1, 2)


def sandbox_with_fake_chroot(tmp_path: Path, texts: Path, messages: list[str]):  # type: ignore[no-untyped-def]
    from callcore.sandbox.asterisk import AsteriskSandbox

    cache = tmp_path / "cache"
    cache.mkdir()
    fake_chroot(tmp_path).rename(cache / "asterisk-root")
    (cache / "asterisk-root/usr/sbin").mkdir(parents=True)
    (cache / "asterisk-root/usr/sbin/asterisk").write_text("")  # makes it `built`
    return AsteriskSandbox(
        cache_dir=cache, log=messages.append, sounds_dir=tmp_path / "sounds", prompts_file=texts
    )


@needs_tools
def test_sandbox_up_step_renders_and_installs(tmp_path: Path) -> None:
    messages: list[str] = []
    sandbox = sandbox_with_fake_chroot(tmp_path, small_texts(tmp_path), messages)
    sandbox._prompts_on_up()
    assert (sandbox.root / "usr/share/asterisk/sounds/nl/callcore/welcome.wav").is_file()
    assert (sandbox.root / "usr/share/asterisk/sounds/en_US_f_Allison/callcore/goodbye.wav").is_file()
    assert any("6 file(s) installed" in m for m in messages), messages


def test_sandbox_up_step_without_tools_only_notes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    messages: list[str] = []
    sandbox = sandbox_with_fake_chroot(tmp_path, small_texts(tmp_path), messages)
    monkeypatch.setattr(prompts, "tools_available", lambda: False)
    sandbox._prompts_on_up()  # must not raise: `up` goes on without prompts
    assert any("not rendered" in m and "install-system-deps" in m for m in messages), messages
    assert not (sandbox.root / "usr/share/asterisk/sounds/nl").exists()
    # Rendered earlier (say on another machine's run): installed as they are.
    (sandbox.sounds_dir / "nl/callcore").mkdir(parents=True)
    (sandbox.sounds_dir / "nl/callcore/welcome.wav").write_bytes(b"x")
    sandbox._prompts_on_up()
    assert (sandbox.root / "usr/share/asterisk/sounds/nl/callcore/welcome.wav").read_bytes() == b"x"
