"""Which sounds Asterisk can play, so flows can be checked for missing prompts.

Live, callcore asks Asterisk (ARI ``GET /sounds``). Offline (``callcore check-config``) it looks at callcore's
own prompts plus the sandbox's sound tree when one is built; with neither, the check is skipped and said so.
"""

from __future__ import annotations

from pathlib import Path

from callcore.ari.client import AriClient

SOUND_SUFFIXES = {".gsm", ".wav", ".ulaw", ".alaw", ".sln", ".sln16", ".g722", ".g729", ".WAV"}


def sounds_in_tree(root: Path) -> set[str]:
    """Sound names under an Asterisk sounds directory (``<root>/<lang>/...``): "hello-world", "digits/7"."""
    names: set[str] = set()
    if not root.is_dir():
        return names
    for lang_dir in root.iterdir():
        if not lang_dir.is_dir():
            continue
        base = lang_dir.resolve()
        for f in base.rglob("*"):
            if f.suffix in SOUND_SUFFIXES and f.is_file():
                names.add(str(f.relative_to(base).with_suffix("")))
    return names


def offline_sounds() -> set[str] | None:
    """callcore's prompts and, if the sandbox is built, Asterisk's core sounds. None when neither is known."""
    from callcore import prompts
    from callcore.sandbox.asterisk import AsteriskSandbox

    names: set[str] = set()
    try:
        names |= prompts.prompt_names()
    except Exception:  # noqa: BLE001 - no prompt texts (installed without the repo): nothing to add
        pass
    sandbox = AsteriskSandbox(log=lambda _m: None)
    tree = sandbox.root / "usr" / "share" / "asterisk" / "sounds"
    if not sandbox.built:
        return None
    core = set()
    for lang_dir in tree.iterdir() if tree.is_dir() else []:
        target = lang_dir
        if lang_dir.is_symlink():
            link = Path(str(lang_dir.readlink()))
            target = sandbox.root / link.relative_to("/") if link.is_absolute() else lang_dir.parent / link
            if target.is_symlink():  # Debian's alternatives: /etc/alternatives/… → the real voice dir
                link2 = Path(str(target.readlink()))
                target = sandbox.root / link2.relative_to("/") if link2.is_absolute() else target.parent / link2
        if target.is_dir():
            core |= {str(f.relative_to(target).with_suffix("")) for f in target.rglob("*") if f.suffix in SOUND_SUFFIXES}
    return names | core


async def ari_sounds(ari: AriClient) -> set[str]:
    return {s.id for s in await ari.sounds.list()}
