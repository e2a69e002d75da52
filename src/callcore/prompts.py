"""callcore's own voice prompts: texts in ``sounds/prompts.yaml``, rendered to WAV files.

``render_prompts`` speaks every text with ``espeak-ng`` and converts it with ``sox`` to
Asterisk's native telephone format: 8 kHz, mono, 16-bit signed PCM ``.wav``
(``format_wav`` reads it without transcoding to signed linear). The layout is the one
Asterisk's sounds directory uses, per language::

    <out_dir>/<lang>/callcore/<name>.wav   # prompts:  sound:callcore/<name>
    <out_dir>/<lang>/digits/<name>.wav     # digits:   Asterisk's say-number files

Rendering is incremental: ``<out_dir>/.manifest.json`` keeps a hash of what produced
each file (text, voice, speed, format); a file is rendered again only when that hash
changed or the file is missing, unless ``force``. Files the manifest knows but the
texts no longer name are removed; anything else in ``out_dir`` is left alone.

Command line (for a Makefile target)::

    python -m callcore.prompts render [--texts sounds/prompts.yaml] [--out .state/sounds] [--force]
    python -m callcore.prompts names [--lang nl]

This is an operations tool (plain synchronous subprocess code), not part of the event
loop.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

#: espeak-ng voice per language (``espeak-ng --voices=<lang>`` lists more).
DEFAULT_VOICES: dict[str, str] = {"nl": "nl", "en": "en-gb"}
#: Words per minute; espeak-ng's default (175) is rushed for phone menus.
DEFAULT_SPEED = 150
DEFAULT_LANGUAGES = ("nl", "en")
#: Asterisk's native telephone format (format_wav: 8 kHz signed linear).
SAMPLE_RATE = 8000
CHANNELS = 1
SAMPLE_WIDTH = 2  # bytes: 16-bit signed PCM
#: Silence (seconds) before/after the speech, after trimming espeak-ng's own.
#: Digits get almost none so that "één-en-twintig" or a readout of digits flows.
PADDING = {"callcore": (0.1, 0.25), "digits": (0.0, 0.06)}
#: Bump when the sox/espeak pipeline changes so every file is rendered again.
PIPELINE_VERSION = 2
MANIFEST_NAME = ".manifest.json"
PROMPT_DIR = "callcore"
DIGITS_DIR = "digits"

_PROMPT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_DIGIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_LANG = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]+)*$")

Log = Callable[[str], None]


class PromptError(RuntimeError):
    """The prompts cannot be rendered; the message says why and what to do."""


def repo_root() -> Path:
    """The repository (src/callcore/prompts.py → ../..)."""
    return Path(__file__).resolve().parents[2]


def default_texts_file() -> Path:
    return repo_root() / "sounds" / "prompts.yaml"


def default_out_dir() -> Path:
    """``<repo>/.state/sounds``: the default state dir's ``sounds``."""
    return repo_root() / ".state" / "sounds"


@dataclass(frozen=True)
class PromptText:
    """One file to render: ``<lang>/<kind>/<name>.wav`` saying ``text``."""

    lang: str
    kind: str  # PROMPT_DIR or DIGITS_DIR
    name: str
    text: str

    @property
    def sound(self) -> str:
        """The name Asterisk plays it by (``callcore/welcome``, ``digits/7``)."""
        return f"{self.kind}/{self.name}"

    @property
    def relpath(self) -> str:
        return f"{self.lang}/{self.kind}/{self.name}.wav"


# ---------------------------------------------------------------- the texts


def load_texts(texts_file: Path | str, languages: Iterable[str] | None = None) -> list[PromptText]:
    """Parse and check ``texts_file``. With ``languages``, only those, and each prompt must have them all.

    Without ``languages``: every language any prompt has (prompts must still agree).
    """
    path = Path(texts_file)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PromptError(f"cannot read prompt texts {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise PromptError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict):
        raise PromptError(f"{path}: expected a mapping with a `prompts:` section")
    unknown = set(data) - {"prompts", "digits"}
    if unknown:
        raise PromptError(f"{path}: unknown top-level keys {sorted(unknown)} (expected prompts, digits)")

    prompts: dict = data["prompts"]
    found_langs: set[str] = set()
    for name, texts in prompts.items():
        if not isinstance(name, str) or not _PROMPT_NAME.match(name):
            raise PromptError(f"{path}: prompt name {name!r}: use lower-case letters, digits and '-'")
        if not isinstance(texts, dict) or not texts:
            raise PromptError(f"{path}: prompt {name!r}: expected `lang: text` pairs")
        found_langs.update(texts)
    wanted = list(dict.fromkeys(languages)) if languages is not None else sorted(found_langs)
    for lang in wanted:
        if not isinstance(lang, str) or not _LANG.match(lang):
            raise PromptError(f"invalid language code {lang!r}")

    out: list[PromptText] = []
    missing: list[str] = []
    for name, texts in prompts.items():
        for lang in wanted:
            text = texts.get(lang)
            if text is None:
                missing.append(f"{name} ({lang})")
                continue
            out.append(PromptText(lang, PROMPT_DIR, name, _clean_text(path, f"{name}.{lang}", text)))
    if missing:
        raise PromptError(f"{path}: prompts without a text: {', '.join(missing)}")

    digits = data.get("digits") or {}
    if not isinstance(digits, dict):
        raise PromptError(f"{path}: `digits:` must map a language to `name: text` pairs")
    for lang, table in digits.items():
        if not isinstance(lang, str) or not _LANG.match(lang):
            raise PromptError(f"{path}: digits: invalid language code {lang!r}")
        if not isinstance(table, dict):
            raise PromptError(f"{path}: digits.{lang}: expected `name: text` pairs")
        if lang not in wanted:
            continue
        for name, text in table.items():
            name = str(name)  # YAML may read 7 as an int even when quoted in other files
            if not _DIGIT_NAME.match(name):
                raise PromptError(f"{path}: digits.{lang}: invalid sound name {name!r}")
            out.append(PromptText(lang, DIGITS_DIR, name, _clean_text(path, f"digits.{lang}.{name}", text)))
    return out


def _clean_text(path: Path, where: str, text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise PromptError(f"{path}: {where}: expected a non-empty text")
    return " ".join(text.split())


def prompt_names(texts_file: Path | str | None = None, language: str | None = None) -> set[str]:
    """Sound names as Asterisk sees them: ``{"callcore/welcome", ..., "digits/7", ...}``.

    With ``language``, only the sounds rendered for that language (English digits come
    from Asterisk's core sounds, so ``language="en"`` gives only ``callcore/...``).
    For the IVR validator: a flow that plays ``sound:callcore/x`` with no such name
    here refers to a missing prompt.
    """
    texts = load_texts(texts_file or default_texts_file(), [language] if language else None)
    return {t.sound for t in texts}


# ---------------------------------------------------------------- rendering


def require_tools() -> tuple[str, str]:
    """Paths of espeak-ng and sox, or a PromptError saying how to install them."""
    espeak = shutil.which("espeak-ng")
    sox = shutil.which("sox")
    missing = [n for n, p in (("espeak-ng", espeak), ("sox", sox)) if p is None]
    if missing:
        raise PromptError(
            f"{' and '.join(missing)} not installed: run scripts/install-system-deps.sh "
            "(or apt-get install espeak-ng sox)"
        )
    return espeak, sox  # type: ignore[return-value]


def tools_available() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def _render_key(item: PromptText, voice: str, speed: int) -> str:
    spec = {
        "v": PIPELINE_VERSION,
        "text": item.text,
        "voice": voice,
        "speed": speed,
        "rate": SAMPLE_RATE,
        "pad": PADDING[item.kind],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def read_manifest(out_dir: Path) -> dict[str, str]:
    """``relpath → hash`` of the files this module rendered into ``out_dir``."""
    try:
        data = json.loads((out_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _write_manifest(out_dir: Path, files: dict[str, str]) -> None:
    tmp = out_dir / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps({"version": PIPELINE_VERSION, "files": dict(sorted(files.items()))}, indent=1) + "\n")
    os.replace(tmp, out_dir / MANIFEST_NAME)


def render_one(text: str, voice: str, dest: Path, *, speed: int = DEFAULT_SPEED, kind: str = PROMPT_DIR) -> None:
    """Speak ``text`` with espeak-ng into ``dest`` as 8 kHz mono 16-bit WAV (atomically)."""
    espeak, sox = require_tools()
    dest.parent.mkdir(parents=True, exist_ok=True)
    lead, tail = PADDING[kind]
    with tempfile.TemporaryDirectory(prefix="callcore-prompt-") as tmp:
        raw = Path(tmp) / "espeak.wav"
        out = Path(tmp) / "out.wav"
        _run([espeak, "-v", voice, "-s", str(speed), "-b", "1", "--stdin", "-w", str(raw)], text, "espeak-ng")
        _run(
            [
                sox, str(raw),
                "-b", "16", "-e", "signed-integer", "-c", str(CHANNELS), str(out),
                # trim espeak-ng's leading and trailing silence
                "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse",
                "highpass", "120",  # nothing useful below the telephone band
                "rate", "-h", str(SAMPLE_RATE),
                "norm", "-3",  # peaks at -3 dBFS (after resampling): loud, no clipping in G.711
                "pad", str(lead), str(tail),
            ],
            None,
            "sox",
        )
        tmp_dest = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(out, tmp_dest)
        tmp_dest.chmod(0o644)
        os.replace(tmp_dest, dest)


def _run(cmd: list[str], stdin_text: str | None, what: str) -> None:
    try:
        result = subprocess.run(
            cmd,
            input=stdin_text.encode() if stdin_text is not None else None,
            stdin=None if stdin_text is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        raise PromptError(f"{what} did not finish within 60 s: {' '.join(cmd)}") from None
    if result.returncode != 0:
        raise PromptError(
            f"{what} failed (exit {result.returncode}): {result.stderr.decode(errors='replace').strip()}"
        )


def render_prompts(
    texts_file: Path | str | None = None,
    out_dir: Path | str | None = None,
    languages: Iterable[str] = DEFAULT_LANGUAGES,
    force: bool = False,
    *,
    voices: dict[str, str] | None = None,
    speed: int = DEFAULT_SPEED,
    log: Log | None = None,
) -> list[Path]:
    """Render the texts of ``texts_file`` into ``out_dir``; returns the files (re)written now.

    Defaults: ``sounds/prompts.yaml`` → ``<repo>/.state/sounds`` (pass
    ``config.state_dir / "sounds"``). A file is rendered only when it is missing or
    its text/voice/speed/format changed (``force`` renders all). Files rendered
    earlier whose text is gone from ``texts_file`` are deleted; other files in
    ``out_dir`` (an admin's own recordings, say) are never touched.
    """
    log = log or (lambda _msg: None)
    texts_path = Path(texts_file) if texts_file is not None else default_texts_file()
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    langs = tuple(languages)
    items = load_texts(texts_path, langs)
    voice_of = {**DEFAULT_VOICES, **(voices or {})}
    no_voice = [lang for lang in langs if lang not in voice_of]
    if no_voice:
        raise PromptError(f"no espeak-ng voice for language(s) {no_voice}: pass voices={{lang: voice}}")

    out.mkdir(parents=True, exist_ok=True)
    old = read_manifest(out)
    new: dict[str, str] = {}
    todo: list[tuple[PromptText, str]] = []
    for item in items:
        key = _render_key(item, voice_of[item.lang], speed)
        new[item.relpath] = key
        if force or old.get(item.relpath) != key or not (out / item.relpath).is_file():
            todo.append((item, key))

    # Keep manifest entries of languages not rendered this time (e.g. languages=("nl",)).
    rendered_langs = set(langs)
    stale = [rel for rel in old if rel not in new and rel.split("/", 1)[0] in rendered_langs]
    for rel in old:
        if rel not in new and rel not in stale:
            new[rel] = old[rel]

    for rel in stale:
        (out / rel).unlink(missing_ok=True)
        log(f"prompts: removed {rel} (no longer in {texts_path.name})")
    if todo:
        require_tools()
        log(f"prompts: rendering {len(todo)} of {len(items)} files into {out}")
    written: list[Path] = []
    done = {rel: key for rel, key in old.items() if rel in new}
    try:
        for item, key in todo:
            dest = out / item.relpath
            render_one(item.text, voice_of[item.lang], dest, speed=speed, kind=item.kind)
            done[item.relpath] = key
            written.append(dest)
    finally:
        # Record what is on disk even when a render failed half-way, so the next run resumes.
        _write_manifest(out, {rel: done[rel] for rel in new if rel in done})
    _write_manifest(out, new)
    if not todo:
        log(f"prompts: all {len(items)} files in {out} are up to date")
    return written


def rendered_files(out_dir: Path | str) -> list[Path]:
    """The ``.wav`` files under ``out_dir`` (relative paths), manifest excluded."""
    base = Path(out_dir)
    return sorted(p.relative_to(base) for p in base.rglob("*.wav") if p.is_file() and not p.name.startswith("."))


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callcore.prompts", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="render sounds/prompts.yaml with espeak-ng + sox (only what changed)")
    r.add_argument("--texts", type=Path, default=default_texts_file())
    r.add_argument("--out", type=Path, default=default_out_dir())
    r.add_argument("--lang", action="append", help="language to render (repeatable; default: nl and en)")
    r.add_argument("--force", action="store_true", help="render every file again")
    n = sub.add_parser("names", help="list the sound names (callcore/..., digits/...)")
    n.add_argument("--texts", type=Path, default=default_texts_file())
    n.add_argument("--lang")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "render":
            written = render_prompts(args.texts, args.out, args.lang or DEFAULT_LANGUAGES, args.force, log=print)
            print(f"prompts: {len(written)} file(s) rendered into {args.out}")
        else:
            print("\n".join(sorted(prompt_names(args.texts, args.lang))))
    except PromptError as exc:
        print(f"callcore: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
